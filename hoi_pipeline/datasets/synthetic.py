"""Synthetic HOI scenes for the demo: drawn people and objects whose interaction follows from geometry.

Why: the demo must run the whole pipeline (detections -> prompts -> training -> inference ->
evaluation) on a CPU in minutes, with no downloads, and still measure something real. So the scenes
are small (image_size px), seeded, drawn with PIL, and the interaction of every annotated pair is
*decided by where the object is relative to the person's body* and by the person's pose, as in
real HOI data; a tiny CNN can learn it, and a model that ignores geometry cannot.

Scene content
- A person is a figure with a hair-topped head, a shirt-coloured torso and arms, trousers and shoes;
  its box is the whole figure (raised hands and a kicking leg included). Poses: stand, ride (lifted,
  knees bent around the object), straddle (feet wide on the ground), sit, crouch, kick, lie (horizontal).
- Each object class has its own shape, colours and texture (striped kite, white dotted ball, dappled
  horse, spotted dog, wooden bench, checkered backpack, ...); its box is the whole drawn shape.
  A leash or a kite string belongs to neither box.
- 1-3 people, 1-4 objects and 0-3 annotated interactions per image; a person may take part in two
  interactions (e.g. ride a horse while holding an umbrella, walk a dog while drinking from a cup).
  Distractor people and objects (standing apart, not touching anyone) are drawn but never annotated.
- Classes use HICO-DET's exact verb and object names and are HICO-DET classes.

The rules (person height = 1 unit, s = the side of the hand used, ground at the feet):

| class                  | geometry that decides the verb                                                   |
|------------------------|----------------------------------------------------------------------------------|
| ride bicycle/horse     | object centred under the person, hips on its top, person lifted, legs bent       |
| ride skateboard        | board under the feet, person standing on it                                      |
| straddle bicycle       | bicycle centred on the person, crotch height, both feet wide on the ground       |
| push bicycle           | bicycle on the ground beside, both hands on it                                   |
| repair bicycle         | person crouched beside the bicycle, hands on it                                  |
| no_interaction bicycle/horse | object on the ground nearby (a gap), arms down, not touching               |
| walk dog/horse         | animal on the ground beside at a distance, a leash from the low hand             |
| hold cup/kite/sports_ball | object in the hand, beside the body at hand height                            |
| drink_with cup         | cup at the mouth, hand raised to the face                                        |
| hold umbrella          | canopy above the head, handle in the raised hand                                 |
| fly kite               | kite high above and beside the head, a string from the raised hand               |
| kick sports_ball       | ball on the ground at the extended foot                                          |
| throw sports_ball      | ball beyond the raised hand, above the head                                      |
| sit_on bench           | person seated on the bench: hips on the seat, knees out, feet on the ground      |
| lie_on bench           | person horizontal on the seat                                                    |
| wear backpack          | backpack behind the torso (sticking out at one side), straps on the chest        |
| carry backpack         | backpack hanging from the low hand                                               |
| carry skateboard       | board upright beside the body in the hand                                        |

Several classes share an object (bicycle: ride, straddle, push, repair, no_interaction) and several
share a verb (hold: cup, kite, sports_ball, umbrella; ride: bicycle, horse, skateboard), so the
verb must come from the geometry. Class frequencies follow `InteractionRule.weight`, a long tail:
at the default sizes 8 classes have fewer than 10 training pairs (HICO-DET's Rare), counted from
the generated training split. Each split draws its number of interactions per image first and
then the classes in exact proportion to the weights (every class at least once per split).

Detections imitate an off-the-shelf detector: every drawn person and object is found with a
jittered box and a high-ish score unless missed; some objects get another object's class; some get
a duplicate box with a lower score; random low-scored false positives are added.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from hoi_pipeline.structures import HOIAnnotations, ImageAnnotation, Proposals, Vocabulary

log = logging.getLogger(__name__)

RARE_THRESHOLD = 10  # fewer training pairs than this = a Rare class (HICO-DET)
Point = tuple[float, float]
Color = tuple[int, int, int]


# --------------------------------------------------------------------------------------------
# the classes


@dataclass(frozen=True)
class InteractionRule:
    """One HOI class of the demo: how often it occurs and what of the person it occupies."""

    verb: str
    object: str
    weight: float  # relative frequency (the long tail)
    pose: str = "stand"  # the person's pose: stand, ride, straddle, sit, crouch, kick, lie
    arm: str = "down"  # pose of the arm(s) the interaction uses
    hands: int = 0  # 0, 1 (on side s) or 2
    beside: bool = False  # the object stands beside the person on side s (one per side)
    slots: tuple[str, ...] = ()  # other exclusive parts: legs, sky, face, back, all


RULES: tuple[InteractionRule, ...] = (
    InteractionRule("ride", "bicycle", 9.0, pose="ride", arm="side", hands=2, slots=("legs",)),
    InteractionRule("ride", "horse", 7.0, pose="ride", arm="side", hands=1, slots=("legs",)),
    InteractionRule("ride", "skateboard", 5.0, slots=("legs",)),
    InteractionRule("straddle", "bicycle", 1.4, pose="straddle", arm="side", hands=2, slots=("legs",)),
    InteractionRule("push", "bicycle", 4.0, arm="side", hands=2, beside=True, slots=("legs",)),
    InteractionRule("repair", "bicycle", 1.2, pose="crouch", arm="side", hands=2, beside=True, slots=("legs",)),
    InteractionRule("no_interaction", "bicycle", 3.5, beside=True, slots=("legs",)),
    InteractionRule("walk", "horse", 3.5, arm="low", hands=1, beside=True, slots=("legs",)),
    InteractionRule("no_interaction", "horse", 1.6, beside=True, slots=("legs",)),
    InteractionRule("walk", "dog", 6.0, arm="low", hands=1, beside=True, slots=("legs",)),
    InteractionRule("hold", "cup", 6.0, arm="low", hands=1, beside=True),
    InteractionRule("drink_with", "cup", 5.0, arm="mouth", hands=1, slots=("face",)),
    InteractionRule("hold", "umbrella", 6.0, arm="hold_up", hands=1, slots=("sky",)),
    InteractionRule("fly", "kite", 7.0, arm="reach_up", hands=1, beside=True, slots=("sky",)),
    InteractionRule("hold", "kite", 1.3, arm="side", hands=1, beside=True),
    InteractionRule("kick", "sports_ball", 6.0, pose="kick", beside=True, slots=("legs",)),
    InteractionRule("throw", "sports_ball", 4.0, arm="up", hands=1, beside=True),
    InteractionRule("hold", "sports_ball", 1.8, arm="side", hands=1, beside=True),
    InteractionRule("sit_on", "bench", 6.0, pose="sit", slots=("legs",)),
    InteractionRule("lie_on", "bench", 1.3, pose="lie", arm="down", hands=2, slots=("all",)),
    InteractionRule("wear", "backpack", 5.0, slots=("back",)),
    InteractionRule("carry", "backpack", 1.6, arm="low", hands=1, beside=True),
    InteractionRule("carry", "skateboard", 1.2, arm="side", hands=1, beside=True),
)

VERBS_ING = {  # HICO-DET's vname_ing spelling
    "carry": "carrying",
    "drink_with": "drinking_with",
    "fly": "flying",
    "hold": "holding",
    "kick": "kicking",
    "lie_on": "lying_on",
    "no_interaction": "no_interaction",
    "push": "pushing",
    "repair": "repairing",
    "ride": "riding",
    "sit_on": "sitting_on",
    "straddle": "straddling",
    "throw": "throwing",
    "walk": "walking",
    "wear": "wearing",
}

# natural (width, height) in person heights
OBJECT_SIZES: dict[str, Point] = {
    "bicycle": (0.74, 0.44),
    "horse": (0.98, 0.7),
    "dog": (0.46, 0.3),
    "cup": (0.09, 0.11),
    "umbrella": (0.62, 0.26),  # canopy only; the handle adds to the height
    "kite": (0.26, 0.42),
    "sports_ball": (0.15, 0.15),
    "bench": (0.82, 0.42),
    "backpack": (0.2, 0.27),
    "skateboard": (0.5, 0.075),
}


def synthetic_vocabulary(rare: np.ndarray | None = None) -> Vocabulary:
    """Class lists of the demo: HICO-DET names, objects and verbs in alphabetical order (as its json)."""
    verbs = sorted({rule.verb for rule in RULES})
    objects = sorted({rule.object for rule in RULES} | {"person"})
    order = sorted(range(len(RULES)), key=lambda i: (RULES[i].object, RULES[i].verb))
    hoi = [[verbs.index(RULES[i].verb), objects.index(RULES[i].object)] for i in order]
    rare = np.zeros(0, dtype=np.int64) if rare is None else np.asarray(rare, dtype=np.int64)
    return Vocabulary(
        verbs=tuple(verbs),
        objects=tuple(objects),
        hoi_classes=np.asarray(hoi, dtype=np.int64),
        rare=rare,
        non_rare=np.setdiff1d(np.arange(len(hoi)), rare),
        verbs_ing=tuple(VERBS_ING[verb] for verb in verbs),
    )


def rules_in_class_order(vocabulary: Vocabulary) -> list[InteractionRule]:
    """`RULES` indexed by the vocabulary's HOI class index."""
    by_name = {(rule.verb, rule.object): rule for rule in RULES}
    return [by_name[(vocabulary.verbs[v], vocabulary.objects[o])] for v, o in vocabulary.hoi_classes]


