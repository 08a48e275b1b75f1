"""Drawn people: a hair-topped head, a shirt-coloured torso and arms, trousers and shoes.

A person is built standing with the feet on y = 0 (unit coordinates, person height 1, y down) in
one of the `POSES` (the legs and how far the hips drop) with one of the `ARM_POSES` per arm; its box
is the whole figure, raised hands and a kicking leg included. `Body` keeps the key points that
placements attach objects to (hands, feet, hips, shoulders, head).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hoi_pipeline.datasets.synthetic.shapes import Color, Point, Shape, ellipse, line, polygon

SKIN: tuple[Color, ...] = ((241, 200, 160), (205, 152, 110), (142, 96, 62))
HAIR: tuple[Color, ...] = ((35, 22, 12), (100, 64, 24), (20, 20, 20), (150, 120, 80))
SHIRTS: tuple[Color, ...] = ((60, 90, 175), (45, 140, 125), (185, 85, 60), (150, 150, 150), (215, 175, 55), (240, 240, 235))
TROUSERS: tuple[Color, ...] = ((40, 42, 72), (62, 46, 30), (28, 28, 28), (85, 85, 95))
SHOES = (25, 20, 20)
MOUTH = (120, 30, 30)

ARM_POSES: dict[str, tuple[Point, Point]] = {  # (elbow, hand) offsets from the shoulder, x towards side s
    "down": ((0.04, 0.15), (0.07, 0.30)),
    "low": ((0.08, 0.14), (0.19, 0.24)),
    "side": ((0.12, 0.07), (0.25, 0.10)),
    "up": ((0.07, -0.13), (0.11, -0.27)),
    "mouth": ((0.12, 0.10), (0.0, -0.08)),
    "reach_up": ((0.10, -0.04), (0.21, -0.14)),
    "hold_up": ((0.14, 0.04), (0.08, -0.10)),
    "ear": ((0.13, 0.06), (0.02, -0.14)),  # phone to the ear
    "front": ((0.09, 0.14), (-0.02, 0.09)),  # hand in front of the chest (reading)
    "pump": ((0.08, 0.12), (0.01, 0.04)),  # bent, running
    "swing": ((0.14, -0.02), (0.24, -0.16)),  # racket raised out to the side
}

STAND_HIP = -0.47
Legs = Callable[[int, float, int], tuple[Point | None, Point]]  # (side s, hip y, lead side) -> (knee or None, foot)


@dataclass(frozen=True)
class Pose:
    """How a pose bends the legs: hip drop below standing height, and each leg's knee and foot."""

    hip_drop: float
    legs: Legs


POSES: dict[str, Pose] = {
    "stand": Pose(0.0, lambda s, hip, lead: (None, (s * 0.085, 0.0))),
    "straddle": Pose(0.0, lambda s, hip, lead: (None, (s * 0.2, 0.0))),  # feet wide on the ground
    "ride": Pose(0.0, lambda s, hip, lead: ((s * 0.17, hip + 0.14), (s * 0.13, hip + 0.3))),  # knees around the mount
    # sitting: on a bench (hips_on(0.52, 0.03)) the person moves down ~0.08, so the feet sink below the
    # ground; kept for the HICO-DET family's pinned output. "seated" drops the hips to the seat instead.
    "sit": Pose(0.2, lambda s, hip, lead: ((s * 0.18, hip + 0.02), (s * 0.16, 0.0))),
    "seated": Pose(0.3, lambda s, hip, lead: ((s * 0.18, hip + 0.02), (s * 0.16, 0.0))),
    "crouch": Pose(0.26, lambda s, hip, lead: ((s * 0.2, hip - 0.03), (s * 0.12, 0.0))),
    "kick": Pose(0.0, lambda s, hip, lead: ((s * 0.13, hip + 0.22), (s * 0.3, -0.1)) if s == lead
                 else (None, (-lead * 0.04, 0.0))),  # kicking leg out, standing leg under the body
    "lie": Pose(0.0, lambda s, hip, lead: (None, (s * 0.085, 0.0))),  # built standing, then turned
    "walk": Pose(0.02, lambda s, hip, lead: ((s * 0.12, hip + 0.23), (s * 0.22, 0.0)) if s == lead
                 else (None, (s * 0.17, -0.03))),  # a stride: front knee bent, back heel raised
    "run": Pose(0.03, lambda s, hip, lead: ((s * 0.2, hip + 0.17), (s * 0.27, -0.01)) if s == lead
                else ((s * 0.07, hip + 0.27), (s * 0.26, -0.13))),  # long stride, back foot lifted
}


