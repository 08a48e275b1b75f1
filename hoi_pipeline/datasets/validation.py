"""Checks of annotation content that loaders share; every error names the file and the entry.

A value out of range must be refused where it is read: numpy indexing wraps -1 to the last class
(an `hoi: -1` pair would train as class N-1) and a class index past the lists fails much later
with an IndexError. Boxes are checked in the file's own convention (`x2 >= x1`, `y2 >= y1`).

The checks run on a whole split at once (flat arrays, one row per pair); `where` is the place to
name, or a function giving the place of row k (the file, the image and the pair).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hoi_pipeline.structures import Vocabulary

Where = str | Callable[[int], str]


def class_indices(values: object, size: int, where: Where, what: str) -> np.ndarray:
    """`values` as int64 indices, each in 0..size-1; anything else is a ValueError naming the place and `what`."""
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{_place(where, None)}: '{what}' must be a list of integers ({error})") from error
    not_integer = ~np.isfinite(array) | (array != np.round(array))
    if not_integer.any():
        k = int(np.flatnonzero(not_integer)[0])
        raise ValueError(f"{_place(where, k)}: '{what}' must hold integers, got {_number(array[k])}")
    outside = (array < 0) | (array >= size)
    if outside.any():
        k = int(np.flatnonzero(outside)[0])
        raise ValueError(f"{_place(where, k)}: '{what}' is {_number(array[k])}, outside 0..{size - 1}")
    return array.astype(np.int64)


def check_boxes(boxes: np.ndarray, where: Where, what: str) -> None:
    """(G, 4) boxes (x1, y1, x2, y2) must be finite with x2 >= x1 and y2 >= y1."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    bad = ~np.isfinite(boxes).all(axis=1) | (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{_place(where, k)}: '{what}' is [{', '.join(_number(v) for v in boxes[k])}]; a box must be finite "
            "(x1, y1, x2, y2) with x2 >= x1 and y2 >= y1"
        )


def check_pairs(
    vocabulary: Vocabulary, hoi: object, verb: object, obj: object, where: Where
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pair HOI, verb and object indices: in range and agreeing with the HOI class table."""
    hoi = class_indices(hoi, vocabulary.num_classes, where, "hoi")
    verb = class_indices(verb, vocabulary.num_verbs, where, "verb")
    obj = class_indices(obj, vocabulary.num_objects, where, "object")
    if not len(hoi) == len(verb) == len(obj):
        raise ValueError(
            f"{_place(where, None)}: 'hoi', 'verb' and 'object' have {len(hoi)}, {len(verb)} and {len(obj)} entries"
        )
    expected = vocabulary.hoi_classes[hoi]  # (G, 2) verb, object
    wrong = (expected[:, 0] != verb) | (expected[:, 1] != obj)
    if wrong.any():
        k = int(np.flatnonzero(wrong)[0])
        raise ValueError(
            f"{_place(where, k)}: hoi {hoi[k]} ({vocabulary.class_name(int(hoi[k]))}) comes with verb {verb[k]} "
            f"and object {obj[k]}; they must agree with 'correspondence'"
        )
    return hoi, verb, obj


def _place(where: Where, row: int | None) -> str:
    if callable(where):
        return where(row) if row is not None else where(-1)
    return where


def _number(value: float) -> str:
    return repr(float(value)).removesuffix(".0")
