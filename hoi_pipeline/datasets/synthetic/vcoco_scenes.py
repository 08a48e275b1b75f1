"""The V-COCO-style family: actions with semantic roles, every person labelled, some role objects absent.

V-COCO (Gupta & Malik 2015; paper section 4.1 and appendix H) labels every person of an image with
each of its actions; an action has an agent and up to two object roles, 'obj' (the thing acted on)
and 'instr' (the instrument), each naming one COCO instance or none. This family draws scenes with
the HICO-DET family's machinery and labels them that way:

| action (roles)          | drawn as                                                              |
|-------------------------|-----------------------------------------------------------------------|
| stand                   | any person standing on the ground with feet together (not an entry:   |
|                         | it follows from the pose; distractor people stand)                    |
| walk, run               | a stride; running: a long stride, back foot lifted, arms bent         |
| smile                   | a wide upturned mouth (every other person has a flat one)             |
| hold obj cup/umbrella/sports ball | in the hand, beside the body / canopy overhead / held out   |
| carry obj backpack/skateboard     | hanging from the low hand / upright in the hand             |
| kick obj, throw obj sports ball   | at the extended foot / beyond the raised hand               |
| read obj book           | held open in front of the chest with both hands                        |
| ride instr bicycle/horse | under the person, who sits lifted on it                              |
| sit instr, lay instr bench | seated on it / lying along its seat                                |
| skateboard instr skateboard | standing on the board                                             |
| drink instr cup, talk_on_phone instr cell phone | at the mouth / at the ear             |
| hit instr tennis racket + hit obj sports ball | racket raised in the hand, ball off its strings |
| hit instr tennis racket, no obj | a swing at nothing: the obj role has no object          |
| eat obj cake + eat instr fork | cake on its plate in the low hand, fork at the mouth      |
| eat obj donut, no instr | a donut to the mouth by hand: the instr role has no object           |

The last two kinds of rows are what separates V-COCO's scenario 1 from scenario 2 (vsrl_eval.py):
a person doing an action whose role has no object. Lone objects of every class (a ball on the
ground near a racket swing, ...) stand around as distractors, as in real images. A person does each
action at most once (one row per person and action in the official files).

Names are COCO's ('sports ball', 'cell phone'); the official layout is written by
`datasets.vcoco_official.write_vcoco_official` (stage `generate-demo`, family `vcoco`). Each role's
`include` (the categories it may take) lists the objects the table draws in it.

To add a class: one `RULES` entry (and the action in `ACTION_ROLES`, in the official files' order,
for a new action); a new object also needs an `objects.OBJECTS` entry, a new relation a function
in `placements`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from hoi_pipeline.datasets.synthetic import placements as at
from hoi_pipeline.datasets.synthetic.composition import CompositionSettings, Group, lying_on
from hoi_pipeline.datasets.synthetic.detector import DetectorNoise, simulate_detections
from hoi_pipeline.datasets.synthetic.interactions import Interaction, Place
from hoi_pipeline.datasets.synthetic.splitting import draw_split, split_rng
from hoi_pipeline.datasets.vcoco_official import COCOInstance, OfficialImage, PersonActions, VCOCOAction
from hoi_pipeline.structures import Proposals

STAND = "stand"  # the agent-only action that follows from the pose

# (action, its object roles), in the order of the official vcoco_*.json files
ACTION_ROLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("hold", ("obj",)),
    (STAND, ()),
    ("sit", ("instr",)),
    ("ride", ("instr",)),
    ("walk", ()),
    ("hit", ("instr", "obj")),
    ("eat", ("obj", "instr")),
    ("lay", ("instr",)),
    ("talk_on_phone", ("instr",)),
    ("carry", ("obj",)),
    ("throw", ("obj",)),
    ("run", ()),
    ("skateboard", ("instr",)),
    ("smile", ()),
    ("drink", ("instr",)),
    ("kick", ("obj",)),
    ("read", ("obj",)),
)


def action_class(action: str, objects: tuple[str, ...], roles: tuple[str, ...], weight: float, place: Place | None,
                 **geometry) -> Interaction:
    """An action drawn with `objects` in `roles`; the action itself is one of the parts the entry takes
    (a person does each action at most once)."""
    slots = geometry.pop("slots", ())
    if slots != ("all",):
        slots = (*slots, action)
    return Interaction(action, objects, weight, place, roles=roles, slots=slots, **geometry)


A = action_class  # one line per class below
RULES: tuple[Interaction, ...] = (
    # agent only
    A("walk", (), (), 9.0, None, pose="walk", slots=("legs",)),
    A("run", (), (), 6.0, None, pose="run", arm="pump", hands=2, slots=("legs",)),
    A("smile", (), (), 8.0, None, slots=("face",), face="smile"),
    # object role
    A("hold", ("cup",), ("obj",), 5.0, at.in_hand, arm="low", hands=1, beside=True),
    A("hold", ("umbrella",), ("obj",), 4.0, at.overhead, arm="hold_up", hands=1, slots=("sky",)),
    A("hold", ("sports_ball",), ("obj",), 3.0, at.in_fingers, arm="side", hands=1, beside=True),
    A("carry", ("backpack",), ("obj",), 5.0, at.hanging, arm="low", hands=1, beside=True),
    A("carry", ("skateboard",), ("obj",), 3.0, at.upright_in_hand, arm="side", hands=1, beside=True),
    A("kick", ("sports_ball",), ("obj",), 5.0, at.at_foot, pose="kick", beside=True, slots=("legs",)),
    A("throw", ("sports_ball",), ("obj",), 4.0, at.thrown, arm="up", hands=1, beside=True),
    A("read", ("book",), ("obj",), 5.0, at.in_front, arm="front", hands=2),
    # instrument role
    A("ride", ("bicycle",), ("instr",), 6.0, at.mounted, pose="ride", arm="side", hands=2, slots=("legs",),
      support=at.hips_on(1.0, 0.04)),
    A("ride", ("horse",), ("instr",), 5.0, at.mounted, pose="ride", arm="side", hands=1, slots=("legs",),
      support=at.hips_on(0.7, 0.04)),
    A("sit", ("bench",), ("instr",), 6.0, at.seat_under, pose="seated", slots=("legs",),
      support=at.hips_on(0.52, 0.03)),
    A("lay", ("bench",), ("instr",), 3.0, None, pose="lie", arm="down", hands=2, slots=("all",), compose=lying_on),
    A("skateboard", ("skateboard",), ("instr",), 5.0, at.underfoot, slots=("legs",), support=at.feet_on),
    A("drink", ("cup",), ("instr",), 5.0, at.at_mouth, arm="mouth", hands=1, slots=("face",)),
    A("talk_on_phone", ("cell_phone",), ("instr",), 5.0, at.at_ear, arm="ear", hands=1, slots=("ear",)),
    # both roles, and one role without its object
    A("hit", ("tennis_racket", "sports_ball"), ("instr", "obj"), 5.0, at.swung, arm="swing", hands=1, beside=True,
      slots=("sky",)),
    A("hit", ("tennis_racket",), ("instr",), 3.0, at.swung, arm="swing", hands=1, beside=True, slots=("sky",)),
    A("eat", ("cake", "fork"), ("obj", "instr"), 4.0, at.fed_with, arm="mouth", hands=2, off_arm="low",
      slots=("face",)),
    A("eat", ("donut",), ("obj",), 4.0, at.at_mouth, arm="mouth", hands=1, slots=("face",)),
)
del A


def coco_name(label: str) -> str:
    """COCO's spelling of an object class ('sports_ball' -> 'sports ball')."""
    return label.replace("_", " ")


