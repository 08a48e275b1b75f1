"""Detections of a whole split as flat arrays, tied to the annotation's image order.

The evaluators take one `DetectionArrays` (M tuples over all images) instead of per-image objects,
so that sorting and matching are single NumPy passes. Build it from the inference stage's HDF5
columns (`from_columns`, what the evaluate stage does with `DetectionsFile.read_all`) or from a list
of `HOIDetections` (`from_hoi_detections`, for tests and in-process callers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hoi_pipeline.structures import HOIAnnotations, HOIDetections


@dataclass(frozen=True)
class DetectionArrays:
    """M detected tuples; `image` indexes `annotations.images`, boxes are continuous (x1, y1, x2, y2).

    Rows of one image keep their order in the file: ties in score are broken by image order in the
    annotation, then by row order, as the official MATLAB evaluation's stable sort does.
    """

    image: np.ndarray  # (M,) int64
    boxes_h: np.ndarray  # (M, 4) float32
    boxes_o: np.ndarray  # (M, 4) float32
    hoi: np.ndarray  # (M,) int64
    verb: np.ndarray  # (M,) int64
    score: np.ndarray  # (M,) float32

    def __post_init__(self) -> None:
        m = len(self.score)
        if not (
            len(self.image) == len(self.hoi) == len(self.verb) == m and len(self.boxes_h) == len(self.boxes_o) == m
        ):
            raise ValueError("detections: image, boxes_h, boxes_o, hoi, verb and score differ in length")

    def __len__(self) -> int:
        return len(self.score)

    def ranking(self, classes: np.ndarray) -> np.ndarray:
        """(M,) row order by class ascending, then score descending, then image order, then row.

        One stable sort of a 64-bit key (class in the high half, the order-preserving bits of
        -score in the low half), over rows first put in image order: twice as fast as a lexsort.
        """
        rows = np.arange(len(self))
        if np.any(self.image[1:] < self.image[:-1]):
            rows = np.argsort(self.image, kind="stable")
        negated = (-self.score[rows].astype(np.float32) + np.float32(0.0)).view(np.uint32)  # + 0: -0.0 -> 0.0
        sign = np.uint32(0x80000000)
        ordered = np.where(negated & sign, ~negated, negated | sign).astype(np.uint64)  # float order as uints
        key = (np.asarray(classes)[rows].astype(np.uint64) << np.uint64(32)) | ordered
        return rows[np.argsort(key, kind="stable")]


def from_columns(
    annotations: HOIAnnotations,
    filenames: Sequence[str],
    offsets: np.ndarray,
    columns: Mapping[str, np.ndarray],
    source: str = "detections",
) -> DetectionArrays:
    """Flat detections from the offsets layout (filenames (I,), offsets (I+1,), per-row columns).

    Images of the annotation absent from the file simply have no detections; an image the
    annotation lacks, a repeated image, or a non-finite score is an error naming `source`.
    """
    index = annotations.index_of()
    unknown = [name for name in filenames if name not in index]
    if unknown:
        raise ValueError(
            f"{source}: {len(unknown)} image(s) are not in the annotation {annotations.source or ''} "
            f"(first: {unknown[:3]})"
        )
    if len(set(filenames)) != len(filenames):
        raise ValueError(f"{source}: an image appears more than once in 'filenames'")
    offsets = np.asarray(offsets, dtype=np.int64)
    if len(offsets) != len(filenames) + 1 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        raise ValueError(f"{source}: 'offsets' must be non-decreasing from 0 with one entry per image plus one")
    counts = np.diff(offsets)
    file_image = np.array([index[name] for name in filenames], dtype=np.int64)
    image = np.repeat(file_image, counts)
    score = np.asarray(columns["score"], dtype=np.float32).reshape(-1)
    arrays = DetectionArrays(
        image=image,
        boxes_h=np.asarray(columns["boxes_h"], dtype=np.float32).reshape(-1, 4),
        boxes_o=np.asarray(columns["boxes_o"], dtype=np.float32).reshape(-1, 4),
        hoi=np.asarray(columns["hoi"], dtype=np.int64).reshape(-1),
        verb=np.asarray(columns["verb"], dtype=np.int64).reshape(-1),
        score=score,
    )
    if len(arrays) != offsets[-1]:
        raise ValueError(f"{source}: {len(arrays)} detection rows but offsets end at {offsets[-1]}")
    if not np.all(np.isfinite(score)):
        raise ValueError(f"{source}: {int(np.sum(~np.isfinite(score)))} detection scores are not finite")
    return arrays


def from_hoi_detections(annotations: HOIAnnotations, detections: Sequence[HOIDetections]) -> DetectionArrays:
    """Flat detections from per-image `HOIDetections` (for tests and in-process evaluation)."""
    counts = [len(d) for d in detections]
    offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])

    def column(name: str, width: int | None = None) -> np.ndarray:
        parts = [getattr(d, name) for d in detections]
        empty = np.zeros((0,) if width is None else (0, width))
        return np.concatenate(parts) if parts else empty

    columns = {name: column(name, 4) for name in ("boxes_h", "boxes_o")}
    columns.update({name: column(name) for name in ("hoi", "verb", "score")})
    return from_columns(annotations, [d.filename for d in detections], offsets, columns, source="detections")
