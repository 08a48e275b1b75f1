"""Stage `evaluate`: detections HDF5 + test annotation -> metrics.csv, per_class_ap.csv, table.md.

A HICO-DET annotation (json or anno_bbox.mat) gives mAP in the Default and Known Object settings;
a V-COCO json gives role AP in scenarios 1 and 2. Detections are read in bulk from the inference
stage's HDF5 (`DetectionsFile.read_all`); images of the annotation missing from the file have no
detections, an image the annotation lacks is an error. Imports neither torch nor pandas, so the
whole HICO-DET test set evaluates in a few seconds.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from hoi_pipeline.artifacts import DETECTION_DTYPES, DetectionsFile, refuse_overwriting_inputs
from hoi_pipeline.config import EvalConfig
from hoi_pipeline.datasets import load_annotations
from hoi_pipeline.evaluation import detections as flat
from hoi_pipeline.evaluation.hicodet import evaluate_hicodet
from hoi_pipeline.evaluation.tables import OUTPUT_NAMES, write_hicodet_tables, write_vcoco_tables
from hoi_pipeline.evaluation.vcoco import evaluate_vcoco, vcoco_ground_truth
from hoi_pipeline.structures import HOIAnnotations

log = logging.getLogger(__name__)


def read_detections(path: Path, annotations: HOIAnnotations) -> flat.DetectionArrays:
    """All detections of the file as flat arrays in the annotation's image numbering."""
    reader = DetectionsFile(path)
    try:
        columns = reader.read_all(tuple(DETECTION_DTYPES))
        skipped = reader.skipped_images
    finally:
        reader.close()
    if skipped:
        log.warning("%s: %d images were skipped as unreadable (detector.on_bad_image: skip); their ground truth "
                    "counts as missed (first: %s)", path, len(skipped), skipped[0])  # fmt: skip
    return flat.from_columns(annotations, reader.filenames, reader.offsets, columns, source=str(path))


def run(*, eval_config: EvalConfig, annotations: Path, split: str, detections: Path, out_dir: Path) -> None:
    start = time.perf_counter()
    refuse_overwriting_inputs([Path(out_dir) / name for name in OUTPUT_NAMES], [annotations, detections])
    data = load_annotations(annotations, split)
    arrays = read_detections(detections, data)
    with_detections = int(np.count_nonzero(np.bincount(arrays.image, minlength=len(data.images))))
    log.info(
        "%s: %d detections on %d of the %d annotated images (%.2f s to load)",
        detections, len(arrays), with_detections, len(data.images), time.perf_counter() - start,
    )  # fmt: skip
    title = f"{Path(detections).name} on {Path(annotations).name}"
    if data.benchmark == "vcoco":
        result = evaluate_vcoco(
            vcoco_ground_truth(data), arrays, scenarios=eval_config.scenarios, iou_threshold=eval_config.iou_threshold
        )
        write_vcoco_tables(result, out_dir, title=f"V-COCO role AP: {title}")
        for s in result.scenarios:
            log.info("V-COCO %s: role mAP %.2f over %d action-role pairs", s.setting, 100 * s.mean(), s.evaluated.sum())
    else:
        result = evaluate_hicodet(data, arrays, settings=eval_config.settings, iou_threshold=eval_config.iou_threshold)
        write_hicodet_tables(result, out_dir, title=f"HICO-DET mAP: {title}")
        for m in result.summary():
            log.info(
                "HICO-DET %s: full %.2f, rare %.2f, non-rare %.2f (%d classes)",
                m.setting, m.full, m.rare, m.non_rare, m.num_classes,
            )  # fmt: skip
    log.info("wrote %s/{metrics.csv,per_class_ap.csv,table.md} in %.2f s", out_dir, time.perf_counter() - start)