def _actions() -> tuple[VCOCOAction, ...]:
    """The actions with, per role, the COCO categories drawn in it (the official files' `include`)."""
    include: dict[tuple[str, str], set[str]] = {}
    for rule in RULES:
        for label, role in zip(rule.objects, rule.roles, strict=True):
            include.setdefault((rule.verb, role), set()).add(coco_name(label))
    return tuple(VCOCOAction(name, roles, tuple(tuple(sorted(include[(name, role)])) for role in roles))
                 for name, roles in ACTION_ROLES)


ACTIONS = _actions()

TASKS_PER_IMAGE = (0.04, 0.26, 0.34, 0.24, 0.12)  # probability of 0..4 entries (agent-only ones included)
COMPOSITION = CompositionSettings(combine_probability=0.5, distractor_person_probability=0.3,
                                  max_tasks_per_person=3, face="neutral")


def categories() -> tuple[str, ...]:
    """The COCO categories of the family: 'person', then the drawn objects in alphabetical order."""
    return ("person", *sorted({coco_name(label) for rule in RULES for label in rule.objects}))


@dataclass(frozen=True)
class VcocoScene:
    """One rendered image and its record: every drawn instance (COCO names, continuous pixel boxes)
    and every person's labels, as `write_vcoco_official` writes them."""

    image: Image.Image
    record: OfficialImage

    @property
    def instance_boxes(self) -> np.ndarray:
        """(K, 4) boxes of every drawn person and object."""
        return np.array([instance.box for instance in self.record.instances], dtype=np.float32).reshape(-1, 4)


