"""Side-by-side layout of the groups of an image: one scale for all, random gaps, feet on a ground band."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LayoutSettings:
    margin: float = 0.02  # of the image size, kept clear at the borders
    gap: float = 0.03  # of the image size, at least between groups
    ground: tuple[float, float] = (0.86, 0.97)  # range of the ground line (feet), of the image size
    max_height: tuple[float, float] = (0.45, 0.62)  # range of the person height (when there is room), of the image size
    min_height: float = 0.2  # below this a layout does not fit (too small to see)


Placement = tuple[float, float, float]  # (pixels per unit, x of the group's origin, y of its ground line)


def layout(extents: np.ndarray, scales: list[float], size: int, rng: np.random.Generator,
           cfg: LayoutSettings = LayoutSettings()) -> list[Placement] | None:
    """Scale and position (h, x0, y_ground) of each group side by side, or None if they do not fit.

    `extents` (G, 4) are the groups' extents in person heights (scaled by their own `scales`).
    """
    widths = extents[:, 2] - extents[:, 0]
    margin, gap = cfg.margin * size, cfg.gap * size
    room = size - 2 * margin - gap * (len(extents) - 1)
    h = min(room / widths.sum(), ((cfg.ground[0] * size - margin) / -extents[:, 1]).min(),
            size * rng.uniform(*cfg.max_height))
    if h < cfg.min_height * size:
        return None
    spare = room - h * widths.sum()
    gaps = rng.dirichlet(np.ones(len(extents) + 1)) * spare
    placements = []
    x = margin
    for i, scale in enumerate(scales):
        x += gaps[i] + (gap if i else 0.0)
        low = min(cfg.ground[1] * size, size - margin - extents[i, 3] * h)
        ground = rng.uniform(cfg.ground[0] * size, max(cfg.ground[0] * size, low))
        placements.append((h * scale, x - extents[i, 0] * h, ground))
        x += widths[i] * h
    return placements
