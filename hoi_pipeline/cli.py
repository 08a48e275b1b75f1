"""Command line: one subcommand per pipeline stage.

This is the only module that parses arguments and sets up logging. Stage modules are imported
lazily, so `evaluate` starts without importing torch.

Settings reach a stage in one of two ways:
- `--config config.yaml --run NAME`: the run's sections (and its dataset's and detector's) from a config file;
- `--config-json '{"train": {...}, ...}'`: exactly the sections the stage uses (what the Snakemake rules pass,
  so that a rule reruns only when a section it uses changes).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from hoi_pipeline import config as C

log = logging.getLogger("hoi_pipeline")

SECTION_TYPES: dict[str, type] = {
    "synthetic": C.SyntheticConfig,
    "detector": C.DetectorConfig,
    "clip": C.ClipConfig,
    "model": C.ModelConfig,
    "loss": C.LossConfig,
    "train": C.TrainConfig,
    "infer": C.InferConfig,
    "eval": C.EvalConfig,
}


def resolve_sections(config_file: str | None, run: str | None, config_json: str | None, names: list[str]) -> dict:
    """The named config sections as dataclasses, from a config file and run, or from a JSON mapping."""
    if config_json is not None:
        try:
            data = json.loads(config_json)
        except json.JSONDecodeError as error:
            raise C.ConfigError(f"--config-json: not valid JSON ({error})") from error
        if not isinstance(data, dict):
            raise C.ConfigError("--config-json: expected a JSON object of sections")
        unknown = sorted(set(data) - set(names))
        missing = [name for name in names if name not in data]
        if unknown or missing:
            raise C.ConfigError(f"--config-json: this stage takes sections {names}; unknown {unknown}, missing {missing}")
        return {name: C.from_dict(SECTION_TYPES[name], data[name], name) for name in names}
    if run is None:
        if all(name == "eval" for name in names):
            return {"eval": C.EvalConfig()}
        raise C.ConfigError("give --run NAME (with --config FILE) or --config-json")
    from hoi_pipeline.workflow import resolve_run

    project = C.load_project_config(config_file or "config.yaml")
    run_config = resolve_run(project, run)
    dataset = project.datasets[run_config.dataset]
    available = {
        "synthetic": dataset.synthetic or C.SyntheticConfig(),
        "detector": project.detectors[run_config.detector],
        **{name: getattr(run_config, name) for name in ("clip", "model", "loss", "train", "infer", "eval")},
    }
    return {name: available[name] for name in names}


def _add_settings(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (one of)")
    group.add_argument("--config", default=None, help="config file (default config.yaml), used with --run")
    group.add_argument("--run", default=None, help="run name in the config file")
    group.add_argument("--config-json", default=None, help="JSON object of the config sections this stage uses")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hoi-pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate-demo", help="write the synthetic demo dataset (images, annotations, detections)")
    _add_settings(p)
    p.add_argument("--out", required=True, type=Path, help="output folder")

    p = sub.add_parser("init-clip", help="save a randomly initialised open_clip model (tiny demo configs)")
    p.add_argument("--model", required=True, help="open_clip model name, e.g. hoi-tiny-rn")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path, help="weights file to write (.pt)")

    p = sub.add_parser("detect", help="human and object proposals of a split -> HDF5")
    _add_settings(p)
    p.add_argument("--annotations", required=True, type=Path, help="the split's annotation file (image list, classes)")
    p.add_argument("--split", default="test", help="split name, for files holding several splits")
    p.add_argument("--images", required=True, type=Path, help="folder of the split's images")
    p.add_argument("--detections", type=Path, default=None, help="detections json (precomputed backend)")
    p.add_argument("--out", required=True, type=Path, help="proposals HDF5 to write")

    p = sub.add_parser("embed-prompts", help="CLIP text embeddings of the HOI class prompts (knowledge bank)")
    _add_settings(p)
    p.add_argument("--annotations", required=True, type=Path, help="annotation file holding the class lists")
    p.add_argument("--split", default="train")
    p.add_argument("--out", required=True, type=Path, help="knowledge bank file to write")

    p = sub.add_parser("train", help="train the bi-level model from image-level labels")
    _add_settings(p)
    p.add_argument("--annotations", required=True, type=Path)
    p.add_argument("--split", default="train")
    p.add_argument("--images", required=True, type=Path)
    p.add_argument("--proposals", required=True, type=Path)
    p.add_argument("--bank", required=True, type=Path, help="knowledge bank from embed-prompts")
    p.add_argument("--out-dir", required=True, type=Path, help="folder for checkpoints, the final model and loss log")

    p = sub.add_parser("infer", help="detection tuples of a split with the trained model")
    _add_settings(p)
    p.add_argument("--annotations", required=True, type=Path)
    p.add_argument("--split", default="test")
    p.add_argument("--images", required=True, type=Path)
    p.add_argument("--proposals", required=True, type=Path)
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="detections HDF5 to write")

    p = sub.add_parser("evaluate", help="HICO-DET mAP (Default, Known Object) or V-COCO role AP")
    _add_settings(p)
    p.add_argument("--annotations", required=True, type=Path)
    p.add_argument("--split", default="test")
    p.add_argument("--detections", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="folder for metrics.csv, per_class_ap.csv, table.md")

    p = sub.add_parser("predict", help="detect interactions on your own images (JSON + drawn PNG per image)")
    p.add_argument("images", nargs="+", type=Path, help="image files or folders")
    p.add_argument("--config", default="config.yaml")
    p.add_argument("--run", required=True)
    p.add_argument("--checkpoint", type=Path, default=None, help="default: results/RUN/train/model.pt")
    p.add_argument("--detector", default=None, help="detector name in the config (default: the run's detector)")
    p.add_argument("--top", type=int, default=5, help="interactions drawn per image (the JSON keeps infer.top_k)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: the run's infer.device)")
    p.add_argument("--out", required=True, type=Path, help="folder for <image>.json and <image>.png")

    p = sub.add_parser("summarize", help="collect several runs' metrics.csv into one table (.csv and .md)")
    p.add_argument("--metrics", nargs="+", required=True, type=Path, help="metrics.csv files")
    p.add_argument("--names", nargs="+", required=True, help="a name per metrics file")
    p.add_argument("--out", required=True, type=Path, help="table to write (.csv; a .md is written beside it)")

    p = sub.add_parser("config-schema", help="print the JSON schema of config.yaml (as YAML)")
    return parser


def _settings(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    return resolve_sections(args.config, args.run, args.config_json, list(names))


def dispatch(args: argparse.Namespace) -> None:
    command = args.command
    if command == "generate-demo":
        from hoi_pipeline.stages import generate_demo

        generate_demo.run(settings=_settings(args, "synthetic")["synthetic"], out_dir=args.out)
    elif command == "init-clip":
        from hoi_pipeline.stages import init_clip

        init_clip.run(model_name=args.model, seed=args.seed, out=args.out)
    elif command == "detect":
        from hoi_pipeline.stages import detect

        detect.run(
            detector=_settings(args, "detector")["detector"],
            annotations=args.annotations,
            split=args.split,
            images=args.images,
            detections=args.detections,
            out=args.out,
        )
    elif command == "embed-prompts":
        from hoi_pipeline.stages import embed_prompts

        embed_prompts.run(clip=_settings(args, "clip")["clip"], annotations=args.annotations, split=args.split, out=args.out)
    elif command == "train":
        from hoi_pipeline.stages import train

        s = _settings(args, "clip", "model", "loss", "train")
        train.run(
            clip=s["clip"], model=s["model"], loss=s["loss"], train=s["train"],
            annotations=args.annotations, split=args.split, images=args.images,
            proposals=args.proposals, bank=args.bank, out_dir=args.out_dir,
        )  # fmt: skip
    elif command == "infer":
        from hoi_pipeline.stages import infer

        infer.run(
            infer=_settings(args, "infer")["infer"], annotations=args.annotations, split=args.split,
            images=args.images, proposals=args.proposals, checkpoint=args.checkpoint, out=args.out,
        )  # fmt: skip
    elif command == "evaluate":
        from hoi_pipeline.stages import evaluate

        evaluate.run(
            eval_config=_settings(args, "eval")["eval"], annotations=args.annotations, split=args.split,
            detections=args.detections, out_dir=args.out,
        )  # fmt: skip
    elif command == "predict":
        from hoi_pipeline.stages import predict

        predict.run(config_file=Path(args.config), run_name=args.run, checkpoint=args.checkpoint,
                    inputs=args.images, out_dir=args.out, detector=args.detector, top=args.top,
                    device=args.device)  # fmt: skip
    elif command == "summarize":
        from hoi_pipeline.stages import summarize

        summarize.run(metrics=args.metrics, names=args.names, out=args.out)
    elif command == "config-schema":
        import yaml

        sys.stdout.write(yaml.safe_dump(C.json_schema(), sort_keys=False, width=100))
    else:  # pragma: no cover - argparse rejects unknown commands
        raise AssertionError(command)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # a cancelled job (Snakemake, SLURM and torchrun send SIGTERM) unwinds like Ctrl-C, so no temporary file stays
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        dispatch(args)
    except (C.ConfigError, FileNotFoundError, ValueError) as error:
        log.error("%s", error)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
