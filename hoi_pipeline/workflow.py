"""What the Snakemake rules need from the config, as plain functions (tested without Snakemake).

Runs: every run in `config.yaml`, plus one virtual run per ablation preset of each run, named
`{run}/ablations/{preset}` (so its outputs live under `results/{run}/ablations/{preset}/`).

Sharing work between runs: a run whose training-relevant settings equal an earlier run's reuses
that run's checkpoint (e.g. the "no score fusion" ablation only reruns inference), and runs with the
same dataset and CLIP model share one knowledge bank. Proposals are keyed by dataset and detector.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

from hoi_pipeline.config import (
    ClipConfig,
    ConfigError,
    DatasetConfig,
    ProjectConfig,
    RunConfig,
    TrainConfig,
    from_dict,
    to_dict,
    with_overrides,
)

ABLATION_DIR = "ablations"
TRAINING_SECTIONS = ("dataset", "detector", "clip", "model", "loss", "train")


def load_workflow_config(config: Mapping) -> ProjectConfig:
    """The Snakemake `config` dict as a validated ProjectConfig."""
    return from_dict(ProjectConfig, dict(config), "config")


def ablation_presets() -> dict[str, dict]:
    from hoi_pipeline.ablations import ABLATIONS

    return dict(ABLATIONS)


def all_runs(project: ProjectConfig, with_ablations: bool = True) -> dict[str, RunConfig]:
    """Configured runs first (config order), then each run's ablation variants."""
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


def section_json(sections: Mapping[str, object]) -> str:
    """Compact, key-sorted JSON of config sections: the value a rule's params compare across runs."""
    return json.dumps({name: to_dict(value) for name, value in sections.items()}, sort_keys=True, separators=(",", ":"))


def _training_signature(run: RunConfig) -> str:
    return json.dumps([run.dataset, run.detector, *(to_dict(getattr(run, f)) for f in TRAINING_SECTIONS[2:])])


def _bank_signature(run: RunConfig) -> str:
    return json.dumps([run.dataset, to_dict(bank_clip(run))], sort_keys=True)


def _first_equal(runs: Mapping[str, RunConfig], name: str, signature) -> str:
    if name not in runs:
        raise ConfigError(f"unknown run '{name}'; known runs: {sorted(runs)}")
    target = signature(runs[name])
    return next(other for other, run in runs.items() if signature(run) == target)


def training_owner(runs: Mapping[str, RunConfig], name: str) -> str:
    """The first run whose checkpoint this run can use (itself when no earlier run trains the same)."""
    return _first_equal(runs, name, _training_signature)


def bank_owner(runs: Mapping[str, RunConfig], name: str) -> str:
    """The first run whose knowledge bank this run can use (same dataset and bank text model)."""
    return _first_equal(runs, name, _bank_signature)


def train_launcher(train: TrainConfig) -> str:
    """`python -m`, or torchrun with one process per GPU when `train.gpus` > 1 (DistributedDataParallel)."""
    if train.gpus > 1:
        return f"torchrun --standalone --nproc_per_node={train.gpus} -m"
    return "python -m"


def local_weights(pretrained: str | None) -> list[str]:
    """A `clip.pretrained` / `detector.weights` value as a Snakemake input: a local file path, else nothing."""
    if pretrained and (Path(pretrained).suffix in {".pt", ".pth", ".bin", ".safetensors"} or "/" in pretrained):
        return [pretrained]
    return []


def split_files(name: str, dataset: DatasetConfig, split: str) -> dict[str, str]:
    """The files of a dataset split; for a real dataset, a missing file is an error that says what to do."""
    if split not in dataset.splits:
        raise ConfigError(f"datasets.{name}.splits: no split '{split}' (has {sorted(dataset.splits)})")
    files = dataset.splits[split]
    paths = {"annotations": files.annotations, "images": files.images}
    if files.detections:
        paths["detections"] = files.detections
    if dataset.synthetic is None:
        for key, path in paths.items():
            if not Path(path).exists():
                raise ConfigError(missing_data_message(name, dataset, split, key, path))
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


def synthetic_layout(name: str) -> dict[str, dict[str, str]]:
    """Where the generate_demo rule writes a synthetic dataset; its config must name these paths."""
    root = f"results/data/{name}"
    return {
        split: {
            "annotations": f"{root}/{split}.json",
            "images": f"{root}/images/{split}",
            "detections": f"{root}/detections_{split}.json",
        }
        for split in ("train", "test")
    }


def check_synthetic_layout(name: str, dataset: DatasetConfig) -> None:
    expected = synthetic_layout(name)
    for split, files in expected.items():
        actual = dataset.splits.get(split)
        for key, path in files.items():
            if actual is None or getattr(actual, key) != path:
                raise ConfigError(f"datasets.{name}.splits.{split}.{key}: a synthetic dataset is written to '{path}'")