def hip_height(pose: str) -> float:
    """y of the hips of a person built in `pose` (feet on y = 0)."""
    return STAND_HIP + POSES[pose].hip_drop


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

    @property
    def mouth(self) -> Point:
        return (self.head[0], self.head[1] + 0.04)

    def moved(self, dy: float) -> Body:
        up = lambda p: (p[0], p[1] + dy)
        return Body({s: up(p) for s, p in self.hands.items()}, {s: up(p) for s, p in self.feet.items()},
                    self.hip_y + dy, self.shoulder_y + dy, up(self.head), self.head_r)


def build_person(pose: str, arms: dict[int, str], look: Look, lead_side: int = 1, face: str | None = None
                 ) -> tuple[list[Shape], Body]:
    """Shapes of a person standing on y = 0 (feet) in `pose`, and its key points.

    `lead_side` is the side of the kicking or leading leg; `face` draws a mouth ("neutral" or
    "smile"; None: no mouth, the HICO-DET family's faces).
    """
    hip_y = hip_height(pose)
    shoulder_y = hip_y - 0.31
    head = (0.0, hip_y - 0.43)
    head_r = 0.085
    shapes: list[Shape] = []
    feet: dict[int, Point] = {}
    for s in (-1, 1):
        knee, foot = POSES[pose].legs(s, hip_y, lead_side)
        joints = [(s * 0.05, hip_y)] + ([knee] if knee else []) + [foot]
        shapes.append(line(joints, 0.075, look.trousers))
        shapes.append(ellipse(foot[0] + s * 0.015, foot[1] - 0.01, 0.045, 0.025, SHOES))
        feet[s] = foot
    shapes.append(polygon([(-0.115, shoulder_y), (0.115, shoulder_y), (0.088, hip_y + 0.03), (-0.088, hip_y + 0.03)],
                          look.shirt))
    shapes.append(line([(0.0, shoulder_y + 0.01), (0.0, head[1])], 0.045, look.skin))
    shapes.append(ellipse(head[0], head[1] - 0.018, head_r * 1.04, head_r * 0.9, look.hair))
    shapes.append(ellipse(head[0], head[1] + 0.008, head_r * 0.93, head_r, look.skin))
    if face is not None:
        shapes.append(_mouth(head, face))
    hands: dict[int, Point] = {}
    for s in (-1, 1):
        (ex, ey), (hx, hy) = ARM_POSES[arms.get(s, "down")]
        shoulder = (s * 0.1, shoulder_y + 0.03)
        elbow = (shoulder[0] + s * ex, shoulder[1] + ey)
        hand = (shoulder[0] + s * hx, shoulder[1] + hy)
        shapes.append(line([shoulder, elbow, hand], 0.05, look.shirt))
        shapes.append(ellipse(hand[0], hand[1], 0.032, 0.032, look.skin))
        hands[s] = hand
    return shapes, Body(hands, feet, hip_y, shoulder_y, head, head_r)


def _mouth(head: Point, face: str) -> Shape:
    """A flat mouth, or a wide upturned one (a smile)."""
    x, y = head[0], head[1] + 0.04
    if face == "smile":
        return line([(x - 0.045, y - 0.014), (x - 0.02, y + 0.012), (x + 0.02, y + 0.012), (x + 0.045, y - 0.014)],
                    0.016, MOUTH)
    if face == "neutral":
        return line([(x - 0.028, y + 0.004), (x + 0.028, y + 0.004)], 0.014, MOUTH)
    raise ValueError(f"unknown face '{face}' (neutral or smile)")
