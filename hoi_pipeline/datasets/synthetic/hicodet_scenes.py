"""The HICO-DET-style family: HOI classes (verb, object) with HICO-DET's exact names, written as its json.

1-3 people, 1-4 objects and 0-3 annotated interactions per image; a person may take part in two
interactions (ride a horse while holding an umbrella, walk a dog while drinking from a cup).
Distractor people and objects (standing apart, not touching anyone) are drawn but never annotated.

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
verb must come from the geometry. Class frequencies follow `Interaction.weight`, a long tail: at the
default sizes 8 classes have fewer than 10 training pairs (HICO-DET's Rare), counted from the
generated training split.

To add a class: one `RULES` entry (and its -ing form in `VERBS_ING` for a new verb); a new object
also needs an `objects.OBJECTS` entry, a new relation a function in `placements`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from hoi_pipeline.datasets.synthetic import placements as at
from hoi_pipeline.datasets.synthetic.composition import Group, lying_on
from hoi_pipeline.datasets.synthetic.detector import DetectorNoise, simulate_detections
from hoi_pipeline.datasets.synthetic.interactions import Interaction, Place
from hoi_pipeline.datasets.synthetic.splitting import draw_split, split_rng
from hoi_pipeline.structures import HOIAnnotations, ImageAnnotation, Proposals, Vocabulary

RARE_THRESHOLD = 10  # fewer training pairs than this = a Rare class (HICO-DET)


def hoi_class(verb: str, obj: str, weight: float, place: Place | None, **geometry) -> Interaction:
    """An HOI class (verb, object) and the geometry that decides it (`Interaction`'s fields)."""
    return Interaction(verb, (obj,), weight, place, **geometry)


H = hoi_class  # one line per class below
RULES: tuple[Interaction, ...] = (
    H("ride", "bicycle", 9.0, at.mounted, pose="ride", arm="side", hands=2, slots=("legs",),
      support=at.hips_on(1.0, 0.04)),
    H("ride", "horse", 7.0, at.mounted, pose="ride", arm="side", hands=1, slots=("legs",),
      support=at.hips_on(0.7, 0.04)),
    H("ride", "skateboard", 5.0, at.underfoot, slots=("legs",), support=at.feet_on),
    H("straddle", "bicycle", 1.4, at.mounted, pose="straddle", arm="side", hands=2, slots=("legs",)),
    H("push", "bicycle", 4.0, at.handled_beside, arm="side", hands=2, beside=True, slots=("legs",)),
    H("repair", "bicycle", 1.2, at.handled_beside, pose="crouch", arm="side", hands=2, beside=True, slots=("legs",)),
    H("no_interaction", "bicycle", 3.5, at.apart, beside=True, slots=("legs",)),
    H("walk", "horse", 3.5, at.on_leash((0.12, 0.25), (0.08, 0.22)), arm="low", hands=1, beside=True, slots=("legs",)),
    H("no_interaction", "horse", 1.6, at.apart, beside=True, slots=("legs",)),
    H("walk", "dog", 6.0, at.on_leash((0.22, 0.4), (0.2, 0.38)), arm="low", hands=1, beside=True, slots=("legs",)),
    H("hold", "cup", 6.0, at.in_hand, arm="low", hands=1, beside=True),
    H("drink_with", "cup", 5.0, at.at_mouth, arm="mouth", hands=1, slots=("face",)),
    H("hold", "umbrella", 6.0, at.overhead, arm="hold_up", hands=1, slots=("sky",)),
    H("fly", "kite", 7.0, at.flown, arm="reach_up", hands=1, beside=True, slots=("sky",)),
    H("hold", "kite", 1.3, at.held_out, arm="side", hands=1, beside=True),
    H("kick", "sports_ball", 6.0, at.at_foot, pose="kick", beside=True, slots=("legs",)),
    H("throw", "sports_ball", 4.0, at.thrown, arm="up", hands=1, beside=True),
    H("hold", "sports_ball", 1.8, at.in_fingers, arm="side", hands=1, beside=True),
    H("sit_on", "bench", 6.0, at.seat_under, pose="sit", slots=("legs",), support=at.hips_on(0.52, 0.03)),
    H("lie_on", "bench", 1.3, None, pose="lie", arm="down", hands=2, slots=("all",), compose=lying_on),
    H("wear", "backpack", 5.0, at.on_back, slots=("back",)),
    H("carry", "backpack", 1.6, at.hanging, arm="low", hands=1, beside=True),
    H("carry", "skateboard", 1.2, at.upright_in_hand, arm="side", hands=1, beside=True),
)
del H

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


def rules_in_class_order(vocabulary: Vocabulary) -> list[Interaction]:
    """`RULES` indexed by the vocabulary's HOI class index."""
    by_name = {(rule.verb, rule.object): rule for rule in RULES}
    return [by_name[(vocabulary.verbs[v], vocabulary.objects[o])] for v, o in vocabulary.hoi_classes]


@dataclass(frozen=True)
class Scene:
    """One rendered image: its pixels, its ground truth, and every drawn instance (for the detector)."""

    image: Image.Image
    annotation: ImageAnnotation
    instance_boxes: np.ndarray  # (K, 4) every drawn person and object
    instance_labels: np.ndarray  # (K,) object index


def generate_scenes(split: str, num_images: int, size: int, seed: int, vocabulary: Vocabulary,
                    progress: Callable[[int], None] | None = None) -> list[Scene]:
    """Render `num_images` scenes of a split (deterministic in `seed` and `split`)."""
    rules = rules_in_class_order(vocabulary)
    return [_scene(f"synth_{split}_{drawn.index:06d}.png", drawn.image, drawn.groups, drawn.boxes, vocabulary)
            for drawn in draw_split(split, num_images, size, seed, rules, progress=progress)]


def _scene(filename: str, image: Image.Image, groups: list[Group], boxes: list[list[np.ndarray]],
           vocabulary: Vocabulary) -> Scene:
    lookup = vocabulary.hoi_lookup()  # (A, O)
    object_index = {name: i for i, name in enumerate(vocabulary.objects)}
    boxes_h, boxes_o, hoi = [], [], []
    for group, group_boxes in zip(groups, boxes):
        for person, (obj,), rule in group.pairs:
            boxes_h.append(group_boxes[person])
            boxes_o.append(group_boxes[obj])
            hoi.append(lookup[vocabulary.verbs.index(rule.verb), object_index[rule.object]])
    hoi_array = np.asarray(hoi, dtype=np.int64)
    annotation = ImageAnnotation(
        filename=filename,
        width=image.width,
        height=image.height,
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


def detect(scene: Scene, vocabulary: Vocabulary, noise: DetectorNoise, rng: np.random.Generator) -> Proposals:
    """The simulated detector's output on a scene."""
    return simulate_detections(scene.annotation.filename, scene.annotation.width, scene.instance_boxes,
                               scene.instance_labels, vocabulary.person, vocabulary.num_objects, noise, rng)


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
        rng = split_rng(seed, name, stream=1)
        splits[name] = SyntheticSplit(
            annotations=split_annotations(split_scenes, vocabulary, f"synthetic:{name}"),
            images=[scene.image for scene in split_scenes],
            detections=[detect(scene, vocabulary, noise, rng) for scene in split_scenes],
        )
    return splits
