"""Mapping a detector's class ids to the dataset's object classes.

A detector trained on COCO predicts its own label ids (torchvision: the 91 COCO category ids with
gaps and a background at 0; detectron2: 80 contiguous ids). The dataset's object list comes from
its annotation file (HICO-DET: 80 names with underscores, alphabetical; V-COCO: COCO names with
spaces). By default the two are matched by normalised class name, so the code stays
dataset-generic; a json file (`detector.label_map`) can override the match. Detector classes with
no dataset counterpart map to -1 and are dropped.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

UNMAPPED = -1

# Spellings of the same COCO class seen across detector releases and HOI datasets, after
# normalisation. HICO-DET's object list uses COCO's 2017 names with underscores, so these only
# matter for other label sets (older COCO lists, detectors trained on VOC-style names).
ALIASES = {
    "hair_dryer": "hair_drier",
    "tvmonitor": "tv",
    "tv_monitor": "tv",
    "motorbike": "motorcycle",
    "aeroplane": "airplane",
    "sofa": "couch",
    "diningtable": "dining_table",
    "pottedplant": "potted_plant",
    "cellphone": "cell_phone",
    "doughnut": "donut",
}


def normalise_class_name(name: str) -> str:
    """Lower case, spaces and hyphens as underscores: 'sports ball' -> 'sports_ball'."""
    name = re.sub(r"[\s\-]+", "_", name.strip().lower())
    return ALIASES.get(name, name)


def map_labels_by_name(detector_classes: Sequence[str], objects: Sequence[str]) -> np.ndarray:
    """(K,) int64 table: detector label id k -> dataset object index, -1 where no object matches.

    `detector_classes[k]` is the name of label id k (placeholders such as 'N/A' or '__background__'
    simply find no match).
    """
    index: dict[str, int] = {}
    for i, name in enumerate(objects):
        key = normalise_class_name(name)
        if key in index:
            raise ValueError(f"the dataset's object list names '{name}' twice (after normalisation: '{key}')")
        index[key] = i
    return np.array([index.get(normalise_class_name(name), UNMAPPED) for name in detector_classes], dtype=np.int64)


def load_label_map(path: str | os.PathLike, num_detector_classes: int, num_objects: int) -> np.ndarray:
    """Read a json `{"detector label id": dataset object index, ...}` into a (K,) table.

    Ids absent from the file map to -1 (dropped). Errors name the file and the bad entry.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: label map file not found")
    try:
        payload = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: label map is not valid JSON ({error})") from error
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: label map must be a json object of detector label id -> dataset object index")
    table = np.full(num_detector_classes, UNMAPPED, dtype=np.int64)
    for key, value in payload.items():
        try:
            label = int(key)
        except ValueError:
            raise ValueError(f"{path}: key '{key}' is not an integer detector label id") from None
        if not 0 <= label < num_detector_classes:
            raise ValueError(f"{path}: detector label id {label} is outside 0..{num_detector_classes - 1}")
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < num_objects:
            raise ValueError(f"{path}: label {key} maps to {value!r}, not an object index in 0..{num_objects - 1}")
        table[label] = value
    return table


def build_label_table(
    detector_classes: Sequence[str], objects: Sequence[str], label_map: str | os.PathLike | None
) -> np.ndarray:
    """The label table from the config: a json file when given, else the match by class name."""
    if label_map is not None:
        return load_label_map(label_map, len(detector_classes), len(objects))
    table = map_labels_by_name(detector_classes, objects)
    if not (table >= 0).any():
        raise ValueError(
            "no detector class matches a dataset object by name; give detector.label_map "
            f"(detector classes start {list(detector_classes[:5])}, dataset objects start {list(objects[:5])})"
        )
    return table


def apply_label_table(labels: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map detector labels (M,) to dataset object indices; returns (mapped labels, keep mask) (M,).

    Labels outside the table or mapped to -1 are not kept.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    inside = (labels >= 0) & (labels < len(table))
    mapped = np.full(labels.shape, UNMAPPED, dtype=np.int64)
    mapped[inside] = table[labels[inside]]
    return mapped, mapped >= 0
