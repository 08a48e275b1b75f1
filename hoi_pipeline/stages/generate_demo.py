"""Stage `generate-demo`: the synthetic demo dataset (`hoi_pipeline.datasets.synthetic`).

Writes into `out_dir` (the config's demo dataset paths):
  train.json, test.json                       HICO-DET json layout (with verbs_ing)
  images/train/*.png, images/test/*.png
  detections_train.json, detections_test.json the detections-import format (precomputed backend)

The five outputs are one set (`hoi_pipeline.artifacts.atomic_outputs`): written under temporary
names and renamed into place together at the end (the old images folder is replaced whole), so an
interrupted run leaves no partial dataset behind and two runs never leave a mix.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from tqdm import tqdm

from hoi_pipeline.artifacts import atomic_outputs
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
    # renamed in this order: the annotation files, which name the images, come last
    names = ["images"] + [f"detections_{name}.json" for name in SPLITS] + [f"{name}.json" for name in SPLITS]
    with atomic_outputs(*(out_dir / name for name in names), folders=[out_dir / "images"]) as temps:
        temp = dict(zip(names, temps))
        for name, split in splits.items():
            folder = temp["images"] / name
            folder.mkdir(parents=True)
            for annotation, image in zip(split.annotations.images, split.images):
                image.save(folder / annotation.filename, compress_level=3)
            save_hicodet_json(split.annotations, temp[f"{name}.json"])
            write_detections_json(
                temp[f"detections_{name}.json"], split.detections, split.annotations.vocabulary.objects
            )
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
