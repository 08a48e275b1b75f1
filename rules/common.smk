# Config validation, run resolution and path helpers shared by every rule.
import re

from snakemake.utils import validate

from hoi_pipeline.code_version import stage_code_digest
from hoi_pipeline import workflow as wf


validate(config, "../schemas/config.schema.yaml")
PROJECT = wf.load_workflow_config(config)
RUNS = wf.all_runs(PROJECT)
for _name, _dataset in PROJECT.datasets.items():
    if _dataset.synthetic is not None:
        wf.check_synthetic_layout(_name, _dataset)

SYNTHETIC = [name for name, d in PROJECT.datasets.items() if d.synthetic is not None]


wildcard_constraints:
    run="|".join(re.escape(name) for name in RUNS),
    dataset="|".join(re.escape(name) for name in PROJECT.datasets),
    detector="|".join(re.escape(name) for name in PROJECT.detectors),
    split="[A-Za-z0-9_-]+",
    model="[A-Za-z0-9_.-]+",


def code(stage):
    """Digest of the package code a stage runs: editing that code reruns the stage."""
    return stage_code_digest(f"hoi_pipeline.stages.{stage}")


def run_config(wildcards):
    return RUNS[wildcards.run]


def dataset_of(run):
    return PROJECT.datasets[RUNS[run].dataset]


def split_name(run, which):
    """The run's dataset train or test split name."""
    dataset = dataset_of(run)
    return dataset.train_split if which == "train" else dataset.test_split


def split_files(dataset, split):
    return wf.split_files(dataset, PROJECT.datasets[dataset], split)


def proposals_path(run, split):
    cfg = RUNS[run]
    return f"results/proposals/{cfg.dataset}/{cfg.detector}/{split}.h5"


def run_sections(wildcards, *names):
    cfg = RUNS[wildcards.run]
    return wf.section_json({name: getattr(cfg, name) for name in names})
