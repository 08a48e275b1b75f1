"""Drawing primitives in unit coordinates: person height 1, y down, feet (the ground) at y = 0.

A drawn person or object is an `Entity`: a class name and a list of `Shape`s. Its box is the
extent of the shapes that count towards it (a leash or a kite string does not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Point = tuple[float, float]
Color = tuple[int, int, int]


@dataclass(frozen=True)
class Shape:
    kind: str  # polygon | ellipse (points = two corners) | ring (ellipse outline) | line (polyline)
    points: np.ndarray  # (K, 2)
    color: Color
    texture: str | None = None  # fill with this object's texture instead of the plain colour
    width: float = 0.0  # line / ring width
    layer: int = 1  # 0 behind the person, 1 the person, 2 in front
    in_box: bool = True  # counts towards the entity's box (leashes and strings do not)

    def moved(self, scale: float, dx: float, dy: float) -> Shape:
        return Shape(self.kind, self.points * scale + (dx, dy), self.color, self.texture,
                     self.width * scale, self.layer, self.in_box)

    def mirrored(self, axis_x: float) -> Shape:
        points = self.points.copy()
        points[:, 0] = 2 * axis_x - points[:, 0]
        return Shape(self.kind, points, self.color, self.texture, self.width, self.layer, self.in_box)

    def rotated(self, turn: int, center: Point) -> Shape:
        """Quarter turn (+1 clockwise on screen, -1 anticlockwise) about `center`."""
        cx, cy = center
        x, y = self.points[:, 0] - cx, self.points[:, 1] - cy
        points = np.stack([-turn * y + cx, turn * x + cy], axis=1)
        return Shape(self.kind, points, self.color, self.texture, self.width, self.layer, self.in_box)

    def on_layer(self, layer: int) -> Shape:
        return Shape(self.kind, self.points, self.color, self.texture, self.width, layer, self.in_box)

    def extent(self) -> np.ndarray:
        """(4,) x1, y1, x2, y2 of what is drawn."""
        pad = self.width / 2 if self.kind in ("line", "ring") else 0.0
        lo, hi = self.points.min(axis=0) - pad, self.points.max(axis=0) + pad
        return np.array([lo[0], lo[1], hi[0], hi[1]])


def pts(*points: Point) -> np.ndarray:
    return np.asarray(points, dtype=np.float64).reshape(-1, 2)


def ellipse(cx: float, cy: float, rx: float, ry: float, color: Color, **kw) -> Shape:
    return Shape("ellipse", pts((cx - rx, cy - ry), (cx + rx, cy + ry)), color, **kw)


def oval(x1: float, y1: float, x2: float, y2: float, color: Color, **kw) -> Shape:
    """An ellipse filling the box (x1, y1, x2, y2)."""
    return Shape("ellipse", pts((x1, y1), (x2, y2)), color, **kw)


def ring(x1: float, y1: float, x2: float, y2: float, color: Color, width: float, **kw) -> Shape:
    """An ellipse outline inside the box (x1, y1, x2, y2)."""
    return Shape("ring", pts((x1, y1), (x2, y2)), color, width=width, **kw)


def line(points: list[Point], width: float, color: Color, **kw) -> Shape:
    return Shape("line", pts(*points), color, width=width, **kw)


def polygon(points: list[Point], color: Color, **kw) -> Shape:
    return Shape("polygon", pts(*points), color, **kw)


def extent(shapes: list[Shape], only_box: bool = True) -> np.ndarray:
    """(4,) extent of `shapes` (only those counting towards a box unless `only_box` is False)."""
    boxes = np.array([s.extent() for s in shapes if s.in_box or not only_box])
    return np.array([boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()])


def mirrored(shapes: list[Shape], facing: int, axis_x: float) -> list[Shape]:
    """`shapes` as drawn facing right (+1), mirrored about `axis_x` to face left (-1)."""
    return shapes if facing > 0 else [s.mirrored(axis_x) for s in shapes]


@dataclass
class Entity:
    """A drawn person or object: its class name (HICO-DET spelling) and shapes."""

    label: str
    shapes: list[Shape]

    def box(self) -> np.ndarray:
        return extent(self.shapes)
