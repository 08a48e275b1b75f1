"""Where an interaction's objects go, given the person's key points (`interactions.Where`).

Each function places the objects of one kind of interaction; class tables (`hicodet_scenes`,
`vcoco_scenes`) name them in their entries, so one geometric relation (held in the hand, at the
mouth, ridden, ...) serves every class that shares it. Unit coordinates: person height 1, y down,
feet on y = 0; s is the side of the hand used, the body's outer edge is at s * 0.16.
"""

from __future__ import annotations

import numpy as np

from hoi_pipeline.datasets.synthetic.interactions import Place, Placed, Support, Where
from hoi_pipeline.datasets.synthetic.objects import BACKPACK_DARK, box_at, build_object, on_ground
from hoi_pipeline.datasets.synthetic.shapes import Point, line

LEASH, KITE_STRING = (30, 30, 30), (40, 40, 40)


def _beside(body_edge: float, s: int, size: Point, gap: float) -> float:
    """Left x of an object of `size` whose near edge is `gap` beyond `body_edge` on side s."""
    return body_edge + gap if s > 0 else body_edge - gap - size[0]


# --------------------------------------------------------------------------------------------
# supports: how far the person moves down (+) or up (-) to sit, ride or stand on the object


def hips_on(top: float, clearance: float) -> Support:
    """Hips `clearance` above the point `top` of the object's height down from its top (a saddle, a seat)."""
    return lambda hip, size: (-top * size[1] + clearance) - hip


def feet_on(hip: float, size: Point) -> float:
    """Standing on the object's top (a board)."""
    return -size[1]


# --------------------------------------------------------------------------------------------
# objects under or beside the person, on the ground


def mounted(at: Where) -> Placed:
    """Centred under the person (ridden, straddled)."""
    box = on_ground(-at.size[0] / 2 + at.rng.uniform(-0.08, 0.08), at.size)
    return Placed([build_object(at.label, box, facing=at.facing, layer=0)])


def underfoot(at: Where) -> Placed:
    """A board under the feet."""
    box = on_ground(-at.size[0] / 2 + at.rng.uniform(-0.06, 0.06), at.size)
    return Placed([build_object(at.label, box, layer=0)])


def seat_under(at: Where) -> Placed:
    """A seat under the hips (the person sits on it)."""
    box = on_ground(-at.size[0] / 2 + at.rng.uniform(-0.15, 0.15), at.size)
    return Placed([build_object(at.label, box, layer=0)])


def handled_beside(at: Where) -> Placed:
    """On the ground beside the person, overlapping the hands (pushed, repaired)."""
    x1 = _beside(at.hand[0], at.s, at.size, -0.06)
    return Placed([build_object(at.label, on_ground(x1, at.size), facing=-at.s, layer=0)])


def apart(at: Where) -> Placed:
    """On the ground nearby with a gap, not touching (no interaction)."""
    x1 = _beside(at.s * 0.16, at.s, at.size, at.rng.uniform(0.15, 0.35))
    return Placed([build_object(at.label, on_ground(x1, at.size), facing=at.facing, layer=0)])


def on_leash(gap: tuple[float, float], collar: Point) -> Place:
    """An animal on the ground facing the person, `gap` beyond the low hand, a leash from the hand to
    its `collar` (fraction of its width in from the near end, fraction of its height down from the top)."""
    def place(at: Where) -> Placed:
        hx, hy = at.hand
        s, (w, h) = at.s, at.size
        x1 = _beside(hx, s, at.size, at.rng.uniform(*gap))
        animal = build_object(at.label, on_ground(x1, at.size), facing=-s, layer=0)
        near = x1 + (w if s < 0 else 0.0)  # the animal faces the person: its head is on the near side
        neck = (near - s * collar[0] * w, -h + collar[1] * h)
        sag = ((hx + neck[0]) / 2, max(hy, neck[1]) + 0.06)
        leash = line([(hx, hy), sag, neck], 0.014, LEASH, layer=2, in_box=False)
        return Placed([animal], [leash])

    return place


# --------------------------------------------------------------------------------------------
# objects in the hand


def in_hand(at: Where) -> Placed:
    """Standing on the palm of the hand, beside the body (a cup held)."""
    hx, hy = at.hand
    w, h = at.size
    return Placed([build_object(at.label, np.array([hx - w / 2, hy - h + 0.02, hx + w / 2, hy + 0.02]), facing=at.s)])


def at_mouth(at: Where) -> Placed:
    """Lifted by the raised hand to the mouth (drinking, eating)."""
    hx, hy = at.hand
    cx, cy = hx + at.s * 0.01, hy - at.size[1] / 2 - 0.005
    return Placed([build_object(at.label, box_at(cx, cy, at.size), facing=-at.s)])


def in_fingers(at: Where) -> Placed:
    """Just beyond the hand, slightly above it (a ball held out)."""
    hx, hy = at.hand
    return Placed([build_object(at.label, box_at(hx + at.s * 0.06, hy - 0.03, at.size))])


def held_out(at: Where) -> Placed:
    """Gripped near its inner edge, the rest beyond the hand (a kite held at the side)."""
    hx, hy = at.hand
    w, h = at.size
    x1 = hx - w * 0.1 if at.s > 0 else hx - w * 0.9
    return Placed([build_object(at.label, np.array([x1, hy - h * 0.45, x1 + w, hy + h * 0.55]))])


