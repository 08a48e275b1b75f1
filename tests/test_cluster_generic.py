"""profiles/cluster-generic: the SGE / PBS / LSF submissions it builds, and a run whose jobs it starts locally."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from test_workflow import REDUCED, copy_workflow, write_yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "profiles" / "cluster-generic" / "cluster.py"
spec = importlib.util.spec_from_file_location("cluster_generic", SCRIPT)
cluster = importlib.util.module_from_spec(spec)
sys.modules["cluster_generic"] = cluster  # dataclasses resolve their module's annotations through sys.modules
spec.loader.exec_module(cluster)

GPU_JOB = cluster.Request("train", gpus=2, cpus=10, mem_mb=32000, runtime=90)
CPU_JOB = cluster.Request("evaluate", gpus=0, cpus=1, mem_mb=2000, runtime=11)


def test_sge_submission():
    site = cluster.Site("sge", queue="all.q", gpu_queue="gpu.q", account="proj")
    command = cluster.submit_command(site, GPU_JOB, "job.sh")
    assert command[:3] == ["qsub", "-terse", "-cwd"] and command[-1] == "job.sh"
    text = " ".join(command)
    assert "-pe smp 10" in text and "-l h_vmem=3200M" in text and "-l h_rt=01:30:00" in text
    assert "-l gpu=2" in text and "-q gpu.q" in text and "-P proj" in text
    cpu = " ".join(cluster.submit_command(site, CPU_JOB, "job.sh"))
    assert "-pe" not in cpu and "gpu" not in cpu and "-q all.q" in cpu


def test_pbs_submission():
    command = cluster.submit_command(cluster.Site("pbs"), GPU_JOB, "job.sh")
    assert command[command.index("-l") + 1] == "select=1:ncpus=10:mem=32000mb:ngpus=2"
    assert "walltime=01:30:00" in command and "-q" not in command
    assert "select=1:ncpus=1:mem=2000mb" in cluster.submit_command(cluster.Site("pbs"), CPU_JOB, "job.sh")


def test_lsf_submission():
    command = cluster.submit_command(cluster.Site("lsf", queue="normal"), GPU_JOB, "job.sh")
    assert command[:3] == ["bsub", "-J", "train"]
    assert command[command.index("-gpu") + 1] == "num=2" and command[command.index("-W") + 1] == "90"
    assert "span[hosts=1] rusage[mem=3200]" in command and command[command.index("-M") + 1] == "32000"


@pytest.mark.parametrize(
    ("scheduler", "output", "jobid"),
    [("sge", "4711\n", "4711"), ("pbs", "4711.pbs01.cluster\n", "4711.pbs01.cluster"),
     ("lsf", "Job <4711> is submitted to queue <normal>.\n", "4711")],
)  # fmt: skip
def test_job_ids_from_submission_output(scheduler, output, jobid):
    assert cluster.job_id(scheduler, output) == jobid


@pytest.mark.parametrize(
    ("scheduler", "output", "code", "status"),
    [
        ("sge", "", 1, "running"),  # qacct has no record yet
        ("sge", "jobnumber    4711\nfailed       0\nexit_status  0\n", 0, "success"),
        ("sge", "failed       37  : qmaster enforced h_rt limit\nexit_status  137\n", 0, "failed"),
        ("pbs", "    job_state = R\n", 0, "running"),
        ("pbs", "    job_state = F\n    Exit_status = 0\n", 0, "success"),
        ("pbs", "    job_state = F\n    Exit_status = 271\n", 0, "failed"),
        ("lsf", "RUN\n", 0, "running"),
        ("lsf", "DONE\n", 0, "success"),
        ("lsf", "EXIT\n", 0, "failed"),
    ],
)
def test_job_states_from_the_schedulers_queries(scheduler, output, code, status):
    assert cluster.status_from(scheduler, output, code) == status


def test_job_names_every_scheduler_accepts():
    assert cluster.job_name("merge_proposals_and_more") == "merge_proposals"
    assert cluster.job_name("1x.y") == "j1x_y"


def test_unknown_scheduler_is_a_clear_error():
    with pytest.raises(SystemExit, match="HOI_CLUSTER_SCHEDULER='slurmish': set it to one of sge, pbs, lsf, local"):
        cluster.Site.from_environ({"HOI_CLUSTER_SCHEDULER": "slurmish"})


@pytest.mark.slow
def test_the_profile_runs_jobs_through_the_submit_command(tmp_path):
    """Demo data and its proposals through profiles/cluster-generic, the jobs started locally by cluster.py."""
    pytest.importorskip("snakemake_executor_plugin_cluster_generic", reason='pip install -e ".[cluster]"')
    workdir = copy_workflow(tmp_path / "workflow")
    shutil.copytree(ROOT / "profiles", workdir / "profiles")
    write_yaml(workdir / "reduced.yaml", REDUCED)
    env = {**os.environ, "HOI_CLUSTER_SCHEDULER": "local"}
    target = "results/proposals/demo/demo_import/test.h5"
    command = [sys.executable, "-m", "snakemake", "--workflow-profile", "profiles/cluster-generic",
               "--configfile", "config.yaml", "reduced.yaml", "--", target]  # fmt: skip
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (workdir / target).is_file()
    jobs = pd.read_csv(workdir / ".snakemake/cluster_logs/local_jobs.tsv", sep="\t",
                       names=["pid", "name", "gpus", "cpus", "mem_mb", "runtime"])  # fmt: skip
    assert sorted(jobs["name"]) == ["detect", "generate_demo"]
    assert (jobs["gpus"] == 0).all() and (jobs["cpus"] == 1).all()  # imported detections: no network, no GPU
    for pid in jobs["pid"]:
        assert (workdir / f".snakemake/cluster_logs/{pid}.exit").read_text().strip() == "0"
