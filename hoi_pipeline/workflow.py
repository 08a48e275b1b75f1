"""What the Snakemake rules need from the config, as plain functions (tested without Snakemake).

Runs: every run in `config.yaml`, plus one virtual run per ablation preset of each run, named
`{run}/ablations/{preset}` (so its outputs live under `results/{run}/ablations/{preset}/`).

Shared work is addressed by what determines it, never by the order or names of runs:
- proposals by dataset, split and detector: `results/proposals/{dataset}/{detector}/{split}.h5`;
- a knowledge bank by its dataset split and text model settings:
  `results/shared/banks/{bank}/knowledge_bank.h5`, `{bank}` = `{dataset}-{model}-{digest}`;
- a training by its dataset split, detector and the computation keys of the clip, model, loss and
  train sections: `results/shared/train/{training}/`, `{training}` = `{dataset}-{detector}-{model}-{digest}`;
- a CLIP-enhanced model (`model.kind: clip_enhanced`, Table 3 Abl 3) by the training it enhances (the run's
  settings with `model.kind: bilevel`, e.g. Exp 8's training), the bank of its prompts and the clip section:
  `results/shared/enhanced/{enhanced}/model.pt`, made by the enhance-with-clip stage in place of training.
Each holds a `settings.yaml` with what its address was computed from. A run sees its training under
`results/{run}/train/` (links into the shared folder), so adding, removing, renaming or reordering runs
never moves or reruns another run's outputs, and runs (or ablation presets) that train the same thing
share one training (Abl 3 links its enhanced model.pt and the losses.csv of the training it enhances).

Rerun triggers: a rule's params are one entry per computation key of the config sections its stage
reads (`train.iterations = 300`), per option value, and per source file of the code it runs
(`code hoi_pipeline/losses.py 1a2b3c4d5e6f`, see `code_version`). Snakemake's dry run then names what
changed ("Params have changed since last execution: ... before: 'train.iterations = 300' now:
'train.iterations = 400'"). Runtime keys (workers, devices, logging cadence) reach the stage through
the command line alone, which is not a trigger (`CommandLine`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from hoi_pipeline.config import (
    ClipConfig,
    ConfigError,
    DatasetConfig,
    ModelConfig,
    ProjectConfig,
    SECTION_TYPES,
    RunConfig,
    TrainConfig,
    computation_dict,
    from_dict,
    to_dict,
    with_overrides,
)
from hoi_pipeline.stages.specs import stage_spec

ABLATION_DIR = "ablations"
SHARED = "results/shared"
KEY_DIGEST_LENGTH = 10


# --------------------------------------------------------------------------------------------
# runs


def load_workflow_config(config: Mapping) -> ProjectConfig:
    """The Snakemake `config` dict as a validated ProjectConfig."""
    return from_dict(ProjectConfig, dict(config), "config")


def ablation_presets() -> dict[str, dict]:
    from hoi_pipeline.ablations import ABLATIONS

    return dict(ABLATIONS)


def all_runs(project: ProjectConfig, with_ablations: bool = True) -> dict[str, RunConfig]:
    """Configured runs, then each run's ablation variants."""
    runs = dict(project.runs)
    if with_ablations:
        presets = ablation_presets()
        for name, run in project.runs.items():
            for preset, overrides in presets.items():
                runs[f"{name}/{ABLATION_DIR}/{preset}"] = with_overrides(run, overrides, f"ablation '{preset}'")
    return runs


def resolve_run(project: ProjectConfig, name: str) -> RunConfig:
    """A configured run, or an ablation variant of one named `{run}/ablations/{preset}`."""
    base, _, preset = name.partition(f"/{ABLATION_DIR}/")
    run = project.run(base)
    if not preset:
        return run
    presets = ablation_presets()
    if preset not in presets:
        raise ConfigError(f"unknown ablation '{preset}'; presets: {sorted(presets)}")
    return with_overrides(run, presets[preset], f"ablation '{preset}'")


def resolved_run_yaml(project: ProjectConfig, name: str) -> str:
    """A run's settings after defaults, presets and overrides, as YAML with config.yaml's keys."""
    run = resolve_run(project, name)
    data = {
        "run": name,
        "dataset": {run.dataset: to_dict(project.datasets[run.dataset])},
        "detector": {run.detector: to_dict(project.detectors[run.detector])},
        **{section: to_dict(getattr(run, section)) for section in ("clip", "model", "loss", "train", "infer", "eval")},
    }
    return yaml.safe_dump(data, sort_keys=False, width=110)


