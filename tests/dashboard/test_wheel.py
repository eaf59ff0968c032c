"""The dashboard's page and files ship in the wheel: installing needs no build step and no network."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tokenbank.integrations.dashboard.page import ASSETS

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_the_page_and_every_static_file(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), "."],
        cwd=ROOT, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("tokenbank-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    folder = "tokenbank/integrations/dashboard/"
    expected = {folder + "templates/index.html", *(folder + "static/" + name for name in ASSETS)}
    assert expected <= names, sorted(expected - names)