# --------------------------------------------------------------------------------------------
# drawing primitives (unit coordinates: person height 1, y down, feet at y = 0)


@dataclass(frozen=True)
class Shape:
    kind: str  # polygon | ellipse (points = two corners) | ring (ellipse outline) | line (polyline)
    points: np.ndarray  # (K, 2)
    color: Color
    texture: str | None = None  # fill with this class texture instead of the plain colour
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

    def extent(self) -> np.ndarray:
        """(4,) x1, y1, x2, y2 of what is drawn."""
        pad = self.width / 2 if self.kind in ("line", "ring") else 0.0
        lo, hi = self.points.min(axis=0) - pad, self.points.max(axis=0) + pad
        return np.array([lo[0], lo[1], hi[0], hi[1]])


def _pts(*points: Point) -> np.ndarray:
    return np.asarray(points, dtype=np.float64).reshape(-1, 2)


def _ellipse(cx: float, cy: float, rx: float, ry: float, color: Color, **kw) -> Shape:
    return Shape("ellipse", _pts((cx - rx, cy - ry), (cx + rx, cy + ry)), color, **kw)


def _line(points: list[Point], width: float, color: Color, **kw) -> Shape:
    return Shape("line", _pts(*points), color, width=width, **kw)


def _polygon(points: list[Point], color: Color, **kw) -> Shape:
    return Shape("polygon", _pts(*points), color, **kw)


def _extent(shapes: list[Shape], only_box: bool = True) -> np.ndarray:
    boxes = np.array([s.extent() for s in shapes if s.in_box or not only_box])
    return np.array([boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()])


@dataclass
class Entity:
    """A drawn person or object: its class name and shapes."""

    label: str
    shapes: list[Shape]

    def box(self) -> np.ndarray:
        return _extent(self.shapes)


# --------------------------------------------------------------------------------------------
# people

SKIN: tuple[Color, ...] = ((241, 200, 160), (205, 152, 110), (142, 96, 62))
HAIR: tuple[Color, ...] = ((35, 22, 12), (100, 64, 24), (20, 20, 20), (150, 120, 80))
SHIRTS: tuple[Color, ...] = ((60, 90, 175), (45, 140, 125), (185, 85, 60), (150, 150, 150), (215, 175, 55), (240, 240, 235))
TROUSERS: tuple[Color, ...] = ((40, 42, 72), (62, 46, 30), (28, 28, 28), (85, 85, 95))
SHOES = (25, 20, 20)

ARM_POSES: dict[str, tuple[Point, Point]] = {  # (elbow, hand) offsets from the shoulder, x towards side s
    "down": ((0.04, 0.15), (0.07, 0.30)),
    "low": ((0.08, 0.14), (0.19, 0.24)),
    "side": ((0.12, 0.07), (0.25, 0.10)),
    "up": ((0.07, -0.13), (0.11, -0.27)),
    "mouth": ((0.12, 0.10), (0.0, -0.08)),
    "reach_up": ((0.10, -0.04), (0.21, -0.14)),
    "hold_up": ((0.14, 0.04), (0.08, -0.10)),
}
POSE_DROP = {"stand": 0.0, "kick": 0.0, "straddle": 0.0, "ride": 0.0, "lie": 0.0, "sit": 0.2, "crouch": 0.26}
STAND_HIP = -0.47


@dataclass(frozen=True)
class Look:
    skin: Color
    hair: Color
    shirt: Color
    trousers: Color


def random_look(rng: np.random.Generator) -> Look:
    pick = lambda options: options[int(rng.integers(len(options)))]
    return Look(pick(SKIN), pick(HAIR), pick(SHIRTS), pick(TROUSERS))


@dataclass(frozen=True)
class Body:
    """Key points of a built person (unit coordinates)."""

    hands: dict[int, Point]
    feet: dict[int, Point]
    hip_y: float
    shoulder_y: float
    head: Point
    head_r: float

    @property
    def head_top(self) -> float:
        return self.head[1] - self.head_r

    def moved(self, dy: float) -> Body:
        up = lambda p: (p[0], p[1] + dy)
        return Body({s: up(p) for s, p in self.hands.items()}, {s: up(p) for s, p in self.feet.items()},
                    self.hip_y + dy, self.shoulder_y + dy, up(self.head), self.head_r)