def run_ablations(project: ProjectConfig, run: str) -> list[str]:
    """The ablation presets of a run's table: its `ablations` list, or every preset."""
    presets = ablation_presets()
    chosen = project.run(run).ablations
    if chosen is None:
        return list(presets)
    unknown = sorted(set(chosen) - set(presets))
    if unknown:
        raise ConfigError(f"runs.{run}.ablations: unknown preset(s) {unknown}; presets: {sorted(presets)}")
    return list(chosen)


def ablation_runs(project: ProjectConfig, run: str) -> list[str]:
    return [f"{run}/{ABLATION_DIR}/{preset}" for preset in run_ablations(project, run)]


def bank_clip(run: RunConfig) -> ClipConfig:
    """The CLIP model whose text tower embeds the run's knowledge bank (Table 2: another text model)."""
    if run.model.bank_clip_model is None:
        return run.clip
    return dataclasses.replace(run.clip, model=run.model.bank_clip_model, pretrained=run.model.bank_clip_pretrained)


def bank_model(run: RunConfig) -> ModelConfig:
    """The model keys the embed-prompts stage reads, as a model section: which text encoder makes the bank.

    Only a RoBERTa bank (Table 2 Exp 10) differs from the default: a random bank (Exp 9) is drawn when
    the model is built, from a CLIP bank's shape, so it shares the CLIP bank of its dataset.
    """
    if run.model.bank_source == "roberta":
        return ModelConfig(bank_source="roberta", bank_text_model=run.model.bank_text_model)
    return ModelConfig()


def section_json(sections: Mapping[str, object]) -> str:
    """Compact, key-sorted JSON of config sections (what `--config-json` takes)."""
    return json.dumps({name: to_dict(value) for name, value in sections.items()}, sort_keys=True, separators=(",", ":"))


def train_launcher(train: TrainConfig) -> list[str]:
    """`python -m`, or torchrun with one process per GPU when `train.gpus` > 1 (DistributedDataParallel)."""
    if train.gpus > 1:
        return ["torchrun", "--standalone", f"--nproc_per_node={train.gpus}", "-m"]
    return ["python", "-m"]


def local_weights(pretrained: str | None) -> list[str]:
    """A `clip.pretrained` / `detector.weights` value as a Snakemake input: a local file path, else nothing."""
    if pretrained and (Path(pretrained).suffix in {".pt", ".pth", ".bin", ".safetensors"} or "/" in pretrained):
        return [pretrained]
    return []


# --------------------------------------------------------------------------------------------
# datasets


def split_files(name: str, dataset: DatasetConfig, split: str) -> dict[str, str]:
    """The files of a dataset split; for a real dataset, a missing file is an error that says what to do."""
    if split not in dataset.splits:
        raise ConfigError(f"datasets.{name}.splits: no split '{split}' (has {sorted(dataset.splits)})")
    files = dataset.splits[split]
    paths = {"annotations": files.annotations, "images": files.images}
    if files.detections:
        paths["detections"] = files.detections
    if dataset.synthetic is None:
        from hoi_pipeline.datasets import annotation_files

        for key, path in paths.items():
            if not Path(path).exists():
                raise ConfigError(missing_data_message(name, dataset, split, key, path))
        for path in annotation_files(files.annotations, split):  # e.g. the official V-COCO ids and COCO files
            if not Path(path).exists():
                raise ConfigError(missing_data_message(name, dataset, split, "annotations", str(path)))
    return paths


def missing_data_message(name: str, dataset: DatasetConfig, split: str, key: str, path: str) -> str:
    where = dataset.source or "its official release"
    return (
        f"Dataset '{name}' is not on this machine: {key} of split '{split}' is expected at '{path}' "
        f"({Path(path).resolve()}), which does not exist.\n"
        f"Get it from {where}.\n"
        f"Then put it there, or set the config key datasets.{name}.splits.{split}.{key} to where it is "
        f"(in config.yaml or a file passed with --configfile)."
    )


