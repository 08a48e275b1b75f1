"""Synthetic scene tables: every class entry of both families draws, places its objects where they stay
visible, combines with the entries it may share a person with, and images lay groups out apart."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image, ImageDraw

from hoi_pipeline.datasets.synthetic import hicodet_scenes, vcoco_scenes
from hoi_pipeline.datasets.synthetic.composition import Group, compose_object, compose_person, lay_out
from hoi_pipeline.datasets.synthetic.interactions import Interaction, claim_parts
from hoi_pipeline.datasets.synthetic.objects import OBJECTS, build_object, object_textures
from hoi_pipeline.datasets.synthetic.people import ARM_POSES, POSES
from hoi_pipeline.datasets.synthetic.rendering import draw_shape
from hoi_pipeline.datasets.synthetic.shapes import Shape
from hoi_pipeline.datasets.synthetic.splitting import draw_split

FAMILIES = {"hicodet": (hicodet_scenes.RULES, None), "vcoco": (vcoco_scenes.RULES, "neutral")}
SIZE = 160
# Known and kept: the HICO-DET family's person sitting on a bench has the feet ~0.08 below the ground
# (people.POSES["sit"]), as that family's output is pinned (test_synthetic.py); the V-COCO family seats
# people with their feet on the ground ("seated").


def visible_fractions(group: Group, rng: np.random.Generator) -> list[float]:
    """Per entity: the share of its pixels (drawn alone) that stay visible in the whole group's drawing."""
    (h, x0, ground), = lay_out([group], SIZE, rng)
    tagged = [(k, s.moved(h, x0, ground)) for k, e in enumerate(group.entities) for s in e.shapes]
    tagged += [(-1, s.moved(h, x0, ground)) for s in group.extras]
    tagged.sort(key=lambda item: item[1].layer)  # the renderer's order: stable by layer

    def paint(items) -> np.ndarray:
        image = Image.new("RGB", (SIZE, SIZE))
        draw = ImageDraw.Draw(image)
        for k, s in items:  # entity k in flat colour k + 2 (0: background, 1: extras)
            draw_shape(image, draw, Shape(s.kind, s.points, (k + 2, 0, 0), None, s.width, s.layer, s.in_box), {})
        return np.asarray(image)[..., 0]

    together = paint(tagged)
    fractions = []
    for k in range(len(group.entities)):
        alone = int((paint([t for t in tagged if t[0] == k]) == k + 2).sum())
        assert alone > 0, f"entity {k} ({group.entities[k].label}) draws no pixel"
        fractions.append(float((together == k + 2).sum()) / alone)
    return fractions


def compositions(rules: tuple[Interaction, ...]) -> list[tuple[Interaction, ...]]:
    """Every entry alone, and every pair of entries (those one person cannot do together are skipped later)."""
    return [(rule,) for rule in rules] + list(itertools.combinations(rules, 2))


def on_one_person(combo: tuple[Interaction, ...], rng: np.random.Generator, face: str | None) -> Group | None:
    used: set[str] = set()
    tasks = []
    for rule in combo:
        fit = claim_parts(rule, used, rng)
        if fit is None:
            return None
        tasks.append((rule, fit[0]))
        used |= fit[1]
    return compose_person(tasks, rng, face=face)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_entry_places_its_objects_visibly_alone_and_with_any_compatible_entry(family):
    rules, face = FAMILIES[family]
    rng = np.random.default_rng(1)
    checked = 0
    for combo in compositions(rules):
        name = " + ".join(f"{r.verb} {'/'.join(r.objects) or '-'}" for r in combo)
        for _ in range(2):
            group = on_one_person(combo, rng, face)
            if group is None:
                continue
            checked += 1
            assert [e.label for e in group.entities] == ["person", *(o for r in combo for o in r.objects)], name
            assert [rule for _, _, rule in group.pairs] == list(combo), name
            for entity in group.entities:
                box = entity.box()
                assert box[2] - box[0] > 0.02 and box[3] - box[1] > 0.02, f"{name}: {entity.label} is degenerate"
                sinks = family == "hicodet" and entity.label == "person" and any(r.verb == "sit_on" for r in combo)
                if not sinks:  # (outlines and shoes reach a little below the ground line)
                    assert box[3] <= 0.05, f"{name}: {entity.label} reaches below the ground"
            for entity, seen in zip(group.entities, visible_fractions(group, rng)):
                in_front = entity.label != "person" and entity.shapes[0].layer == 2
                # worn backpacks sit behind the torso by design (about 40% shows); held objects are in front
                least = 0.9 if in_front else 0.7 if entity.label == "person" else 0.35
                assert seen >= least, f"{name}: only {seen:.0%} of the {entity.label} is visible"
    assert checked >= len(rules) * 2


