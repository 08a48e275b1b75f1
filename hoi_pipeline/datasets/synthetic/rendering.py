"""Rendering: a sky-and-ground background, then the groups' shapes far to near, layer by layer, with PIL."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from hoi_pipeline.datasets.synthetic.layout import Placement
from hoi_pipeline.datasets.synthetic.shapes import Entity, Shape, extent


def background(size: int, rng: np.random.Generator) -> np.ndarray:
    """Sky over ground with a random horizon, tints and mild noise."""
    skies = ((170, 205, 235), (200, 210, 220), (235, 215, 190), (185, 225, 215))
    grounds = ((110, 160, 80), (190, 170, 120), (140, 140, 135), (120, 140, 100))
    sky = np.array(skies[int(rng.integers(len(skies)))], dtype=np.float32)
    ground = np.array(grounds[int(rng.integers(len(grounds)))], dtype=np.float32)
    horizon = int(size * rng.uniform(0.45, 0.7))
    rows = np.arange(size, dtype=np.float32)[:, None]
    shade = np.where(rows < horizon, 1.0 - 0.15 * (horizon - rows) / max(horizon, 1), 0.9 + 0.15 * (rows - horizon) / size)
    base = np.where((rows < horizon)[..., None], sky, ground) * shade[..., None]
    cells = -(-size // 4)
    grain = np.kron(rng.normal(0, 7, (cells, cells, 3)), np.ones((4, 4, 1)))[:size, :size]  # blotchy, compresses well
    image = np.broadcast_to(base, (size, size, 3)) + grain
    return np.clip(image, 0, 255).astype(np.uint8)


def render(groups: Sequence[tuple[list[Entity], list[Shape]]], placements: list[Placement], size: int,
           textures: dict[str, Image.Image], rng: np.random.Generator) -> tuple[Image.Image, list[list[np.ndarray]]]:
    """Draw the groups (entities, extra shapes); returns the image and each group's entity boxes in pixels
    (continuous, clipped to the image)."""
    image = Image.fromarray(background(size, rng))
    draw = ImageDraw.Draw(image)
    boxes: list[list[np.ndarray]] = []
    order = sorted(range(len(groups)), key=lambda i: placements[i][2])  # far (higher ground line) first
    pixel_shapes: dict[int, list[Shape]] = {}
    for i, ((entities, extras), (h, x0, ground)) in enumerate(zip(groups, placements)):
        entity_shapes = [[s.moved(h, x0, ground) for s in e.shapes] for e in entities]
        boxes.append([pixel_box(extent(shapes), size) for shapes in entity_shapes])
        pixel_shapes[i] = [s for shapes in entity_shapes for s in shapes] + [s.moved(h, x0, ground) for s in extras]
    for i in order:
        for shape in sorted(pixel_shapes[i], key=lambda s: s.layer):
            draw_shape(image, draw, shape, textures)
    return image, boxes


def pixel_box(box: np.ndarray, size: int) -> np.ndarray:
    """The pixels a drawn extent touches, as a continuous box clipped to the image."""
    x1, y1 = np.floor(box[:2])
    x2, y2 = np.ceil(box[2:])
    return np.clip(np.array([x1, y1, x2, y2], dtype=np.float32), 0, size)


def draw_shape(image: Image.Image, draw: ImageDraw.ImageDraw, shape: Shape, textures: dict[str, Image.Image]) -> None:
    """Draw one shape in pixel coordinates (textured shapes paste their texture through the shape's mask)."""
    points = [tuple(p) for p in shape.points.tolist()]
    width = max(1, round(shape.width))
    if shape.kind == "line":
        draw.line(points, fill=shape.color, width=width, joint="curve")
        r = shape.width / 2
        if width >= 3:
            for x, y in (points[0], points[-1]):
                draw.ellipse([x - r, y - r, x + r, y + r], fill=shape.color)
        return
    if shape.kind == "ring":
        draw.ellipse(_corners(points), outline=shape.color, width=width)
        return
    if shape.texture is None:
        if shape.kind == "ellipse":
            draw.ellipse(_corners(points), fill=shape.color)
        else:
            draw.polygon(points, fill=shape.color)
        return
    mask = Image.new("L", image.size, 0)
    mask_draw = ImageDraw.Draw(mask)
    if shape.kind == "ellipse":
        mask_draw.ellipse(_corners(points), fill=255)
    else:
        mask_draw.polygon(points, fill=255)
    image.paste(textures[shape.texture], (0, 0), mask)


def _corners(points: list[tuple[float, float]]) -> list[float]:
    (xa, ya), (xb, yb) = points[0], points[1]
    return [min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb)]
