"""Time the evaluate stage on the whole HICO-DET test set, CLI start included.

Builds detections from the real test annotation (default `../shared/hicodet/instances_test2015.json`
beside the repository): each ground-truth pair is kept with probability `--keep`, its boxes jittered
by a few percent of their size, and every image is filled up to `--per-image` tuples with false
positives (random boxes, half of them on HOI classes of the image, half on any class). The detections
are written in the inference stage's HDF5 layout, then `python -m hoi_pipeline evaluate` runs on them
pinned to one core (taskset, when available) and the wall time and mAP are reported.

    python benchmarks/bench_evaluate.py [--annotations FILE] [--per-image 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_common import DEFAULT_HICODET_TEST, Measurement, hicodet_test_annotations
from hoi_pipeline.artifacts import write_detections
from hoi_pipeline.datasets import load_annotations
from hoi_pipeline.structures import HOIAnnotations, HOIDetections

log = logging.getLogger("bench_evaluate")

def jitter(boxes: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Move each corner by a normal offset of `scale` times the box's width/height."""
    size = np.repeat(boxes[:, 2:] - boxes[:, :2], 2, axis=0).reshape(-1, 4)[:, [0, 2, 1, 3]]
    return (boxes + rng.normal(0.0, scale, boxes.shape) * size).astype(np.float32)


def random_boxes(n: int, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    xy = rng.uniform(0, 1, (n, 4)) * np.array([width, height, width, height])
    return np.concatenate([np.minimum(xy[:, :2], xy[:, 2:]), np.maximum(xy[:, :2], xy[:, 2:]) + 1], 1).astype(
        np.float32
    )


def build_detections(annotations: HOIAnnotations, per_image: int, keep: float, seed: int) -> list[HOIDetections]:
    """Jittered, thinned ground truth plus false positives: `per_image` tuples per image."""
    rng = np.random.default_rng(seed)
    vocab = annotations.vocabulary
    out = []
    for image in annotations.images:
        kept = rng.uniform(size=image.num_pairs) < keep
        hoi = image.hoi[kept][:per_image]
        boxes_h = jitter(image.boxes_h[kept][:per_image], 0.04, rng)
        boxes_o = jitter(image.boxes_o[kept][:per_image], 0.04, rng)
        score = rng.uniform(0.2, 1.0, len(hoi))
        n_fp = per_image - len(hoi)
        own = rng.uniform(size=n_fp) < 0.5
        fp_hoi = np.where(
            own & (image.num_pairs > 0),
            image.hoi[rng.integers(0, max(image.num_pairs, 1), n_fp)] if image.num_pairs else 0,
            rng.integers(0, vocab.num_classes, n_fp),
        )
        width, height = max(image.width, 2), max(image.height, 2)
        out.append(
            HOIDetections(
                filename=image.filename,
                boxes_h=np.concatenate([boxes_h, random_boxes(n_fp, width, height, rng)]),
                boxes_o=np.concatenate([boxes_o, random_boxes(n_fp, width, height, rng)]),
                hoi=np.concatenate([hoi, fp_hoi]),
                verb=vocab.hoi_classes[np.concatenate([hoi, fp_hoi]), 0],
                object=vocab.hoi_classes[np.concatenate([hoi, fp_hoi]), 1],
                score=np.concatenate([score, rng.uniform(0.0, 0.8, n_fp)]).astype(np.float32),
            )
        )
    return out


def time_cli(annotations: Path, detections: Path, out_dir: Path) -> float:
    """Wall seconds of `python -m hoi_pipeline evaluate` on one core, interpreter start included."""
    command = [sys.executable, "-m", "hoi_pipeline", "evaluate", "--annotations", str(annotations),
               "--detections", str(detections), "--out", str(out_dir)]  # fmt: skip
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"evaluate failed ({done.returncode}):\n{done.stderr}")
    return seconds


def measure_evaluate(
    *, annotations: Path | None = None, num_images: int | None = None, per_image: int = 100, keep: float = 0.8,
    seed: int = 0, repeat: int = 1,
) -> Measurement:
    """Best wall time of `repeat` evaluate CLI runs on one core over the HICO-DET test set (or its first
    `num_images` images; a HICO-DET-sized synthetic split when the annotation file is absent)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        annotation_file, source = hicodet_test_annotations(annotations, work, num_images)
        split = load_annotations(annotation_file)
        detections = build_detections(split, per_image, keep, seed)
        attrs = {"source": "benchmarks/bench_evaluate.py", "seed": seed}
        write_detections(work / "detections.h5", detections, attrs=attrs)
        times = [time_cli(annotation_file, work / "detections.h5", work / "results") for _ in range(repeat)]
    best = min(times)
    return Measurement(
        "evaluate", f"{source}, {per_image} tuples/image, both settings, CLI on one core (start included)",
        "cpu (1 core)", images_per_s=len(detections) / best, peak_mib=None,
        details={"seconds": round(best, 2)},
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", type=Path, default=DEFAULT_HICODET_TEST)
    parser.add_argument("--per-image", type=int, default=100, help="detection tuples per image")
    parser.add_argument("--keep", type=float, default=0.8, help="probability of keeping a ground-truth pair")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="timed CLI runs (the best and all are reported)")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep the detections and results here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench_evaluate_"))
    annotations = load_annotations(args.annotations)
    detections = build_detections(annotations, args.per_image, args.keep, args.seed)
    det_path = work / "detections.h5"
    write_detections(det_path, detections, attrs={"source": "benchmarks/bench_evaluate.py", "seed": args.seed})
    total = sum(len(d) for d in detections)
    log.info("%d images, %d detections (%d per image) -> %s", len(detections), total, args.per_image, det_path)

    times = [time_cli(args.annotations, det_path, work / "results") for _ in range(args.repeat)]
    log.info("evaluate CLI (both settings, one core, start included): best %.2f s, runs %s",
             min(times), ", ".join(f"{t:.2f}" for t in times))  # fmt: skip
    with open(work / "results" / "metrics.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            log.info("%-13s full %6.2f  rare %6.2f  non-rare %6.2f", row["setting"],
                     float(row["full"]), float(row["rare"]), float(row["non_rare"]))  # fmt: skip
    if args.work_dir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
