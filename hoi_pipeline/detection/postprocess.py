"""Post-processing of raw detections into the human and object proposals of an image.

1. drop boxes with non-finite values or no area;
2. per-class NMS at IoU `nms_threshold` (0.5, what the detectors already apply);
3. keep the `max_detections` (100) highest scores: the paper's "at most 100 object candidates for
   each image" (Sec. 4.2);
4. humans and objects separately: keep those scoring at least their threshold; if fewer than
   `min_*` pass, keep the top `min_*` even below the threshold; if more than `max_*` pass, keep
   the top `max_*`.
The defaults (`DetectorConfig`'s) stop at step 3: thresholds 0, no per-group minimum, at most 100.
`UPT_FILTER` is the filter of UPT (Zhang et al., ICCV 2021, `prepare_region_proposals`) and SCG
(Zhang et al., ICCV 2021): thresholds 0.2, 3 to 15 humans and 3 to 15 objects.
The kept proposals are ordered humans first, then objects, each by descending score.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np
import torch
from torchvision.ops import batched_nms

from hoi_pipeline.config import DetectorConfig
from hoi_pipeline.structures import Proposals

_DEFAULT = DetectorConfig()


@dataclass(frozen=True)
class PostprocessSettings:
    """Thresholds and limits of `select_proposals`; defaults are `DetectorConfig`'s (the paper's reading)."""

    human_score_threshold: float = _DEFAULT.human_score_threshold
    object_score_threshold: float = _DEFAULT.object_score_threshold
    nms_threshold: float = _DEFAULT.nms_threshold
    max_detections: int = _DEFAULT.max_detections
    min_humans: int = _DEFAULT.min_humans
    max_humans: int = _DEFAULT.max_humans
    min_objects: int = _DEFAULT.min_objects
    max_objects: int = _DEFAULT.max_objects

    def __post_init__(self) -> None:
        for name in ("human_score_threshold", "object_score_threshold", "nms_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        for name in ("max_detections", "min_humans", "max_humans", "min_objects", "max_objects"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for low, high in (("min_humans", "max_humans"), ("min_objects", "max_objects")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} ({getattr(self, low)}) exceeds {high} ({getattr(self, high)})")

    @classmethod
    def from_config(cls, config: DetectorConfig) -> PostprocessSettings:
        return cls(
            human_score_threshold=config.human_score_threshold,
            object_score_threshold=config.object_score_threshold,
            nms_threshold=config.nms_threshold,
            max_detections=config.max_detections,
            min_humans=config.min_humans,
            max_humans=config.max_humans,
            min_objects=config.min_objects,
            max_objects=config.max_objects,
        )


# UPT's / SCG's proposal filter (config: the same values in the detector section)
UPT_FILTER = PostprocessSettings(
    human_score_threshold=0.2, object_score_threshold=0.2, min_humans=3, max_humans=15, min_objects=3, max_objects=15
)


def _limit(scores: np.ndarray, threshold: float, low: int, high: int) -> np.ndarray:
    """Positions to keep among one group's detections, given sorted by descending score."""
    passing = int((scores >= threshold).sum())
    if passing < low:
        count = min(low, len(scores))
    else:
        count = min(passing, high)
    # sorted descending, so the detections at or above the threshold are a prefix
    return np.arange(count)


def select_proposals(
    boxes: np.ndarray | torch.Tensor,
    scores: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    *,
    person: int,
    settings: PostprocessSettings,
) -> np.ndarray:
    """Indices (K,) into the M detections that become proposals, humans first, by descending score.

    boxes (M, 4) x1y1x2y2, scores (M,), labels (M,) in the dataset's object order; `person` is the
    human class index.
    """
    boxes_t = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4).cpu()
    scores_t = torch.as_tensor(scores, dtype=torch.float32).reshape(-1).cpu()
    labels_t = torch.as_tensor(labels, dtype=torch.int64).reshape(-1).cpu()
    if not len(boxes_t) == len(scores_t) == len(labels_t):
        raise ValueError(f"boxes {len(boxes_t)}, scores {len(scores_t)} and labels {len(labels_t)} differ in length")
    valid = (
        torch.isfinite(boxes_t).all(dim=1)
        & torch.isfinite(scores_t)
        & (boxes_t[:, 2] > boxes_t[:, 0])
        & (boxes_t[:, 3] > boxes_t[:, 1])
    )
    index = torch.nonzero(valid).squeeze(1)
    keep = batched_nms(boxes_t[index], scores_t[index], labels_t[index], settings.nms_threshold)
    index = index[keep]  # batched_nms returns indices sorted by decreasing score
    index = index[: settings.max_detections].numpy()

    kept_scores = scores_t.numpy()[index]
    is_human = labels_t.numpy()[index] == person
    humans, objects = index[is_human], index[~is_human]
    humans = humans[
        _limit(kept_scores[is_human], settings.human_score_threshold, settings.min_humans, settings.max_humans)
    ]
    objects = objects[
        _limit(kept_scores[~is_human], settings.object_score_threshold, settings.min_objects, settings.max_objects)
    ]
    return np.concatenate([humans, objects]).astype(np.int64)


def postprocess_proposals(proposals: Proposals, *, person: int, settings: PostprocessSettings) -> Proposals:
    """`select_proposals` applied to one image's raw detections."""
    keep = select_proposals(proposals.boxes, proposals.scores, proposals.labels, person=person, settings=settings)
    return Proposals(proposals.filename, proposals.boxes[keep], proposals.scores[keep], proposals.labels[keep])
