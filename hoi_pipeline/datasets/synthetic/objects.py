"""Drawn objects: one `ObjectKind` per object class, its size, drawing, colours and texture side by side.

A drawing fills a box (x1, y1, x2, y2) in unit coordinates (person height 1, y down) and faces right
for `facing` = +1 (front or head to the right), left for -1. Its box is the whole drawn shape.
Names are HICO-DET's spelling ("sports_ball"); the V-COCO family writes COCO's ("sports ball").

To add an object class: write its drawing function and add an `OBJECTS` entry (natural size, the
drawing, optionally a texture and a resting pose for distractors).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hoi_pipeline.datasets.synthetic.shapes import (
    Entity,
    Point,
    Shape,
    ellipse,
    line,
    mirrored,
    oval,
    polygon,
    ring,
)
from hoi_pipeline.datasets.synthetic.textures import Texture

Drawing = Callable[..., list[Shape]]  # (x1, y1, x2, y2, facing, **options) -> shapes


def on_ground(x1: float, size: Point) -> np.ndarray:
    """Box of an object of `size` standing on the ground (y = 0) from x = x1."""
    return np.array([x1, -size[1], x1 + size[0], 0.0])


def box_at(cx: float, cy: float, size: Point) -> np.ndarray:
    """Box of an object of `size` centred on (cx, cy)."""
    return np.array([cx - size[0] / 2, cy - size[1] / 2, cx + size[0] / 2, cy + size[1] / 2])


def resting(size: Point) -> tuple[np.ndarray, dict]:
    """Where a lone object lies (a distractor): on the ground, centred on x = 0; no drawing options."""
    return on_ground(-size[0] / 2, size), {}


@dataclass(frozen=True)
class ObjectKind:
    """One object class: natural (width, height) in person heights, drawing, texture, resting pose."""

    size: Point
    draw: Drawing
    texture: Texture | None = None  # pattern filling the shapes marked with this class's name
    rest: Callable[[Point], tuple[np.ndarray, dict]] = resting  # size -> (box, drawing options)


# --------------------------------------------------------------------------------------------
# the drawings (colours beside each)

BICYCLE_FRAME, BICYCLE_DARK = (205, 30, 30), (25, 25, 25)


def draw_bicycle(x1: float, y1: float, x2: float, y2: float, facing: int) -> list[Shape]:
    frame, dark = BICYCLE_FRAME, BICYCLE_DARK
    w, h = x2 - x1, y2 - y1
    r = min(0.24 * w, 0.36 * h)
    rear, front = (x1 + r, y2 - r), (x2 - r, y2 - r)
    crank = (x1 + 0.47 * w, y2 - r)
    seat = (x1 + 0.36 * w, y1 + 0.1 * h)
    head = (x2 - 0.3 * w, y1 + 0.14 * h)
    width = 0.028
    shapes = [
        ring(rear[0] - r, rear[1] - r, rear[0] + r, rear[1] + r, dark, 0.035),
        ring(front[0] - r, front[1] - r, front[0] + r, front[1] + r, dark, 0.035),
        line([rear, crank, seat, rear], width, frame),
        line([seat, head, crank], width, frame),
        line([head, front], width, frame),
        line([(head[0] - 0.02, y1 + 0.02), (head[0] + 0.07 * w, y1 + 0.02)], 0.025, dark),
        line([head, (head[0] + 0.01, y1 + 0.02)], width, frame),
        polygon([(seat[0] - 0.06, y1), (seat[0] + 0.05, y1), (seat[0] + 0.03, y1 + 0.03), (seat[0] - 0.04, y1 + 0.03)],
                dark),
        line([seat, (seat[0], y1 + 0.02)], width, frame),
    ]
    return mirrored(shapes, facing, (x1 + x2) / 2)


HORSE_COAT, HORSE_MANE = (95, 58, 28), (45, 28, 14)


def draw_horse(x1: float, y1: float, x2: float, y2: float, facing: int) -> list[Shape]:
    leg, mane = HORSE_COAT, HORSE_MANE
    w, h = x2 - x1, y2 - y1
    body = (x1 + 0.12 * w, y1 + 0.3 * h, x2 - 0.18 * w, y1 + 0.66 * h)
    legs_x = [body[0] + 0.08 * w, body[0] + 0.2 * w, body[2] - 0.18 * w, body[2] - 0.06 * w]
    shapes = [line([(x, body[3] - 0.05 * h), (x, y2)], 0.05, leg) for x in legs_x]
    shapes += [
        line([(body[0] + 0.02, body[1] + 0.05 * h), (x1 + 0.02, y1 + 0.62 * h)], 0.05, mane),  # tail
        oval(*body, leg, texture="horse"),
        polygon([(body[2] - 0.14 * w, body[1] + 0.06 * h), (x2 - 0.16 * w, y1 + 0.05 * h), (x2 - 0.04 * w, y1 + 0.1 * h),
                 (body[2] + 0.02 * w, body[1] + 0.3 * h)], leg, texture="horse"),  # neck
        polygon([(x2 - 0.2 * w, y1 + 0.02 * h), (x2 - 0.1 * w, y1), (x2, y1 + 0.2 * h), (x2 - 0.04 * w, y1 + 0.27 * h),
                 (x2 - 0.12 * w, y1 + 0.18 * h)], leg, texture="horse"),  # head
        line([(body[2] - 0.14 * w, body[1] + 0.04 * h), (x2 - 0.17 * w, y1 + 0.03 * h)], 0.035, mane),
    ]
    return mirrored(shapes, facing, (x1 + x2) / 2)


DOG_COAT, DOG_DARK = (120, 80, 40), (60, 40, 20)


def draw_dog(x1: float, y1: float, x2: float, y2: float, facing: int) -> list[Shape]:
    patch, dark = DOG_COAT, DOG_DARK
    w, h = x2 - x1, y2 - y1
    body = (x1 + 0.08 * w, y1 + 0.32 * h, x2 - 0.24 * w, y1 + 0.72 * h)
    shapes = [line([(x, body[3] - 0.1 * h), (x, y2)], 0.045, patch) for x in
              (body[0] + 0.1 * w, body[0] + 0.22 * w, body[2] - 0.16 * w, body[2] - 0.05 * w)]
    shapes += [
        line([(body[0] + 0.02, body[1] + 0.05 * h), (x1, y1 + 0.1 * h)], 0.035, patch),  # tail
        oval(*body, patch, texture="dog"),
        ellipse(x2 - 0.17 * w, y1 + 0.24 * h, 0.17 * w, 0.24 * h, patch, texture="dog"),
        ellipse(x2 - 0.02 * w, y1 + 0.3 * h, 0.05 * w, 0.06 * h, dark),  # nose
        polygon([(x2 - 0.3 * w, y1 + 0.1 * h), (x2 - 0.22 * w, y1), (x2 - 0.18 * w, y1 + 0.2 * h)], dark),  # ear
    ]
    return mirrored(shapes, facing, (x1 + x2) / 2)


KITE_DARK, KITE_BOW = (60, 40, 20), (230, 40, 40)


def draw_kite(x1: float, y1: float, x2: float, y2: float, facing: int) -> list[Shape]:
    dark, bow = KITE_DARK, KITE_BOW
    w, h = x2 - x1, y2 - y1
    cx, low = (x1 + x2) / 2, y1 + 0.62 * h
    tail = [(cx, low)] + [(cx + (0.05 * w if i % 2 else -0.05 * w), low + (y2 - low) * i / 4) for i in range(1, 5)]
    return [
        polygon([(cx, y1), (x2, y1 + 0.25 * h), (cx, low), (x1, y1 + 0.25 * h)], dark, texture="kite"),
        line([(cx, y1), (cx, low)], 0.012, dark),
        line([(x1, y1 + 0.25 * h), (x2, y1 + 0.25 * h)], 0.012, dark),
        line(tail, 0.014, dark),
        *[polygon([(x - 0.03 * w - 0.02, y - 0.02), (x + 0.03 * w + 0.02, y + 0.02), (x + 0.03 * w + 0.02, y - 0.02),
                   (x - 0.03 * w - 0.02, y + 0.02)], bow) for x, y in tail[2::2]],
    ]


UMBRELLA_DARK = (60, 60, 60)


def draw_umbrella(x1: float, y1: float, x2: float, y2: float, facing: int, canopy: float = 0.0) -> list[Shape]:
    """An open umbrella: a dome `canopy` high (default 0.4 of the box) over a hooked handle."""
    canopy = canopy or (y2 - y1) * 0.4
    cx, rim = (x1 + x2) / 2, y1 + canopy
    angles = np.linspace(math.pi, 2 * math.pi, 17)
    dome = [(cx + (x2 - x1) / 2 * math.cos(a), rim + canopy * math.sin(a)) for a in angles]
    return [
        line([(cx, rim), (cx, y2 - 0.03), (cx + 0.035, y2 - 0.005), (cx + 0.06, y2 - 0.03)], 0.022, UMBRELLA_DARK),
        polygon(dome, UMBRELLA_DARK, texture="umbrella"),
    ]


def rest_umbrella(size: Point) -> tuple[np.ndarray, dict]:
    """Open, standing on its handle."""
    return np.array([-size[0] / 2, -size[1] - 0.35, size[0] / 2, 0.0]), {"canopy": size[1]}


BALL_WHITE = (245, 245, 245)


def draw_ball(x1: float, y1: float, x2: float, y2: float, facing: int) -> list[Shape]:
    return [oval(x1, y1, x2, y2, BALL_WHITE, texture="sports_ball")]


CUP_BLUE = (0, 150, 220)


def draw_cup(x1: float, y1: float, x2: float, y2: float, facing: int) -> list[Shape]:
    w, h = x2 - x1, y2 - y1
    shapes = [
        ring(x2 - 0.45 * w, y1 + 0.2 * h, x2, y1 + 0.65 * h, CUP_BLUE, 0.018),
        polygon([(x1, y1), (x2 - 0.25 * w, y1), (x2 - 0.35 * w, y2), (x1 + 0.1 * w, y2)], CUP_BLUE, texture="cup"),
    ]
    return mirrored(shapes, facing, (x1 + x2) / 2)


SKATEBOARD_WHEELS, SKATEBOARD_DECK = (30, 30, 30), (40, 170, 60)


def draw_skateboard(x1: float, y1: float, x2: float, y2: float, facing: int, upright: bool = False) -> list[Shape]:
    """A board lying flat; `upright` stands it on its end (turned towards `facing`), as when carried."""
    if upright:
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        half_w, half_h = (y2 - y1) / 2, (x2 - x1) / 2
        flat = draw_skateboard(cx - half_w, cy - half_h, cx + half_w, cy + half_h, facing)
        return [s.rotated(facing, (cx, cy)) for s in flat]
    w, h = x2 - x1, y2 - y1
    return [
        ellipse(x1 + 0.2 * w, y2 - 0.2 * h, 0.05 * w, 0.2 * h, SKATEBOARD_WHEELS),
        ellipse(x2 - 0.2 * w, y2 - 0.2 * h, 0.05 * w, 0.2 * h, SKATEBOARD_WHEELS),
        polygon([(x1, y1 + 0.1 * h), (x1 + 0.06 * w, y1), (x2 - 0.06 * w, y1), (x2, y1 + 0.1 * h),
                 (x2 - 0.06 * w, y1 + 0.6 * h), (x1 + 0.06 * w, y1 + 0.6 * h)], SKATEBOARD_DECK, texture="skateboard"),
    ]


BENCH_IRON, BENCH_WOOD = (60, 60, 60), (130, 80, 35)


def draw_bench(x1: float, y1: float, x2: float, y2: float, facing: int) -> list[Shape]:
    dark, wood = BENCH_IRON, BENCH_WOOD
    w, h = x2 - x1, y2 - y1
    seat = y1 + 0.48 * h
    legs = [line([(x, seat), (x, y2)], 0.035, dark) for x in (x1 + 0.1 * w, x2 - 0.1 * w)]
    posts = [line([(x, y1), (x, seat)], 0.03, dark) for x in (x1 + 0.12 * w, x2 - 0.12 * w)]
    slats = [polygon([(x1 + 0.03 * w, y), (x2 - 0.03 * w, y), (x2 - 0.03 * w, y + 0.14 * h), (x1 + 0.03 * w, y + 0.14 * h)],
                     wood, texture="bench") for y in (y1, y1 + 0.2 * h)]
    seat_slab = polygon([(x1, seat), (x2, seat), (x2 - 0.02 * w, seat + 0.14 * h), (x1 + 0.02 * w, seat + 0.14 * h)],
                        wood, texture="bench")
    return legs + posts + slats + [seat_slab]


BENCH_SEAT = 0.48  # the seat's top, as a fraction of the bench height from its top


BACKPACK_DARK, BACKPACK_ZIP = (60, 15, 90), (200, 200, 60)


def draw_backpack(x1: float, y1: float, x2: float, y2: float, facing: int) -> list[Shape]:
    dark = BACKPACK_DARK
    w, h = x2 - x1, y2 - y1
    return [
        ring(x1 + 0.3 * w, y1, x2 - 0.3 * w, y1 + 0.25 * h, dark, 0.02),
        polygon([(x1 + 0.15 * w, y1 + 0.1 * h), (x2 - 0.15 * w, y1 + 0.1 * h), (x2, y1 + 0.3 * h), (x2, y2),
                 (x1, y2), (x1, y1 + 0.3 * h)], dark, texture="backpack"),
        polygon([(x1 + 0.2 * w, y1 + 0.6 * h), (x2 - 0.2 * w, y1 + 0.6 * h), (x2 - 0.2 * w, y2 - 0.06 * h),
                 (x1 + 0.2 * w, y2 - 0.06 * h)], dark),
        line([(x1 + 0.22 * w, y1 + 0.6 * h), (x2 - 0.22 * w, y1 + 0.6 * h)], 0.012, BACKPACK_ZIP),
    ]


RACKET_FRAME, RACKET_GRIP = (30, 30, 120), (20, 20, 20)


def draw_tennis_racket(x1: float, y1: float, x2: float, y2: float, facing: int) -> list[Shape]:
    """Upright: a strung oval head on top, the grip at the bottom of the box."""
    h = y2 - y1
    cx, neck = (x1 + x2) / 2, y1 + 0.62 * h
    return [
        line([(cx, neck - 0.02), (cx, y2)], 0.03, RACKET_GRIP),
        oval(x1, y1, x2, neck, RACKET_FRAME, texture="tennis_racket"),
        ring(x1, y1, x2, neck, RACKET_FRAME, 0.02),
    ]


FORK_STEEL = (165, 165, 178)


def draw_fork(x1: float, y1: float, x2: float, y2: float, facing: int) -> list[Shape]:
    """Upright: tines at the top."""
    w, h = x2 - x1, y2 - y1
    cx, base = (x1 + x2) / 2, y1 + 0.35 * h
    return [
        line([(cx, base), (cx, y2)], 0.016, FORK_STEEL),
        polygon([(x1, y1), (x2, y1), (x2, base), (cx + 0.15 * w, base + 0.05 * h), (cx - 0.15 * w, base + 0.05 * h),
                 (x1, base)], FORK_STEEL),
    ]


DONUT_DOUGH, DONUT_HOLE = (196, 136, 70), (120, 72, 30)


def draw_donut(x1: float, y1: float, x2: float, y2: float, facing: int) -> list[Shape]:
    w, h = x2 - x1, y2 - y1
    return [
        oval(x1, y1, x2, y2, DONUT_DOUGH),
        oval(x1 + 0.1 * w, y1 + 0.08 * h, x2 - 0.1 * w, y2 - 0.16 * h, DONUT_DOUGH, texture="donut"),  # icing
        oval(x1 + 0.38 * w, y1 + 0.36 * h, x2 - 0.38 * w, y2 - 0.4 * h, DONUT_HOLE),
    ]


CAKE_PLATE, CAKE_SPONGE, CAKE_ICING = (235, 235, 240), (225, 190, 120), (250, 240, 245)


def draw_cake(x1: float, y1: float, x2: float, y2: float, facing: int) -> list[Shape]:
    """A layered cake on a plate."""
    w, h = x2 - x1, y2 - y1
    plate = y2 - 0.15 * h
    return [
        oval(x1, plate, x2, y2, CAKE_PLATE),
        polygon([(x1 + 0.12 * w, y1 + 0.2 * h), (x2 - 0.12 * w, y1 + 0.2 * h), (x2 - 0.12 * w, plate + 0.05 * h),
                 (x1 + 0.12 * w, plate + 0.05 * h)], CAKE_SPONGE, texture="cake"),
        oval(x1 + 0.1 * w, y1, x2 - 0.1 * w, y1 + 0.38 * h, CAKE_ICING),
    ]


BOOK_COVER, BOOK_PAGE = (150, 30, 40), (245, 245, 232)


def draw_book(x1: float, y1: float, x2: float, y2: float, facing: int) -> list[Shape]:
    """An open book seen from the front: a cover, two printed pages and the spine."""
    w, h = x2 - x1, y2 - y1
    cx = (x1 + x2) / 2
    return [
        polygon([(x1, y1 + 0.08 * h), (cx, y1 + 0.16 * h), (x2, y1 + 0.08 * h), (x2, y2), (cx, y2), (x1, y2)],
                BOOK_COVER),
        polygon([(x1 + 0.05 * w, y1), (cx, y1 + 0.1 * h), (cx, y2 - 0.08 * h), (x1 + 0.05 * w, y2 - 0.14 * h)],
                BOOK_PAGE, texture="book"),
        polygon([(cx, y1 + 0.1 * h), (x2 - 0.05 * w, y1), (x2 - 0.05 * w, y2 - 0.14 * h), (cx, y2 - 0.08 * h)],
                BOOK_PAGE, texture="book"),
        line([(cx, y1 + 0.1 * h), (cx, y2 - 0.06 * h)], 0.01, BOOK_COVER),
    ]


PHONE_CASE, PHONE_SCREEN = (25, 25, 30), (90, 170, 230)


def draw_cell_phone(x1: float, y1: float, x2: float, y2: float, facing: int) -> list[Shape]:
    w, h = x2 - x1, y2 - y1
    return [
        polygon([(x1, y1), (x2, y1), (x2, y2), (x1, y2)], PHONE_CASE),
        polygon([(x1 + 0.18 * w, y1 + 0.12 * h), (x2 - 0.18 * w, y1 + 0.12 * h), (x2 - 0.18 * w, y2 - 0.14 * h),
                 (x1 + 0.18 * w, y2 - 0.14 * h)], PHONE_SCREEN),
    ]


# --------------------------------------------------------------------------------------------
# the table

OBJECTS: dict[str, ObjectKind] = {
    "bicycle": ObjectKind((0.74, 0.44), draw_bicycle),
    "horse": ObjectKind(
        (0.98, 0.7), draw_horse,
        Texture(lambda g: g.dots(2 * g.p, 0.45 * g.p) & g.checker(2 * g.p), (115, 70, 32), (150, 95, 48)),  # dappled
    ),
    "dog": ObjectKind(
        (0.46, 0.3), draw_dog, Texture(lambda g: g.dots(3 * g.p, 1.1 * g.p), (125, 82, 42), (232, 214, 172))  # spotted
    ),
    "cup": ObjectKind((0.09, 0.11), draw_cup, Texture(lambda g: g.rows(g.p, 3), (250, 250, 250), (0, 150, 220))),
    "umbrella": ObjectKind(  # canopy only; the handle adds to the height
        (0.62, 0.26), draw_umbrella, Texture(lambda g: g.columns(g.p), (200, 0, 160), (250, 250, 250)), rest_umbrella
    ),
    "kite": ObjectKind((0.26, 0.42), draw_kite, Texture(lambda g: g.diagonal(g.p), (250, 210, 0), (225, 35, 40))),
    "sports_ball": ObjectKind(
        (0.15, 0.15), draw_ball, Texture(lambda g: g.dots(g.p + 2, 0.32 * (g.p + 2)), (15, 15, 15), (248, 248, 248))
    ),
    "bench": ObjectKind(
        (0.82, 0.42), draw_bench, Texture(lambda g: g.rows(max(2, g.p // 2)), (165, 105, 45), (125, 76, 32))
    ),
    "backpack": ObjectKind(
        (0.2, 0.27), draw_backpack, Texture(lambda g: g.checker(g.p), (120, 45, 165), (78, 22, 110))  # checkered
    ),
    "skateboard": ObjectKind(
        (0.5, 0.075), draw_skateboard, Texture(lambda g: g.rows(max(2, g.p // 2), 3), (250, 230, 50), (40, 170, 60))
    ),
    "tennis_racket": ObjectKind(  # strings
        (0.17, 0.4), draw_tennis_racket,
        Texture(lambda g: g.columns(max(2, g.p // 2), 3) | g.rows(max(2, g.p // 2), 3), (240, 240, 225), (70, 150, 80)),
    ),
    "fork": ObjectKind((0.045, 0.17), draw_fork),
    "donut": ObjectKind(  # sprinkles on pink icing
        (0.12, 0.11), draw_donut, Texture(lambda g: g.dots(g.p, 0.25 * g.p), (40, 120, 230), (240, 120, 170))
    ),
    "cake": ObjectKind(  # layers of jam
        (0.24, 0.17), draw_cake, Texture(lambda g: g.rows(max(2, g.p // 2), 3), (120, 50, 40), (225, 190, 120))
    ),
    "book": ObjectKind(  # lines of print
        (0.22, 0.15), draw_book, Texture(lambda g: g.rows(max(2, g.p // 3), 2), (95, 95, 95), (245, 245, 232))
    ),
    "cell_phone": ObjectKind((0.05, 0.1), draw_cell_phone),
}


def object_textures() -> dict[str, Texture]:
    """Every object texture, by object name (the `texture` a textured shape names)."""
    return {name: kind.texture for name, kind in OBJECTS.items() if kind.texture is not None}


def object_size(label: str, rng: np.random.Generator) -> Point:
    """The natural size of `label`, varied by about 10% (and its aspect by 5%)."""
    w, h = OBJECTS[label].size
    k = rng.uniform(0.88, 1.12)
    return (w * k * rng.uniform(0.95, 1.05), h * k)


def build_object(label: str, box: np.ndarray, facing: int = 1, layer: int = 2, **options) -> Entity:
    """An object filling `box` (unit coordinates), on `layer` (0 behind the person, 2 in front)."""
    if label not in OBJECTS:
        raise ValueError(f"no drawing for object class '{label}' (known: {sorted(OBJECTS)})")
    x1, y1, x2, y2 = (float(v) for v in box)
    shapes = OBJECTS[label].draw(x1, y1, x2, y2, facing, **options)
    return Entity(label, [s.on_layer(layer) for s in shapes])


def build_resting(label: str, size: Point, facing: int) -> Entity:
    """A lone object as it lies or stands on the ground (layer 0)."""
    box, options = OBJECTS[label].rest(size)
    return build_object(label, box, facing=facing, layer=0, **options)
