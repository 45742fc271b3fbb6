"""Shared by the style tests: a small content picture (a colour gradient) and a grey noise style."""
import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def pictures(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:56]
    content = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1).clip(0, 255).astype(np.uint8)
    style = rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)
    Image.fromarray(content).save(tmp_path / "content.png")
    Image.fromarray(style).convert("L").save(tmp_path / "style_gray.jpg")
    return tmp_path / "content.png", tmp_path / "style_gray.jpg"
