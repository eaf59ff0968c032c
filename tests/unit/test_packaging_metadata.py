"""The published metadata: license, classifiers and project links, as the build backend writes them."""

from __future__ import annotations

import subprocess
import sys
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def metadata(tmp_path_factory: pytest.TempPathFactory) -> Message:
    """METADATA from the build backend's own PEP 517 hook, so what is checked is what a wheel would carry
    (the installed editable copy may predate the last change to pyproject.toml)."""
    out = tmp_path_factory.mktemp("metadata")
    hook = "import sys, hatchling.build as b; print(b.prepare_metadata_for_build_wheel(sys.argv[1]))"
    dist_info = subprocess.run(
        [sys.executable, "-c", hook, str(out)], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()
    return Parser().parsestr((out / dist_info / "METADATA").read_text(encoding="utf-8"))


def test_license_is_mit_with_its_file(metadata: Message) -> None:
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "Copyright (c) 2026 tokenbank contributors" in text
    # License classifiers are superseded by License-Expression; indexes may refuse an upload carrying both.
    assert not [c for c in metadata.get_all("Classifier") or [] if c.startswith("License ::")]


def test_classifiers(metadata: Message) -> None:
    classifiers = set(metadata.get_all("Classifier") or [])
    assert {
        "Development Status :: 3 - Alpha",
        "Framework :: AsyncIO",
        "Framework :: FastAPI",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Office/Business :: Financial",
        "Typing :: Typed",
    } <= classifiers


def test_project_urls(metadata: Message) -> None:
    urls = dict(entry.split(", ", 1) for entry in metadata.get_all("Project-URL") or [])
    assert set(urls) == {"Homepage", "Documentation", "Changelog", "Issues"}
    assert all(url.startswith("https://github.com/tokenbank/tokenbank") for url in urls.values())
