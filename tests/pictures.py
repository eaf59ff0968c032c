"""Checks that a chart file is a real, readable PNG of a sensible size (decoded in full by Pillow)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, *, min_width: int = 600, min_height: int = 300) -> tuple[int, int]:
    """The file exists, starts with the PNG signature, decodes completely, and is neither tiny nor huge."""
    assert path.is_file(), f"{path} was not written"
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), f"{path} is not a PNG"
    assert 10_000 < len(data) < 5_000_000, f"{path}: {len(data)} bytes"
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()  # decodes every pixel: a truncated or corrupt file raises here
        width, height = image.size
        colours = cast("tuple[float, float]", image.convert("L").getextrema())  # one band: (min, max)
    assert min_width <= width <= 6000 and min_height <= height <= 6000, f"{path}: {width}x{height}"
    assert colours[0] < colours[1], f"{path} is blank"
    return width, height
