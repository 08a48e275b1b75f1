"""The detections-import format: object detections made elsewhere, one json file per split.

The `precomputed` detector backend reads this file instead of running a detector, so any detector
(a DETR fine-tuned on HICO-DET, a detectron2 model on a cluster, the synthetic demo's simulated
detector) can feed the pipeline. Layout:

```
{"format": "hoi-pipeline-detections",
 "version": 1,
 "box_format": "xyxy",
 "objects": ["person", "bicycle", ...],
 "images": {"<filename>": {"boxes": [[x1, y1, x2, y2], ...],
                           "scores": [s, ...],
                           "labels": [l, ...]},
            ...}}
```

- `box_format` "xyxy": continuous pixel coordinates in the torchvision convention, (x1, y1) the
  top-left corner and (x2, y2) the bottom-right edge of the box, so a box covering pixel columns
  0..9 has x1 = 0, x2 = 10 (HICO-DET's 1-based inclusive boxes convert as (x1 - 1, y1 - 1, x2, y2)).
- `objects`: the class names that `labels` index into (0-based). They are matched *by name* to the
  dataset's object classes (HICO-DET spelling: "sports_ball", "dining_table"), so the file's class
  order need not be the dataset's; every name must be one of the dataset's classes.
- `images`: keyed by the image's file name as the annotation file lists it; `boxes` (M, 4),
  `scores` (M,) in [0, 1], `labels` (M,) integers. An image may have M = 0. Names are compared
  after Unicode NFC normalisation (macOS writes NFD), with `/` separators and no leading `./`; a
  key that is the annotation's name with a folder prefix (`images/test/x.jpg` for `x.jpg`), or the
  reverse, names that image when no other key or image could claim it (`match_filenames`).
  Every image of the split must have an entry; `detector.allow_missing_images: true` lets absent
  images go without detections.

A malformed file is a ValueError naming the file and, where it applies, the image.
"""

from __future__ import annotations

import os
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from hoi_pipeline.artifacts import read_json, write_json
from hoi_pipeline.structures import Proposals

FORMAT = "hoi-pipeline-detections"
VERSION = 1
BOX_FORMAT = "xyxy"


def write_detections_json(path: str | os.PathLike, proposals: Sequence[Proposals], objects: Sequence[str]) -> None:
    """Write per-image detections (labels index `objects`) atomically in the import format."""
    objects = [str(name) for name in objects]
    images: dict[str, dict] = {}
    for p in proposals:
        if p.filename in images:
            raise ValueError(f"{path}: image '{p.filename}' appears twice")
        if len(p) and (p.labels.min() < 0 or p.labels.max() >= len(objects)):
            raise ValueError(f"{path}: image '{p.filename}' has a label outside 0..{len(objects) - 1}")
        images[p.filename] = {
            "boxes": np.round(p.boxes.astype(np.float64), 3).tolist(),
            "scores": np.round(p.scores.astype(np.float64), 6).tolist(),
            "labels": p.labels.tolist(),
        }
    payload = {"format": FORMAT, "version": VERSION, "box_format": BOX_FORMAT, "objects": objects, "images": images}
    write_json(path, payload)


def read_detections_json(path: str | os.PathLike, dataset_objects: Sequence[str]) -> dict[str, Proposals]:
    """Per-image `Proposals` (by filename) with labels mapped into `dataset_objects`' order."""
    path = Path(path)
    payload = read_json(path, "detections file")
    if payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a detections file (expected \"format\": \"{FORMAT}\")")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path}: unsupported version {payload.get('version')!r} (this reader knows {VERSION})")
    if payload.get("box_format") != BOX_FORMAT:
        raise ValueError(f"{path}: box_format {payload.get('box_format')!r} is not supported (use \"{BOX_FORMAT}\")")
    names = payload.get("objects")
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError(f"{path}: 'objects' must be a list of class names")
    index = {name: i for i, name in enumerate(dataset_objects)}
    unknown = [name for name in names if name not in index]
    if unknown:
        raise ValueError(f"{path}: object classes {unknown} are not classes of the dataset ({list(dataset_objects)})")
    to_dataset = np.array([index[name] for name in names], dtype=np.int64)
    images = payload.get("images")
    if not isinstance(images, Mapping):
        raise ValueError(f"{path}: 'images' must map file names to detections")
    return {filename: _parse_entry(path, filename, entry, to_dataset) for filename, entry in images.items()}


