"""The entry type of a scene family's class table: one `Interaction` per class.

An entry says how often the class occurs, what of the person it occupies (pose, arms, hands, the
side beside the body, exclusive parts such as the legs or the sky) and where its objects go
(`place`, a function of the person's key points, in `placements`). Both scene families (HICO-DET
style, V-COCO style) fill tables of these; `composition` puts them on people.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hoi_pipeline.datasets.synthetic.people import Body
from hoi_pipeline.datasets.synthetic.shapes import Entity, Point, Shape


@dataclass(frozen=True)
class Where:
    """What a placement knows: the person's key points, the hand side s, the objects' names and sizes."""

    body: Body
    s: int  # side of the hand (and of the object beside the body): -1 left, +1 right
    labels: tuple[str, ...]
    sizes: tuple[Point, ...]
    facing: int  # a random facing (s or -s) for objects that may face either way
    rng: np.random.Generator

    @property
    def label(self) -> str:
        return self.labels[0]

    @property
    def size(self) -> Point:
        return self.sizes[0]

    @property
    def hand(self) -> Point:
        return self.body.hands[self.s]


@dataclass
class Placed:
    objects: list[Entity]  # in the order of `Interaction.objects`
    extras: list[Shape] = field(default_factory=list)  # leash, string, straps: in no box


Place = Callable[[Where], Placed]
Support = Callable[[float, Point], float]  # (hip y of the pose, object size) -> how far the person moves down
Compose = Callable[..., object]  # (interaction, sizes, look, face, rng) -> composition.Group


@dataclass(frozen=True)
class Interaction:
    """One class of a scene family and the geometry that decides it."""

    verb: str
    objects: tuple[str, ...]  # drawn objects, in the order `place` returns them; () for agent-only actions
    weight: float  # relative frequency (the long tail)
    place: Place | None = None  # where the objects go; None when there are none
    pose: str = "stand"  # the person's pose (`people.POSES`)
    arm: str = "down"  # pose of the arm(s) the interaction uses (`people.ARM_POSES`)
    hands: int = 0  # 0, 1 (on side s) or 2
    off_arm: str | None = None  # with hands=2: the other hand's (side -s) pose when it differs from `arm`
    beside: bool = False  # the object stands beside the person on side s (one per side)
    slots: tuple[str, ...] = ()  # other exclusive parts: legs, sky, face, back, all
    support: Support | None = None  # the person sits, rides or stands on the (first) object
    compose: Compose | None = None  # builds the whole group instead (a person lying on the object)
    roles: tuple[str, ...] = ()  # V-COCO: the role ('obj', 'instr') each of `objects` fills
    face: str | None = None  # V-COCO: the person's face ("smile")

    @property
    def object(self) -> str:
        """The one object of an HOI class (HICO-DET family)."""
        if len(self.objects) != 1:
            raise ValueError(f"'{self.verb}' with objects {self.objects} is not a one-object HOI class")
        return self.objects[0]


def claim_parts(rule: Interaction, used: set[str], rng: np.random.Generator) -> tuple[int, set[str]] | None:
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


def arms_of(tasks: list[tuple[Interaction, int]]) -> dict[int, str]:
    """The arm pose on each side that `tasks` [(rule, side)] ask for (unset sides hang down)."""
    arms: dict[int, str] = {}
    for rule, s in tasks:
        if rule.hands == 2:
            arms = {-1: rule.arm, 1: rule.arm}
            if rule.off_arm is not None:
                arms[-s] = rule.off_arm
        elif rule.hands == 1:
            arms[s] = rule.arm
    return arms

