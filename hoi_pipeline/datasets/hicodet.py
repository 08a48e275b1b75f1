"""HICO-DET annotations in the json layout of `instances_{train,test}2015.json`.

Keys: annotation (per image: boxes_h, boxes_o, hoi, object, verb), filenames, size ([w, h] per image),
objects, verbs, correspondence ([hoi, object, verb] rows), rare, non_rare, empty.
Boxes in the file are 1-based inclusive pixel indices; internally they become continuous
coordinates: (x1, y1, x2, y2) -> (x1 - 1, y1 - 1, x2, y2). `save_hicodet_json` does the reverse,
so a load/save round trip is exact.
"""

from __future__ import annotations

import os

import numpy as np

from hoi_pipeline.artifacts import read_json, write_json
from hoi_pipeline.structures import HOIAnnotations, ImageAnnotation, Vocabulary

REQUIRED_KEYS = ("annotation", "filenames", "size", "objects", "verbs", "correspondence")
ONE_BASED_SHIFT = np.array([-1.0, -1.0, 0.0, 0.0], dtype=np.float32)


def vocabulary_from_json(payload: dict, source: str = "") -> Vocabulary:
    """Class lists of a HICO-DET style json (HOI class i = correspondence row whose first value is i)."""
    rows = np.asarray(payload["correspondence"], dtype=np.int64).reshape(-1, 3)
    order = np.argsort(rows[:, 0])
    if not np.array_equal(rows[order, 0], np.arange(len(rows))):
        raise ValueError(f"{source}: 'correspondence' must number the HOI classes 0..N-1")
    hoi_classes = rows[order][:, [2, 1]]  # (N, 2) verb, object
    rare = payload.get("rare", [])
    non_rare = payload.get("non_rare", [i for i in range(len(rows)) if i not in set(rare)])
    return Vocabulary(
        verbs=tuple(payload["verbs"]),
        objects=tuple(payload["objects"]),
        hoi_classes=hoi_classes,
        rare=np.asarray(rare, dtype=np.int64),
        non_rare=np.asarray(non_rare, dtype=np.int64),
        verbs_ing=tuple(payload.get("verbs_ing", ())),
    )


def load_hicodet_json(path: str | os.PathLike) -> HOIAnnotations:
    """Load one split; raise a ValueError naming the file and the problem on a malformed file."""
    return hicodet_from_payload(read_json(path, "annotation file"), str(path))


def hicodet_from_payload(payload: dict, path: str) -> HOIAnnotations:
    """Build a split from a parsed HICO-DET json payload."""
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise ValueError(f"{path}: not a HICO-DET json, missing keys {missing}")
    vocabulary = vocabulary_from_json(payload, str(path))
    if not len(payload["annotation"]) == len(payload["filenames"]) == len(payload["size"]):
        raise ValueError(f"{path}: 'annotation', 'filenames' and 'size' differ in length")
    images = []
    for entry, filename, (width, height) in zip(payload["annotation"], payload["filenames"], payload["size"]):
        boxes_h = np.asarray(entry["boxes_h"], dtype=np.float32).reshape(-1, 4) + ONE_BASED_SHIFT
        boxes_o = np.asarray(entry["boxes_o"], dtype=np.float32).reshape(-1, 4) + ONE_BASED_SHIFT
        images.append(
            ImageAnnotation(
                filename=filename,
                width=int(width),
                height=int(height),
                boxes_h=boxes_h,
                boxes_o=boxes_o,
                hoi=entry["hoi"],
                verb=entry["verb"],
                object=entry["object"],
            )
        )
    empty = tuple(payload["filenames"][i] for i in payload.get("empty", []))
    return HOIAnnotations(vocabulary=vocabulary, images=tuple(images), source=path, empty=empty)


def hicodet_json_payload(annotations: HOIAnnotations) -> dict:
    """The json payload of a split (boxes back to 1-based inclusive)."""
    vocab = annotations.vocabulary
    index = annotations.index_of()
    payload = {
        "annotation": [
            {
                "boxes_h": (image.boxes_h - ONE_BASED_SHIFT).tolist(),
                "boxes_o": (image.boxes_o - ONE_BASED_SHIFT).tolist(),
                "hoi": image.hoi.tolist(),
                "object": image.object.tolist(),
                "verb": image.verb.tolist(),
            }
            for image in annotations.images
        ],
        "filenames": annotations.filenames,
        "size": [[image.width, image.height] for image in annotations.images],
        "objects": list(vocab.objects),
        "verbs": list(vocab.verbs),
        "correspondence": [[i, int(o), int(v)] for i, (v, o) in enumerate(vocab.hoi_classes)],
        "rare": vocab.rare.tolist(),
        "non_rare": vocab.non_rare.tolist(),
        "empty": [index[name] for name in annotations.empty],
    }
    if vocab.verbs_ing:
        payload["verbs_ing"] = list(vocab.verbs_ing)
    return payload


def save_hicodet_json(annotations: HOIAnnotations, path: str | os.PathLike) -> None:
    write_json(path, hicodet_json_payload(annotations))