def build_person(pose: str, arms: dict[int, str], look: Look, kick_side: int = 1) -> tuple[list[Shape], Body]:
    """Shapes of a person standing on y = 0 (feet) in `pose`, and its key points."""
    hip_y = STAND_HIP + POSE_DROP[pose]
    shoulder_y = hip_y - 0.31
    head = (0.0, hip_y - 0.43)
    head_r = 0.085
    shapes: list[Shape] = []
    feet: dict[int, Point] = {}
    for s in (-1, 1):
        knee: Point | None = None
        if pose == "straddle":
            foot = (s * 0.2, 0.0)
        elif pose == "ride":
            knee, foot = (s * 0.17, hip_y + 0.14), (s * 0.13, hip_y + 0.3)
        elif pose == "sit":
            knee, foot = (s * 0.18, hip_y + 0.02), (s * 0.16, 0.0)
        elif pose == "crouch":
            knee, foot = (s * 0.2, hip_y - 0.03), (s * 0.12, 0.0)
        elif pose == "kick" and s == kick_side:
            knee, foot = (s * 0.13, hip_y + 0.22), (s * 0.3, -0.1)
        elif pose == "kick":
            foot = (-kick_side * 0.04, 0.0)
        else:
            foot = (s * 0.085, 0.0)
        joints = [(s * 0.05, hip_y)] + ([knee] if knee else []) + [foot]
        shapes.append(_line(joints, 0.075, look.trousers))
        shapes.append(_ellipse(foot[0] + s * 0.015, foot[1] - 0.01, 0.045, 0.025, SHOES))
        feet[s] = foot
    shapes.append(_polygon([(-0.115, shoulder_y), (0.115, shoulder_y), (0.088, hip_y + 0.03), (-0.088, hip_y + 0.03)],
                           look.shirt))
    shapes.append(_line([(0.0, shoulder_y + 0.01), (0.0, head[1])], 0.045, look.skin))
    shapes.append(_ellipse(head[0], head[1] - 0.018, head_r * 1.04, head_r * 0.9, look.hair))
    shapes.append(_ellipse(head[0], head[1] + 0.008, head_r * 0.93, head_r, look.skin))
    hands: dict[int, Point] = {}
    for s in (-1, 1):
        (ex, ey), (hx, hy) = ARM_POSES[arms.get(s, "down")]
        shoulder = (s * 0.1, shoulder_y + 0.03)
        elbow = (shoulder[0] + s * ex, shoulder[1] + ey)
        hand = (shoulder[0] + s * hx, shoulder[1] + hy)
        shapes.append(_line([shoulder, elbow, hand], 0.05, look.shirt))
        shapes.append(_ellipse(hand[0], hand[1], 0.032, 0.032, look.skin))
        hands[s] = hand
    return shapes, Body(hands, feet, hip_y, shoulder_y, head, head_r)


# --------------------------------------------------------------------------------------------
# objects: each builder fills the box (x1, y1, x2, y2); `facing` = +1 front/head to the right

OBJECT_COLORS = {
    "bicycle": ((205, 30, 30), (25, 25, 25)),
    "horse": ((95, 58, 28), (45, 28, 14)),
    "dog": ((120, 80, 40), (60, 40, 20)),
    "umbrella": ((60, 60, 60), (200, 0, 160)),
    "kite": ((60, 40, 20), (230, 40, 40)),
    "bench": ((60, 60, 60), (130, 80, 35)),
    "backpack": ((60, 15, 90), (200, 200, 60)),
    "skateboard": ((30, 30, 30), (40, 170, 60)),
    "cup": ((255, 255, 255), (0, 150, 220)),
    "sports_ball": ((20, 20, 20), (245, 245, 245)),
}


def _bicycle(x1: float, y1: float, x2: float, y2: float, facing: int) -> list[Shape]:
    frame, dark = OBJECT_COLORS["bicycle"]
    w, h = x2 - x1, y2 - y1
    r = min(0.24 * w, 0.36 * h)
    rear, front = (x1 + r, y2 - r), (x2 - r, y2 - r)
    crank = (x1 + 0.47 * w, y2 - r)
    seat = (x1 + 0.36 * w, y1 + 0.1 * h)
    head = (x2 - 0.3 * w, y1 + 0.14 * h)
    width = 0.028
    shapes = [
        Shape("ring", _pts((rear[0] - r, rear[1] - r), (rear[0] + r, rear[1] + r)), dark, width=0.035),
        Shape("ring", _pts((front[0] - r, front[1] - r), (front[0] + r, front[1] + r)), dark, width=0.035),
        _line([rear, crank, seat, rear], width, frame),
        _line([seat, head, crank], width, frame),
        _line([head, front], width, frame),
        _line([(head[0] - 0.02, y1 + 0.02), (head[0] + 0.07 * w, y1 + 0.02)], 0.025, dark),
        _line([head, (head[0] + 0.01, y1 + 0.02)], width, frame),
        _polygon([(seat[0] - 0.06, y1), (seat[0] + 0.05, y1), (seat[0] + 0.03, y1 + 0.03), (seat[0] - 0.04, y1 + 0.03)],
                 dark),
        _line([seat, (seat[0], y1 + 0.02)], width, frame),
    ]
    return _facing(shapes, facing, (x1 + x2) / 2)


def _horse(x1: float, y1: float, x2: float, y2: float, facing: int) -> list[Shape]:
    leg, mane = OBJECT_COLORS["horse"]
    w, h = x2 - x1, y2 - y1
    body = (x1 + 0.12 * w, y1 + 0.3 * h, x2 - 0.18 * w, y1 + 0.66 * h)
    legs_x = [body[0] + 0.08 * w, body[0] + 0.2 * w, body[2] - 0.18 * w, body[2] - 0.06 * w]
    shapes = [_line([(x, body[3] - 0.05 * h), (x, y2)], 0.05, leg) for x in legs_x]
    shapes += [
        _line([(body[0] + 0.02, body[1] + 0.05 * h), (x1 + 0.02, y1 + 0.62 * h)], 0.05, mane),  # tail
        Shape("ellipse", _pts(body[:2], body[2:]), leg, texture="horse"),
        _polygon([(body[2] - 0.14 * w, body[1] + 0.06 * h), (x2 - 0.16 * w, y1 + 0.05 * h), (x2 - 0.04 * w, y1 + 0.1 * h),
                  (body[2] + 0.02 * w, body[1] + 0.3 * h)], leg, texture="horse"),  # neck
        _polygon([(x2 - 0.2 * w, y1 + 0.02 * h), (x2 - 0.1 * w, y1), (x2, y1 + 0.2 * h), (x2 - 0.04 * w, y1 + 0.27 * h),
                  (x2 - 0.12 * w, y1 + 0.18 * h)], leg, texture="horse"),  # head
        _line([(body[2] - 0.14 * w, body[1] + 0.04 * h), (x2 - 0.17 * w, y1 + 0.03 * h)], 0.035, mane),
    ]
    return _facing(shapes, facing, (x1 + x2) / 2)


def _dog(x1: float, y1: float, x2: float, y2: float, facing: int) -> list[Shape]:
    patch, dark = OBJECT_COLORS["dog"]
    w, h = x2 - x1, y2 - y1
    body = (x1 + 0.08 * w, y1 + 0.32 * h, x2 - 0.24 * w, y1 + 0.72 * h)
    shapes = [_line([(x, body[3] - 0.1 * h), (x, y2)], 0.045, patch) for x in
              (body[0] + 0.1 * w, body[0] + 0.22 * w, body[2] - 0.16 * w, body[2] - 0.05 * w)]
    shapes += [
        _line([(body[0] + 0.02, body[1] + 0.05 * h), (x1, y1 + 0.1 * h)], 0.035, patch),  # tail
        Shape("ellipse", _pts(body[:2], body[2:]), patch, texture="dog"),
        _ellipse(x2 - 0.17 * w, y1 + 0.24 * h, 0.17 * w, 0.24 * h, patch, texture="dog"),
        _ellipse(x2 - 0.02 * w, y1 + 0.3 * h, 0.05 * w, 0.06 * h, dark),  # nose
        _polygon([(x2 - 0.3 * w, y1 + 0.1 * h), (x2 - 0.22 * w, y1), (x2 - 0.18 * w, y1 + 0.2 * h)], dark),  # ear
    ]
    return _facing(shapes, facing, (x1 + x2) / 2)


