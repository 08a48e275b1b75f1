"""Stage `generate-demo`: a synthetic demo dataset (`hoi_pipeline.datasets.synthetic`).

`SyntheticConfig.family` picks the scenes and the layout. Paths relative to `out_dir`
(`demo_outputs` lists them for given settings, without generating anything):

family hicodet (HOI classes, HICO-DET json with verbs_ing):
  images/train/*.png, images/test/*.png
  detections_train.json, detections_test.json    the detections-import format (precomputed backend)
  train.json, test.json

family vcoco (actions with roles; out_dir is laid out like the official release's `data` folder,
written by `datasets.vcoco_official.write_vcoco_official`; parts train, val when num_val > 0, test):
  images/<part>/*.png
  detections_<part>.json                         COCO object names
  instances_vcoco_all_2014.json                  the COCO instances of every part
  splits/vcoco_<part>.ids, splits/vcoco_all.ids
  vcoco/vcoco_<part>.json

The outputs are one set (`hoi_pipeline.artifacts.atomic_outputs`): written into a staging folder,
then renamed into place together at the end (images first, annotation files last; an old folder is
replaced whole), so an interrupted run leaves no partial dataset behind and two runs never leave a mix.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from hoi_pipeline.artifacts import atomic_outputs
from hoi_pipeline.config import SyntheticConfig
from hoi_pipeline.datasets.detections_json import write_detections_json
from hoi_pipeline.datasets.hicodet import save_hicodet_json
from hoi_pipeline.datasets.synthetic import hicodet_scenes, vcoco_scenes
from hoi_pipeline.datasets.synthetic.detector import DetectorNoise
from hoi_pipeline.datasets.vcoco_official import COCO_FILE, write_vcoco_official

log = logging.getLogger(__name__)

IMAGES = "images"


def _parts(settings: SyntheticConfig) -> list[str]:
    return ["train", *(["val"] if settings.num_val else []), "test"]


def demo_outputs(settings: SyntheticConfig) -> list[str]:
    """What `run` writes, relative to its `out_dir`: the image folder first, then files in the order they land."""
    parts = _parts(settings)
    detections = [f"detections_{part}.json" for part in parts]
    if settings.family == "hicodet":
        return [IMAGES, *detections, *(f"{part}.json" for part in parts)]
    official = [COCO_FILE, *(f"splits/vcoco_{part}.ids" for part in parts), "splits/vcoco_all.ids",
                *(f"vcoco/vcoco_{part}.json" for part in parts)]
    return [IMAGES, *detections, *official]


def run(*, settings: SyntheticConfig, out_dir: Path) -> list[Path]:
    """Generate the dataset into `out_dir`; returns the paths written (`demo_outputs`, under `out_dir`)."""
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
    write = WRITERS[settings.family]
    outputs = demo_outputs(settings)
    entries = list(dict.fromkeys(path.split("/")[0] for path in outputs))  # top-level files and folders, in order
    staging = Path(tempfile.mkdtemp(prefix=".generate_demo.", suffix=".tmp", dir=out_dir))
    try:
        with tqdm(total=settings.num_train + settings.num_val + settings.num_test, unit="img",
                  desc=f"generate-demo ({settings.family})", disable=not sys.stderr.isatty()) as bar:
            summary = write(settings, noise, staging, bar.update)
        folders = [out_dir / name for name in entries if (staging / name).is_dir()]
        with atomic_outputs(*(out_dir / name for name in entries), folders=folders) as temps:
            for name, temp in zip(entries, temps):
                os.replace(staging / name, temp)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("wrote %s (%s family): %s in %.1f s", out_dir, settings.family, summary, time.perf_counter() - start)
    return [out_dir / name for name in outputs]


def _write_hicodet(settings: SyntheticConfig, noise: DetectorNoise, root: Path, progress: Callable[[int], None]) -> str:
    splits = hicodet_scenes.generate_dataset(seed=settings.seed, num_train=settings.num_train,
                                             num_test=settings.num_test, image_size=settings.image_size,
                                             noise=noise, progress=progress)
    for name, split in splits.items():
        _save_images(root / IMAGES / name, list(zip(split.annotations.filenames, split.images)))
        save_hicodet_json(split.annotations, root / f"{name}.json")
        write_detections_json(root / f"detections_{name}.json", split.detections, split.annotations.vocabulary.objects)
    vocabulary = splits["train"].annotations.vocabulary
    return (
        f"{len(splits['train'].images)} train / {len(splits['test'].images)} test images, "
        f"{vocabulary.num_classes} HOI classes ({len(vocabulary.rare)} rare), "
        f"{sum(a.num_pairs for a in splits['train'].annotations.images)} / "
        f"{sum(a.num_pairs for a in splits['test'].annotations.images)} pairs"
    )


def _write_vcoco(settings: SyntheticConfig, noise: DetectorNoise, root: Path, progress: Callable[[int], None]) -> str:
    splits = vcoco_scenes.generate_vcoco_dataset(seed=settings.seed, num_train=settings.num_train,
                                                 num_val=settings.num_val, num_test=settings.num_test,
                                                 image_size=settings.image_size, noise=noise, progress=progress)
    categories = vcoco_scenes.categories()
    for name, split in splits.items():
        _save_images(root / IMAGES / name, [(s.record.file_name, s.image) for s in split.scenes])
        write_detections_json(root / f"detections_{name}.json", split.detections, categories)
    write_vcoco_official(root, actions=vcoco_scenes.ACTIONS, categories=categories,
                         parts={name: [s.record for s in split.scenes] for name, split in splits.items()})
    persons = {name: sum(len(s.record.persons) for s in split.scenes) for name, split in splits.items()}
    return ", ".join(f"{name}: {len(split.scenes)} images, {persons[name]} persons" for name, split in splits.items())


WRITERS = {"hicodet": _write_hicodet, "vcoco": _write_vcoco}


def _save_images(folder: Path, images: list) -> None:
    folder.mkdir(parents=True)
    for filename, image in images:
        image.save(folder / filename, compress_level=3)
