"""Every pipeline command declared once: the config sections it reads, its inputs, outputs and options.

The CLI (`hoi_pipeline/cli.py`) builds each subcommand from its `StageSpec`, and the Snakemake rules
build their shell commands and rerun triggers from the same spec (`hoi_pipeline/workflow.py`), so a
new stage option is this one entry plus the matching keyword of the stage's `run()` (a test checks
that the two agree) and a new config key needs no entry at all: sections travel whole.

Options have a role:
- `input`: a file the stage reads; in a rule, the input of the same name;
- `output`: a file the stage writes; in a rule, the output of the same name;
- `value`: anything else (a split name, an image folder, an output folder); in a rule, computed from
  the job's wildcards by `workflow.job_values`.
A stage receives its config sections as keywords named after them (`eval` arrives as `eval_config`,
`synthetic` as `settings`, see `SECTION_ARGUMENTS`), then one keyword per option.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Role = Literal["input", "output", "value"]
REQUIRED = object()  # an option without a default must be given
SECTION_ARGUMENTS = {"eval": "eval_config", "synthetic": "settings"}  # run() keywords that differ from the section


@dataclass(frozen=True)
class Option:
    """One command-line option of a stage, passed to its `run()` as keyword `dest`."""

    dest: str
    role: Role
    help: str
    type: Callable[[str], Any] = Path
    default: Any = REQUIRED
    nargs: str | None = None  # "+" for lists
    positional: bool = False
    cli: str | None = None  # the flag when it is not `--dest` (e.g. `--out` for `out_dir`)

    @property
    def flag(self) -> str:
        if self.positional:
            return self.dest
        return self.cli or "--" + self.dest.replace("_", "-")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class StageSpec:
    """A command: `python -m hoi_pipeline {command}` runs `{module}.run(**sections, **options)`."""

    command: str
    module: str
    help: str
    sections: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    # for a section the stage reads only in part: the keys it reads (the others do not rerun it)
    section_keys: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def reads(self, section: str) -> tuple[str, ...] | None:
        """The keys of `section` the stage reads, or None for all of them."""
        return dict(self.section_keys).get(section)

    @property
    def name(self) -> str:
        """The stage's name in rules and code versions (`embed-prompts` -> `embed_prompts`)."""
        return self.command.replace("-", "_")

    def section_argument(self, section: str) -> str:
        return SECTION_ARGUMENTS.get(section, section)

    def option(self, dest: str) -> Option:
        for option in self.options:
            if option.dest == dest:
                return option
        raise KeyError(f"stage {self.command} has no option '{dest}'")


def _input(dest: str, help: str, **kw: Any) -> Option:
    return Option(dest, "input", help, **kw)


def _output(dest: str, help: str, **kw: Any) -> Option:
    return Option(dest, "output", help, **kw)


def _value(dest: str, help: str, **kw: Any) -> Option:
    return Option(dest, "value", help, **kw)


ANNOTATIONS = _input("annotations", "the split's annotation file (HICO-DET json / anno_bbox.mat, V-COCO json)")
IMAGES = _value("images", "folder of the split's images")
PROPOSALS = _input("proposals", "proposals HDF5 of the split (detect stage)")


def _shard(text: str) -> object:
    from hoi_pipeline.shards import Shard

    return Shard.parse(text)


SHARD = _value("shard", "I/N: only block I of N of the split's images (merge-shards joins the blocks)", type=_shard,
               default=None)


def _split(default: str) -> Option:
    return _value("split", "split name (for files holding several splits)", type=str, default=default)


STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        "generate-demo", "hoi_pipeline.stages.generate_demo",
        "write the synthetic demo dataset (images, annotations, detections)",
        sections=("synthetic",),
        options=(_value("out_dir", "output folder", cli="--out"),),
    ),
    StageSpec(
        "init-clip", "hoi_pipeline.stages.init_clip",
        "save a randomly initialised open_clip model (tiny demo configs)",
        options=(
            _value("model_name", "open_clip model name, e.g. hoi-tiny-rn", type=str, cli="--model"),
            _value("seed", "torch seed of the initialisation", type=int, default=0),
            _output("out", "weights file to write (.pt)"),
        ),
    ),
    StageSpec(
        "detect", "hoi_pipeline.stages.detect", "human and object proposals of a split -> HDF5",
        sections=("detector",),
        options=(
            ANNOTATIONS, _split("test"), IMAGES,
            _input("detections", "detections json (precomputed backend)", default=None),
            SHARD,
            _output("out", "proposals HDF5 to write"),
        ),
    ),
    StageSpec(
        "embed-prompts", "hoi_pipeline.stages.embed_prompts",
        "text embeddings of the HOI class prompts (the knowledge bank W_T): CLIP, or RoBERTa (Table 2 Exp 10)",
        sections=("clip", "model"),
        section_keys=(("model", ("bank_source", "bank_text_model")),),
        options=(ANNOTATIONS, _split("train"), _output("out", "knowledge bank file to write")),
    ),
    StageSpec(
        "train", "hoi_pipeline.stages.train", "train the bi-level model from image-level labels",
        sections=("clip", "model", "loss", "train"),
        options=(
            ANNOTATIONS, _split("train"), IMAGES, PROPOSALS,
            _input("bank", "knowledge bank from embed-prompts"),
            _value("out_dir", "folder for checkpoints, the final model and loss log"),
        ),
    ),
    StageSpec(
        "infer", "hoi_pipeline.stages.infer", "detection tuples of a split with the trained model",
        sections=("infer",),
        options=(
            ANNOTATIONS, _split("test"), IMAGES, PROPOSALS,
            _input("checkpoint", "trained model (model.pt)"),
            SHARD,
            _output("out", "detections HDF5 to write"),
        ),
    ),
    StageSpec(
        "merge-shards", "hoi_pipeline.stages.merge_shards",
        "join the shard files of a sharded detect or infer into the file one job would have written",
        options=(
            _input("shards", "the shard files (any order)", nargs="+"),
            _output("out", "HDF5 to write"),
        ),
    ),
    StageSpec(
        "evaluate", "hoi_pipeline.stages.evaluate", "HICO-DET mAP (Default, Known Object) or V-COCO role AP",
        sections=("eval",),
        options=(
            ANNOTATIONS, _split("test"),
            _input("detections", "detections HDF5 (infer stage)"),
            _value("out_dir", "folder for metrics.csv, per_class_ap.csv, table.md", cli="--out"),
        ),
    ),
    StageSpec(
        "figures", "hoi_pipeline.stages.figures",
        "a run's figures, tables and Markdown gallery (results/{run}/figures/)",
        sections=("eval",),
        options=(
            _value("run_name", "run name (shown in the figures)", type=str),
            ANNOTATIONS, _split("test"),
            _input("train_annotations", "the training split's annotation file (class counts)"),
            _value("train_split", "training split name", type=str, default="train"),
            IMAGES,
            _input("detections", "detections HDF5 of the test split (infer stage)"),
            _input("proposals", "proposals HDF5 of the test split (detect stage)"),
            _input("checkpoint", "trained model (model.pt)"),
            _input("losses", "losses.csv of the training"),
            _input("metrics", "metrics.csv (evaluate stage)"),
            _input("per_class", "per_class_ap.csv (evaluate stage)"),
            _input("ablations", "ablations.csv of the run, when built", default=None),
            _value("paper_backbone", "RN50 or RN101: show the paper's numbers of that backbone", type=str, default=None),
            _value("code_versions", "JSON map stage -> code version, for the provenance table", type=json.loads,
                   default=None),
            _value("examples", "successes and failures drawn", type=int, default=4),
            _value("top", "tuples drawn per example image", type=int, default=3),
            _value("out_dir", "folder of the figures", cli="--out"),
        ),
    ),
    StageSpec(
        "enhance-with-clip", "hoi_pipeline.stages.enhance_with_clip",
        "a trained model whose pair scores are multiplied by CLIP zero-shot scores (Table 3 Abl 3)",
        options=(
            _input("checkpoint", "trained model (model.pt) to enhance"),
            _input("bank", "CLIP knowledge bank of the prompts"),
            _output("out", "enhanced model.pt to write"),
        ),
    ),
    StageSpec(
        "summarize", "hoi_pipeline.stages.summarize",
        "collect several runs' metrics.csv into one table (.csv and .md)",
        options=(
            _input("metrics", "metrics.csv files", nargs="+"),
            _value("names", "a name per metrics file", type=str, nargs="+"),
            _output("out", "table to write (.csv; a .md is written beside it)"),
        ),
    ),
    StageSpec(
        "predict", "hoi_pipeline.stages.predict",
        "detect interactions on your own images (JSON + drawn PNG per image)",
        options=(
            _input("inputs", "image files or folders", nargs="+", positional=True),
            _value("config_file", "config file", default=Path("config.yaml"), cli="--config"),
            _value("run_name", "run name in the config (or {run}/ablations/{preset})", type=str, cli="--run"),
            _input("checkpoint", "trained model (default: results/RUN/train/model.pt)", default=None),
            _value("detector", "detector name in the config (default: the run's detector)", type=str, default=None),
            _value("top", "interactions drawn per image (the JSON keeps infer.top_k)", type=int, default=5),
            _value("device", "auto, cpu, cuda or cuda:N (default: the run's infer.device)", type=str, default=None),
            _value("out_dir", "folder for <image>.json and <image>.png", cli="--out"),
        ),
    ),
)  # fmt: skip

SPECS: dict[str, StageSpec] = {spec.name: spec for spec in STAGES}


def stage_spec(name: str) -> StageSpec:
    """The spec of a stage by rule name (`embed_prompts`) or command (`embed-prompts`)."""
    key = name.replace("-", "_")
    if key not in SPECS:
        raise KeyError(f"unknown stage '{name}'; stages: {sorted(SPECS)}")
    return SPECS[key]
