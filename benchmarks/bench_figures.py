"""Time the figures stage on the whole HICO-DET test set (every figure, the gallery and provenance).

Inputs are made as `bench_evaluate.py` makes its detections (jittered, thinned ground truth plus false
positives, `--per-image` tuples per image, here with random score factors), evaluated by the evaluate
stage; a tiny random-init model stands in for the checkpoint (only its info is read; a real RN50 /
RN101 checkpoint adds the time to read its file), the paper's 60K-iteration schedule for the loss
history, and the test annotation for the training annotation (HICO-DET's train json is about four times
larger: its load time is printed so it can be scaled). Every test image is a link to one grey 640x480
picture, since the figures stage only reads the few it draws.

    python benchmarks/bench_figures.py [--annotations FILE] [--per-image 100]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from bench_evaluate import DEFAULT_ANNOTATIONS, build_detections
from hoi_pipeline.artifacts import write_detections, write_proposals
from hoi_pipeline.checkpoints import TrainedModelInfo, save_trained_model
from hoi_pipeline.config import ClipConfig, EvalConfig, LossConfig, ModelConfig, TrainConfig
from hoi_pipeline.datasets import load_annotations
from hoi_pipeline.datasets.hoi_images import Preprocessing
from hoi_pipeline.modeling.clip_loading import clip_mean_std
from hoi_pipeline.modeling.model import build_model
from hoi_pipeline.scoring import FACTOR_NAMES
from hoi_pipeline.stages import evaluate, figures
from hoi_pipeline.structures import Proposals, Vocabulary

log = logging.getLogger("bench_figures")


def write_tiny_model(path: Path, vocabulary: Vocabulary) -> None:
    clip, model_config = ClipConfig(model="hoi-tiny-rn", pretrained=None), ModelConfig(hidden_dim=32, spatial_dim=16)
    model = build_model(clip=clip, model=model_config, vocabulary=vocabulary,
                        bank_embeddings=torch.randn(vocabulary.num_classes, 64))  # fmt: skip
    mean, std = clip_mean_std()
    info = TrainedModelInfo(vocabulary=vocabulary, clip=clip, model=model_config, loss=LossConfig(),
                            train=TrainConfig(), preprocessing=Preprocessing(64, mean, std), bank={},
                            iterations=60000)  # fmt: skip
    save_trained_model(path, model, info)


def loss_history(iterations: int, rng: np.random.Generator) -> pd.DataFrame:
    step = np.arange(1, iterations + 1)
    decay = 1.0 / np.sqrt(step / 100 + 1)
    losses = {name: decay * 0.7 * rng.lognormal(0, 0.3, iterations) for name in ("loss_image", "loss_pair")}
    losses["loss_relatedness"] = np.where(step > 1000, 0.6 * decay, 0.0)
    total = losses["loss_image"] + losses["loss_pair"] + losses["loss_relatedness"]
    factor = np.where(step > 24000, 0.01, np.where(step > 12000, 0.1, 1.0))
    return pd.DataFrame({"iteration": step, **losses, "loss_total": total, "lr_backbone": 1e-5 * factor,
                         "lr_head": 1e-4 * factor})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", type=Path, default=DEFAULT_ANNOTATIONS)
    parser.add_argument("--per-image", type=int, default=100, help="detection tuples per image")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=None, help="keep the inputs and figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rng = np.random.default_rng(args.seed)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench_figures_"))
    work.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    annotations = load_annotations(args.annotations)
    log.info("%s: %d images, loaded in %.2f s", args.annotations, len(annotations.images), time.perf_counter() - start)
    detections = [
        dataclasses.replace(d, factors={f: rng.uniform(0, 1, len(d)).astype(np.float32) for f in FACTOR_NAMES})
        for d in build_detections(annotations, args.per_image, 0.8, args.seed)
    ]
    write_detections(work / "detections_test.h5", detections, {"stage": "infer", "checkpoint_iterations": 60000})
    write_proposals(work / "proposals.h5", [
        Proposals(d.filename, np.r_[d.boxes_h[:15], d.boxes_o[:15]], np.ones(2 * len(d.boxes_h[:15])),
                  np.r_[np.zeros(len(d.boxes_h[:15]), int), d.object[:15]]) for d in detections
    ], {"stage": "detect"})  # fmt: skip
    write_tiny_model(work / "model.pt", annotations.vocabulary)
    loss_history(60000, rng).to_csv(work / "losses.csv", index=False)
    images = work / "images"
    images.mkdir(exist_ok=True)
    Image.new("RGB", (640, 480), (128, 128, 128)).save(work / "grey.jpg")
    for name in annotations.filenames:
        link = images / name
        if not link.exists():
            link.symlink_to(work / "grey.jpg")
    evaluate.run(eval_config=EvalConfig(), annotations=args.annotations, split="test",
                 detections=work / "detections_test.h5", out_dir=work)  # fmt: skip
    log.info("inputs ready: %d detections", sum(len(d) for d in detections))

    start = time.perf_counter()
    figures.run(
        eval_config=EvalConfig(), run_name="bench", annotations=args.annotations, split="test",
        train_annotations=args.annotations, train_split="train", images=images,
        detections=work / "detections_test.h5", proposals=work / "proposals.h5", checkpoint=work / "model.pt",
        losses=work / "losses.csv", metrics=work / "metrics.csv", per_class=work / "per_class_ap.csv",
        out_dir=work / "figures", paper_backbone="RN50",
    )  # fmt: skip
    log.info("figures stage, whole HICO-DET test set: %.1f s (in process, imports excluded)",
             time.perf_counter() - start)  # fmt: skip
    if args.work_dir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
