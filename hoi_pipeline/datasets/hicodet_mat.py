"""HICO-DET's official annotation file `anno_bbox.mat` (Chao et al., WACV 2018).

Layout (MATLAB structs, read with `scipy.io.loadmat`):
- `list_action` (600 x 1): per HOI class `nname` (object), `vname` (verb), `vname_ing` (-ing form).
- `bbox_train` / `bbox_test` (1 x I): per image `filename`, `size` (struct: width, height, depth) and
  `hoi` (1 x K struct array): `id` (1-based HOI class), `bboxhuman` and `bboxobject` (struct arrays
  with x1, y1, x2, y2; 1-based inclusive pixels), `connection` (rows of 1-based [human, object]
  indices into them) and `invis` (1 when the interaction is not visible: no boxes).

The vocabulary is built from `list_action` so that it matches the json layout
(`instances_{train,test}2015.json`): objects and verbs in alphabetical order ('no_interaction'
sorted among the verbs), names with underscores ("sports_ball"); HOI class i = `list_action(i+1)`.
Invisible interactions are dropped; an image left without any visible pair is kept with zero pairs
and listed in `empty`. Rare classes have fewer than 10 visible training pairs (counted in
`bbox_train` whichever split is loaded), as in HICO-DET's Rare / Non-Rare protocol.
A class id outside 1..N, a connection outside the image's boxes, or a box that is not finite with
x2 >= x1 and y2 >= y1 is a ValueError naming the file, the image and the entry.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from hoi_pipeline.datasets.validation import check_boxes
from hoi_pipeline.structures import HOIAnnotations, ImageAnnotation, Vocabulary

log = logging.getLogger(__name__)

SPLIT_KEYS = {"train": "bbox_train", "test": "bbox_test"}
RARE_THRESHOLD = 10  # HICO-DET: a class with fewer training pairs is Rare
ONE_BASED_SHIFT = np.array([-1.0, -1.0, 0.0, 0.0], dtype=np.float32)


def load_hicodet_mat(path: str | os.PathLike, split: str) -> HOIAnnotations:
    """One split ("train" or "test") of `anno_bbox.mat` as `HOIAnnotations`."""
    import scipy.io

    path = Path(path)
    if split not in SPLIT_KEYS:
        raise ValueError(f"{path}: split must be one of {sorted(SPLIT_KEYS)} for anno_bbox.mat, got '{split}'")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except (ValueError, TypeError, OSError, NotImplementedError) as error:
        raise ValueError(f"{path}: not a readable .mat file ({error})") from error
    missing = [key for key in ("list_action", *SPLIT_KEYS.values()) if key not in mat]
    if missing:
        raise ValueError(f"{path}: not HICO-DET's anno_bbox.mat, missing variables {missing}")
    vocabulary_classes = _records(mat["list_action"])
    train_images = [_parse_image(path, entry, len(vocabulary_classes)) for entry in _records(mat["bbox_train"])]
    if split == "train":
        images = train_images
    else:
        images = [_parse_image(path, entry, len(vocabulary_classes)) for entry in _records(mat["bbox_test"])]
    counts = np.bincount(
        np.concatenate([image.hoi for image in train_images] + [np.zeros(0, dtype=np.int64)]),
        minlength=len(vocabulary_classes),
    )
    vocabulary = _vocabulary(path, vocabulary_classes, counts)
    table = vocabulary.hoi_classes
    images = [
        ImageAnnotation(
            filename=image.filename,
            width=image.width,
            height=image.height,
            boxes_h=image.boxes_h,
            boxes_o=image.boxes_o,
            hoi=image.hoi,
            verb=table[image.hoi, 0],
            object=table[image.hoi, 1],
        )
        for image in images
    ]
    empty = tuple(image.filename for image in images if image.num_pairs == 0)
    log.info("%s (%s): %d images, %d pairs, %d without a visible pair", path, split, len(images),
             sum(image.num_pairs for image in images), len(empty))
    return HOIAnnotations(vocabulary=vocabulary, images=tuple(images), source=f"{path}:{split}", empty=empty)


def normalise_name(name: object) -> str:
    """Class names as the json layout spells them: trimmed, spaces become underscores."""
    return "_".join(str(name).strip().split())


def _records(value: object) -> list:
    """A MATLAB struct array as a list; loadmat squeezes a 1-element array to the struct itself."""
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


def _number(value: object, where: str) -> float:
    array = np.asarray(value, dtype=np.float64).ravel()
    if array.size != 1:
        raise ValueError(f"{where}: expected one number, got {array.size}")
    return float(array[0])


def _boxes(records: object, where: str, what: str) -> np.ndarray:
    """(K, 4) continuous boxes from a struct array with x1, y1, x2, y2 (1-based inclusive, x2 >= x1, y2 >= y1)."""
    rows = []
    for record in _records(records):
        try:
            rows.append([_number(getattr(record, key), where) for key in ("x1", "y1", "x2", "y2")])
        except AttributeError as error:
            raise ValueError(f"{where}: a box lacks x1, y1, x2 or y2") from error
    boxes = np.asarray(rows, dtype=np.float32).reshape(-1, 4)
    check_boxes(boxes, lambda k: f"{where}, {what} box {k + 1}" if k >= 0 else where, what)
    return boxes + ONE_BASED_SHIFT


def _parse_image(path: Path, entry: object, num_classes: int) -> ImageAnnotation:
    """Visible pairs of one image; verb/object are filled in once the vocabulary is known."""
    try:
        filename = str(entry.filename)
        size = entry.size
        width, height = int(_number(size.width, str(path))), int(_number(size.height, str(path)))
        interactions = _records(entry.hoi)
    except AttributeError as error:
        raise ValueError(f"{path}: an image entry lacks filename, size or hoi ({error})") from error
    boxes_h, boxes_o, hoi = [], [], []
    for k, interaction in enumerate(interactions):
        where = f"{path}: image '{filename}', hoi entry {k + 1}"
        try:
            class_id = _number(interaction.id, where)
            invisible = bool(np.asarray(interaction.invis).size and _number(interaction.invis, where))
            humans_field, objects_field, connection_field = (
                interaction.bboxhuman, interaction.bboxobject, interaction.connection
            )
        except AttributeError as error:
            raise ValueError(f"{where}: lacks id, invis, bboxhuman, bboxobject or connection") from error
        if not (class_id.is_integer() and 1 <= class_id <= num_classes):
            raise ValueError(f"{where}: HOI class id {class_id:g} is not an integer in 1..{num_classes}")
        class_id = int(class_id)
        if invisible:
            continue
        humans, objects = _boxes(humans_field, where, "bboxhuman"), _boxes(objects_field, where, "bboxobject")
        connection = np.asarray(connection_field, dtype=np.float64).reshape(-1, 2)
        if connection.size and (connection != np.round(connection)).any():
            raise ValueError(f"{where}: connection indices must be integers")
        connection = connection.astype(np.int64) - 1
        if len(connection) and (
            connection.min() < 0 or connection[:, 0].max() >= len(humans) or connection[:, 1].max() >= len(objects)
        ):
            raise ValueError(
                f"{where}: connection indexes outside its {len(humans)} human and {len(objects)} object boxes"
            )
        boxes_h.append(humans[connection[:, 0]])
        boxes_o.append(objects[connection[:, 1]])
        hoi.append(np.full(len(connection), class_id - 1, dtype=np.int64))
    hoi_array = np.concatenate(hoi) if hoi else np.zeros(0, dtype=np.int64)
    return ImageAnnotation(
        filename=filename,
        width=width,
        height=height,
        boxes_h=np.concatenate(boxes_h) if boxes_h else np.zeros((0, 4), np.float32),
        boxes_o=np.concatenate(boxes_o) if boxes_o else np.zeros((0, 4), np.float32),
        hoi=hoi_array,
        verb=np.zeros_like(hoi_array),
        object=np.zeros_like(hoi_array),
    )


def _vocabulary(path: Path, classes: list, train_counts: np.ndarray) -> Vocabulary:
    """Alphabetical objects and verbs (the json layout's order) and the (verb, object) of each class."""
    try:
        pairs = [(normalise_name(c.vname), normalise_name(c.nname)) for c in classes]
        ing = [normalise_name(getattr(c, "vname_ing", c.vname)) for c in classes]
    except AttributeError as error:
        raise ValueError(f"{path}: list_action entries need nname and vname ({error})") from error
    if len(set(pairs)) != len(pairs):
        raise ValueError(f"{path}: list_action names a (verb, object) combination twice")
    verbs = sorted({verb for verb, _ in pairs})
    objects = sorted({obj for _, obj in pairs} | {"person"})
    verbs_ing = {verb: form for (verb, _), form in zip(pairs, ing)}
    hoi_classes = np.array([[verbs.index(verb), objects.index(obj)] for verb, obj in pairs], dtype=np.int64)
    rare = np.flatnonzero(train_counts < RARE_THRESHOLD)
    non_rare = np.flatnonzero(train_counts >= RARE_THRESHOLD)
    return Vocabulary(
        verbs=tuple(verbs),
        objects=tuple(objects),
        hoi_classes=hoi_classes,
        rare=rare,
        non_rare=non_rare,
        verbs_ing=tuple(verbs_ing[verb] for verb in verbs),
    )