def hanging(at: Where) -> Placed:
    """Hanging from the low hand (a bag carried)."""
    hx, hy = at.hand
    w, h = at.size
    return Placed([build_object(at.label, np.array([hx - w / 2, hy - 0.03, hx + w / 2, hy - 0.03 + h]))])


def upright_in_hand(at: Where) -> Placed:
    """A board stood on its end in the hand, beside the body (carried)."""
    hx, hy = at.hand
    length, thick = at.size
    cx = hx + at.s * 0.02
    box = np.array([cx - thick / 2, hy - length / 2, cx + thick / 2, hy + length / 2])
    return Placed([build_object(at.label, box, facing=at.s, upright=True)])


def overhead(at: Where) -> Placed:
    """An umbrella's canopy above the head, its handle in the raised hand."""
    hx, hy = at.hand
    w, h = at.size
    top = at.body.head_top - at.rng.uniform(0.04, 0.1) - h
    box = np.array([hx - w / 2, top, hx + w / 2, hy + 0.05])
    return Placed([build_object(at.label, box, canopy=h)])


def flown(at: Where) -> Placed:
    """High above and beside the head, a string from the raised hand (a kite flown)."""
    hx, hy = at.hand
    s, (w, h) = at.s, at.size
    cx = hx + s * at.rng.uniform(0.2, 0.55)
    bottom = at.body.head_top - at.rng.uniform(0.25, 0.5)
    box = np.array([cx - w / 2, bottom - h, cx + w / 2, bottom])
    tip = (cx, bottom - h + 0.62 * h)
    string = line([(hx, hy), ((hx + tip[0]) / 2 + s * 0.04, (hy + tip[1]) / 2), tip], 0.01, KITE_STRING,
                  layer=2, in_box=False)
    return Placed([build_object(at.label, box)], [string])


def thrown(at: Where) -> Placed:
    """Just left the raised hand: beyond it and above the head."""
    hx, hy = at.hand
    cx, cy = hx + at.s * at.rng.uniform(0.12, 0.24), hy - at.rng.uniform(0.06, 0.16)
    return Placed([build_object(at.label, box_at(cx, cy, at.size))])


def at_foot(at: Where) -> Placed:
    """On the ground at the extended foot (kicked)."""
    fx, _ = at.body.feet[at.s]
    w, h = at.size
    near, far = (0.02, 0.02 + w) if at.s > 0 else (-0.02 - w, -0.02)
    return Placed([build_object(at.label, np.array([fx + near, -h, fx + far, 0.0]))])


def on_back(at: Where) -> Placed:
    """Behind the torso, sticking out at one side, straps over the chest (worn)."""
    body = at.body
    side = 1 if at.rng.random() < 0.5 else -1
    cx, cy = side * 0.14, body.shoulder_y + 0.15
    straps = [line([(x, body.shoulder_y + 0.005), (x, body.shoulder_y + 0.22)], 0.025, BACKPACK_DARK,
                   layer=2, in_box=False) for x in (-0.06, 0.06)]
    return Placed([build_object(at.label, box_at(cx, cy, at.size), layer=0)], straps)


def in_front(at: Where) -> Placed:
    """Held open with both hands in front of the chest (a book read)."""
    (lx, ly), (rx, _) = at.body.hands[-1], at.body.hands[1]
    return Placed([build_object(at.label, box_at((lx + rx) / 2, ly - 0.01, at.size))])


def at_ear(at: Where) -> Placed:
    """Held by the raised hand against the ear (a phone call)."""
    head_x, head_y = at.body.head
    return Placed([build_object(at.label, box_at(head_x + at.s * 0.1, head_y + 0.01, at.size))])


def swung(at: Where) -> Placed:
    """A racket raised in the hand, its head up; the ball (a second object, if any) just off the strings."""
    hx, hy = at.hand
    s, (w, h) = at.s, at.size
    cx = hx + s * 0.02
    racket = build_object(at.labels[0], np.array([cx - w / 2, hy - h + 0.05, cx + w / 2, hy + 0.05]))
    if len(at.labels) == 1:
        return Placed([racket])
    bw = at.sizes[1][0]
    bx = cx + s * (w / 2 + bw / 2 + at.rng.uniform(0.02, 0.09))
    by = hy - 0.7 * h + at.rng.uniform(-0.06, 0.04)
    return Placed([racket, build_object(at.labels[1], box_at(bx, by, at.sizes[1]))])


def fed_with(at: Where) -> Placed:
    """Food held on its plate in the low hand (side -s), the fork (second object) at the mouth in hand s."""
    fx, fy = at.body.hands[-at.s]
    (w, h), (fork_w, fork_h) = at.sizes
    food = build_object(at.labels[0], np.array([fx - w / 2, fy - h + 0.02, fx + w / 2, fy + 0.02]), facing=-at.s)
    hx, hy = at.hand
    fork = build_object(at.labels[1], np.array([hx - fork_w / 2, hy - fork_h + 0.03, hx + fork_w / 2, hy + 0.03]))
    return Placed([food, fork])