@dataclass(frozen=True)
class VcocoSplit:
    scenes: list[VcocoScene]
    detections: list[Proposals]


def label_scene(filename: str, image: Image.Image, groups: list[Group], boxes: list[list[np.ndarray]]) -> VcocoScene:
    """Instances and person labels of a drawn image: the entries' actions, plus 'stand' from the pose."""
    roles_of = dict(ACTION_ROLES)
    instances: list[COCOInstance] = []
    persons = []
    for group, group_boxes in zip(groups, boxes):
        offset = len(instances)
        instances += [COCOInstance(coco_name(e.label), _two_pixels_wide(box, image.width))
                      for e, box in zip(group.entities, group_boxes)]
        if group.pose is None:
            continue  # a lone object
        actions: dict[str, dict[str, int | None]] = {}
        for _, objects, rule in group.pairs:
            placed = dict(zip(rule.roles, (offset + o for o in objects)))
            actions[rule.verb] = {role: placed.get(role) for role in roles_of[rule.verb]}
        if group.pose == "stand" and not any(rule.support for _, _, rule in group.pairs):
            actions[STAND] = {}  # on their own feet, not on a board
        persons.append(PersonActions(offset, actions))
    record = OfficialImage(filename, image.width, image.height, tuple(instances), tuple(persons))
    return VcocoScene(image, record)


def _two_pixels_wide(box: np.ndarray, size: int) -> tuple[float, float, float, float]:
    """A pixel box at least 2 pixels wide and high: vsrl_eval.py drops boxes whose inclusive x2 = x1 + w - 1
    is not beyond x1 (a sub-pixel fork in a small image), and a dropped role object breaks its check."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 - x1 < 2:
        x1 = max(0.0, min(x1, size - 2.0))
        x2 = x1 + 2.0
    if y2 - y1 < 2:
        y1 = max(0.0, min(y1, size - 2.0))
        y2 = y1 + 2.0
    return x1, y1, x2, y2


def generate_scenes(split: str, num_images: int, size: int, seed: int,
                    progress: Callable[[int], None] | None = None) -> list[VcocoScene]:
    """Render `num_images` scenes of a split (deterministic in `seed` and `split`)."""
    drawn = draw_split(split, num_images, size, seed, RULES, TASKS_PER_IMAGE, COMPOSITION, progress)
    return [label_scene(f"synth_vcoco_{split}_{d.index:06d}.png", d.image, d.groups, d.boxes) for d in drawn]


def detect(scene: VcocoScene, noise: DetectorNoise, rng: np.random.Generator) -> Proposals:
    """The simulated detector on a scene; labels index `categories()`."""
    names = categories()
    index = {name: i for i, name in enumerate(names)}
    labels = np.array([index[instance.category] for instance in scene.record.instances], dtype=np.int64)
    return simulate_detections(scene.record.file_name, scene.record.width, scene.instance_boxes, labels,
                               index["person"], len(names), noise, rng)


def generate_vcoco_dataset(*, seed: int, num_train: int, num_test: int, image_size: int, num_val: int = 0,
                           noise: DetectorNoise = DetectorNoise(),
                           progress: Callable[[int], None] | None = None) -> dict[str, VcocoSplit]:
    """The parts train, val (when num_val > 0) and test, with simulated detections."""
    if num_train < 1 or num_test < 1 or num_val < 0:
        raise ValueError(
            f"num_train and num_test must be >= 1 and num_val >= 0, got {num_train}, {num_test}, {num_val}"
        )
    if image_size < 64:
        raise ValueError(f"image_size must be >= 64 pixels, got {image_size}")
    sizes = {"train": num_train, "val": num_val, "test": num_test}
    splits = {}
    for name, count in sizes.items():
        if count == 0:
            continue
        scenes = generate_scenes(name, count, image_size, seed, progress)
        rng = split_rng(seed, name, stream=1)
        splits[name] = VcocoSplit(scenes, [detect(scene, noise, rng) for scene in scenes])
    return splits
