"""Drawing detected interactions on an image (the `predict` stage's PNGs).

Each interaction gets one colour: its human box, its object box, a line between the two box
centres, and a "verb object score" label above the human box. Boxes are continuous image
coordinates (x1, y1, x2, y2), the torchvision convention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# distinguishable colours (Tableau 10), cycled over the drawn interactions
PALETTE = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)


@dataclass(frozen=True)
class Interaction:
    """One human-object interaction to draw."""

    box_h: tuple[float, float, float, float]
    box_o: tuple[float, float, float, float]
    label: str  # e.g. "ride bicycle"
    score: float


def box_centre(box: Sequence[float]) -> tuple[float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return (x1 + x2) / 2, (y1 + y2) / 2


def draw_interactions(image: Image.Image, interactions: Sequence[Interaction]) -> Image.Image:
    """A copy of `image` (RGB) with the interactions drawn, the first (best) on top.

    Labels sit at the middle of each human-object line and are moved down when they would cover an
    earlier label, so that several interactions of one person stay readable.
    """
    canvas = image.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    font = _font(max(10, round(min(canvas.size) / 32)))
    width = max(2, round(min(canvas.size) / 200))
    geometry = []
    for rank in reversed(range(len(interactions))):  # boxes and lines first, best last
        item = interactions[rank]
        colour = PALETTE[rank % len(PALETTE)]
        box_h = _clip(item.box_h, canvas.size)
        box_o = _clip(item.box_o, canvas.size)
        centre_h, centre_o = box_centre(box_h), box_centre(box_o)
        draw.rectangle(box_h, outline=colour, width=width)
        draw.rectangle(box_o, outline=colour, width=width)
        draw.line([centre_h, centre_o], fill=colour, width=width)
        for x, y in (centre_h, centre_o):
            draw.ellipse([x - 2 * width, y - 2 * width, x + 2 * width, y + 2 * width], fill=colour)
        geometry.append((rank, colour, centre_h, centre_o))
    placed: list[tuple[float, float, float, float]] = []
    for rank, colour, centre_h, centre_o in sorted(geometry):  # labels of the best placed first
        item = interactions[rank]
        anchor = ((centre_h[0] + centre_o[0]) / 2, (centre_h[1] + centre_o[1]) / 2)
        placed.append(_label(draw, font, f"{item.label} {item.score:.2f}", anchor, colour, placed, canvas.size))
    return canvas


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """PIL's built-in font at `size` pixels (older Pillow or no FreeType: the fixed bitmap font)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def _clip(box: Sequence[float], size: tuple[int, int]) -> tuple[float, float, float, float]:
    """Box clipped to the image (PIL draws outside coordinates off-canvas); x2 >= x1 kept."""
    w, h = size
    x1, y1, x2, y2 = np.clip(np.asarray(box, dtype=np.float64), 0, [w - 1, h - 1, w - 1, h - 1])
    return float(x1), float(y1), float(max(x1, x2)), float(max(y1, y2))


def _overlaps(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    text: str,
    anchor: tuple[float, float],
    colour: tuple[int, int, int],
    placed: Sequence[tuple[float, float, float, float]],
    size: tuple[int, int],
) -> tuple[float, float, float, float]:
    """Text on a filled strip centred on `anchor`, kept inside the image and off `placed` strips; its rectangle."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 4, bottom - top + 4
    x = min(max(anchor[0] - w / 2, 0), max(size[0] - w, 0))
    y = min(max(anchor[1] - h / 2, 0), max(size[1] - h, 0))
    rect = (x, y, x + w, y + h)
    for _ in range(len(placed)):  # move down past earlier labels (up when at the bottom edge)
        hit = next((r for r in placed if _overlaps(rect, r)), None)
        if hit is None:
            break
        y = hit[3] + 1 if hit[3] + 1 + h <= size[1] else max(hit[1] - h - 1, 0)
        rect = (x, y, x + w, y + h)
    draw.rectangle(rect, fill=colour)
    draw.text((x + 2 - left, y + 2 - top), text, fill=(255, 255, 255), font=font)
    return rect
