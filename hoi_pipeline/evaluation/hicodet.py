"""HICO-DET mAP, number for number with the official MATLAB evaluation (ho-rcnn `eval_one.m`,
`VOCevaldet_bboxpair.m`).

- Ground truth: every annotated (visible) pair is its own ground truth, no merging. Every image of
  the annotation counts; detections on an image without ground truth of their class are false
  positives.
- Ranking: per HOI class, score descending with a stable sort in image order (then row order).
- Matching: each detection takes the ground truth of its class and image with the largest
  min(IoU_human, IoU_object), the first on ties; a true positive when that overlap is >= the
  threshold (0.5) and the ground truth is still free, otherwise a false positive.
- IoU on 1-based inclusive boxes with the +1 pixel convention: continuous detection boxes
  (x1, y1, x2, y2) enter as (x1 + 1, y1 + 1, x2, y2), which turns the annotation's boxes (loaded as
  (x1 - 1, y1 - 1, x2, y2)) back into the file's exact pixel indices.
- AP: 11-point interpolation over MATLAB's 0:0.1:1 (`average_precision.eleven_point_ap`).
- Settings: Default; Known Object, where class c counts only on images whose ground truth holds
  c's object category (detections elsewhere are dropped; its ground truth is all on such images).
- Means: Full over all classes, Rare over `vocabulary.rare`, Non-Rare over `vocabulary.non_rare`.
  The official code gives AP 0 to a class without ground truth; HICO-DET's test split has ground
  truth for all 600 classes, but smaller datasets (the synthetic demo) may not, so such a class
  gets AP NaN and is left out of every mean (logged). Benchmarks that ship every class agree.

The matching does not depend on the setting (Known Object only drops detections on images where
the class has no ground truth, which were false positives either way), so it runs once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from hoi_pipeline.evaluation.average_precision import ClassAP, class_ap
from hoi_pipeline.evaluation.detections import DetectionArrays
from hoi_pipeline.evaluation.matching import (
    INCLUSIVE_FROM_CONTINUOUS,
    best_targets,
    first_claims,
    group_pairs,
    iou_inclusive,
)
from hoi_pipeline.structures import HOIAnnotations, Vocabulary

log = logging.getLogger(__name__)

SETTINGS = ("default", "known_object")
SETTING_TITLES = {"default": "Default", "known_object": "Known Object"}


@dataclass(frozen=True)
class MeanAP:
    """mAP of one setting in percent, over the classes with ground truth of each group."""

    setting: str
    full: float
    rare: float
    non_rare: float
    num_classes: int  # classes with ground truth (the ones averaged in `full`)


@dataclass(frozen=True)
class EvaluationResult:
    """HICO-DET result: per-class AP of every setting."""

    vocabulary: Vocabulary
    settings: tuple[ClassAP, ...]

    def setting(self, name: str) -> ClassAP:
        for result in self.settings:
            if result.setting == name:
                return result
        raise KeyError(f"setting '{name}' was not evaluated (have {[r.setting for r in self.settings]})")

    def summary(self) -> tuple[MeanAP, ...]:
        """Full / Rare / Non-Rare mAP (percent) of each setting."""
        vocab = self.vocabulary
        return tuple(
            MeanAP(
                setting=r.setting,
                full=100.0 * r.mean(),
                rare=100.0 * r.mean(vocab.rare),
                non_rare=100.0 * r.mean(vocab.non_rare),
                num_classes=int(r.evaluated.sum()),
            )
            for r in self.settings
        )


@dataclass(frozen=True)
class GroundTruthArrays:
    """G annotated pairs of a split, flat; boxes 1-based inclusive (float64) as in the official files."""

    image: np.ndarray  # (G,) int64
    hoi: np.ndarray  # (G,) int64
    boxes_h: np.ndarray  # (G, 4) float64
    boxes_o: np.ndarray  # (G, 4) float64


def ground_truth_arrays(annotations: HOIAnnotations) -> GroundTruthArrays:
    """Flatten the split's ground truth and check its class indices."""
    images = annotations.images
    counts = np.array([image.num_pairs for image in images], dtype=np.int64)

    def cat(name: str, shape: tuple[int, ...]) -> np.ndarray:
        parts = [getattr(image, name) for image in images]
        return np.concatenate(parts) if parts else np.zeros(shape)

    gt = GroundTruthArrays(
        image=np.repeat(np.arange(len(images), dtype=np.int64), counts),
        hoi=cat("hoi", (0,)).astype(np.int64),
        boxes_h=cat("boxes_h", (0, 4)).astype(np.float64) + INCLUSIVE_FROM_CONTINUOUS,
        boxes_o=cat("boxes_o", (0, 4)).astype(np.float64) + INCLUSIVE_FROM_CONTINUOUS,
    )
    n = annotations.vocabulary.num_classes
    if len(gt.hoi) and (gt.hoi.min() < 0 or gt.hoi.max() >= n):
        raise ValueError(f"{annotations.source}: ground truth names an HOI class outside 0..{n - 1}")
    return gt


def evaluate_hicodet(
    annotations: HOIAnnotations,
    detections: DetectionArrays,
    *,
    settings: tuple[str, ...] = SETTINGS,
    iou_threshold: float = 0.5,
) -> EvaluationResult:
    """Per-class AP of `detections` (their `hoi` column) against `annotations` in each setting."""
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise ValueError(f"unknown HICO-DET setting(s) {unknown}; allowed: {list(SETTINGS)}")
    vocab = annotations.vocabulary
    n, num_images = vocab.num_classes, len(annotations.images)
    if len(detections) and (detections.hoi.min() < 0 or detections.hoi.max() >= n):
        raise ValueError(f"detections name an HOI class outside 0..{n - 1}")
    gt = ground_truth_arrays(annotations)
    num_gt = np.bincount(gt.hoi, minlength=n)

    # ranking order: class, score descending, image order, row (K = M detections)
    order = detections.ranking(detections.hoi)
    hoi = detections.hoi[order]
    image = detections.image[order]
    boxes_h = detections.boxes_h[order].astype(np.float64) + INCLUSIVE_FROM_CONTINUOUS
    boxes_o = detections.boxes_o[order].astype(np.float64) + INCLUSIVE_FROM_CONTINUOUS

    # every detection against the ground truth of its (class, image); stable sort keeps annotation order
    gt_key = gt.hoi * num_images + gt.image
    gt_order = np.argsort(gt_key, kind="stable")
    pair_det, pair_gt = group_pairs(hoi * num_images + image, gt_key[gt_order])
    pair_gt = gt_order[pair_gt]
    overlap = np.fmin(
        iou_inclusive(boxes_h[pair_det], gt.boxes_h[pair_gt]),
        iou_inclusive(boxes_o[pair_det], gt.boxes_o[pair_gt]),
    )
    best, matched = best_targets(overlap, pair_det, pair_gt, len(order))
    true_positive = first_claims(best >= iou_threshold, matched)

    results = []
    for setting in settings:
        if setting == "default":
            keep = slice(None)
        else:
            has_object = np.zeros((num_images, vocab.num_objects), dtype=bool)  # (I, O)
            has_object[gt.image, vocab.hoi_classes[gt.hoi, 1]] = True
            keep = has_object[image, vocab.hoi_classes[hoi, 1]]
        results.append(class_ap(setting, hoi[keep], true_positive[keep], num_gt, "11point"))
    missing = int(np.sum(num_gt == 0))
    if missing:
        log.warning("%d of %d HOI classes have no ground truth: AP NaN, left out of the means", missing, n)
    return EvaluationResult(vocabulary=vocab, settings=tuple(results))
