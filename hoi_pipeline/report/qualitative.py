"""Which test images the qualitative figure shows, and whether each drawn tuple is right.

A tuple is right when a ground-truth pair of its class in the same image overlaps both its boxes
with IoU >= the evaluation threshold (HICO-DET's criterion, with its +1-pixel IoU); unlike the
evaluator this looks at the tuple alone, so a duplicate of a right tuple is shown as right too.
The class is the HOI class for HICO-DET and the action-role pair (`verb`) for V-COCO, whose
role AP ignores the object's category.

Successes are the images whose best tuple is right, failures those whose best tuple is wrong,
each ordered by that tuple's score (the model's most confident successes and mistakes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from hoi_pipeline.evaluation.matching import INCLUSIVE_FROM_CONTINUOUS, iou_inclusive
from hoi_pipeline.structures import HOIAnnotations, ImageAnnotation


@dataclass(frozen=True)
class ImageTuples:
    """The detected tuples of one test image (T rows), best first."""

    image: int  # index into the annotation's images
    boxes_h: np.ndarray  # (T, 4)
    boxes_o: np.ndarray  # (T, 4)
    hoi: np.ndarray  # (T,)
    verb: np.ndarray  # (T,)
    score: np.ndarray  # (T,)
    factors: dict[str, np.ndarray]  # name -> (T,)


def class_column(benchmark: str) -> str:
    """The column a tuple's class is read from: 'verb' (V-COCO action-role) or 'hoi' (HICO-DET)."""
    return "verb" if benchmark == "vcoco" else "hoi"


def tuples_match(
    boxes_h: np.ndarray,
    boxes_o: np.ndarray,
    classes: np.ndarray,
    truth: ImageAnnotation,
    truth_classes: np.ndarray,
    iou_threshold: float,
) -> np.ndarray:
    """(T,) bool: tuple t has a ground-truth pair of class classes[t] with min(IoU_h, IoU_o) >= threshold.

    boxes_h, boxes_o (T, 4) and the truth's boxes are continuous (x1, y1, x2, y2); truth_classes (G,).
    """
    t, g = len(classes), len(truth_classes)
    if t == 0 or g == 0:
        return np.zeros(t, dtype=bool)
    det_h = np.repeat(np.asarray(boxes_h, np.float64) + INCLUSIVE_FROM_CONTINUOUS, g, axis=0)  # (T * G, 4)
    det_o = np.repeat(np.asarray(boxes_o, np.float64) + INCLUSIVE_FROM_CONTINUOUS, g, axis=0)
    gt_h = np.tile(truth.boxes_h.astype(np.float64) + INCLUSIVE_FROM_CONTINUOUS, (t, 1))  # (T * G, 4)
    gt_o = np.tile(truth.boxes_o.astype(np.float64) + INCLUSIVE_FROM_CONTINUOUS, (t, 1))
    overlap = np.fmin(iou_inclusive(det_h, gt_h), iou_inclusive(det_o, gt_o)).reshape(t, g)
    same_class = np.asarray(classes)[:, None] == np.asarray(truth_classes)[None, :]  # (T, G)
    return np.any(same_class & (overlap >= iou_threshold), axis=1)


def split_by_image(
    image: np.ndarray, columns: Mapping[str, np.ndarray], factor_names: tuple[str, ...]
) -> list[ImageTuples]:
    """Per-image tuples (best first) from flat detection columns whose rows belong to images `image` (M,)."""
    order = np.lexsort((-np.asarray(columns["score"], np.float64), image))  # image, then score descending
    bounds = np.flatnonzero(np.r_[True, image[order][1:] != image[order][:-1], True]) if len(order) else [0]
    groups = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        rows = order[start:stop]
        groups.append(
            ImageTuples(
                image=int(image[rows[0]]),
                boxes_h=columns["boxes_h"][rows],
                boxes_o=columns["boxes_o"][rows],
                hoi=columns["hoi"][rows],
                verb=columns["verb"][rows],
                score=columns["score"][rows],
                factors={name: columns[name][rows] for name in factor_names},
            )
        )
    return groups


@dataclass(frozen=True)
class Choice:
    """A chosen image: its tuples, which of its top tuples are right, and success or failure."""

    tuples: ImageTuples
    correct: np.ndarray  # (min(T, top),) bool
    kind: str


def choose_examples(
    annotations: HOIAnnotations,
    groups: list[ImageTuples],
    *,
    per_kind: int,
    top: int,
    iou_threshold: float,
) -> list[Choice]:
    """Up to `per_kind` successes then up to `per_kind` failures, each with its `top` best tuples judged."""
    column = class_column(annotations.benchmark)

    def judge(group: ImageTuples, count: int) -> np.ndarray:
        truth = annotations.images[group.image]
        return tuples_match(
            group.boxes_h[:count], group.boxes_o[:count], getattr(group, column)[:count],
            truth, getattr(truth, column), iou_threshold,
        )  # fmt: skip

    best_right = np.array([bool(judge(g, 1)[0]) for g in groups], dtype=bool)
    best_score = np.array([float(g.score[0]) for g in groups])
    choices = []
    for kind, wanted in (("success", True), ("failure", False)):
        candidates = np.flatnonzero(best_right == wanted)
        candidates = candidates[np.argsort(-best_score[candidates], kind="stable")][:per_kind]
        choices += [Choice(groups[i], judge(groups[i], top), kind) for i in candidates]
    return choices