def synthetic_layout(name: str, family: str = "hicodet") -> dict[str, dict[str, str]]:
    """Where the generate_demo rules write a synthetic dataset; its config must name these paths.

    The HICO-DET-style family writes `{split}.json`; the V-COCO-style family the official release layout
    (`vcoco/vcoco_{split}.json` beside `splits/` and the COCO instances file).
    """
    root = f"results/data/{name}"
    annotations = {"hicodet": "{root}/{split}.json", "vcoco": "{root}/vcoco/vcoco_{split}.json"}[family]
    return {
        split: {
            "annotations": annotations.format(root=root, split=split),
            "images": f"{root}/images/{split}",
            "detections": f"{root}/detections_{split}.json",
        }
        for split in ("train", "test")
    }


def check_synthetic_layout(name: str, dataset: DatasetConfig) -> None:
    assert dataset.synthetic is not None
    expected = synthetic_layout(name, dataset.synthetic.family)
    for split, files in expected.items():
        actual = dataset.splits.get(split)
        for key, path in files.items():
            if actual is None or getattr(actual, key) != path:
                raise ConfigError(f"datasets.{name}.splits.{split}.{key}: a synthetic dataset is written to '{path}'")


# --------------------------------------------------------------------------------------------
# addresses of shared artifacts


def _key(readable: list[str], settings: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:KEY_DIGEST_LENGTH]
    prefix = "-".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", part) for part in readable)
    return f"{prefix}-{digest}"


def bank_settings(project: ProjectConfig, run: RunConfig) -> dict[str, Any]:
    """What decides a run's knowledge bank: the training split's class lists and the text model."""
    dataset = project.datasets[run.dataset]
    split = dataset.train_split
    model = bank_model(run)
    return {
        "dataset": run.dataset,
        "split": split,
        "annotations": dataset.splits[split].annotations,
        "clip": computation_dict(bank_clip(run)),
        "model": {key: getattr(model, key) for key in stage_spec("embed_prompts").reads("model") or ()},
    }


def bank_key(project: ProjectConfig, run: RunConfig) -> str:
    return _key([run.dataset, bank_clip(run).model], bank_settings(project, run))


def trained_run(run: RunConfig) -> RunConfig:
    """The settings whose training makes a run's model: for `model.kind: clip_enhanced` (Table 3 Abl 3) the
    same run with `model.kind: bilevel` (Abl 2 = Exp 8 for the `abl3` preset), whose model.pt the
    enhance-with-clip stage wraps with CLIP's scores; the run itself otherwise."""
    if run.model.kind != "clip_enhanced":
        return run
    return dataclasses.replace(run, model=dataclasses.replace(run.model, kind="bilevel"))


def is_enhanced(run: RunConfig) -> bool:
    return run.model.kind == "clip_enhanced"


def training_settings(project: ProjectConfig, run: RunConfig) -> dict[str, Any]:
    """What decides a run's training: its data, detector and the computation keys of its training sections."""
    run = trained_run(run)
    dataset = project.datasets[run.dataset]
    split = dataset.train_split
    return {
        "dataset": run.dataset,
        "split": split,
        "files": to_dict(dataset.splits[split]),
        "detector": run.detector,
        "bank": bank_key(project, run),
        **{section: computation_dict(getattr(run, section)) for section in ("clip", "model", "loss", "train")},
    }


def training_key(project: ProjectConfig, run: RunConfig) -> str:
    return _key([run.dataset, run.detector, run.clip.model], training_settings(project, run))


def enhanced_settings(project: ProjectConfig, run: RunConfig) -> dict[str, Any]:
    """What decides a CLIP-enhanced model: the training it enhances, the bank of the prompts CLIP scores
    (`enhance-with-clip --bank`) and the CLIP model (the clip section)."""
    return {
        "kind": run.model.kind,
        "training": training_key(project, run),
        "bank": bank_key(project, run),
        "clip": computation_dict(run.clip),
    }


def enhanced_key(project: ProjectConfig, run: RunConfig) -> str:
    return _key([run.dataset, run.detector, run.clip.model], enhanced_settings(project, run))


def bank_dir(key: str) -> str:
    return f"{SHARED}/banks/{key}"


def training_dir(key: str) -> str:
    return f"{SHARED}/train/{key}"


def enhanced_dir(key: str) -> str:
    return f"{SHARED}/enhanced/{key}"


