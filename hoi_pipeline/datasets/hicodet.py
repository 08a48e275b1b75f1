"""HICO-DET annotations in the json layout of `instances_{train,test}2015.json`.

Keys: annotation (per image: boxes_h, boxes_o, hoi, object, verb), filenames, size ([w, h] per image),
objects, verbs, correspondence ([hoi, object, verb] rows), rare, non_rare, empty.
Boxes in the file are 1-based inclusive pixel indices; internally they become continuous
coordinates: (x1, y1, x2, y2) -> (x1 - 1, y1 - 1, x2, y2). `save_hicodet_json` does the reverse,
so a load/save round trip is exact.

Every index is checked against the class lists when read (`hoi_pipeline.datasets.validation`):
per-pair hoi / verb / object (which must agree with `correspondence`), `rare`, `non_rare` and
`empty`; boxes must be finite with x2 >= x1 and y2 >= y1. Errors name the file and the image.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from hoi_pipeline.artifacts import read_json, write_json
from hoi_pipeline.datasets.validation import check_boxes, check_pairs, class_indices
from hoi_pipeline.structures import HOIAnnotations, ImageAnnotation, Vocabulary

REQUIRED_KEYS = ("annotation", "filenames", "size", "objects", "verbs", "correspondence")
ONE_BASED_SHIFT = np.array([-1.0, -1.0, 0.0, 0.0], dtype=np.float32)


def vocabulary_from_json(payload: dict, source: str = "") -> Vocabulary:
    """Class lists of a HICO-DET style json (HOI class i = correspondence row whose first value is i)."""
    try:
        rows = np.asarray(payload["correspondence"], dtype=np.int64).reshape(-1, 3)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: 'correspondence' must be rows of three integers ({error})") from error
    order = np.argsort(rows[:, 0])
    if not np.array_equal(rows[order, 0], np.arange(len(rows))):
        raise ValueError(f"{source}: 'correspondence' must number the HOI classes 0..N-1")
    hoi_classes = rows[order][:, [2, 1]]  # (N, 2) verb, object
    class_indices(hoi_classes[:, 0], len(payload["verbs"]), source, "correspondence (verb column)")
    class_indices(hoi_classes[:, 1], len(payload["objects"]), source, "correspondence (object column)")
    rare = class_indices(payload.get("rare", []), len(rows), source, "rare")
    non_rare = class_indices(
        payload.get("non_rare", [i for i in range(len(rows)) if i not in set(rare.tolist())]), len(rows), source,
        "non_rare",
    )  # fmt: skip
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
    boxes = {}
    for key in ("boxes_h", "boxes_o"):
        try:
            boxes[key] = [np.asarray(entry[key], dtype=np.float32).reshape(-1, 4) for entry in payload["annotation"]]
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: every annotation needs '{key}' as rows of four numbers ({error})") from error
    try:
        columns = {key: [np.asarray(entry[key]).reshape(-1) for entry in payload["annotation"]]
                   for key in ("hoi", "verb", "object")}  # fmt: skip
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path}: every annotation needs 'hoi', 'verb' and 'object' ({error})") from error
    counts = [len(v) for v in columns["hoi"]]
    for i, (h, v, o, bh, bo) in enumerate(
        zip(columns["hoi"], columns["verb"], columns["object"], boxes["boxes_h"], boxes["boxes_o"])
    ):
        if not len(h) == len(v) == len(o) == len(bh) == len(bo):
            raise ValueError(
                f"{path}: annotation[{i}] ('{payload['filenames'][i]}'): {len(bh)} human boxes, {len(bo)} object "
                f"boxes and {len(h)} / {len(v)} / {len(o)} hoi / verb / object entries differ"
            )
    where = _pair_locator(path, payload["filenames"], counts)
    for key, per_image in boxes.items():
        check_boxes(np.concatenate(per_image) if per_image else np.zeros((0, 4)), where, key)  # 1-based, as in the file
    flat = {key: np.concatenate(values) if values else np.zeros(0) for key, values in columns.items()}
    hoi, verb, obj = check_pairs(vocabulary, flat["hoi"], flat["verb"], flat["object"], where)
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    images = [
        ImageAnnotation(
            filename=filename,
            width=int(width),
            height=int(height),
            boxes_h=boxes["boxes_h"][i] + ONE_BASED_SHIFT,
            boxes_o=boxes["boxes_o"][i] + ONE_BASED_SHIFT,
            hoi=hoi[starts[i] : starts[i + 1]],
            verb=verb[starts[i] : starts[i + 1]],
            object=obj[starts[i] : starts[i + 1]],
        )
        for i, (filename, (width, height)) in enumerate(zip(payload["filenames"], payload["size"]))
    ]
    empty_index = class_indices(payload.get("empty", []), len(images), str(path), "empty")
    empty = tuple(payload["filenames"][i] for i in empty_index)
    return HOIAnnotations(vocabulary=vocabulary, images=tuple(images), source=path, empty=empty)


def _pair_locator(path: str, filenames: list[str], counts: list[int]) -> Callable[[int], str]:
    """Where pair k of the split (counted over all images) is: the file, the image and the pair."""
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def where(k: int) -> str:
        if k < 0:
            return str(path)
        i = int(np.searchsorted(starts, k, side="right") - 1)
        return f"{path}: annotation[{i}] ('{filenames[i]}'), pair {k - starts[i]}"

    return where


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