def _parse_entry(path: Path, filename: str, entry: object, to_dataset: np.ndarray) -> Proposals:
    where = f"{path}: image '{filename}'"
    if not isinstance(entry, Mapping) or not {"boxes", "scores", "labels"} <= set(entry):
        raise ValueError(f"{where}: expected an object with 'boxes', 'scores' and 'labels'")
    try:
        boxes = np.asarray(entry["boxes"], dtype=np.float64)
        scores = np.asarray(entry["scores"], dtype=np.float64)
        labels = np.asarray(entry["labels"])
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: boxes, scores and labels must be numbers ({error})") from error
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{where}: boxes must have shape (M, 4), got {boxes.shape}")
    if scores.ndim != 1 or labels.ndim != 1 or not len(boxes) == len(scores) == len(labels):
        raise ValueError(f"{where}: {len(boxes)} boxes, {scores.size} scores and {labels.size} labels differ")
    if not np.isfinite(boxes).all() or (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        raise ValueError(f"{where}: boxes must be finite (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1")
    if not np.isfinite(scores).all() or (scores < 0).any() or (scores > 1).any():
        raise ValueError(f"{where}: scores must lie in [0, 1]")
    if len(labels) and (labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= len(to_dataset)):
        raise ValueError(f"{where}: labels must be integers in 0..{len(to_dataset) - 1} (indices into 'objects')")
    mapped = to_dataset[labels.astype(np.int64)] if len(labels) else np.zeros(0, dtype=np.int64)
    return Proposals(filename=filename, boxes=boxes, scores=scores, labels=mapped)


# --------------------------------------------------------------------------------------------
# matching the file's image names to a split's


def normalise_filename(name: str) -> str:
    """A file name as compared across tools: Unicode NFC, `/` separators, no leading `./`."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def _ends_with_path(longer: str, shorter: str) -> bool:
    """True when `shorter`'s path components are the last components of `longer`'s."""
    return longer == shorter or longer.endswith("/" + shorter)


def match_filenames(wanted: Sequence[str], available: Iterable[str], source: str) -> dict[str, str]:
    """For each name of `wanted` (a split's images), the name in `available` (the file's keys) of the same image.

    Equal names after `normalise_filename` match first; otherwise the one available name whose path
    ends with the wanted one's (`images/test/x.jpg` for `x.jpg`), or the reverse. Two spellings of one
    name in `available`, a name two keys could match, or a key matched by two images is a ValueError
    naming `source` and the names. Images without a match are absent from the result.
    """
    by_normal: dict[str, str] = {}
    for name in available:
        key = normalise_filename(name)
        if key in by_normal and by_normal[key] != name:
            raise ValueError(f"{source}: '{by_normal[key]}' and '{name}' are one file name spelt two ways")
        by_normal[key] = name
    by_base: dict[str, list[str]] = defaultdict(list)
    for key in by_normal:
        by_base[key.rsplit("/", 1)[-1]].append(key)
    claimed: dict[str, str] = {}  # normalised key -> the wanted name that took it
    matches: dict[str, str] = {}
    for name in wanted:
        key = normalise_filename(name)
        if key not in by_normal:
            candidates = [
                other for other in by_base.get(key.rsplit("/", 1)[-1], [])
                if _ends_with_path(other, key) or _ends_with_path(key, other)
            ]  # fmt: skip
            if len(candidates) > 1:
                raise ValueError(
                    f"{source}: image '{name}' could be any of the entries {[by_normal[c] for c in candidates[:3]]}; "
                    "key the entries by the names the annotation file uses"
                )
            if not candidates:
                continue
            key = candidates[0]
        if key in claimed:
            raise ValueError(
                f"{source}: entry '{by_normal[key]}' names both '{claimed[key]}' and '{name}' of the split; "
                "key the entries by the names the annotation file uses"
            )
        claimed[key] = name
        matches[name] = by_normal[key]
    return matches
