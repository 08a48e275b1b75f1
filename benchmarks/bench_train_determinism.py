"""Do separate trainings with the same settings give the same weights, on a busy CPU too?

Runs the train stage (`python -m hoi_pipeline train`, each in its own process) several times with
the demo run's settings on the synthetic demo scenes, optionally while K busy-looping processes of
its own load the CPU (as other jobs on a shared machine do), and compares every run's model.pt and
losses.csv with the first run's. The demo data (scenes, imported detections, random-init CLIP,
knowledge bank) is made once in --work.

    python benchmarks/bench_train_determinism.py --runs 2 --iterations 15 --busy 2

Prints, per run: seconds per iteration (wall), how many of the model's tensors differ from run 1,
and the first iteration whose losses.csv row differs.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import torch

from hoi_pipeline.config import load_project_config, to_dict

CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"


def busy_loop() -> None:
    while True:
        pass


def prepare_demo(work: Path) -> dict[str, Path]:
    """The demo run's training inputs (made once): scenes, proposals, random-init CLIP, knowledge bank."""
    from hoi_pipeline.stages import detect, embed_prompts, generate_demo, init_clip

    project = load_project_config(CONFIG)
    run = project.run("demo")
    data = work / "data"
    files = {"annotations": data / "train.json", "images": data / "images" / "train",
             "proposals": data / "proposals_train.h5", "bank": data / "bank.h5"}  # fmt: skip
    if all(path.exists() for path in files.values()):
        return files
    generate_demo.run(settings=project.datasets[run.dataset].synthetic, out_dir=data)
    detect.run(detector=project.detectors[run.detector], annotations=files["annotations"], split="train",
               images=files["images"], detections=data / "detections_train.json", out=files["proposals"])  # fmt: skip
    init_clip.run(model_name=run.clip.model, seed=0, out=work / "clip.pt")
    clip = dataclasses.replace(run.clip, pretrained=str(work / "clip.pt"))
    embed_prompts.run(clip=clip, annotations=files["annotations"], split="train", out=files["bank"])
    return files


def losses(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))[1:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--busy", type=int, default=0, help="busy-looping processes loading the CPU")
    parser.add_argument("--work", type=Path, default=Path("results/bench_train_determinism"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    files = prepare_demo(args.work)
    run = load_project_config(CONFIG).run("demo")
    clip = dataclasses.replace(run.clip, pretrained=str(args.work / "clip.pt"))
    train = dataclasses.replace(run.train, iterations=args.iterations, device="cpu")
    sections = {"clip": to_dict(clip), "model": to_dict(run.model), "loss": to_dict(run.loss), "train": to_dict(train)}
    busy = [multiprocessing.Process(target=busy_loop, daemon=True) for _ in range(args.busy)]
    for process in busy:
        process.start()
    results = []
    try:
        for i in range(args.runs):
            out = args.work / f"run{i + 1}"
            for stale in (out / "model.pt", out / "checkpoints" / "last.pt"):
                stale.unlink(missing_ok=True)
            command = [sys.executable, "-m", "hoi_pipeline", "train", "--config-json", json.dumps(sections),
                       "--out-dir", str(out), *(f"--{name}={path}" for name, path in files.items())]  # fmt: skip
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            results.append((out, (time.perf_counter() - start) / args.iterations))
    finally:
        for process in busy:
            process.terminate()
            process.join()

    reference = torch.load(results[0][0] / "model.pt", weights_only=True)["state_dict"]
    for i, (out, seconds) in enumerate(results):
        state = torch.load(out / "model.pt", weights_only=True)["state_dict"]
        differ = sum(not torch.equal(reference[key], state[key]) for key in reference)
        rows = zip(losses(results[0][0] / "losses.csv"), losses(out / "losses.csv"))
        first = next((a[0] for a, b in rows if a != b), "none")
        print(f"run {i + 1}: {seconds:.2f} s/iteration (wall, incl. start-up); {differ} of {len(reference)} tensors "
              f"differ from run 1; first differing losses.csv iteration: {first} ({args.busy} busy processes, "
              f"torch {torch.__version__})", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
