"""V-COCO annotations in the json layout of `instances_vcoco_{trainval,test}.json`.

Keys: annotations (per image: boxes_h, boxes_o, actions, objects, file_name), classes (R action-role
names such as 'hold obj', 'hit instr'), objects (COCO names, index 0 'background'), images (COCO ids),
action_to_object (per action-role, the object indices it takes).

Mapping onto `HOIAnnotations`:
- verbs = the R action-role classes, in the file's order (so a detection's `verb` is the
  action-role pair the V-COCO evaluator scores);
- objects = the COCO names without 'background': object index = json index - 1, so that
  object classes are the 80 detectable categories like HICO-DET's;
- HOI classes = every allowed (action-role, object) pair of `action_to_object`, sorted by
  action-role then object; no class is rare (the split has no rare/non-rare notion);
- one ground-truth pair per json row; boxes are already continuous (x1, y1, x1 + w, y1 + h);
- width and height are 0: the json does not store image sizes;
- images without any row are listed in `empty` (they stay test images).

The json only lists persons with a role box, not agent-only actions (stand, smile, ...) nor
persons without actions; `evaluation.vcoco.vcoco_ground_truth` documents what that means for
role AP.
"""

from __future__ import annotations

import numpy as np

from hoi_pipeline.structures import HOIAnnotations, ImageAnnotation, Vocabulary

REQUIRED_KEYS = ("annotations", "classes", "objects", "action_to_object")
IMAGE_KEYS = ("boxes_h", "boxes_o", "actions", "objects", "file_name")


def vcoco_from_payload(payload: dict, source: str) -> HOIAnnotations:
    """Build a V-COCO split from its parsed json; errors name `source` and the problem."""
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise ValueError(f"{source}: not a V-COCO json, missing keys {missing}")
    classes, objects, allowed = payload["classes"], list(payload["objects"]), payload["action_to_object"]
    if len(allowed) != len(classes):
        raise ValueError(f"{source}: 'action_to_object' has {len(allowed)} rows for {len(classes)} classes")
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
                width=0,
                height=0,
                boxes_h=entry["boxes_h"],
                boxes_o=entry["boxes_o"],
                hoi=hoi,
                verb=verb,
                object=obj,
            )
        )
    empty = tuple(image.filename for image in images if image.num_pairs == 0)
    return HOIAnnotations(vocabulary=vocabulary, images=tuple(images), source=source, empty=empty, benchmark="vcoco")