def run_dir(run: str) -> str:
    return f"results/{run}"


# --------------------------------------------------------------------------------------------
# rule commands and rerun triggers


class CommandLine:
    """A job's shell command, as a rule param that Snakemake does not compare between runs.

    Snakemake's params trigger compares only params of builtin types (others are left out of its
    metadata), so runtime keys such as `train.num_workers` travel in the command without rerunning
    anything; what the command computes is covered by the other params (`Workflow.rerun_params`).
    """

    def __init__(self, words: list[str]) -> None:
        self.words = list(words)

    def __str__(self) -> str:
        return " ".join(shlex.quote(word) for word in self.words)

    def __repr__(self) -> str:
        return f"CommandLine({self})"


def _plain(wildcards: Mapping[str, str]) -> dict[str, str]:
    """A job's wildcards as a dict (Snakemake's `Wildcards` is a list with names, `in` tests values)."""
    return dict(wildcards.items())


def _param_name(text: str) -> str:
    return re.sub(r"\W", "_", text)


def _value_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if not isinstance(value, str) else value


# config sections a stage reads from its input files rather than from --config-json: rerun triggers only
# (enhance-with-clip loads the CLIP model the trained model.pt names, i.e. the run's clip section)
TRIGGER_SECTIONS: dict[str, tuple[str, ...]] = {"enhance_with_clip": ("clip",)}


