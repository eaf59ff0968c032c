"""The documentation site builds with --strict, its reference is generated from the code, every page is reachable,
and the strict build really fails on a broken link or anchor."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
DIRECTIVE = re.compile(r"^::: ", re.M)  # a mkdocstrings block: the page is generated from docstrings


def _config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    return config


def _nav_pages(nav: list[Any]) -> list[str]:
    pages: list[str] = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages.extend(_nav_pages(value) if isinstance(value, list) else [value])
    return pages


def _build(config_file: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config_file), "--site-dir", site],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_every_page_is_in_the_nav_or_listed_as_not_in_nav() -> None:
    config = _config()
    in_nav = set(_nav_pages(config["nav"]))
    waiting = {line.strip().lstrip("/") for line in config.get("not_in_nav", "").splitlines() if line.strip()}
    pages = {str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md")}
    assert sorted(in_nav - pages) == [], "nav entries without a page"
    assert sorted(pages - in_nav - waiting) == [], "pages neither in the nav nor in not_in_nav of mkdocs.yml"
    assert sorted(in_nav & waiting) == [], "pages in the nav: remove them from not_in_nav"


def test_site_builds_strictly_with_a_generated_reference(tmp_path: Path) -> None:
    result = _build(ROOT / "mkdocs.yml", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    reference = (tmp_path / "reference" / "tokenbank" / "index.html").read_text()
    # Generated from the code: a method added to TokenBank appears without editing the page.
    for anchor in ("tokenbank.TokenBank.transfer", "tokenbank.TokenBank.verify", "tokenbank.TokenBank.open"):
        assert f'id="{anchor}"' in reference
    assert ":class:" not in reference and ":meth:" not in reference  # reST roles became links or code
    blocking = (tmp_path / "reference" / "blocking" / "index.html").read_text()
    assert "Move <code>amount</code> between accounts" in blocking  # a blocking twin shows its async docstring


def test_strict_build_fails_on_a_missing_anchor_or_a_link_out_of_docs(tmp_path: Path) -> None:
    # A copy of docs/ whose API reference pages keep only their title (quick: no mkdocstrings). It builds, then
    # fails once a page has two bad links.
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)  # images and every other file pages link to
    for page in docs.rglob("*.md"):
        text = page.read_text()
        if DIRECTIVE.search(text):
            page.write_text(text.splitlines()[0] + "\n")
    config = _config()
    config.pop("watch")
    config["docs_dir"] = str(docs)
    config["plugins"] = ["search"]
    config_file = tmp_path / "mkdocs.yml"
    config_file.write_text(yaml.safe_dump(config))
    good = _build(config_file, tmp_path / "site")
    assert good.returncode == 0, good.stderr

    quickstart = docs / "quickstart.md"
    bad_links = "\nSee [the tables](storage-sql.md#no-such-section) and [the README](../README.md).\n"
    quickstart.write_text(quickstart.read_text() + bad_links)
    bad = _build(config_file, tmp_path / "site")
    assert bad.returncode != 0
    assert "no-such-section" in bad.stderr
    assert "../README.md" in bad.stderr


def _extension() -> ModuleType:
    spec = importlib.util.spec_from_file_location("griffe_sphinx", ROOT / "scripts" / "griffe_sphinx.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_literal_blocks_become_fenced_code() -> None:
    text = "Use it like this::\n\n    bank.transfer('a', 'b', '1')\n\nThen::\n\n    a -> b\n      c\n\nDone."
    assert _extension().literal_blocks(text) == (
        "Use it like this:\n\n```python\nbank.transfer('a', 'b', '1')\n```\n\n"
        "Then:\n\n```text\na -> b\n  c\n```\n\nDone."
    )


def test_a_double_colon_without_a_block_is_left_alone() -> None:
    assert _extension().literal_blocks("Ratio:: 2\nnext") == "Ratio:: 2\nnext"