@pytest.mark.parametrize("family", FAMILIES)
def test_entries_name_known_poses_arms_objects_and_a_placement(family):
    rules, _ = FAMILIES[family]
    for rule in rules:
        assert rule.pose in POSES and rule.arm in ARM_POSES and (rule.off_arm is None or rule.off_arm in ARM_POSES)
        assert all(label in OBJECTS for label in rule.objects), rule
        assert (rule.place is None) == (not rule.objects or rule.compose is not None), rule
    assert len({(r.verb, r.objects) for r in rules}) == len(rules), "one entry per class"


def test_every_object_draws_facing_both_ways_and_resting():
    rng = np.random.default_rng(0)
    textured = set(object_textures())
    for label, kind in OBJECTS.items():
        w, h = kind.size
        right = build_object(label, np.array([0.0, -h, w, 0.0]), facing=1)
        left = build_object(label, np.array([0.0, -h, w, 0.0]), facing=-1)
        (a1, b1, a2, b2), (c1, d1, c2, d2) = right.box(), left.box()  # a mirror image about the box's centre
        np.testing.assert_allclose([a2 - a1, b1, b2], [c2 - c1, d1, d2], atol=1e-9)
        np.testing.assert_allclose(a1 + c2, w, atol=1e-9)
        assert right.box()[2] - right.box()[0] > 0 and right.box()[3] - right.box()[1] > 0
        assert {s.texture for s in right.shapes} - {None} <= textured
        lone = compose_object(label, rng)
        assert lone.entities[0].box()[3] <= 0.05 and not lone.pairs


def test_vcoco_entries_fill_roles_of_their_action():
    roles = dict(vcoco_scenes.ACTION_ROLES)
    for rule in vcoco_scenes.RULES:
        assert rule.verb in roles and len(rule.roles) == len(rule.objects)
        assert set(rule.roles) <= set(roles[rule.verb]) and len(set(rule.roles)) == len(rule.roles)
        assert bool(rule.objects) == bool(roles[rule.verb]), "agent-only actions and only they have no object"
    drawn = {rule.verb for rule in vcoco_scenes.RULES} | {vcoco_scenes.STAND}
    assert drawn == set(roles), "every action is drawn (stand follows from the pose)"
    both = [rule for rule in vcoco_scenes.RULES if len(rule.objects) == 2]
    absent = [rule for rule in vcoco_scenes.RULES if 0 < len(rule.objects) < len(roles[rule.verb])]
    assert both and absent, "actions with both roles, and persons whose role object is absent"


@pytest.mark.parametrize("family", FAMILIES)
def test_groups_of_an_image_do_not_overlap(family):
    if family == "vcoco":
        rules, kwargs = vcoco_scenes.RULES, {"tasks_per_image": vcoco_scenes.TASKS_PER_IMAGE,
                                             "composition": vcoco_scenes.COMPOSITION}
    else:
        rules, kwargs = hicodet_scenes.rules_in_class_order(hicodet_scenes.synthetic_vocabulary()), {}
    for drawn in draw_split("test", 30, 128, 4, rules, **kwargs):
        spans = sorted((min(b[0] for b in boxes), max(b[2] for b in boxes)) for boxes in drawn.boxes)
        for (_, right), (left, _) in zip(spans, spans[1:]):
            assert left >= right - 1.0, f"image {drawn.index}: groups overlap ({spans})"