def _kite(x1: float, y1: float, x2: float, y2: float) -> list[Shape]:
    dark, bow = OBJECT_COLORS["kite"]
    w, h = x2 - x1, y2 - y1
    cx, low = (x1 + x2) / 2, y1 + 0.62 * h
    tail = [(cx, low)] + [(cx + (0.05 * w if i % 2 else -0.05 * w), low + (y2 - low) * i / 4) for i in range(1, 5)]
    return [
        _polygon([(cx, y1), (x2, y1 + 0.25 * h), (cx, low), (x1, y1 + 0.25 * h)], dark, texture="kite"),
        _line([(cx, y1), (cx, low)], 0.012, dark),
        _line([(x1, y1 + 0.25 * h), (x2, y1 + 0.25 * h)], 0.012, dark),
        _line(tail, 0.014, dark),
        *[_polygon([(x - 0.03 * w - 0.02, y - 0.02), (x + 0.03 * w + 0.02, y + 0.02), (x + 0.03 * w + 0.02, y - 0.02),
                    (x - 0.03 * w - 0.02, y + 0.02)], bow) for x, y in tail[2::2]],
    ]


def _umbrella(x1: float, y1: float, x2: float, y2: float, canopy: float) -> list[Shape]:
    dark, _ = OBJECT_COLORS["umbrella"]
    cx, rim = (x1 + x2) / 2, y1 + canopy
    angles = np.linspace(math.pi, 2 * math.pi, 17)
    dome = [(cx + (x2 - x1) / 2 * math.cos(a), rim + canopy * math.sin(a)) for a in angles]
    return [
        _line([(cx, rim), (cx, y2 - 0.03), (cx + 0.035, y2 - 0.005), (cx + 0.06, y2 - 0.03)], 0.022, dark),
        _polygon(dome, dark, texture="umbrella"),
    ]


def _ball(x1: float, y1: float, x2: float, y2: float) -> list[Shape]:
    return [Shape("ellipse", _pts((x1, y1), (x2, y2)), OBJECT_COLORS["sports_ball"][1], texture="sports_ball")]


def _cup(x1: float, y1: float, x2: float, y2: float, facing: int) -> list[Shape]:
    blue = OBJECT_COLORS["cup"][1]
    w, h = x2 - x1, y2 - y1
    shapes = [
        Shape("ring", _pts((x2 - 0.45 * w, y1 + 0.2 * h), (x2, y1 + 0.65 * h)), blue, width=0.018),
        _polygon([(x1, y1), (x2 - 0.25 * w, y1), (x2 - 0.35 * w, y2), (x1 + 0.1 * w, y2)], blue, texture="cup"),
    ]
    return _facing(shapes, facing, (x1 + x2) / 2)


def _skateboard(x1: float, y1: float, x2: float, y2: float) -> list[Shape]:
    dark, deck = OBJECT_COLORS["skateboard"]
    w, h = x2 - x1, y2 - y1
    return [
        _ellipse(x1 + 0.2 * w, y2 - 0.2 * h, 0.05 * w, 0.2 * h, dark),
        _ellipse(x2 - 0.2 * w, y2 - 0.2 * h, 0.05 * w, 0.2 * h, dark),
        _polygon([(x1, y1 + 0.1 * h), (x1 + 0.06 * w, y1), (x2 - 0.06 * w, y1), (x2, y1 + 0.1 * h),
                  (x2 - 0.06 * w, y1 + 0.6 * h), (x1 + 0.06 * w, y1 + 0.6 * h)], deck, texture="skateboard"),
    ]


def _bench(x1: float, y1: float, x2: float, y2: float) -> list[Shape]:
    dark, wood = OBJECT_COLORS["bench"]
    w, h = x2 - x1, y2 - y1
    seat = y1 + 0.48 * h
    legs = [_line([(x, seat), (x, y2)], 0.035, dark) for x in (x1 + 0.1 * w, x2 - 0.1 * w)]
    posts = [_line([(x, y1), (x, seat)], 0.03, dark) for x in (x1 + 0.12 * w, x2 - 0.12 * w)]
    slats = [_polygon([(x1 + 0.03 * w, y), (x2 - 0.03 * w, y), (x2 - 0.03 * w, y + 0.14 * h), (x1 + 0.03 * w, y + 0.14 * h)],
                      wood, texture="bench") for y in (y1, y1 + 0.2 * h)]
    seat_slab = _polygon([(x1, seat), (x2, seat), (x2 - 0.02 * w, seat + 0.14 * h), (x1 + 0.02 * w, seat + 0.14 * h)],
                         wood, texture="bench")
    return legs + posts + slats + [seat_slab]


def _backpack(x1: float, y1: float, x2: float, y2: float) -> list[Shape]:
    dark, zip_color = OBJECT_COLORS["backpack"]
    w, h = x2 - x1, y2 - y1
    return [
        Shape("ring", _pts((x1 + 0.3 * w, y1), (x2 - 0.3 * w, y1 + 0.25 * h)), dark, width=0.02),
        _polygon([(x1 + 0.15 * w, y1 + 0.1 * h), (x2 - 0.15 * w, y1 + 0.1 * h), (x2, y1 + 0.3 * h), (x2, y2),
                  (x1, y2), (x1, y1 + 0.3 * h)], dark, texture="backpack"),
        _polygon([(x1 + 0.2 * w, y1 + 0.6 * h), (x2 - 0.2 * w, y1 + 0.6 * h), (x2 - 0.2 * w, y2 - 0.06 * h),
                  (x1 + 0.2 * w, y2 - 0.06 * h)], dark),
        _line([(x1 + 0.22 * w, y1 + 0.6 * h), (x2 - 0.22 * w, y1 + 0.6 * h)], 0.012, zip_color),
    ]


def _facing(shapes: list[Shape], facing: int, axis_x: float) -> list[Shape]:
    return shapes if facing > 0 else [s.mirrored(axis_x) for s in shapes]


