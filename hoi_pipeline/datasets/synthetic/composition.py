"""Composition: people doing a family's interactions, lone distractors, and the groups of one image.

A `Group` is what is drawn together and laid out as one block: a person with the objects of their
interactions (1-2 per person in the HICO-DET family), a distractor person, or a lone object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hoi_pipeline.datasets.synthetic.interactions import Interaction, Where, arms_of, claim_parts
from hoi_pipeline.datasets.synthetic.layout import Placement, layout
from hoi_pipeline.datasets.synthetic.objects import BENCH_SEAT, build_object, build_resting, object_size, on_ground
from hoi_pipeline.datasets.synthetic.people import Look, build_person, hip_height, random_look
from hoi_pipeline.datasets.synthetic.shapes import Entity, Point, Shape, extent

Task = tuple[Interaction, int]  # an interaction and the hand side s it uses


@dataclass
class Group:
    """Entities drawn together (unit coordinates) and the interactions among them."""

    entities: list[Entity]
    extras: list[Shape]
    pairs: list[tuple[int, tuple[int, ...], Interaction]]  # (person entity, its objects' entities, class)
    scale: float = 1.0
    pose: str | None = None  # the person's pose (None: a lone object)

    def extent(self) -> np.ndarray:
        return extent([s for e in self.entities for s in e.shapes] + self.extras, only_box=False) * self.scale


@dataclass(frozen=True)
class CompositionSettings:
    """How a family fills an image (the HICO-DET family's values are the defaults)."""

    combine_probability: float = 0.45  # chance that a further interaction goes to a person already in the image
    distractor_person_probability: float = 0.35
    max_people: int = 3
    max_tasks_per_person: int = 2
    face: str | None = None  # mouth drawn on every person ("neutral") unless a task sets one; None: no mouth


def compose_person(tasks: list[Task], rng: np.random.Generator, distractor_arms: bool = False,
                   face: str | None = None) -> Group:
    """A person doing `tasks` [(rule, side)] (possibly none: a distractor person)."""
    look = random_look(rng)
    sizes = [tuple(object_size(label, rng) for label in rule.objects) for rule, _ in tasks]
    pose = next((rule.pose for rule, _ in tasks if rule.pose != "stand"), "stand")
    face = next((rule.face for rule, _ in tasks if rule.face is not None), face)
    arms = arms_of(tasks)
    lead = next((s for rule, s in tasks if rule.pose != "stand"), 1)  # the kicking or leading leg
    if distractor_arms:
        arms = {s: ("down", "low", "side")[int(rng.integers(3))] for s in (-1, 1)}
    for (rule, _), rule_sizes in zip(tasks, sizes):
        if rule.compose is not None:  # takes the whole person (slots 'all'): the only task
            return rule.compose(rule, rule_sizes, look, face, rng)
    dy = 0.0
    for (rule, _), rule_sizes in zip(tasks, sizes):
        if rule.support is not None:
            dy += rule.support(hip_height(rule.pose), rule_sizes[0])
    person_shapes, body = build_person(pose, arms, look, lead, face)
    person = Entity("person", [s.moved(1.0, 0.0, dy) for s in person_shapes])
    body = body.moved(dy)
    entities, extras, pairs = [person], [], []
    for (rule, s), rule_sizes in zip(tasks, sizes):
        if rule.place is None:
            pairs.append((0, (), rule))
            continue
        facing = s if rng.random() < 0.5 else -s
        placed = rule.place(Where(body, s, rule.objects, rule_sizes, facing, rng))
        pairs.append((0, tuple(range(len(entities), len(entities) + len(placed.objects))), rule))
        entities.extend(placed.objects)
        extras.extend(placed.extras)
    return Group(entities, extras, pairs, scale=rng.uniform(0.92, 1.08), pose=pose)


def lying_on(rule: Interaction, sizes: tuple[Point, ...], look: Look, face: str | None, rng: np.random.Generator
             ) -> Group:
    """A person lying on their back along the top of a seat (`Interaction.compose` of lie_on / lay)."""
    size = sizes[0]
    seat = build_object(rule.objects[0], on_ground(-size[0] / 2, size), layer=0)
    seat_top = -size[1] + BENCH_SEAT * size[1]
    shapes, _ = build_person("stand", {-1: "down", 1: "down"}, look, face=face)
    turn = 1 if rng.random() < 0.5 else -1
    rotated = [s.rotated(turn, (0.0, -0.5)) for s in shapes]
    dy = seat_top + 0.03 - extent(rotated)[3]
    person = Entity("person", [s.moved(1.0, 0.0, dy) for s in rotated])
    return Group([person, seat], [], [(0, (1,), rule)], scale=rng.uniform(0.92, 1.08), pose="lie")


def compose_object(label: str, rng: np.random.Generator) -> Group:
    """A lone object resting on the ground (a distractor)."""
    size = object_size(label, rng)
    facing = 1 if rng.random() < 0.5 else -1
    return Group([build_resting(label, size, facing)], [], [], scale=rng.uniform(0.92, 1.08))


def lay_out(groups: list[Group], size: int, rng: np.random.Generator) -> list[Placement] | None:
    return layout(np.array([g.extent() for g in groups]), [g.scale for g in groups], size, rng)


def compose_image(rules: list[Interaction], object_labels: list[str], size: int, rng: np.random.Generator,
                  settings: CompositionSettings = CompositionSettings()) -> tuple[list[Group], list[Placement] | None]:
    """Groups for one image: people doing `rules`, plus distractors; placements None if they do not fit."""
    people: list[tuple[list[Task], set[str]]] = []
    for rule in rules:
        options = [(p, fit) for p in people
                   if len(p[0]) < settings.max_tasks_per_person and (fit := claim_parts(rule, p[1], rng)) is not None]
        if options and (rng.random() < settings.combine_probability or len(people) == settings.max_people):
            person, (s, need) = options[int(rng.integers(len(options)))]
            person[0].append((rule, s))
            person[1].update(need)
        else:
            s, need = claim_parts(rule, set(), rng)  # always possible on a free person
            people.append(([(rule, s)], need))
    groups = [compose_person(person_tasks, rng, face=settings.face) for person_tasks, _ in people]
    num_objects = sum(len(rule.objects) for rule in rules)
    if not people or (len(people) < settings.max_people and rng.random() < settings.distractor_person_probability):
        groups.append(compose_person([], rng, distractor_arms=True, face=settings.face))
    target_objects = max(num_objects, int(rng.integers(1, 5)))
    placements = lay_out(groups, size, rng)
    if placements is None:
        return groups, None
    for _ in range(target_objects - num_objects):
        extra = compose_object(object_labels[int(rng.integers(len(object_labels)))], rng)
        candidate = groups[:]
        candidate.insert(int(rng.integers(len(candidate) + 1)), extra)
        trial = lay_out(candidate, size, rng)
        if trial is not None:
            groups, placements = candidate, trial
    if sum(e.label != "person" for g in groups for e in g.entities) == 0:
        return groups, None  # an image needs at least one object
    return groups, placements
