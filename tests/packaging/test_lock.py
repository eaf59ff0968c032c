"""The test install is reproducible: every package in this environment is pinned by constraints.txt, at the
version installed, so a release published tomorrow cannot change what the test command installs."""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;]+)$")


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        assert match, f"constraints.txt: not an exact pin: {line!r}"
        pins[canonicalize_name(match[1])] = match[2]
    return pins


def test_every_installed_package_is_pinned_at_its_installed_version() -> None:
    pins = _pins()
    installed: dict[str, str] = {
        canonicalize_name(dist.metadata["Name"]): dist.version
        for dist in metadata.distributions(path=[p for p in sys.path if "site-packages" in p])
    }
    installed.pop("tokenbank", None)  # the project itself, installed editable
    assert {name: version for name, version in installed.items() if pins.get(name) != version} == {}


def test_every_declared_requirement_is_pinned() -> None:
    pins = _pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = [
        *project["project"]["dependencies"],
        *(req for group in project["project"]["optional-dependencies"].values() for req in group),
        *project["dependency-groups"]["dev"],
        *project["build-system"]["requires"],
    ]
    names = {canonicalize_name(Requirement(req).name) for req in declared} - {"tokenbank"}
    assert sorted(names - pins.keys()) == []


def test_development_tools_are_not_a_published_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "dev" not in extras
    assert not any("pytest" in req for group in extras.values() for req in group)
