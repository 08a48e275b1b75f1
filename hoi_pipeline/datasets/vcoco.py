"""V-COCO (Gupta & Malik, 2015): the person-level ground truth of its evaluation, and the common json layout.

Two readers build a split; both return `VCOCOAnnotations`, an `HOIAnnotations` (the human-object
pairs training and detection read) that also carries a `VCOCOGroundTruth` (every person with its
actions and role boxes, what `evaluation.vcoco` scores):
- the official release (s-gupta/v-coco `vcoco_{train,val,test}.json` + COCO 2014 annotations):
  `datasets/vcoco_official.py`, the complete ground truth;
- the common json layout of `instances_vcoco_{trainval,test}.json` (UPT / fredzzhang's vcoco tools),
  read here. Keys: annotations (per image: boxes_h, boxes_o, actions, objects, file_name), classes
  (R action-role names such as 'hold obj', 'hit instr'), objects (COCO names, index 0 'background'),
  images (COCO ids), action_to_object (per action-role, the object indices it takes).

Classes. A V-COCO class is an action-role pair '<action> <role>' (R of them): 'cut instr' and
'cut obj' are two classes, role 'obj' is the thing acted on, 'instr' the instrument. A detection's
`verb` is such a class. Actions whose only role is the agent (stand, smile, run, walk in the
official files) have no object, so they are no human-object class: they give no training pair and
no role AP (vsrl_eval.py skips them too); they stay in the ground truth's `action_names`, where the
agent AP counts their persons. 'point' has an 'instr' role in the official files (its object is
rarely annotated); the common json drops 'point instr', so its R is 24 where the official files' is 25.

Mapping onto `HOIAnnotations`:
- verbs = the R action-role classes; `verb_roles` = their roles ('obj' / 'instr'), which pick the
  prompt template of each class (`prompts.py`, paper appendix G);
- objects = the COCO names without 'background' (object index = json index - 1);
- HOI classes = the allowed (action-role, object) pairs, sorted by action-role then object; no
  class is rare (V-COCO has no rare/non-rare notion);
- one ground-truth pair per row that has a role box; continuous boxes (x1, y1, x1 + w, y1 + h);
- images without any pair are listed in `empty` (they stay test images).

Box convention of `VCOCOGroundTruth`: the official evaluation's inclusive pixel boxes
(x1, y1, x1 + max(0, w - 1), y1 + max(0, h - 1)) in float32, as vsrl_eval.py builds them;
`official_boxes` converts continuous boxes (x1, y1, x2, y2) to it as (x1, y1, max(x1, x2 - 1), ...).

The common json only lists persons with a role box: persons doing an action whose role has no box,
persons with agent-only actions and persons without action annotation are absent. Its ground truth
is therefore marked incomplete (`VCOCOGroundTruth.complete` False, the reason in `limitation`):
scenario 1 and agent AP are not computed from it and scenario 2 is flagged approximate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hoi_pipeline.structures import HOIAnnotations, ImageAnnotation, Vocabulary

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("annotations", "classes", "objects", "action_to_object")
IMAGE_KEYS = ("boxes_h", "boxes_o", "actions", "objects", "file_name")
COMMON_JSON_LIMITATION = (
    "the common json lists only persons with a role box (persons whose role has no box, agent-only "
    "actions and persons without action annotation are missing); use the official V-COCO files"
)


def split_action_role(name: str) -> tuple[str, str]:
    """'talk_on_phone instr' -> ('talk_on_phone', 'instr'): V-COCO class names are '<action> <role>'."""
    action, _, role = name.rpartition(" ")
    if not action or not role:
        raise ValueError(f"V-COCO class '{name}' is not '<action> <role>'")
    return action, role


def official_boxes(boxes: np.ndarray) -> np.ndarray:
    """(K, 4) continuous (x1, y1, x2, y2) -> the official inclusive boxes (x1, y1, max(x1, x2 - 1), ...), float32."""
    out = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    out[:, 2] = np.maximum(out[:, 2] - np.float32(1.0), out[:, 0])
    out[:, 3] = np.maximum(out[:, 3] - np.float32(1.0), out[:, 1])
    return out


@dataclass(frozen=True)
class VCOCOImageTruth:
    """Ground truth of one image: H persons (every person of the image), A actions, R action-role classes.

    Boxes are the official inclusive pixel boxes (module docstring). A person without action
    annotation is `ignore`d: detections matched to it are skipped (vsrl_eval.py's `ignore`).
    """

    boxes: np.ndarray  # (H, 4) float32
    ignore: np.ndarray  # (H,) bool
    actions: np.ndarray  # (H, A) bool: the person does action a
    role_boxes: np.ndarray  # (H, R, 4) float32, NaN where the person has no box for that role

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        h = len(boxes)
        actions = np.asarray(self.actions, dtype=bool)
        role_boxes = np.asarray(self.role_boxes, dtype=np.float32)
        if actions.ndim != 2 or actions.shape[0] != h or role_boxes.ndim != 3 or role_boxes.shape[::2] != (h, 4):
            raise ValueError(
                f"VCOCOImageTruth: expected actions (H, A) and role_boxes (H, R, 4) for H = {h} persons, "
                f"got {actions.shape} and {role_boxes.shape}"
            )
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "ignore", np.asarray(self.ignore, dtype=bool).reshape(h))
        object.__setattr__(self, "actions", actions)
        object.__setattr__(self, "role_boxes", role_boxes)
        if np.any(self.actions & self.ignore[:, None]):
            raise ValueError("VCOCOImageTruth: a person without action annotation (ignore) has an action")


@dataclass(frozen=True)
class VCOCOGroundTruth:
    """Person-level ground truth of a split; `images[i]` is image i of the annotation (detections index it).

    `complete` is True when every person of every image is listed with all its actions, roles
    without a box included (the official files); otherwise `limitation` says what is missing.
    """

    action_names: tuple[str, ...]  # (A,) every action, agent-only ones included
    role_names: tuple[str, ...]  # (R,) action-role classes, e.g. 'hold obj'
    role_action: np.ndarray  # (R,) index into action_names of each class's action
    images: tuple[VCOCOImageTruth, ...]
    complete: bool = True
    limitation: str = ""

    def __post_init__(self) -> None:
        role_action = np.asarray(self.role_action, dtype=np.int64).reshape(-1)
        object.__setattr__(self, "role_action", role_action)
        if len(role_action) != len(self.role_names):
            raise ValueError(f"VCOCOGroundTruth: {len(role_action)} role actions for {len(self.role_names)} classes")
        if len(role_action) and (role_action.min() < 0 or role_action.max() >= len(self.action_names)):
            raise ValueError("VCOCOGroundTruth: a class names an action outside action_names")
        for image in self.images:
            if image.actions.shape[1] != len(self.action_names) or image.role_boxes.shape[1] != len(self.role_names):
                raise ValueError(
                    f"VCOCOGroundTruth: an image has {image.actions.shape[1]} actions and "
                    f"{image.role_boxes.shape[1]} classes, expected {len(self.action_names)} and {len(self.role_names)}"
                )
        if not self.complete and not self.limitation:
            raise ValueError("VCOCOGroundTruth: an incomplete ground truth must say what it lacks (limitation)")

    @property
    def agent_only(self) -> tuple[str, ...]:
        """Actions without any action-role class (no object: stand, smile, run, walk)."""
        with_roles = set(self.role_action.tolist())
        return tuple(name for a, name in enumerate(self.action_names) if a not in with_roles)


@dataclass(frozen=True)
class VCOCOAnnotations(HOIAnnotations):
    """A V-COCO split: the human-object pairs (training, detection) and the person-level ground truth."""

    ground_truth: VCOCOGroundTruth | None = None

    def __post_init__(self) -> None:
        if self.ground_truth is None:
            raise ValueError(f"{self.source}: a V-COCO split needs its person-level ground truth")
        if len(self.ground_truth.images) != len(self.images):
            raise ValueError(
                f"{self.source}: ground truth of {len(self.ground_truth.images)} images for {len(self.images)} images"
            )
        if tuple(self.ground_truth.role_names) != tuple(self.vocabulary.verbs):
            raise ValueError(f"{self.source}: the ground truth's classes differ from the vocabulary's verbs")


def ground_truth_from_pairs(
    images: Sequence[ImageAnnotation], role_names: Sequence[str], limitation: str
) -> VCOCOGroundTruth:
    """Person-level ground truth from annotated pairs only (incomplete: `limitation` says why).

    A person is a distinct human box of the image. A person with any role box of an action does
    that action, so it counts for every role of the action; roles without a pair are absent.
    Nobody is ignored, and persons without any pair are missing altogether.
    """
    actions = [split_action_role(name)[0] for name in role_names]
    action_names = tuple(dict.fromkeys(actions))  # first-appearance order
    role_action = np.array([action_names.index(a) for a in actions], dtype=np.int64)
    r, num_actions = len(role_names), len(action_names)
    truths = []
    duplicates = 0
    for image in images:
        boxes, first, person = np.unique(image.boxes_h, axis=0, return_index=True, return_inverse=True)
        rank = np.argsort(np.argsort(first))  # persons in order of first appearance
        person = rank[person.reshape(-1)]
        h = len(boxes)
        person_boxes = np.zeros((h, 4), dtype=np.float32)
        person_boxes[rank] = boxes
        does = np.zeros((h, num_actions), dtype=bool)
        has_role = np.zeros((h, r), dtype=bool)
        role_boxes = np.full((h, r, 4), np.nan, dtype=np.float32)
        for row in range(image.num_pairs - 1, -1, -1):  # backwards: the first pair wins on duplicates
            p, v = person[row], image.verb[row]
            duplicates += bool(has_role[p, v])
            has_role[p, v] = True
            does[p, role_action[v]] = True
            role_boxes[p, v] = official_boxes(image.boxes_o[row])[0]
        truths.append(VCOCOImageTruth(official_boxes(person_boxes), np.zeros(h, dtype=bool), does, role_boxes))
    if duplicates:
        log.warning("%d persons have several boxes for one action-role; the first is used", duplicates)
    return VCOCOGroundTruth(
        action_names=action_names,
        role_names=tuple(role_names),
        role_action=role_action,
        images=tuple(truths),
        complete=False,
        limitation=limitation,
    )


def vcoco_from_payload(payload: dict, source: str) -> VCOCOAnnotations:
    """Build a V-COCO split from its parsed common-layout json; errors name `source` and the problem."""
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise ValueError(f"{source}: not a V-COCO json, missing keys {missing}")
    classes, objects, allowed = list(payload["classes"]), list(payload["objects"]), payload["action_to_object"]
    if len(allowed) != len(classes):
        raise ValueError(f"{source}: 'action_to_object' has {len(allowed)} rows for {len(classes)} classes")
    try:
        roles = tuple(split_action_role(name)[1] for name in classes)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from error
    shift = 1 if objects and objects[0] == "background" else 0
    objects = objects[shift:]
    pairs = sorted({(verb, int(obj) - shift) for verb, objs in enumerate(allowed) for obj in objs})
    hoi_classes = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    if len(hoi_classes) and (hoi_classes[:, 1].min() < 0 or hoi_classes[:, 1].max() >= len(objects)):
        raise ValueError(f"{source}: 'action_to_object' names an object outside 'objects'")
    vocabulary = Vocabulary(
        verbs=tuple(classes),
        objects=tuple(objects),
        hoi_classes=hoi_classes,
        rare=np.zeros(0, dtype=np.int64),
        non_rare=np.arange(len(hoi_classes)),
        verb_roles=roles,
    )
    lookup = vocabulary.hoi_lookup()  # (A, O)
    images = []
    for i, entry in enumerate(payload["annotations"]):
        absent = [key for key in IMAGE_KEYS if key not in entry]
        if absent:
            raise ValueError(f"{source}: annotations[{i}] lacks {absent}")
        verb = np.asarray(entry["actions"], dtype=np.int64).reshape(-1)
        obj = np.asarray(entry["objects"], dtype=np.int64).reshape(-1) - shift
        if len(verb) and (verb.min() < 0 or verb.max() >= len(classes) or obj.min() < 0 or obj.max() >= len(objects)):
            raise ValueError(
                f"{source}: annotations[{i}] ({entry['file_name']}) has an action or object outside the lists"
            )
        hoi = lookup[verb, obj] if len(verb) else np.zeros(0, dtype=np.int64)
        if np.any(hoi < 0):
            raise ValueError(
                f"{source}: annotations[{i}] ({entry['file_name']}) pairs an action-role with an object "
                "that 'action_to_object' does not allow"
            )
        images.append(
            ImageAnnotation(
                filename=entry["file_name"],
                width=0,  # the json does not store image sizes
                height=0,
                boxes_h=entry["boxes_h"],
                boxes_o=entry["boxes_o"],
                hoi=hoi,
                verb=verb,
                object=obj,
            )
        )
    empty = tuple(image.filename for image in images if image.num_pairs == 0)
    return VCOCOAnnotations(
        vocabulary=vocabulary,
        images=tuple(images),
        source=source,
        empty=empty,
        benchmark="vcoco",
        ground_truth=ground_truth_from_pairs(images, classes, f"{source}: {COMMON_JSON_LIMITATION}"),
    )