def build_object(label: str, box: np.ndarray, facing: int = 1, layer: int = 2, canopy: float = 0.0,
                 upright: bool = False) -> Entity:
    """An object filling `box` (unit coordinates). `upright` stands a skateboard on its end."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if label == "bicycle":
        shapes = _bicycle(x1, y1, x2, y2, facing)
    elif label == "horse":
        shapes = _horse(x1, y1, x2, y2, facing)
    elif label == "dog":
        shapes = _dog(x1, y1, x2, y2, facing)
    elif label == "kite":
        shapes = _kite(x1, y1, x2, y2)
    elif label == "umbrella":
        shapes = _umbrella(x1, y1, x2, y2, canopy or (y2 - y1) * 0.4)
    elif label == "sports_ball":
        shapes = _ball(x1, y1, x2, y2)
    elif label == "cup":
        shapes = _cup(x1, y1, x2, y2, facing)
    elif label == "skateboard" and upright:
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        half_w, half_h = (y2 - y1) / 2, (x2 - x1) / 2
        shapes = [s.rotated(facing, (cx, cy)) for s in _skateboard(cx - half_w, cy - half_h, cx + half_w, cy + half_h)]
    elif label == "skateboard":
        shapes = _skateboard(x1, y1, x2, y2)
    elif label == "bench":
        shapes = _bench(x1, y1, x2, y2)
    elif label == "backpack":
        shapes = _backpack(x1, y1, x2, y2)
    else:
        raise ValueError(f"no drawing for object class '{label}'")
    return Entity(label, [Shape(s.kind, s.points, s.color, s.texture, s.width, layer, s.in_box) for s in shapes])


def _box_at(cx: float, cy: float, size: Point) -> np.ndarray:
    return np.array([cx - size[0] / 2, cy - size[1] / 2, cx + size[0] / 2, cy + size[1] / 2])


def _on_ground(x1: float, size: Point) -> np.ndarray:
    return np.array([x1, -size[1], x1 + size[0], 0.0])


def _beside(body_edge: float, s: int, size: Point, gap: float) -> float:
    """Left x of an object of `size` whose near edge is `gap` beyond `body_edge` on side s."""
    return body_edge + gap if s > 0 else body_edge - gap - size[0]


# --------------------------------------------------------------------------------------------
# interactions: where the object goes, given the person's key points


@dataclass
class Placed:
    object: Entity
    extras: list[Shape] = field(default_factory=list)  # leash, string, straps: in no box


def support_dy(rule: InteractionRule, size: Point) -> float:
    """How far the person moves down (+) or up (-) to sit, ride or stand on the object."""
    hip = STAND_HIP + POSE_DROP[rule.pose]
    if (rule.verb, rule.object) == ("ride", "bicycle"):
        return (-size[1] + 0.04) - hip
    if (rule.verb, rule.object) == ("ride", "horse"):
        return (-0.7 * size[1] + 0.04) - hip
    if (rule.verb, rule.object) == ("ride", "skateboard"):
        return -size[1]
    if (rule.verb, rule.object) == ("sit_on", "bench"):
        return (-0.52 * size[1] + 0.03) - hip
    return 0.0


def place(rule: InteractionRule, body: Body, s: int, size: Point, rng: np.random.Generator) -> Placed:
    """The interacting object of `rule` for a person with key points `body` (hand side s)."""
    key = (rule.verb, rule.object)
    hx, hy = body.hands[s]
    edge = s * 0.16  # outer edge of the body on side s (arms down)
    facing = s if rng.random() < 0.5 else -s
    if rule.verb == "ride" and rule.object != "skateboard" or rule.verb == "straddle":
        box = _on_ground(-size[0] / 2 + rng.uniform(-0.08, 0.08), size)
        return Placed(build_object(rule.object, box, facing=facing, layer=0))
    if key == ("ride", "skateboard"):
        return Placed(build_object("skateboard", _on_ground(-size[0] / 2 + rng.uniform(-0.06, 0.06), size), layer=0))
    if key in (("push", "bicycle"), ("repair", "bicycle")):
        x1 = _beside(hx, s, size, -0.06)
        return Placed(build_object("bicycle", _on_ground(x1, size), facing=-s, layer=0))
    if rule.verb == "no_interaction":
        x1 = _beside(edge, s, size, rng.uniform(0.15, 0.35))
        return Placed(build_object(rule.object, _on_ground(x1, size), facing=facing, layer=0))
    if rule.verb == "walk":
        x1 = _beside(hx, s, size, rng.uniform(0.22, 0.4) if rule.object == "dog" else rng.uniform(0.12, 0.25))
        animal = build_object(rule.object, _on_ground(x1, size), facing=-s, layer=0)
        w, h = size
        near = x1 + (w if s < 0 else 0.0)  # the animal faces the person: its head is on the near side
        collar = (near - s * 0.2 * w, -h + 0.38 * h) if rule.object == "dog" else (near - s * 0.08 * w, -h + 0.22 * h)
        sag = ((hx + collar[0]) / 2, max(hy, collar[1]) + 0.06)
        leash = _line([(hx, hy), sag, collar], 0.014, (30, 30, 30), layer=2, in_box=False)
        return Placed(animal, [leash])
    if key == ("hold", "cup"):
        return Placed(build_object("cup", np.array([hx - size[0] / 2, hy - size[1] + 0.02, hx + size[0] / 2, hy + 0.02]),
                                   facing=s))
    if key == ("drink_with", "cup"):
        cx, cy = hx + s * 0.01, hy - size[1] / 2 - 0.005
        return Placed(build_object("cup", _box_at(cx, cy, size), facing=-s))
    if key == ("hold", "umbrella"):
        top = body.head_top - rng.uniform(0.04, 0.1) - size[1]
        box = np.array([hx - size[0] / 2, top, hx + size[0] / 2, hy + 0.05])  # handle in the hand
        return Placed(build_object("umbrella", box, canopy=size[1]))
    if key == ("fly", "kite"):
        cx = hx + s * rng.uniform(0.2, 0.55)
        bottom = body.head_top - rng.uniform(0.25, 0.5)
        box = np.array([cx - size[0] / 2, bottom - size[1], cx + size[0] / 2, bottom])
        tip = (cx, bottom - size[1] + 0.62 * size[1])
        string = _line([(hx, hy), ((hx + tip[0]) / 2 + s * 0.04, (hy + tip[1]) / 2), tip], 0.01, (40, 40, 40),
                       layer=2, in_box=False)
        return Placed(build_object("kite", box), [string])
    if key == ("hold", "kite"):
        x1 = hx - size[0] * 0.1 if s > 0 else hx - size[0] * 0.9
        return Placed(build_object("kite", np.array([x1, hy - size[1] * 0.45, x1 + size[0], hy + size[1] * 0.55])))
    if key == ("kick", "sports_ball"):
        fx, _ = body.feet[s]
        return Placed(build_object("sports_ball", np.array([fx + (0.02 if s > 0 else -0.02 - size[0]), -size[1],
                                                            fx + (0.02 + size[0] if s > 0 else -0.02), 0.0])))
    if key == ("throw", "sports_ball"):
        cx, cy = hx + s * rng.uniform(0.12, 0.24), hy - rng.uniform(0.06, 0.16)
        return Placed(build_object("sports_ball", _box_at(cx, cy, size)))
    if key == ("hold", "sports_ball"):
        return Placed(build_object("sports_ball", _box_at(hx + s * 0.06, hy - 0.03, size)))
    if key == ("sit_on", "bench"):
        return Placed(build_object("bench", _on_ground(-size[0] / 2 + rng.uniform(-0.15, 0.15), size), layer=0))
    if key == ("wear", "backpack"):
        side = 1 if rng.random() < 0.5 else -1
        cx, cy = side * 0.14, body.shoulder_y + 0.15
        straps = [_line([(x, body.shoulder_y + 0.005), (x, body.shoulder_y + 0.22)], 0.025, OBJECT_COLORS["backpack"][0],
                        layer=2, in_box=False) for x in (-0.06, 0.06)]
        return Placed(build_object("backpack", _box_at(cx, cy, size), layer=0), straps)
    if key == ("carry", "backpack"):
        return Placed(build_object("backpack", np.array([hx - size[0] / 2, hy - 0.03, hx + size[0] / 2, hy - 0.03 + size[1]])))
    if key == ("carry", "skateboard"):
        length, thick = size
        cx = hx + s * 0.02
        return Placed(build_object("skateboard", np.array([cx - thick / 2, hy - length / 2, cx + thick / 2, hy + length / 2]),
                                   facing=s, upright=True))
    raise ValueError(f"no placement rule for '{rule.verb} {rule.object}'")


# --------------------------------------------------------------------------------------------
# groups: a person with their interactions, or a lone distractor


@dataclass
class Group:
    """Entities drawn together (unit coordinates) and the annotated pairs among them."""

    entities: list[Entity]
    extras: list[Shape]
    pairs: list[tuple[int, int, InteractionRule]]  # (person entity, object entity, class)
    scale: float = 1.0

    def extent(self) -> np.ndarray:
        return _extent([s for e in self.entities for s in e.shapes] + self.extras, only_box=False) * self.scale


def _object_size(label: str, rng: np.random.Generator) -> Point:
    w, h = OBJECT_SIZES[label]
    k = rng.uniform(0.88, 1.12)
    return (w * k * rng.uniform(0.95, 1.05), h * k)


def compose_person(tasks: list[tuple[InteractionRule, int]], rng: np.random.Generator, distractor_arms: bool = False
                   ) -> Group:
    """A person doing `tasks` [(rule, side)] (possibly none: a distractor person)."""
    look = random_look(rng)
    sizes = [_object_size(rule.object, rng) for rule, _ in tasks]
    pose = next((rule.pose for rule, _ in tasks if rule.pose != "stand"), "stand")
    arms: dict[int, str] = {}
    kick_side = 1
    for rule, s in tasks:
        if rule.hands == 2:
            arms = {-1: rule.arm, 1: rule.arm}
        elif rule.hands == 1:
            arms[s] = rule.arm
        if rule.pose == "kick":
            kick_side = s
    if distractor_arms:
        arms = {s: ("down", "low", "side")[int(rng.integers(3))] for s in (-1, 1)}
    if pose == "lie":
        return _compose_lying(tasks[0][0], sizes[0], look, rng)
    dy = 0.0
    for (rule, _), size in zip(tasks, sizes):
        dy += support_dy(rule, size)
    person_shapes, body = build_person(pose, arms, look, kick_side)
    person = Entity("person", [s.moved(1.0, 0.0, dy) for s in person_shapes])
    body = body.moved(dy)
    entities, extras, pairs = [person], [], []
    for (rule, s), size in zip(tasks, sizes):
        placed = place(rule, body, s, size, rng)
        pairs.append((0, len(entities), rule))
        entities.append(placed.object)
        extras.extend(placed.extras)
    return Group(entities, extras, pairs, scale=rng.uniform(0.92, 1.08))


def _compose_lying(rule: InteractionRule, size: Point, look: Look, rng: np.random.Generator) -> Group:
    bench = build_object("bench", _on_ground(-size[0] / 2, size), layer=0)
    seat_top = -size[1] + 0.48 * size[1]
    shapes, _ = build_person("stand", {-1: "down", 1: "down"}, look)
    turn = 1 if rng.random() < 0.5 else -1
    rotated = [s.rotated(turn, (0.0, -0.5)) for s in shapes]
    box = _extent(rotated)
    dy = seat_top + 0.03 - box[3]
    person = Entity("person", [s.moved(1.0, 0.0, dy) for s in rotated])
    return Group([person, bench], [], [(0, 1, rule)], scale=rng.uniform(0.92, 1.08))


def compose_object(label: str, rng: np.random.Generator) -> Group:
    """A lone object resting on the ground (a distractor)."""
    size = _object_size(label, rng)
    facing = 1 if rng.random() < 0.5 else -1
    if label == "umbrella":
        box = np.array([-size[0] / 2, -size[1] - 0.35, size[0] / 2, 0.0])
        entity = build_object(label, box, canopy=size[1], layer=0)
    else:
        entity = build_object(label, _on_ground(-size[0] / 2, size), facing=facing, layer=0)
    return Group([entity], [], [], scale=rng.uniform(0.92, 1.08))


SIDE_SLOTS = ("side", "hand")


def try_assign(rule: InteractionRule, used: set[str], rng: np.random.Generator) -> tuple[int, set[str]] | None:
    """A side s for `rule` on a person whose parts `used` are taken, and the parts it takes; None if impossible."""
    if "all" in used or (rule.slots == ("all",) and used):
        return None
    for s in ((-1, 1) if rng.random() < 0.5 else (1, -1)):
        need = set(rule.slots)
        if rule.hands == 2:
            need |= {"hand-1", "hand1"}
        elif rule.hands == 1:
            need.add(f"hand{s}")
        if rule.beside:
            need.add(f"side{s}")
        if rule.pose != "stand":
            need.add("pose")
        if rule.slots == ("all",):
            need |= {"legs", "sky", "face", "back", "pose"}
        if not need & used:
            return s, need
    return None


# --------------------------------------------------------------------------------------------
# scenes


@dataclass(frozen=True)
class Scene:
    """One rendered image: its pixels, its ground truth, and every drawn instance (for the detector)."""

    image: Image.Image
    annotation: ImageAnnotation
    instance_boxes: np.ndarray  # (K, 4) every drawn person and object
    instance_labels: np.ndarray  # (K,) object index


@dataclass(frozen=True)
class LayoutSettings:
    margin: float = 0.02  # of the image size, kept clear at the borders
    gap: float = 0.03  # of the image size, at least between groups
    ground: tuple[float, float] = (0.86, 0.97)  # range of the ground line (feet), of the image size
    max_height: tuple[float, float] = (0.45, 0.62)  # range of the person height (when there is room), of the image size
    min_height: float = 0.2  # below this a layout does not fit (too small to see)


def layout(groups: list[Group], size: int, rng: np.random.Generator, cfg: LayoutSettings = LayoutSettings()
           ) -> list[tuple[float, float, float]] | None:
    """Scale and position (h, x0, y_ground) of each group side by side, or None if they do not fit."""
    extents = np.array([g.extent() for g in groups])  # (G, 4) in person heights
    widths = extents[:, 2] - extents[:, 0]
    margin, gap = cfg.margin * size, cfg.gap * size
    room = size - 2 * margin - gap * (len(groups) - 1)
    h = min(room / widths.sum(), ((cfg.ground[0] * size - margin) / -extents[:, 1]).min(),
            size * rng.uniform(*cfg.max_height))
    if h < cfg.min_height * size:
        return None
    spare = room - h * widths.sum()
    gaps = rng.dirichlet(np.ones(len(groups) + 1)) * spare
    placements = []
    x = margin
    for i, group in enumerate(groups):
        x += gaps[i] + (gap if i else 0.0)
        low = min(cfg.ground[1] * size, size - margin - extents[i, 3] * h)
        ground = rng.uniform(cfg.ground[0] * size, max(cfg.ground[0] * size, low))
        placements.append((h * group.scale, x - extents[i, 0] * h, ground))
        x += widths[i] * h
    return placements


def make_textures(size: int) -> dict[str, np.ndarray]:
    """(size, size, 3) uint8 two-colour patterns, one per textured object class."""
    yy, xx = np.mgrid[0:size, 0:size]
    p = max(4, size // 32)

    def mix(mask: np.ndarray, a: Color, b: Color) -> np.ndarray:
        return np.where(mask[..., None], np.array(a, np.uint8), np.array(b, np.uint8)).astype(np.uint8)

    dots = lambda period, radius: ((xx % period - period / 2) ** 2 + (yy % period - period / 2) ** 2) < radius**2
    return {
        "horse": mix(dots(2 * p, 0.45 * p) & (((xx // (2 * p)) + (yy // (2 * p))) % 2 == 0), (115, 70, 32), (150, 95, 48)),
        "dog": mix(dots(3 * p, 1.1 * p), (125, 82, 42), (232, 214, 172)),
        "kite": mix(((xx + yy) // p) % 2 == 0, (250, 210, 0), (225, 35, 40)),
        "sports_ball": mix(dots(p + 2, 0.32 * (p + 2)), (15, 15, 15), (248, 248, 248)),
        "umbrella": mix((xx // p) % 2 == 0, (200, 0, 160), (250, 250, 250)),
        "cup": mix((yy // p) % 3 == 0, (250, 250, 250), (0, 150, 220)),
        "skateboard": mix((yy // max(2, p // 2)) % 3 == 0, (250, 230, 50), (40, 170, 60)),
        "bench": mix((yy // max(2, p // 2)) % 2 == 0, (165, 105, 45), (125, 76, 32)),
        "backpack": mix(((xx // p) + (yy // p)) % 2 == 0, (120, 45, 165), (78, 22, 110)),
    }


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


def render(groups: list[Group], placements: list[tuple[float, float, float]], size: int,
           textures: dict[str, Image.Image], rng: np.random.Generator) -> tuple[Image.Image, list[list[np.ndarray]]]:
    """Draw the groups; returns the image and each group's entity boxes in pixels (continuous, clipped)."""
    image = Image.fromarray(background(size, rng))
    draw = ImageDraw.Draw(image)
    boxes: list[list[np.ndarray]] = []
    order = sorted(range(len(groups)), key=lambda i: placements[i][2])  # far (higher ground line) first
    pixel_shapes: dict[int, list[Shape]] = {}
    for i, (group, (h, x0, ground)) in enumerate(zip(groups, placements)):
        entity_shapes = [[s.moved(h, x0, ground) for s in e.shapes] for e in group.entities]
        boxes.append([_pixel_box(_extent(shapes), size) for shapes in entity_shapes])
        pixel_shapes[i] = [s for shapes in entity_shapes for s in shapes] + [s.moved(h, x0, ground) for s in group.extras]
    for i in order:
        for shape in sorted(pixel_shapes[i], key=lambda s: s.layer):
            _draw(image, draw, shape, textures)
    return image, boxes


