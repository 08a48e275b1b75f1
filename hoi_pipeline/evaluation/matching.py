"""Greedy detection-to-ground-truth matching, vectorised over a whole test set.

The official evaluators loop over detections in ranking order and keep a `covered` flag per
ground truth. With their rule (a detection takes its single best ground truth; it is a true
positive when the overlap passes and that ground truth is still free, with no fallback to the
second best), the loop reduces to: a detection is a true positive when it is a *candidate*
(overlap and labels pass) and no earlier candidate in ranking order took the same ground truth.
So the matching is one pass of array operations: cross the detections with the ground truth of
their group, reduce to each detection's best, and keep the first claim per ground truth.

Boxes here are 1-based inclusive pixel boxes (the +1 pixel convention of the official code).
Shape letters: K detections, G ground truth, P (detection, ground truth) pairs.
"""

from __future__ import annotations

import numpy as np

INCLUSIVE_FROM_CONTINUOUS = np.array([1.0, 1.0, 0.0, 0.0])  # (x1, y1, x2, y2) -> (x1 + 1, y1 + 1, x2, y2)


def iou_inclusive(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of inclusive boxes (K, 4) and (K, 4) with the +1 pixel convention.

    Same arithmetic as `VOCevaldet_bboxpair.m`: the width of x1..x2 is x2 - x1 + 1, the union is
    area_a + area_b - intersection, and boxes that do not intersect have overlap 0.
    """
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + 1.0
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + 1.0
    inter = iw * ih
    union = (
        (a[:, 2] - a[:, 0] + 1.0) * (a[:, 3] - a[:, 1] + 1.0)
        + (b[:, 2] - b[:, 0] + 1.0) * (b[:, 3] - b[:, 1] + 1.0)
        - inter
    )
    hit = (iw > 0) & (ih > 0)
    out = np.zeros(len(inter))
    np.divide(inter, union, out=out, where=hit)
    return out


def group_pairs(query_keys: np.ndarray, target_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (query, target) index pairs whose keys are equal; `target_keys` (G,) sorted ascending.

    Returns (P,) query and target indices, grouped by query in ascending order and, within a query,
    targets in ascending order (so "first target on ties" means the lowest index).
    """
    lo = np.searchsorted(target_keys, query_keys, side="left")
    counts = np.searchsorted(target_keys, query_keys, side="right") - lo  # (K,)
    pair_query = np.repeat(np.arange(len(query_keys)), counts)  # (P,)
    starts = np.cumsum(counts) - counts
    pair_target = np.arange(len(pair_query)) - np.repeat(starts - lo, counts)  # (P,)
    return pair_query, pair_target


def best_targets(
    overlap: np.ndarray, pair_query: np.ndarray, pair_target: np.ndarray, num_queries: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's largest overlap and the first target reaching it (-inf and -1 without targets).

    Pairs must be grouped by query with targets ascending, as `group_pairs` returns them. NaN
    overlaps are skipped, as MATLAB's `min_ov > ovmax` test skips them.
    """
    best = np.full(num_queries, -np.inf)
    target = np.full(num_queries, -1, dtype=np.int64)
    if len(overlap) == 0:
        return best, target
    starts = np.flatnonzero(np.r_[True, pair_query[1:] != pair_query[:-1]])  # first pair of each query
    queries = pair_query[starts]
    group_best = np.fmax.reduceat(np.where(np.isnan(overlap), -np.inf, overlap), starts)
    reaches = overlap == np.repeat(group_best, np.diff(np.r_[starts, len(overlap)]))
    first = np.minimum.reduceat(np.where(reaches, np.arange(len(overlap)), len(overlap)), starts)
    found = first < len(overlap)
    best[queries] = group_best
    target[queries[found]] = pair_target[first[found]]
    return best, target


def first_claims(candidate: np.ndarray, claimed: np.ndarray) -> np.ndarray:
    """(K,) bool: candidates that are the first, in row order, to claim their ground truth.

    `candidate` (K,) bool and `claimed` (K,) int64 (a key naming the ground truth, unique across
    groups) are in ranking order; every later candidate on a taken ground truth is a duplicate.
    """
    rows = np.flatnonzero(candidate)
    _, first = np.unique(claimed[rows], return_index=True)
    true_positive = np.zeros(len(candidate), dtype=bool)
    true_positive[rows[first]] = True
    return true_positive
