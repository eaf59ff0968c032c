"""The README's examples run after the README's own install: each third-party import is a core dependency, or the
paragraph above the example names the install that brings it."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions, requires
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
# An example and the paragraph right above it.
_BLOCK = re.compile(r"(?P<before>(?:[^\n]+\n)*[^\n]+)\n\n```python\n(?P<code>.*?)\n```", re.DOTALL)
_EXTRA = re.compile(r"""extra\s*==\s*['"](?P<extra>[^'"]+)['"]""")


def _name(requirement: str) -> str:
    return re.split(r"[\s;\[<>=!~]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _dependencies() -> tuple[set[str], dict[str, set[str]]]:
    """The core dependencies, and the distributions each extra adds (``all`` left out: it names the others)."""
    core: set[str] = set()
    extras: dict[str, set[str]] = {}
    for requirement in requires("tokenbank") or []:
        found = _EXTRA.search(requirement)
        if found is None:
            core.add(_name(requirement))
        elif found["extra"] != "all":
            extras.setdefault(found["extra"], set()).add(_name(requirement))
    return core, extras


def _third_party(code: str) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m not in ("__future__", "tokenbank")}


EXAMPLES = [
    (" ".join(match["before"].split()), match["code"]) for match in _BLOCK.finditer(README.read_text(encoding="utf-8"))
]


def test_the_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize(("paragraph", "code"), EXAMPLES, ids=[f"example-{i}" for i in range(len(EXAMPLES))])
def test_each_example_names_its_install(paragraph: str, code: str) -> None:
    core, extras = _dependencies()
    owners = packages_distributions()
    assert "pip install" in paragraph, f"the paragraph above the example should say what to install: {paragraph!r}"
    for module in sorted(_third_party(code)):
        dists = {_name(d) for d in owners.get(module, [module])}
        if dists & core:
            continue
        named = [extra for extra, members in extras.items() if dists & members and f"[{extra}]" in paragraph]
        assert named or any(d in paragraph for d in dists), f"{module} is imported but {paragraph!r} omits it"