def _pixel_box(box: np.ndarray, size: int) -> np.ndarray:
    x1, y1 = np.floor(box[:2])
    x2, y2 = np.ceil(box[2:])
    return np.clip(np.array([x1, y1, x2, y2], dtype=np.float32), 0, size)


def _draw(image: Image.Image, draw: ImageDraw.ImageDraw, shape: Shape, textures: dict[str, Image.Image]) -> None:
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


# --------------------------------------------------------------------------------------------
# splits


PAIRS_PER_IMAGE = (0.1, 0.42, 0.33, 0.15)  # probability of 0, 1, 2, 3 annotated interactions
COMBINE_PROBABILITY = 0.45  # chance that a further interaction goes to a person already in the image
DISTRACTOR_PERSON_PROBABILITY = 0.35


def class_quotas(weights: np.ndarray, total: int) -> np.ndarray:
    """Pairs per class in proportion to `weights` (largest remainder), every class at least once if possible."""
    exact = weights / weights.sum() * total
    counts = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    while total >= len(weights) and (counts == 0).any():
        counts[np.argmax(counts)] -= 1
        counts[np.flatnonzero(counts == 0)[0]] += 1
    return counts


def generate_scenes(split: str, num_images: int, size: int, seed: int, vocabulary: Vocabulary,
                    progress: Callable[[int], None] | None = None) -> list[Scene]:
    """Render `num_images` scenes of a split (deterministic in `seed` and `split`)."""
    rng = np.random.default_rng([seed, sum(map(ord, split))])
    rules = rules_in_class_order(vocabulary)
    hoi_index = {(rule.verb, rule.object): i for i, rule in enumerate(rules)}
    object_index = {name: i for i, name in enumerate(vocabulary.objects)}
    textures = {name: Image.fromarray(t) for name, t in make_textures(size).items()}
    planned = rng.choice(len(PAIRS_PER_IMAGE), size=num_images, p=PAIRS_PER_IMAGE)
    quotas = class_quotas(np.array([rule.weight for rule in rules]), int(planned.sum()))
    tasks = np.repeat(np.arange(len(rules)), quotas)
    queue = deque(int(t) for t in rng.permutation(tasks))
    object_labels = sorted({rule.object for rule in rules})
    scenes = []
    for i in range(num_images):
        wanted = int(planned[i]) if i < num_images - 1 else min(3, len(queue))
        taken = [queue.popleft() for _ in range(min(wanted, len(queue)))]
        while True:
            groups, placements = _compose_image([rules[t] for t in taken], object_labels, size, rng)
            if placements is not None:
                break
            if taken:
                queue.appendleft(taken.pop())  # does not fit: the class waits for the next image
        filename = f"synth_{split}_{i:06d}.png"
        scenes.append(_scene(filename, groups, placements, size, textures, rng, hoi_index, object_index, vocabulary))
        if progress is not None:
            progress(1)
    if queue:
        log.info("%s: %d planned interactions did not fit and were left out", split, len(queue))
    return scenes


