"""Stage `detect`: human and object proposals of a split -> one HDF5 file.

Runs a detector (torchvision / detectron2) over the split's images, or imports precomputed
detections, post-processes them (thresholds, per-class NMS, per-image limits) and writes the flat
offsets layout of `hoi_pipeline.artifacts.write_proposals` under a temporary name, renamed at the
end. Every image of the annotation file gets an entry, in its order; an image without detections
gets an empty one. With `detector.on_bad_image: skip` an unreadable image gets an empty entry too
and is named in the file's `skipped_images` dataset, which training and inference read to leave
out exactly these images (`hoi_pipeline.datasets.hoi_images`).
With `shard`, only that shard's block of the images (`hoi_pipeline.shards`); `merge_shards`
joins the blocks.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hoi_pipeline.artifacts import refuse_overwriting_inputs, write_proposals
from hoi_pipeline.config import DetectorConfig
from hoi_pipeline.datasets import load_annotations
from hoi_pipeline.detection.postprocess import PostprocessSettings
from hoi_pipeline.shards import Shard, recorded_config
from hoi_pipeline.structures import Proposals

log = logging.getLogger(__name__)

def run(
    *,
    detector: DetectorConfig,
    annotations: Path,
    split: str,
    images: Path,
    detections: Path | None,
    out: Path,
    shard: Shard | None = None,
) -> None:
    refuse_overwriting_inputs([out], [annotations, detections])
    data = load_annotations(annotations, split)
    objects = data.vocabulary.objects
    filenames = data.filenames
    if len(set(filenames)) != len(filenames):
        raise ValueError(f"{annotations}: the split lists some image filenames twice")
    if shard is not None:
        filenames = shard.select(list(filenames))
        log.info("shard %s: images %d to %d of %d", shard, *shard.bounds(len(data.filenames)), len(data.filenames))
    skipped: list[str] = []
    if detector.backend == "precomputed":
        from hoi_pipeline.detection.precomputed import import_precomputed

        if detections is None:
            raise ValueError("detector.backend 'precomputed' needs the detections json (--detections FILE)")
        imported = import_precomputed(
            detections, data.filenames, objects, settings=PostprocessSettings.from_config(detector),
            allow_missing=detector.allow_missing_images,
        )  # the whole split, so that other shards' images are not reported as strangers to it
        proposals = imported.proposals if shard is None else shard.select(imported.proposals)
        identity = {"backend": "precomputed", "model": "", "weights": imported.weights}
    else:
        from hoi_pipeline.detection import build_proposal_extractor
        from hoi_pipeline.detection.extractor import extract_split

        if detections is not None:
            log.warning("--detections %s is ignored by the %s backend", detections, detector.backend)
        if not Path(images).is_dir():
            raise FileNotFoundError(f"{images}: image folder not found")
        extractor = build_proposal_extractor(detector, objects, detector.device)
        proposals, skipped = extract_split(
            extractor,
            images,
            filenames,
            batch_size=detector.batch_size,
            num_workers=detector.num_workers,
            on_bad_image=detector.on_bad_image,
        )
        identity = extractor.identity
    if skipped:
        log.warning("%d unreadable images were skipped: %s", len(skipped), ", ".join(skipped))
    attrs = {
        "stage": "detect",
        **identity,
        "config": recorded_config(detector),
        "objects": list(objects),
        "person": data.vocabulary.person,
        "split": split,
        "annotations": str(annotations),
        **(shard.attrs() if shard is not None else {}),
    }
    write_proposals(out, proposals, attrs, skipped=skipped)
    log_summary(out, proposals, data.vocabulary.person)


def log_summary(out: Path, proposals: list[Proposals], person: int) -> None:
    humans = np.array([int((p.labels == person).sum()) for p in proposals])
    total = np.array([len(p) for p in proposals])
    log.info(
        "%s: %d images, %d proposals (%.1f humans and %.1f objects per image), %d images with none",
        out, len(proposals), total.sum(), humans.mean() if len(humans) else 0.0,
        (total - humans).mean() if len(total) else 0.0, int((total == 0).sum()),
    )  # fmt: skip
