# Config validation, the workflow's view of the config (hoi_pipeline/workflow.py) and the helpers every rule uses.
#
# A rule declares its outputs, log and resources; its inputs, shell command and rerun triggers come from the
# stage's declaration (hoi_pipeline/stages/specs.py) through three helpers:
#   input:  unpack(stage_inputs("train"))      the stage's input files for the job's wildcards
#   params: **stage_params("train")            `command` (the CLI call) + one rerun trigger per setting and source file
#   shell:  STAGE_SHELL                        runs `{params.command}`, output to the job's log
# and asks a cluster for what the job's work needs (hoi_pipeline/resources.py: GPUs only where a network runs
# on one; CPUs, memory and time from the run's settings and the split's size; partitions from HOI_SLURM_*):
#   threads: stage_threads("train")    resources: **stage_resources("train")
import re

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from hoi_pipeline import resources as res
from hoi_pipeline import workflow as wf
from hoi_pipeline.config import ConfigError

try:  # our own check first: it names the bad key and the allowed ones in one line
    PROJECT = wf.load_workflow_config(config)
    for _name, _dataset in PROJECT.datasets.items():
        if _dataset.synthetic is not None:
            wf.check_synthetic_layout(_name, _dataset)
    WF = wf.Workflow(PROJECT)
except ConfigError as error:
    raise WorkflowError(f"invalid configuration: {error}") from None
validate(config, "../schemas/config.schema.yaml")
RUNS = WF.runs
SYNTHETIC_FAMILIES = {
    family: [name for name, d in PROJECT.datasets.items() if d.synthetic is not None and d.synthetic.family == family]
    for family in ("hicodet", "vcoco")
}
STAGE_SHELL = "{params.command} > {log:q} 2>&1"


def _alternatives(names):
    return "|".join(re.escape(name) for name in names) or "(?!)"


wildcard_constraints:
    run=_alternatives(RUNS),
    dataset=_alternatives(PROJECT.datasets),
    detector=_alternatives(PROJECT.detectors),
    training=_alternatives(WF.trainings),
    bank=_alternatives(WF.banks),
    split="[A-Za-z0-9_-]+",
    model="[A-Za-z0-9_.-]+",


def stage_inputs(stage):
    """The stage's input files for a job (an input function for `unpack`)."""
    return lambda wildcards: WF.inputs(stage, wildcards)


def stage_params(stage):
    """`command` (not a rerun trigger) plus the stage's rerun triggers, as rule params."""
    return {
        "command": lambda wildcards, input, output: WF.command(stage, wildcards, input, output),
        **WF.rerun_params(stage),
    }


def on_slurm():
    """Jobs go to SLURM (or this is one): requests are then cut to the partition's largest node."""
    plugin = workflow.executor_plugin
    return plugin is not None and plugin.name in ("slurm", "slurm-jobstep")


def stage_resources(stage):
    """A rule's resources (`**stage_resources(...)`): gpu, cpus_per_task, mem_mb, runtime, partition, account."""
    return res.snakemake_resources(lambda wildcards: WF.job_request(stage, wildcards), on_slurm)


def stage_threads(stage):
    return res.job_threads(lambda wildcards: WF.job_request(stage, wildcards), on_slurm)


# sharded work (detector.shards, infer.shards > 1): shard jobs, then a merge job writes the one file
SHARDED_DETECTORS = _alternatives([d for d, cfg in PROJECT.detectors.items() if cfg.shards > 1])
UNSHARDED_DETECTORS = _alternatives([d for d, cfg in PROJECT.detectors.items() if cfg.shards == 1])
SHARDED_RUNS = _alternatives([r for r, cfg in RUNS.items() if cfg.infer.shards > 1])
UNSHARDED_RUNS = _alternatives([r for r, cfg in RUNS.items() if cfg.infer.shards == 1])
