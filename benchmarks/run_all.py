"""Every stage's benchmark on one device, as one Markdown table (images/s, s/iteration, peak memory).

    python benchmarks/run_all.py --device cpu --quick      # a few minutes on 2 cores: tiny models
    python benchmarks/run_all.py --device cpu              # the paper's models on the CPU (long)
    python benchmarks/run_all.py --device cuda --out DIR   # the paper's models on one GPU, about 5 minutes

Each measurement runs in a fresh Python process (`--case`), so that its peak memory is its own and
a failure (an error, a crash, out of memory, a time-out) becomes that row's error while the others
go on. The table goes to stdout and to `{out}/{device}[-quick].md` (default out:
benchmarks/results), the rows also to a `.json` beside it. All models are randomly initialised and
read from files through the stages' own loaders (no downloads); see each `bench_*.py`.

Rows: the input pipeline alone (decode + resize + normalise of 640 x 480 JPEGs, per core and
through DataLoader workers), detect (torchvision Faster R-CNN builders), embed (the CLIP text
tower on 600 prompts), train (one optimiser step at 224, 448 and 640 pixels), pairs (the pair
branch's RoI pooling, time and memory per 1,000 RoIs), infer (the stage's loop) and evaluate (the
HICO-DET test set, one core). A row's further figures are in its notes: the pairs rows' memory
saved for backward (total, and per 1,000 RoIs) is measured on every device (see bench_pairs.py).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

RESULT_MARKER = "RUN_ALL_RESULT "
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
STAGES = ("input", "detect", "embed", "train", "pairs", "infer", "evaluate")
# UPT / SCG's limits: the most proposals an image keeps (15 humans, 15 objects): 435 pairs, 256 after the cap
HUMANS, OBJECTS = 15, 15


@dataclass(frozen=True)
class Case:
    """One measurement: `module.function(**kwargs)` in a fresh process; it returns one or more rows."""

    stage: str
    module: str
    function: str
    kwargs: dict = field(default_factory=dict)
    timeout_s: float = 1800.0

    def describe(self) -> str:
        return ", ".join(f"{key} {value}" for key, value in self.kwargs.items())


def cases(device: str, quick: bool) -> list[Case]:
    """What to measure on `device`: tiny models (`quick`), or the paper's models."""
    if quick:
        return [
            Case("input", "bench_input", "measure_input_suite", {"device": device, "size": 640, "workers": [1],
                 "variants": ["pil", "torchvision"], "images": 32, "batch_size": 8}),
            Case("detect", "bench_detect", "measure_detect", {"model": "fasterrcnn_mobilenet_v3_large_320_fpn",
                 "device": device, "batch_size": 1, "images": 2, "num_workers": 0}),
            Case("embed", "bench_embed", "measure_embed", {"model": "hoi-tiny-rn", "device": device}),
            Case("train", "bench_train", "measure_train", {"model": ["hoi-tiny-rn"], "input_size": 224,
                 "batch_size": 2, "iterations": 1, "humans": 2, "objects": 4, "hidden_dim": 128, "spatial_dim": 32,
                 "device": device}),
            Case("pairs", "bench_pairs", "measure_pairs", {"variant": "projected", "model": "hoi-tiny-rn",
                 "device": device, "images": 1, "rois": 8}),
            Case("infer", "bench_infer", "measure_infer", {"clip_model": "hoi-tiny-rn", "device": device,
                 "batch_size": 2, "images": 4, "num_workers": 0}),
            Case("evaluate", "bench_evaluate", "measure_evaluate", {"num_images": 300}),
        ]  # fmt: skip
    if device == "cpu":
        from hoi_pipeline.detection.torchvision_backend import FASTER_RCNN_MODELS

        return [
            Case("input", "bench_input", "measure_input_suite", {"device": "cpu", "size": size, "workers": [1, 2],
                 "variants": ["pil", "torchvision"], "images": 512})  # enough that the workers' start is a small part
            for size in (640, 224)
        ] + [
            Case("detect", "bench_detect", "measure_detect", {"model": model, "device": "cpu", "batch_size": 2,
                 "images": 2, "num_workers": 1})
            for model in FASTER_RCNN_MODELS
        ] + [
            Case("embed", "bench_embed", "measure_embed", {"model": "RN50", "device": "cpu"}),
        ] + [
            Case("train", "bench_train", "measure_train", {"model": ["RN50"], "input_size": size, "batch_size": 4,
                 "iterations": 1, "humans": HUMANS, "objects": OBJECTS, "device": "cpu"})
            for size in (224, 448, 640)
        ] + [
            Case("pairs", "bench_pairs", "measure_pairs", {"variant": variant, "model": "RN50", "device": "cpu",
                 "images": 2, "rois": 64})  # both variants' smaller counts then take the same RoI-Align method
            for variant in ("projected", "grid")
        ] + [
            Case("infer", "bench_infer", "measure_infer", {"clip_model": "RN50", "device": "cpu", "batch_size": 4,
                 "images": 8, "humans": HUMANS, "objects": OBJECTS, "num_workers": 1, "image_size": 640}),
            Case("evaluate", "bench_evaluate", "measure_evaluate", {"repeat": 3}),
        ]  # fmt: skip
    # one GPU: about five minutes in all
    return [
        Case("input", "bench_input", "measure_input_suite", {"device": device, "size": 640, "workers": [8, 16],
             "variants": ["pil", "torchvision", "device"], "images": 1024, "batch_size": 96},
             timeout_s=150),
        Case("detect", "bench_detect", "measure_detect", {"model": "fasterrcnn_resnet50_fpn_v2", "device": device,
             "batch_size": 8, "images": 128, "num_workers": 8, "precision": "fp16"}, timeout_s=120),
        Case("embed", "bench_embed", "measure_embed", {"model": "RN50", "device": device}, timeout_s=90),
    ] + [
        Case("train", "bench_train", "measure_train_fitting", {"batch_sizes": [96, 48, 24], "model": ["RN50"],
             "input_size": size, "iterations": 3, "humans": HUMANS, "objects": OBJECTS, "device": device,
             "precision": "bf16"}, timeout_s=150)
        for size in (224, 448, 640)
    ] + [
        # the pair branch at training scale (96 images x 286 RoIs: 30 proposals + 256 pairs) and at a few RoIs
        Case("pairs", "bench_pairs", "measure_pairs", {"variant": variant, "model": "RN50", "device": device,
             "images": images, "rois": rois}, timeout_s=60)
        for images, rois in ((96, 286), (16, 8))
        for variant in ("projected", "grid")
    ] + [
        Case("infer", "bench_infer", "measure_infer", {"clip_model": "RN50", "device": device, "batch_size": 16,
             "images": 512, "humans": HUMANS, "objects": OBJECTS, "num_workers": 8, "image_size": 640}, timeout_s=120),
        Case("evaluate", "bench_evaluate", "measure_evaluate", {"repeat": 1}, timeout_s=90),
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------
# one case, in its own process


def run_case_here(case: dict) -> int:
    """The child's side: run the case and print its rows as one JSON line after `RESULT_MARKER`."""
    module = importlib.import_module(case["module"])
    result = getattr(module, case["function"])(**case["kwargs"])
    rows = result if isinstance(result, list) else [result]
    print(RESULT_MARKER + json.dumps([row.to_dict() for row in rows]), flush=True)
    return 0


def run_case(case: Case, timeout_s: float | None = None) -> list[dict]:
    """The parent's side: the case's rows, or one row holding its error (`timeout_s`: at most the case's)."""
    timeout_s = case.timeout_s if timeout_s is None else min(timeout_s, case.timeout_s)
    payload = json.dumps({"module": case.module, "function": case.function, "kwargs": case.kwargs})
    command = [sys.executable, str(Path(__file__).resolve()), "--case", payload]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        error = f"timed out after {timeout_s:.0f} s"
    else:
        for line in reversed(done.stdout.splitlines()):
            if line.startswith(RESULT_MARKER):
                return json.loads(line[len(RESULT_MARKER) :])
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        error = f"exit code {done.returncode}: {lines[-1] if lines else 'no output'}"
    seconds = time.perf_counter() - started
    return [error_row(case.stage, case.describe(), f"{error} ({seconds:.0f} s)")]


def error_row(stage: str, settings: str, error: str) -> dict:
    """A failed measurement, with the keys of `bench_common.Measurement.to_dict()`."""
    return {"stage": stage, "settings": settings, "device": "", "images_per_s": None, "s_per_iteration": None,
            "peak_mib": None, "unit": "images/s", "details": {}, "error": error}  # fmt: skip


# --------------------------------------------------------------------------------------------
# the table


def number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:.0f}"


