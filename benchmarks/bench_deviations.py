"""Demo mAP of the paper's literal reading against each of our alternatives (README "Deviations from the paper").

Trains the demo run (config.yaml `runs.demo`, synthetic scenes, tiny random-init CLIP) once per
variant and evaluates it on the demo test split with the HICO-DET protocol (Default setting).
A variant is a name and config overrides of the demo run (`VARIANTS`); the detector overrides make
their own proposals. Every variant sees the same data, CLIP weights, bank and seeds, so the
differences come from the switch alone (and from training noise: compare with `--seeds 0 1`).

    python benchmarks/bench_deviations.py --variants paper scaled_cosine_global --seeds 0 1
    python benchmarks/bench_deviations.py --workdir /tmp/deviations   # every variant, data kept

Prints one line per variant and seed: full / rare / non-rare mAP (%), and how often the pair
with the highest relatedness score s_b matches an annotated pair (the SRC's job), with chance.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

from hoi_pipeline.config import ProjectConfig, RunConfig, load_project_config, to_dict, with_overrides
from hoi_pipeline.evaluation.relatedness import relatedness_pick_rate

ROOT = Path(__file__).resolve().parents[1]

# name -> overrides of the demo run; "paper" is the defaults (the paper's literal reading)
VARIANTS: dict[str, dict] = {
    "paper": {},
    "scaled_cosine_global": {"model": {"global_logits": "scaled_cosine"}},
    "scaled_cosine_ktn": {"model": {"ktn_logits": "scaled_cosine"}},
    "ktn_meta_projection_always": {"model": {"ktn_meta_projection": "always"}},
    "relatedness_mean": {"loss": {"relatedness_reduction": "mean"}},
    "skip_images_without_pairs": {"loss": {"images_without_pairs": "skip"}},
    "upt_proposals": {"detector": {"human_score_threshold": 0.2, "object_score_threshold": 0.2, "min_humans": 3,
                                   "max_humans": 15, "min_objects": 3, "max_objects": 15}},
    # the demo's v_p (128) and bank (64) differ in width, so P_m exists either way: compare at equal widths
    "equal_widths": {"model": {"hidden_dim": 64}},
    "equal_widths_meta_projection_always": {"model": {"hidden_dim": 64, "ktn_meta_projection": "always"}},
    # training additions the paper does not state, all off (BatchNorm statistics trained, every pair)
    "no_training_additions": {"model": {"freeze_batchnorm": False},
                              "train": {"flip": False, "grad_clip": 0.0, "weight_decay": 0.0, "max_pairs": 10000}},
    "exp6": {"ablation": "exp6"},
    "exp6_fk": {"ablation": "exp6", "model": {"fk_without_ktn": True}},
    "before_issue_11": {"model": {"global_logits": "scaled_cosine", "ktn_logits": "scaled_cosine",
                                  "ktn_meta_projection": "always", "fk_without_ktn": True},
                        "loss": {"relatedness_reduction": "mean", "images_without_pairs": "skip"},
                        "detector": {"human_score_threshold": 0.2, "object_score_threshold": 0.2, "min_humans": 3,
                                     "max_humans": 15, "min_objects": 3, "max_objects": 15}},
}  # fmt: skip


def variant_run(
    project: ProjectConfig, overrides: dict, seed: int, iterations: int | None = None
) -> tuple[RunConfig, dict]:
    """The demo run with a variant's overrides and seed (and fewer iterations), and its detector overrides."""
    from hoi_pipeline.ablations import ABLATIONS

    overrides = dict(overrides)
    run = project.run("demo")
    if "ablation" in overrides:
        run = with_overrides(run, dict(ABLATIONS[overrides.pop("ablation")]))
    detector = overrides.pop("detector", {})
    train = {**overrides.get("train", {}), "seed": seed}
    if iterations is not None:  # a quick check of the script: the schedule cut short
        train.update(iterations=iterations, lr_milestones=[m for m in run.train.lr_milestones if m < iterations])
    run = with_overrides(run, {**overrides, "train": train})
    return run, detector


