"""Stage `generate-demo`: the synthetic demo dataset (`hoi_pipeline.datasets.synthetic`).

Writes into `out_dir` (the config's demo dataset paths):
  train.json, test.json                       HICO-DET json layout (with verbs_ing)
  images/train/*.png, images/test/*.png
  detections_train.json, detections_test.json the detections-import format (precomputed backend)

Everything is written into a temporary folder inside `out_dir` and moved into place at the end
(images first, annotation files last), so an interrupted run leaves no partial dataset behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from hoi_pipeline.config import SyntheticConfig
from hoi_pipeline.datasets.detections_json import write_detections_json
from hoi_pipeline.datasets.hicodet import save_hicodet_json
from hoi_pipeline.datasets.synthetic import DetectorNoise, generate_dataset

log = logging.getLogger(__name__)

SPLITS = ("train", "test")


def run(*, settings: SyntheticConfig, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    noise = DetectorNoise(
        miss_rate=settings.detector_miss_rate,
        box_jitter=settings.detector_box_jitter,
        false_positives=settings.detector_false_positives,
        confusion_rate=settings.detector_confusion_rate,
        duplicate_rate=settings.detector_duplicate_rate,
    )
    with tqdm(total=settings.num_train + settings.num_test, unit="img", desc="generate-demo",
              disable=not sys.stderr.isatty()) as bar:
        splits = generate_dataset(
            seed=settings.seed,
            num_train=settings.num_train,
            num_test=settings.num_test,
            image_size=settings.image_size,
            noise=noise,
            progress=bar.update,
        )
    staging = Path(tempfile.mkdtemp(prefix=".generate_demo.", dir=out_dir))
    try:
        for name, split in splits.items():
            folder = staging / "images" / name
            folder.mkdir(parents=True)
            for annotation, image in zip(split.annotations.images, split.images):
                image.save(folder / annotation.filename, compress_level=3)
            save_hicodet_json(split.annotations, staging / f"{name}.json")
            write_detections_json(
                staging / f"detections_{name}.json", split.detections, split.annotations.vocabulary.objects
            )
        _replace(staging / "images", out_dir / "images", staging)
        for name in SPLITS:
            os.replace(staging / f"detections_{name}.json", out_dir / f"detections_{name}.json")
        for name in SPLITS:
            os.replace(staging / f"{name}.json", out_dir / f"{name}.json")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    vocabulary = splits["train"].annotations.vocabulary
    log.info(
        "wrote %s: %d train / %d test images, %d HOI classes (%d rare), %d / %d pairs in %.1f s",
        out_dir,
        len(splits["train"].images),
        len(splits["test"].images),
        vocabulary.num_classes,
        len(vocabulary.rare),
        sum(a.num_pairs for a in splits["train"].annotations.images),
        sum(a.num_pairs for a in splits["test"].annotations.images),
        time.perf_counter() - start,
    )


def _replace(source: Path, target: Path, staging: Path) -> None:
    """Move folder `source` onto `target`; an old `target` goes into the staging folder (deleted later)."""
    if target.exists():
        os.replace(target, staging / "previous_images")
    os.replace(source, target)
