"""Every ```python block in README.md and docs/ (subfolders included) runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _examples() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for n, match in enumerate(BLOCK.finditer(path.read_text()), 1):
            found.append((f"{path.relative_to(ROOT)}#{n}", match.group(1)))
    return found


EXAMPLES = _examples()


def test_docs_have_examples() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize(("where", "code"), EXAMPLES, ids=[where for where, _ in EXAMPLES])
def test_example_runs(where: str, code: str, tmp_path: Path) -> None:
    # A fresh interpreter in a scratch directory: examples must not depend on the test process or leave files.
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"{where} failed:\n{result.stdout}\n{result.stderr}"