def prepare_data(project: ProjectConfig, workdir: Path, detector_overrides: dict, miss_rate: float | None) -> Path:
    """Demo scenes, CLIP weights and bank (once), and the proposals of a detector setting (once each)."""
    from hoi_pipeline.stages import detect, embed_prompts, generate_demo, init_clip

    run = project.run("demo")
    data = workdir / "data"
    synthetic = project.datasets[run.dataset].synthetic
    if miss_rate is not None:
        synthetic = dataclasses.replace(synthetic, detector_miss_rate=miss_rate)
    if not (data / "train.json").is_file():
        generate_demo.run(settings=synthetic, out_dir=data)
        init_clip.run(model_name=run.clip.model, seed=0, out=workdir / "clip.pt")
        clip = dataclasses.replace(run.clip, pretrained=str(workdir / "clip.pt"))
        embed_prompts.run(clip=clip, annotations=data / "train.json", split="train", out=data / "bank.h5")
    detector = with_overrides(project.detectors[run.detector], detector_overrides)
    key = json.dumps(to_dict(detector), sort_keys=True)
    folder = data / f"proposals_{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    if not (folder / "test.h5").is_file():
        for split in ("train", "test"):
            detect.run(detector=detector, annotations=data / f"{split}.json", split=split,
                       images=data / "images" / split, detections=data / f"detections_{split}.json",
                       out=folder / f"{split}.h5")  # fmt: skip
    return folder


def train_and_evaluate(run: RunConfig, workdir: Path, proposals: Path, out: Path) -> dict:
    from hoi_pipeline.checkpoints import load_trained_model
    from hoi_pipeline.datasets import load_annotations
    from hoi_pipeline.datasets.hoi_images import HOIImageDataset
    from hoi_pipeline.evaluation.detections import from_hoi_detections
    from hoi_pipeline.evaluation.hicodet import evaluate_hicodet
    from hoi_pipeline.stages import train as train_stage
    from hoi_pipeline.stages.infer import infer_dataset

    data = workdir / "data"
    clip = dataclasses.replace(run.clip, pretrained=str(workdir / "clip.pt"))
    started = time.perf_counter()
    train_stage.run(clip=clip, model=run.model, loss=run.loss, train=run.train, annotations=data / "train.json",
                    split="train", images=data / "images" / "train", proposals=proposals / "train.h5",
                    bank=data / "bank.h5", out_dir=out)  # fmt: skip
    seconds = time.perf_counter() - started
    test = load_annotations(data / "test.json", "test")
    model, info = load_trained_model(out / "model.pt")
    dataset = HOIImageDataset.from_split(test, images=data / "images" / "test", proposals=proposals / "test.h5",
                                         preprocessing=info.preprocessing)  # fmt: skip
    detections = infer_dataset(model, dataset, hoi_lookup=torch.from_numpy(test.vocabulary.hoi_lookup()),
                               infer=run.infer, device=torch.device("cpu"))  # fmt: skip
    summary = evaluate_hicodet(test, from_hoi_detections(test, detections), settings=("default",)).summary()[0]
    pick, chance = relatedness_pick_rate(model, dataset, test)
    return {"full": summary.full, "rare": summary.rare, "non_rare": summary.non_rare, "pick": pick,
            "chance": chance, "train_s": seconds}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="train.seed values")
    parser.add_argument("--workdir", type=Path, default=None, help="keep data and runs here (default: a temp dir)")
    parser.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    parser.add_argument("--miss-rate", type=float, default=None, help="demo detector miss rate (more images "
                        "without a human-object pair)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--iterations", type=int, default=None, help="train.iterations (default: the demo's 300)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    project = load_project_config(args.config)
    with tempfile.TemporaryDirectory() as temporary:
        workdir = args.workdir or Path(temporary)
        for name in args.variants:
            for seed in args.seeds:
                run, detector = variant_run(project, VARIANTS[name], seed, args.iterations)
                proposals = prepare_data(project, workdir, detector, args.miss_rate)
                result = train_and_evaluate(run, workdir, proposals, workdir / "runs" / f"{name}_seed{seed}")
                print(f"variant={name} seed={seed} " + " ".join(
                    f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