class Workflow:
    """The config as the rules see it: runs, shared artifacts and each job's settings, inputs and command."""

    def __init__(self, project: ProjectConfig) -> None:
        self.project = project
        self.runs = all_runs(project)
        self.trainings: dict[str, str] = {}  # training key -> one run that trains it (any: they are equal)
        self.banks: dict[str, str] = {}
        self.enhanced: dict[str, str] = {}  # enhanced model key -> one run that uses it
        for name in sorted(self.runs):
            run = self.runs[name]
            self.trainings.setdefault(training_key(project, run), name)
            self.banks.setdefault(bank_key(project, run), name)
            if is_enhanced(run):
                self.enhanced.setdefault(enhanced_key(project, run), name)

    # ---------------------------------------------------------------------------------- lookups
    def run(self, name: str) -> RunConfig:
        if name not in self.runs:
            raise ConfigError(f"unknown run '{name}'; known runs: {sorted(self.runs)}")
        return self.runs[name]

    def split(self, run: str, which: str) -> str:
        dataset = self.project.datasets[self.run(run).dataset]
        return dataset.train_split if which == "train" else dataset.test_split

    def files(self, dataset: str, split: str) -> dict[str, str]:
        return split_files(dataset, self.project.datasets[dataset], split)

    def proposals(self, run: str, split: str) -> str:
        cfg = self.run(run)
        return f"results/proposals/{cfg.dataset}/{cfg.detector}/{split}.h5"

    def training_of(self, run: str) -> str:
        return training_key(self.project, self.run(run))

    def bank_of(self, run: str) -> str:
        return bank_key(self.project, self.run(run))

    def enhanced_of(self, run: str) -> str:
        return enhanced_key(self.project, self.run(run))

    def _job_run(self, wildcards: Mapping[str, str]) -> str:
        """The run a job's wildcards stand for (for a shared artifact: one of the runs sharing it)."""
        wildcards = _plain(wildcards)
        if "run" in wildcards:
            return wildcards["run"]
        if "training" in wildcards:
            return self.trainings[wildcards["training"]]
        if "enhanced" in wildcards:
            return self.enhanced[wildcards["enhanced"]]
        if "bank" in wildcards:
            return self.banks[wildcards["bank"]]
        raise KeyError(f"no run for wildcards {dict(wildcards)}")

    # ------------------------------------------------------------------------ per-stage settings
    def sections(self, stage: str, wildcards: Mapping[str, str]) -> dict[str, Any]:
        """The config sections a job's stage reads, resolved for the job's wildcards."""
        wildcards = _plain(wildcards)
        spec = stage_spec(stage)
        sections = spec.sections + TRIGGER_SECTIONS.get(spec.name, ())
        if not sections:
            return {}
        if spec.sections == ("synthetic",):
            return {"synthetic": self.project.datasets[wildcards["dataset"]].synthetic}
        if spec.sections == ("detector",):
            return {"detector": self.project.detectors[wildcards["detector"]]}
        run = self.run(self._job_run(wildcards))
        if spec.name == "embed_prompts":
            return {"clip": bank_clip(run), "model": bank_model(run)}
        if spec.name == "train":
            run = trained_run(run)
        return {section: getattr(run, section) for section in sections}

    def values(self, stage: str, wildcards: Mapping[str, str]) -> dict[str, Any]:
        """The job's `value` options of its stage (split names, folders, ...)."""
        w = _plain(wildcards)
        if stage == "generate_demo":
            return {"out_dir": f"results/data/{w['dataset']}"}
        if stage == "init_clip":
            return {"model_name": w["model"], "seed": 0}
        if stage == "detect":
            return {"split": w["split"], "images": self.files(w["dataset"], w["split"])["images"], **_shard_value(w)}
        run = self._job_run(w)
        dataset = self.run(run).dataset
        if stage == "embed_prompts":
            return {"split": self.split(run, "train")}
        if stage == "train":
            split = self.split(run, "train")
            return {"split": split, "images": self.files(dataset, split)["images"], "out_dir": training_dir(self.training_of(run))}
        if stage == "infer":
            return {"split": w["split"], "images": self.files(dataset, w["split"])["images"], **_shard_value(w)}
        if stage == "evaluate":
            return {"split": self.split(run, "test"), "out_dir": run_dir(run)}
        if stage == "summarize":
            return {"names": ["full_model", *run_ablations(self.project, run)]}
        if stage == "figures":
            from hoi_pipeline.code_version import stage_code_digest
            from hoi_pipeline.report.paper import paper_backbone

            test, train = self.split(run, "test"), self.split(run, "train")
            stages = ("detect", "embed_prompts", "train", "infer", "evaluate")
            return {
                "run_name": run, "split": test, "train_split": train,
                "images": self.files(dataset, test)["images"],
                "paper_backbone": paper_backbone(self.project, run),
                "code_versions": json.dumps({s: stage_code_digest(stage_spec(s).module) for s in stages}),
                "out_dir": f"{run_dir(run)}/figures",
            }  # fmt: skip
        raise KeyError(f"no option values for stage '{stage}'")

    # ------------------------------------------------------------------------------- rule inputs
    def inputs(self, stage: str, wildcards: Mapping[str, str]) -> dict[str, Any]:
        """A job's input files, named as its stage's options, plus dependencies (weights, annotation files)."""
        return self._inputs(stage, _plain(wildcards))

    def _annotations(self, dataset: str, split: str, key: str = "annotations") -> dict[str, Any]:
        """A split's annotation input, and the files read beside it (official V-COCO: ids and COCO instances)."""
        from hoi_pipeline.datasets import annotation_files

        path = self.files(dataset, split)["annotations"]
        extra = [str(p) for p in annotation_files(path, split) if str(p) != path]
        return {key: path, f"{key}_files": extra}

    def _inputs(self, stage: str, w: dict[str, str]) -> dict[str, Any]:
        if stage == "merge_shards":  # proposals of a dataset split, or a run's detections
            prefix, count = (
                (f"results/proposals/{w['dataset']}/{w['detector']}/{w['split']}", self.project.detectors[w["detector"]].shards)
                if "detector" in w else (f"{run_dir(w['run'])}/detections_{w['split']}", self.run(w["run"]).infer.shards)
            )  # fmt: skip
            return {"shards": [f"{prefix}.shards/{i}-of-{count}.h5" for i in range(count)]}
        if stage == "detect":
            files = self.files(w["dataset"], w["split"])
            detector = self.project.detectors[w["detector"]]
            inputs: dict[str, Any] = {**self._annotations(w["dataset"], w["split"]), "weights": local_weights(detector.weights)}
            if detector.backend == "precomputed":
                if "detections" not in files:
                    raise ConfigError(
                        f"detector '{w['detector']}' imports precomputed detections, but "
                        f"datasets.{w['dataset']}.splits.{w['split']}.detections is not set"
                    )
                inputs["detections"] = files["detections"]
            return inputs
        run = self._job_run(w)
        cfg = self.run(run)
        if stage == "embed_prompts":
            split = self.split(run, "train")
            inputs = {**self._annotations(cfg.dataset, split), "weights": local_weights(bank_clip(cfg).pretrained)}
            if bank_model(cfg).bank_text_model:
                inputs["text_model"] = bank_model(cfg).bank_text_model  # the local RoBERTa folder (Table 2 Exp 10)
            return inputs
        if stage == "train":
            split = self.split(run, "train")
            return {
                **self._annotations(cfg.dataset, split),
                "proposals": self.proposals(run, split),
                "bank": f"{bank_dir(self.bank_of(run))}/knowledge_bank.h5",
                "weights": local_weights(cfg.clip.pretrained),
                "backbone_weights": local_weights(cfg.model.backbone_weights),  # Exp 8-10: the detector's weights
            }
        if stage == "enhance_with_clip":
            return {
                "checkpoint": f"{training_dir(self.training_of(run))}/model.pt",
                "bank": f"{bank_dir(self.bank_of(run))}/knowledge_bank.h5",
                "weights": local_weights(cfg.clip.pretrained),  # the CLIP model the checkpoint names
            }
        if stage == "link_training":
            training = training_dir(self.training_of(run))
            model = enhanced_dir(self.enhanced_of(run)) if is_enhanced(cfg) else training  # Abl 3: the enhanced model
            return {"model": f"{model}/model.pt", "losses": f"{training}/losses.csv",
                    "settings": f"{model}/settings.yaml", "training_settings": f"{training}/settings.yaml",
                    "bank": f"{bank_dir(self.bank_of(run))}/knowledge_bank.h5",
                    "bank_settings": f"{bank_dir(self.bank_of(run))}/settings.yaml"}  # fmt: skip
        if stage == "infer":
            return {
                **self._annotations(cfg.dataset, w["split"]),
                "proposals": self.proposals(run, w["split"]),
                "checkpoint": f"{run_dir(run)}/train/model.pt",
            }
        if stage == "evaluate":
            split = self.split(run, "test")
            return {**self._annotations(cfg.dataset, split), "detections": f"{run_dir(run)}/detections_{split}.h5"}
        if stage == "summarize":
            return {"metrics": [f"results/{name}/metrics.csv" for name in [run, *ablation_runs(self.project, run)]]}
        if stage == "figures":
            test, train = self.split(run, "test"), self.split(run, "train")
            ablations = f"{run_dir(run)}/ablations.csv"
            return {
                **self._annotations(cfg.dataset, test),
                **self._annotations(cfg.dataset, train, "train_annotations"),
                "detections": f"{run_dir(run)}/detections_{test}.h5",
                "proposals": self.proposals(run, test),
                "checkpoint": f"{run_dir(run)}/train/model.pt",
                "losses": f"{run_dir(run)}/train/losses.csv",
                "metrics": f"{run_dir(run)}/metrics.csv",
                "per_class": f"{run_dir(run)}/per_class_ap.csv",
                # the run's ablation table joins once it is built (building it is a target of its own)
                "ablations": [ablations] if run in self.project.runs and Path(ablations).exists() else [],
            }
        raise KeyError(f"no inputs for stage '{stage}'")

    # --------------------------------------------------------------------------- rule params
    def command(self, stage: str, wildcards: Mapping[str, str], input: Any, output: Any) -> CommandLine:
        """`python -m hoi_pipeline <command> --config-json ... --option value ...` for one job."""
        spec = stage_spec(stage)
        sections = self.sections(stage, wildcards)
        launcher = ["python", "-m"]
        if spec.name == "train":
            launcher = train_launcher(sections["train"])
        words = [*launcher, "hoi_pipeline", spec.command]
        if spec.sections:
            words += ["--config-json", section_json(sections)]
        values = self.values(stage, wildcards) if any(o.role == "value" for o in spec.options) else {}
        for option in spec.options:
            if option.role == "value":
                value = values.get(option.dest)
            else:
                files = input if option.role == "input" else output
                value = getattr(files, option.dest) if option.dest in files.keys() else None
            if value is None or (isinstance(value, list) and not value):
                continue
            items = [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
            words += items if option.positional else [option.flag, *items]
        return CommandLine(words)

    def rerun_params(self, stage: str) -> dict[str, Callable | str]:
        """Named rule params, each one fact whose change reruns the job (see the module docstring).

        One param per computation key of the stage's sections (values of the job), per value option,
        and per source file of the stage's code (fixed for the workflow's whole run).
        """
        from hoi_pipeline.code_version import module_versions

        spec = stage_spec(stage)
        params: dict[str, Callable | str] = {}
        for section in spec.sections + TRIGGER_SECTIONS.get(spec.name, ()):
            for key in spec.reads(section) or self._section_fields(section):
                params[_param_name(f"set_{section}_{key}")] = self._section_param(stage, section, key)
        for option in spec.options:
            if option.role == "value":
                params[_param_name(f"opt_{option.dest}")] = self._option_param(stage, option.dest)
        for path, version in module_versions(spec.module).items():
            params[_param_name(f"code_{path}")] = f"code hoi_pipeline/{path} {version}"
        return params

    def _section_fields(self, section: str) -> list[str]:
        cls = SECTION_TYPES[section]
        runtime = set(getattr(cls, "RUNTIME", ()))
        return [f.name for f in dataclasses.fields(cls) if f.name not in runtime]

    def _section_param(self, stage: str, section: str, key: str) -> Callable:
        def param(wildcards: Mapping[str, str]) -> str:
            value = self.sections(stage, wildcards)[section]
            return f"{section}.{key} = {_value_text(to_dict(value)[key])}"

        return param

    def _option_param(self, stage: str, dest: str) -> Callable:
        def param(wildcards: Mapping[str, str]) -> str:
            return f"--{dest} = {_value_text(str(self.values(stage, wildcards).get(dest)))}"

        return param


    # ------------------------------------------------------------------------- cluster requests
    def job_request(self, stage: str, wildcards: Mapping[str, str]) -> Any:
        """What a job of `stage` asks a cluster for (`hoi_pipeline.resources`): GPUs, CPUs, memory, time."""
        from hoi_pipeline import resources as res

        w = _plain(wildcards)
        if stage == "generate_demo":
            synthetic = self.project.datasets[w["dataset"]].synthetic
            return res.generate_demo_job(synthetic.num_train + synthetic.num_val + synthetic.num_test)
        if stage == "detect":
            images = res.split_images(self.project.datasets[w["dataset"]], w["split"])
            return res.detect_job(self.project.detectors[w["detector"]], images, int(w.get("shards", 1)))
        if stage == "merge_shards":
            dataset = w["dataset"] if "dataset" in w else self.run(w["run"]).dataset
            return res.merge_job(res.split_images(self.project.datasets[dataset], w["split"]))
        if stage in ("train", "embed_prompts", "enhance_with_clip", "infer", "evaluate", "figures"):
            run = self._job_run(w)
            cfg = self.run(run)
            if stage == "train":
                return res.train_job(trained_run(cfg))
            if stage == "embed_prompts":
                return res.embed_prompts_job(bank_clip(cfg))
            if stage == "enhance_with_clip":
                return res.enhance_job(cfg)
            split = w.get("split") or self.split(run, "test")
            images = res.split_images(self.project.datasets[cfg.dataset], split)
            if stage == "infer":
                return res.infer_job(cfg, images, int(w.get("shards", 1)))
            return res.evaluate_job(images)
        return res.small_job()


def _shard_value(wildcards: Mapping[str, str]) -> dict[str, str]:
    """The `shard` option of a shard job (`{shard}-of-{shards}` in its output path)."""
    return {"shard": f"{wildcards['shard']}/{wildcards['shards']}"} if "shard" in wildcards else {}


# --------------------------------------------------------------------------------------------
# small rules run inside Snakemake


def write_settings(path: str | os.PathLike, settings: Mapping[str, Any]) -> None:
    """The settings a shared artifact's address was computed from, as YAML beside it."""
    from hoi_pipeline.artifacts import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(dict(settings), sort_keys=False, width=110))


def link_files(sources: list[str], links: list[str]) -> None:
    """Relative symbolic links `links[i]` -> `sources[i]` (how a run sees its shared training)."""
    for source, link in zip(sources, links, strict=True):
        link_path = Path(link)
        link_path.parent.mkdir(parents=True, exist_ok=True)
        if link_path.is_symlink() or link_path.exists():
            link_path.unlink()
        link_path.symlink_to(os.path.relpath(source, link_path.parent))
