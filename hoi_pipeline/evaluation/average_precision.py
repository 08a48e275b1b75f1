"""Average precision of ranked detections, in the two official definitions the benchmarks use.

- HICO-DET (ho-rcnn `VOCevaldet_bboxpair.m`): 11-point interpolation over MATLAB's `0:0.1:1`,
  `ap = ap + max(prec(rec >= t)) / 11`, a threshold with no recall reaching it adds 0.
- V-COCO (`vsrl_eval.py` `voc_ap`): area under the precision envelope.

`class_ap` turns per-detection true-positive flags, already in ranking order and grouped by class,
into a `ClassAP` (N classes). Classes without ground truth get AP NaN and are left out of means.
It keeps each class's precision-recall points (`ClassAP.curves`), the very arrays its AP comes from,
so that a plotted curve and the reported AP cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

APMethod = Literal["11point", "voc"]


def matlab_colon(start: float, step: float, stop: float) -> np.ndarray:
    """MATLAB's `start:step:stop` bit for bit.

    MATLAB fills the vector from both ends (`start + k*step` and `stop - k*step`) and puts the exact
    midpoint in the middle, so `0:0.1:1` holds 0.6 and 0.7 exactly, where `np.arange(0, 1.1, 0.1)`
    holds 0.6000000000000001 and 0.7000000000000001 (a recall of exactly 0.6 reaches MATLAB's
    threshold, not arange's). Follows MathWorks' `colonop.m`; positive finite `step` only.
    """
    if not (np.isfinite(start) and np.isfinite(step) and np.isfinite(stop)) or step <= 0:
        raise ValueError(f"matlab_colon: needs finite values and a positive step, got {start}:{step}:{stop}")
    if stop < start:
        return np.zeros(0)
    tol = 2.0 * np.finfo(float).eps * max(abs(start), abs(stop))
    if start == np.floor(start) and step == 1:
        n = int(np.floor(stop) - start)
    elif start == np.floor(start) and step == np.floor(step):
        q = np.floor(start / step)
        n = int(np.floor((stop - (start - q * step)) / step) - q)
    else:
        n = int(np.round((stop - start) / step))
        if start + n * step - stop > tol:
            n -= 1
    end = start + n * step
    if end - stop > -tol:
        end = stop
    values = np.zeros(n + 1)
    k = np.arange(n // 2 + 1)
    values[k] = start + k * step
    values[n - k] = end - k * step
    if n % 2 == 0:
        values[n // 2] = (start + end) / 2
    return values


RECALL_THRESHOLDS = matlab_colon(0.0, 0.1, 1.0)  # (11,) MATLAB's 0:0.1:1


def eleven_point_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """11-point interpolated AP of one class, the loop of `VOCevaldet_bboxpair.m` in the same order.

    `recall` must be non-decreasing (it is a cumulative count over ranked detections), so the
    detections with recall >= t form a suffix and the max precision over it is a suffix max.
    """
    if len(recall) == 0:
        return 0.0
    suffix_max = np.maximum.accumulate(precision[::-1])[::-1]
    first = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")  # first index with recall >= t
    ap = 0.0
    for index in first:
        p = suffix_max[index] if index < len(recall) else 0.0
        ap = ap + p / 11
    return float(ap)


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope (`voc_ap` of vsrl_eval.py)."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


@dataclass(frozen=True)
class PrecisionRecall:
    """Precision and recall after each of a class's K ranked detections (K,), fractions in [0, 1]."""

    recall: np.ndarray  # (K,) float64, non-decreasing
    precision: np.ndarray  # (K,) float64


@dataclass(frozen=True)
class ClassAP:
    """AP of every class (N) in one evaluation setting; fractions in [0, 1].

    `ap` and `recall` (recall after the last detection) are NaN for classes without ground truth;
    `curves[c]` holds the precision-recall points AP c was computed from (None without ground truth).
    """

    setting: str
    ap: np.ndarray  # (N,) float64
    recall: np.ndarray  # (N,) float64
    num_gt: np.ndarray  # (N,) int64
    num_detections: np.ndarray  # (N,) int64
    curves: tuple[PrecisionRecall | None, ...] = field(default=(), repr=False, compare=False)

    @property
    def evaluated(self) -> np.ndarray:
        """(N,) bool: classes with ground truth, the ones means are taken over."""
        return self.num_gt > 0

    def mean(self, classes: np.ndarray | None = None) -> float:
        """Mean AP over `classes` (default all) that have ground truth; NaN when none has."""
        ap = self.ap if classes is None else self.ap[np.asarray(classes, dtype=np.int64)]
        ap = ap[~np.isnan(ap)]
        return float(np.mean(ap)) if len(ap) else float("nan")


def class_ap(
    setting: str,
    classes: np.ndarray,
    true_positive: np.ndarray,
    num_gt: np.ndarray,
    method: APMethod,
) -> ClassAP:
    """Per-class AP from ranked detections.

    `classes` (K,) is sorted ascending and, within a class, the rows are in ranking order (best
    first); `true_positive` (K,) bool flags each row. `num_gt` (N,) is the ground truth per class.
    """
    num_gt = np.asarray(num_gt, dtype=np.int64)
    n = len(num_gt)
    bounds = np.searchsorted(classes, np.arange(n + 1), side="left")
    ap = np.full(n, np.nan)
    recall = np.full(n, np.nan)
    tp_all = np.asarray(true_positive, dtype=bool)
    curves: list[PrecisionRecall | None] = [None] * n
    for c in np.flatnonzero(num_gt > 0):
        tp_flags = tp_all[bounds[c] : bounds[c + 1]]
        tp = np.cumsum(tp_flags, dtype=np.float64)
        fp = np.cumsum(~tp_flags, dtype=np.float64)
        rec = tp / float(num_gt[c])
        if method == "11point":
            prec = tp / (fp + tp)
            ap[c] = eleven_point_ap(rec, prec)
        else:
            prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
            ap[c] = voc_ap(rec, prec)
        recall[c] = rec[-1] if len(rec) else 0.0
        curves[c] = PrecisionRecall(recall=rec, precision=prec)
    return ClassAP(
        setting=setting,
        ap=ap,
        recall=recall,
        num_gt=num_gt,
        num_detections=np.diff(bounds).astype(np.int64),
        curves=tuple(curves),
    )
