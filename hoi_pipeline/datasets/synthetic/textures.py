"""Two-colour textures (stripes, checks, dots) that tell object classes apart beyond their outline.

A texture is an image-sized pattern; a textured shape is filled by pasting the pattern through the
shape's mask, so the pattern stays aligned to the image grid (like a real fabric seen flat). Each
object kind names its `Texture` in `objects.OBJECTS`; the pattern's period `p` grows with the image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from hoi_pipeline.datasets.synthetic.shapes import Color


class Grid:
    """Pixel coordinates of a square image and pattern masks over them (True = first colour)."""

    def __init__(self, size: int) -> None:
        self.yy, self.xx = np.mgrid[0:size, 0:size]
        self.p = max(4, size // 32)  # the base period in pixels

    def dots(self, period: float, radius: float) -> np.ndarray:
        xx, yy = self.xx, self.yy
        return ((xx % period - period / 2) ** 2 + (yy % period - period / 2) ** 2) < radius**2

    def checker(self, cell: int) -> np.ndarray:
        return ((self.xx // cell) + (self.yy // cell)) % 2 == 0

    def diagonal(self, cell: int) -> np.ndarray:
        return ((self.xx + self.yy) // cell) % 2 == 0

    def columns(self, cell: int, every: int = 2) -> np.ndarray:
        return (self.xx // cell) % every == 0

    def rows(self, cell: int, every: int = 2) -> np.ndarray:
        return (self.yy // cell) % every == 0


@dataclass(frozen=True)
class Texture:
    mask: Callable[[Grid], np.ndarray]  # (size, size) bool: where the first colour goes
    first: Color
    second: Color

    def render(self, grid: Grid) -> np.ndarray:
        """(size, size, 3) uint8."""
        a, b = np.array(self.first, np.uint8), np.array(self.second, np.uint8)
        return np.where(self.mask(grid)[..., None], a, b).astype(np.uint8)


def make_textures(size: int, textures: Mapping[str, Texture]) -> dict[str, np.ndarray]:
    """(size, size, 3) uint8 patterns, by texture name."""
    grid = Grid(size)
    return {name: texture.render(grid) for name, texture in textures.items()}
