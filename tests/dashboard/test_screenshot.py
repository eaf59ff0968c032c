"""scripts/dashboard_screenshot.py, which makes docs/images/dashboard.png, still works (on a short history)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.dashboard.conftest import require_chromium

ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_the_screenshot_script_writes_a_png(tmp_path: Path) -> None:
    chromium = require_chromium()
    out = tmp_path / "shot.png"
    script = ROOT / "scripts" / "dashboard_screenshot.py"
    result = subprocess.run(
        [sys.executable, str(script), "--out", str(out), "--chromium", str(chromium), "--hours", "2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    image = out.read_bytes()
    assert image.startswith(PNG_SIGNATURE)
    width, height = int.from_bytes(image[16:20], "big"), int.from_bytes(image[20:24], "big")
    assert width == 1360 and height > 900  # the whole page, not just the window
