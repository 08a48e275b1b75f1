# Config validation, run resolution and the input/param functions of every rule.
import re

from snakemake.utils import validate

from hoi_pipeline.code_version import stage_code_digest
from hoi_pipeline import resources as res
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


def split_name(run, which):
    """The run's dataset train or test split name."""
    dataset = PROJECT.datasets[RUNS[run].dataset]
    return dataset.train_split if which == "train" else dataset.test_split


def split_files(dataset, split):
    return wf.split_files(dataset, PROJECT.datasets[dataset], split)


def run_split_file(run, which, key):
    """A file of the run's train or test split (annotations, images, detections)."""
    return split_files(RUNS[run].dataset, split_name(run, which))[key]


def proposals_path(run, split):
    cfg = RUNS[run]
    return f"results/proposals/{cfg.dataset}/{cfg.detector}/{split}.h5"


def run_sections(wildcards, *names):
    cfg = RUNS[wildcards.run]
    return wf.section_json({name: getattr(cfg, name) for name in names})


def bank_path(run):
    return f"results/{wf.bank_owner(RUNS, run)}/knowledge_bank.h5"


def checkpoint_path(run):
    return f"results/{wf.training_owner(RUNS, run)}/train/model.pt"


def detect_inputs(wildcards):
    files = split_files(wildcards.dataset, wildcards.split)
    detector = PROJECT.detectors[wildcards.detector]
    inputs = {"annotations": files["annotations"], "weights": wf.local_weights(detector.weights)}
    if detector.backend == "precomputed":
        if "detections" not in files:
            raise ValueError(
                f"detector '{wildcards.detector}' imports precomputed detections, but "
                f"datasets.{wildcards.dataset}.splits.{wildcards.split}.detections is not set"
            )
        inputs["detections"] = files["detections"]
    return inputs


def detections_option(wildcards, input):
    return f"--detections {input.detections}" if "detections" in input.keys() else ""


def infer_inputs(w):
    return {
        "annotations": split_files(RUNS[w.run].dataset, w.split)["annotations"],
        "proposals": proposals_path(w.run, w.split),
        "checkpoint": checkpoint_path(w.run),
    }


def ablation_metrics(wildcards):
    return [f"results/{name}/metrics.csv" for name in [wildcards.run, *wf.ablation_runs(PROJECT, wildcards.run)]]


# Cluster resources of each rule's jobs (hoi_pipeline/resources.py): GPUs only where a network runs on one,
# CPUs, memory and time limit from the run's settings and the split's size, partitions from HOI_SLURM_*.
def on_slurm():
    """Jobs go to SLURM (or this is one): requests are then cut to the partition's largest node."""
    plugin = workflow.executor_plugin
    return plugin is not None and plugin.name in ("slurm", "slurm-jobstep")


def job_resources(job_of):
    return res.snakemake_resources(job_of, on_slurm)


def job_threads(job_of):
    return res.job_threads(job_of, on_slurm)


def images_of(dataset, split):
    return res.split_images(PROJECT.datasets[dataset], split)


def generate_demo_job(w):
    synthetic = PROJECT.datasets[w.dataset].synthetic
    return res.generate_demo_job(synthetic.num_train + synthetic.num_test)


def detect_job(w):
    return res.detect_job(PROJECT.detectors[w.detector], images_of(w.dataset, w.split), int(w.get("shards", 1)))


def merge_proposals_job(w):
    return res.merge_job(images_of(w.dataset, w.split))


def embed_prompts_job(w):
    return res.embed_prompts_job(wf.bank_clip(RUNS[w.run]))


def train_job(w):
    return res.train_job(RUNS[w.run])


def infer_job(w):
    return res.infer_job(RUNS[w.run], images_of(RUNS[w.run].dataset, w.split), int(w.get("shards", 1)))


def merge_detections_job(w):
    return res.merge_job(images_of(RUNS[w.run].dataset, w.split))


def evaluate_job(w):
    return res.evaluate_job(images_of(RUNS[w.run].dataset, split_name(w.run, "test")))


def small_job(w):
    return res.small_job()


# Sharded work (detector.shards, infer.shards > 1): shard jobs, then a merge rule writes the one file.
def names_where(names, sharded):
    chosen = [re.escape(name) for name in names if sharded(name)]
    return "|".join(chosen) if chosen else "(?!)"


SHARDED_DETECTORS = names_where(PROJECT.detectors, lambda d: PROJECT.detectors[d].shards > 1)
UNSHARDED_DETECTORS = names_where(PROJECT.detectors, lambda d: PROJECT.detectors[d].shards == 1)
SHARDED_RUNS = names_where(RUNS, lambda r: RUNS[r].infer.shards > 1)
UNSHARDED_RUNS = names_where(RUNS, lambda r: RUNS[r].infer.shards == 1)


def shard_files(prefix, shards):
    return [f"{prefix}.shards/{i}-of-{shards}.h5" for i in range(shards)]
