"""Precision-recall curves of chosen classes, from an evaluation's `ClassAP.curves`.

The curves are the points each class's AP was computed from (`average_precision.class_ap`), so a
plot of them shows exactly what the reported AP summarises: the 11-point AP of HICO-DET averages
the envelope at recall 0, 0.1, ..., 1; V-COCO's AP is the area under the envelope.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hoi_pipeline.evaluation.average_precision import ClassAP, PrecisionRecall

ROLES = ("best", "median", "worst")


@dataclass(frozen=True)
class ClassCurve:
    """The precision-recall curve of one class, with what it is shown for."""

    role: str  # best, median or worst
    index: int  # class index
    name: str
    ap: float  # fraction in [0, 1]
    num_gt: int
    curve: PrecisionRecall


def representative_classes(result: ClassAP) -> dict[str, int]:
    """The classes of highest, median and lowest AP among those with ground truth.

    Ties go to the class with more ground truth (its AP rests on more evidence), then the lower
    index. With fewer than three evaluated classes a class fills several roles; none without any.
    """
    evaluated = np.flatnonzero(result.evaluated)
    if len(evaluated) == 0:
        return {}
    # AP descending, then ground truth descending, then index ascending
    order = evaluated[np.lexsort((evaluated, -result.num_gt[evaluated], -result.ap[evaluated]))]
    worst_first = evaluated[np.lexsort((evaluated, -result.num_gt[evaluated], result.ap[evaluated]))]
    return {"best": int(order[0]), "median": int(order[len(order) // 2]), "worst": int(worst_first[0])}


def chosen_curves(result: ClassAP, names: tuple[str, ...] | list[str]) -> list[ClassCurve]:
    """Best, median and worst class of `result` (each class once) with their curves."""
    if not result.curves:
        raise ValueError(f"setting '{result.setting}': the evaluation kept no precision-recall curves")
    curves: list[ClassCurve] = []
    for role, index in representative_classes(result).items():
        if any(c.index == index for c in curves):
            continue
        curve = result.curves[index]
        assert curve is not None  # classes with ground truth always have a curve
        curves.append(
            ClassCurve(role, index, names[index], float(result.ap[index]), int(result.num_gt[index]), curve)
        )
    return curves


def precision_envelope(curve: PrecisionRecall) -> np.ndarray:
    """(K,) the best precision at this recall or beyond: the interpolated curve both APs use."""
    if len(curve.precision) == 0:
        return np.zeros(0)
    return np.maximum.accumulate(curve.precision[::-1])[::-1]
