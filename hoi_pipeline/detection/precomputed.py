"""The `precomputed` backend: detections produced elsewhere, imported from a per-image json.

The format (`hoi_pipeline.datasets.detections_json`): `{"format": "hoi-pipeline-detections",
"version": 1, "box_format": "xyxy", "objects": [...], "images": {filename: {"boxes": [[x1, y1, x2,
y2], ...], "scores": [...], "labels": [...]}}}`, boxes in continuous pixel coordinates (torchvision
convention), labels indexing "objects". The reader maps labels into the dataset's object order; here
the split's images are matched to its entries (`match_filenames`: Unicode NFC, folder prefixes) and
the same post-processing as a live detector's is applied. A split image without an entry is an
error unless `detector.allow_missing_images` is true (then it gets no detections), because a
silently empty image costs recall that nobody would trace back to a file-name mismatch.
There is no model, so this backend has no `ProposalExtractor`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

from hoi_pipeline.artifacts import file_digest
from hoi_pipeline.detection.extractor import empty_proposals
from hoi_pipeline.detection.postprocess import PostprocessSettings, postprocess_proposals
from hoi_pipeline.structures import Proposals

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportedProposals:
    """Proposals of a split's images (in its order) and how the json matched the split."""

    proposals: list[Proposals]
    missing: tuple[str, ...]  # images of the split absent from the json (empty entries)
    extra: tuple[str, ...]  # json images not in the split (ignored)
    weights: str  # identity of the imported file


def import_precomputed(
    path: str | os.PathLike,
    filenames: Sequence[str],
    objects: Sequence[str],
    *,
    settings: PostprocessSettings,
    allow_missing: bool = False,
) -> ImportedProposals:
    """Proposals of `filenames` (named as the annotation file names them) from a detections json.

    Images without an entry are a ValueError, or with `allow_missing` get an empty entry.
    """
    from hoi_pipeline.datasets.detections_json import match_filenames, read_detections_json

    if "person" not in objects:
        raise ValueError("the dataset's object classes have no 'person'")
    person = list(objects).index("person")
    by_image = read_detections_json(path, objects)
    matches = match_filenames(filenames, by_image, str(path))
    missing = tuple(name for name in filenames if name not in matches)
    used = set(matches.values())
    extra = tuple(sorted(name for name in by_image if name not in used))
    if missing and not allow_missing:
        hint = f"; its entries look like '{extra[0]}'" if extra else ""
        raise ValueError(
            f"{path}: {len(missing)} of the split's {len(filenames)} images have no entry (first: "
            f"{', '.join(repr(name) for name in missing[:3])}){hint}. List every image (one without detections "
            "as an empty entry) or set detector.allow_missing_images: true"
        )
    proposals = [
        postprocess_proposals(replace(by_image[matches[name]], filename=name), person=person, settings=settings)
        if name in matches
        else empty_proposals(name)
        for name in filenames
    ]
    if missing:
        log.warning(
            "%s: %d of the split's %d images have no entry and get no detections (detector.allow_missing_images)",
            path, len(missing), len(filenames),
        )  # fmt: skip
    if extra:
        log.warning("%s: %d images are not in the split and were ignored (first: %s)", path, len(extra), extra[0])
    return ImportedProposals(proposals, missing, extra, f"file:{os.path.basename(path)}:sha256:{file_digest(path)}")