def _compose_image(rules: list[InteractionRule], object_labels: list[str], size: int, rng: np.random.Generator
                   ) -> tuple[list[Group], list | None]:
    """Groups for one image: people doing `rules`, plus distractors; placements None if they do not fit."""
    people: list[tuple[list[tuple[InteractionRule, int]], set[str]]] = []
    for rule in rules:
        options = [(p, fit) for p in people if len(p[0]) < 2 and (fit := try_assign(rule, p[1], rng)) is not None]
        if options and (rng.random() < COMBINE_PROBABILITY or len(people) == 3):
            person, (s, need) = options[int(rng.integers(len(options)))]
            person[0].append((rule, s))
            person[1].update(need)
        else:
            s, need = try_assign(rule, set(), rng)  # always possible on a free person
            people.append(([(rule, s)], need))
    groups = [compose_person(person_tasks, rng) for person_tasks, _ in people]
    num_objects = len(rules)
    if not people or (len(people) < 3 and rng.random() < DISTRACTOR_PERSON_PROBABILITY):
        groups.append(compose_person([], rng, distractor_arms=True))
    target_objects = max(num_objects, int(rng.integers(1, 5)))
    placements = layout(groups, size, rng)
    if placements is None:
        return groups, None
    for _ in range(target_objects - num_objects):
        extra = compose_object(object_labels[int(rng.integers(len(object_labels)))], rng)
        candidate = groups[:]
        candidate.insert(int(rng.integers(len(candidate) + 1)), extra)
        trial = layout(candidate, size, rng)
        if trial is not None:
            groups, placements = candidate, trial
    if sum(e.label != "person" for g in groups for e in g.entities) == 0:
        return groups, None  # an image needs at least one object
    return groups, placements