def markdown(rows: list[dict], header: list[str]) -> str:
    from hoi_pipeline.evaluation.tables import markdown_table

    body = []
    for row in rows:
        rate = number(row["images_per_s"])
        if row["images_per_s"] is not None and row["unit"] != "images/s":
            rate += f" {row['unit'].split('/')[0]}/s"
        notes = "; ".join(f"{key} {value}" for key, value in row["details"].items())
        if row["error"]:
            notes = f"**failed**: {row['error']}"
        body.append([row["stage"], row["settings"], row["device"], rate, number(row["s_per_iteration"]),
                     number(row["peak_mib"], 4), notes.replace("|", "/")])  # fmt: skip
    table = markdown_table(["stage", "settings", "device", "images/s", "s/iteration", "peak MiB", "notes"], body)
    return "\n".join(header) + "\n\n" + table


def environment(device: str) -> list[str]:
    import torch
    import torchvision

    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else "none"
    return [
        f"# Benchmarks: `python benchmarks/run_all.py {' '.join(sys.argv[1:])}`",
        "",
        f"{datetime.date.today().isoformat()}; torch {torch.__version__}, torchvision {torchvision.__version__}; "
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; GPU: {gpu}. "
        "Random-init weights; peak memory: CUDA max allocated, CPU peak resident set of the measuring process "
        "(pairs on the CPU: the peak of the step's live tensors, from the profiler; see `benchmarks/bench_pairs.py`).",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--quick", action="store_true", help="tiny models and few images (what the tests run)")
    parser.add_argument("--only", nargs="+", choices=STAGES, default=None, help="only these stages")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of the table (.md) and rows (.json)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="stop starting cases after this many seconds (default: 480 on CUDA, none on the CPU)")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)  # internal: one case, in a child process
    args = parser.parse_args(argv)
    if args.case is not None:
        return run_case_here(json.loads(args.case))

    selected = [case for case in cases(args.device, args.quick) if args.only is None or case.stage in args.only]
    budget = args.budget_s if args.budget_s is not None else (480.0 if args.device.startswith("cuda") else None)
    args.out.mkdir(parents=True, exist_ok=True)
    name = args.device.split(":")[0] + ("-quick" if args.quick else "")
    header = environment(args.device)
    started = time.perf_counter()
    rows: list[dict] = []
    for case in selected:
        left = None if budget is None else budget - (time.perf_counter() - started)
        if left is not None and left < 10:
            rows.append(error_row(case.stage, case.describe(), f"not run: the time budget of {budget:.0f} s is spent"))
            continue
        print(f"[run_all] {case.stage}: {case.describe()}", file=sys.stderr, flush=True)
        found = run_case(case, left)
        for row in found:
            print(f"[run_all]   {row['error'] or number(row['images_per_s']) + ' ' + row['unit']}", file=sys.stderr,
                  flush=True)  # fmt: skip
        rows += found
        write_table(args.out, name, rows, header)  # after every case: a run cut short keeps what it measured
    write_table(args.out, name, rows, header)
    print(markdown(rows, header))
    print(f"[run_all] wrote {args.out / (name + '.md')}", file=sys.stderr)
    return 0


def write_table(out: Path, name: str, rows: list[dict], header: list[str]) -> None:
    from hoi_pipeline.artifacts import atomic_path

    for suffix, text in ((".md", markdown(rows, header)), (".json", json.dumps(rows, indent=1) + "\n")):
        with atomic_path(out / (name + suffix)) as tmp:
            Path(tmp).write_text(text)


if __name__ == "__main__":
    sys.exit(main())