def _scene(filename: str, groups: list[Group], placements: list, size: int, textures: dict[str, Image.Image],
           rng: np.random.Generator, hoi_index: dict, object_index: dict, vocabulary: Vocabulary) -> Scene:
    image, boxes = render(groups, placements, size, textures, rng)
    boxes_h, boxes_o, hoi = [], [], []
    for group, group_boxes in zip(groups, boxes):
        for person, obj, rule in group.pairs:
            boxes_h.append(group_boxes[person])
            boxes_o.append(group_boxes[obj])
            hoi.append(hoi_index[(rule.verb, rule.object)])
    hoi_array = np.asarray(hoi, dtype=np.int64)
    annotation = ImageAnnotation(
        filename=filename,
        width=size,
        height=size,
        boxes_h=np.asarray(boxes_h, dtype=np.float32).reshape(-1, 4),
        boxes_o=np.asarray(boxes_o, dtype=np.float32).reshape(-1, 4),
        hoi=hoi_array,
        verb=vocabulary.hoi_classes[hoi_array, 0],
        object=vocabulary.hoi_classes[hoi_array, 1],
    )
    instance_boxes = np.asarray([b for group_boxes in boxes for b in group_boxes], dtype=np.float32).reshape(-1, 4)
    labels = np.asarray([object_index[e.label] for g in groups for e in g.entities], dtype=np.int64)
    return Scene(image, annotation, instance_boxes, labels)


def rare_classes(counts: np.ndarray) -> np.ndarray:
    """HOI classes with fewer than 10 training pairs (HICO-DET's Rare)."""
    return np.flatnonzero(counts < RARE_THRESHOLD)


def split_annotations(scenes: list[Scene], vocabulary: Vocabulary, source: str) -> HOIAnnotations:
    annotations = tuple(scene.annotation for scene in scenes)
    empty = tuple(a.filename for a in annotations if a.num_pairs == 0)
    return HOIAnnotations(vocabulary=vocabulary, images=annotations, source=source, empty=empty)


# --------------------------------------------------------------------------------------------
# the simulated detector


@dataclass(frozen=True)
class DetectorNoise:
    """How the simulated detector errs (see `SyntheticConfig`)."""

    miss_rate: float = 0.05
    box_jitter: float = 0.05
    false_positives: float = 1.0
    confusion_rate: float = 0.03
    duplicate_rate: float = 0.1


def simulate_detections(scene: Scene, vocabulary: Vocabulary, noise: DetectorNoise, rng: np.random.Generator
                        ) -> Proposals:
    """Detector-like output for a scene: jittered true boxes, misses, confusions, duplicates, false positives."""
    size = scene.annotation.width
    person = vocabulary.person
    others = np.array([i for i in range(vocabulary.num_objects) if i != person])
    boxes, scores, labels = [], [], []
    for box, label in zip(scene.instance_boxes, scene.instance_labels):
        if rng.random() < noise.miss_rate:
            continue
        if label != person and rng.random() < noise.confusion_rate:
            label = int(rng.choice(others[others != label]))
        score = float(rng.beta(8.0, 1.6))
        boxes.append(_jitter(box, noise.box_jitter, size, rng))
        scores.append(score)
        labels.append(int(label))
        if rng.random() < noise.duplicate_rate:
            boxes.append(_jitter(box, 2.5 * noise.box_jitter, size, rng))
            scores.append(score * rng.uniform(0.3, 0.8))
            labels.append(int(label))
    for _ in range(int(rng.poisson(noise.false_positives))):
        w, h = rng.uniform(0.08, 0.45, size=2) * size
        x1, y1 = rng.uniform(0, size - w), rng.uniform(0, size - h)
        boxes.append(np.array([x1, y1, x1 + w, y1 + h]))
        scores.append(float(rng.uniform(0.02, 0.45)))
        labels.append(person if rng.random() < 0.3 else int(rng.choice(others)))
    return Proposals(
        filename=scene.annotation.filename,
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        scores=np.clip(np.asarray(scores, dtype=np.float32), 0.01, 0.99),
        labels=np.asarray(labels, dtype=np.int64),
    )


def _jitter(box: np.ndarray, sigma: float, size: int, rng: np.random.Generator) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    noisy = box + rng.normal(0.0, sigma, 4) * np.array([w, h, w, h])
    noisy = np.clip(noisy, 0, size)
    noisy[2] = max(noisy[2], min(noisy[0] + 2, size))
    noisy[3] = max(noisy[3], min(noisy[1] + 2, size))
    noisy[0] = min(noisy[0], noisy[2] - 1)
    noisy[1] = min(noisy[1], noisy[3] - 1)
    return np.round(noisy, 2)


# --------------------------------------------------------------------------------------------
# a whole dataset


@dataclass(frozen=True)
class SyntheticSplit:
    annotations: HOIAnnotations
    images: list[Image.Image]
    detections: list[Proposals]


def generate_dataset(*, seed: int, num_train: int, num_test: int, image_size: int,
                     noise: DetectorNoise = DetectorNoise(),
                     progress: Callable[[int], None] | None = None) -> dict[str, SyntheticSplit]:
    """Train and test splits with one vocabulary; Rare/Non-Rare from the training pairs."""
    if num_train < 1 or num_test < 1:
        raise ValueError(f"num_train and num_test must be >= 1, got {num_train} and {num_test}")
    if image_size < 64:
        raise ValueError(f"image_size must be >= 64 pixels, got {image_size}")
    base = synthetic_vocabulary()
    scenes = {
        "train": generate_scenes("train", num_train, image_size, seed, base, progress),
        "test": generate_scenes("test", num_test, image_size, seed, base, progress),
    }
    counts = np.bincount(np.concatenate([s.annotation.hoi for s in scenes["train"]]), minlength=base.num_classes)
    vocabulary = synthetic_vocabulary(rare=rare_classes(counts))
    splits = {}
    for name, split_scenes in scenes.items():
        rng = np.random.default_rng([seed, sum(map(ord, name)), 1])
        splits[name] = SyntheticSplit(
            annotations=split_annotations(split_scenes, vocabulary, f"synthetic:{name}"),
            images=[scene.image for scene in split_scenes],
            detections=[simulate_detections(scene, vocabulary, noise, rng) for scene in split_scenes],
        )
    return splits
