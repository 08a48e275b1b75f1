"""The SLURM profile on a real SLURM: a single-node cluster on this machine (tests/slurm/cluster.sh).

The node has the machine's CPUs and memory, partitions `debug` and `long`, two fake GPUs and no
accounting database (so job states come from squeue, as the profile sets). The demo runs through
`profiles/slurm` at the reduced size of tests/test_workflow.py; what each job asked for is read back
from SLURM itself (`scontrol show job` lists finished jobs for MinJobAge = 300 s). A multi-GPU training then runs
as one job with two GPUs under torchrun, is requeued (as a preemption does) after its first
checkpoint, and resumes from it.

Needs root and the Debian packages slurmctld slurmd slurm-client munge (`.ci/run` installs them when
it can), and snakemake-executor-plugin-slurm (`pip install -e ".[slurm]"`); skipped otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from test_workflow import REDUCED, copy_workflow, write_yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
RUN_TIMEOUT = 1200  # seconds: the reduced demo takes about 5 minutes on a busy 2-core machine


@pytest.fixture(scope="module")
def slurm(tmp_path_factory) -> dict[str, str]:
    """A running single-node SLURM; the environment its clients need."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason='pip install -e ".[slurm]" to test the profile')
    folder = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(["bash", str(CLUSTER), "start", str(folder), "2"], capture_output=True, text=True)
    if started.returncode == 3:
        pytest.skip(f"no local SLURM here: {started.stderr.strip()}")
    assert started.returncode == 0, started.stdout + started.stderr
    yield {"SLURM_CONF": str(folder / "slurm.conf")}
    subprocess.run(["bash", str(CLUSTER), "stop", str(folder)], check=False)


def slurm_jobs(env: dict[str, str], workdir: Path) -> pd.DataFrame:
    """What SLURM was asked for by the jobs of a working directory (`scontrol show job`, one row per job)."""
    result = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True, env=env, check=True)
    columns = ["JobId", "WorkDir", "Partition", "NumCPUs", "MinMemoryNode", "TresPerJob", "TresPerNode",
               "TimeLimit", "JobState", "Restarts", "Comment"]  # fmt: skip
    jobs = pd.DataFrame(
        [{key: fields.get(key, "") for key in columns} for fields in map(job_fields, result.stdout.splitlines())],
        columns=columns,
    )
    return jobs[jobs["WorkDir"] == str(workdir)]


def job_fields(line: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S*)", line))


def snakemake_on_slurm(workdir: Path, env: dict[str, str], *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "snakemake", "--workflow-profile", "profiles/slurm",
               "--slurm-init-seconds-before-status-checks", "2", *args]  # fmt: skip
    log = open(workdir / "snakemake.log", "a")
    return subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)


def finish(process: subprocess.Popen, workdir: Path, timeout: float = RUN_TIMEOUT) -> None:
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(process)
        raise AssertionError(f"snakemake on SLURM did not finish in {timeout} s:\n{log_tail(workdir)}") from None
    assert code == 0, log_tail(workdir)


def stop(process: subprocess.Popen) -> None:
    """End a Snakemake run a failed test left behind (it cancels its jobs)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def release_now(job: str, env: dict[str, str]) -> None:
    """Start a requeued job now, not after SLURM's two-minute requeue delay (once it is pending again)."""
    for _ in range(120):
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T %r"], env=env, capture_output=True, text=True)
        if state.stdout.split() == ["PENDING", "BeginTime"]:
            subprocess.run(["scontrol", "update", f"jobid={job}", "StartTime=now"], env=env, check=True)
        elif state.stdout.startswith(("RUNNING", "COMPLETED")):
            return
        time.sleep(0.5)
    raise AssertionError(f"requeued job {job} did not start again: {state.stdout.strip()}")


def log_tail(workdir: Path) -> str:
    text = (workdir / "snakemake.log").read_text(errors="replace")[-6000:]
    slurm_logs = sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    return text + "".join(f"\n--- {p}:\n{p.read_text(errors='replace')[-2000:]}" for p in slurm_logs[-3:])


@pytest.fixture(scope="module")
def demo_on_slurm(slurm, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The reduced demo through profiles/slurm, as the README tells a user to run it."""
    workdir = copy_workflow(tmp_path_factory.mktemp("demo"))
    shutil.copytree(ROOT / "profiles", workdir / "profiles")
    write_yaml(workdir / "reduced.yaml", REDUCED)
    env = {**os.environ, **slurm, "HOI_SLURM_PARTITION": "debug", "HOI_SLURM_GPU_PARTITION": "debug"}
    env.pop("HOI_SLURM_ACCOUNT", None)
    process = snakemake_on_slurm(workdir, env, "--configfile", "config.yaml", "reduced.yaml", "--",
                                 "results/demo/metrics.csv")  # fmt: skip
    finish(process, workdir)
    return workdir, env


def test_demo_runs_through_the_profile_without_asking_for_a_gpu(demo_on_slurm):
    workdir, env = demo_on_slurm
    metrics = pd.read_csv(workdir / "results/demo/metrics.csv")
    assert list(metrics["setting"]) == ["default", "known_object"]
    jobs = slurm_jobs(env, workdir)
    rules = {comment.split("_wildcards")[0].removeprefix("rule_") for comment in jobs["Comment"]}
    assert rules == {"generate_demo", "init_clip", "detect", "embed_prompts", "train", "infer", "evaluate"}
    assert (jobs["JobState"] == "COMPLETED").all(), jobs
    assert (jobs["Partition"] == "debug").all()
    asked = jobs["TresPerJob"] + jobs["TresPerNode"]  # --gpus and --gres
    assert not asked.str.contains("gpu").any(), jobs  # no GPU: the node of issue 12 has none
    assert jobs["NumCPUs"].astype(int).max() <= 2  # that node has 2 CPUs
    assert jobs["MinMemoryNode"].str.removesuffix("M").astype(int).max() <= 4000


def test_multi_gpu_training_is_one_job_and_resumes_after_a_requeue(demo_on_slurm, tmp_path):
    """train.gpus: 2 -> one job with 2 GPUs and torchrun; requeued after its first checkpoint, it resumes.

    Its 6 CPUs are more than the node has: the request is cut to the node (`sinfo`), as it must be to run.
    """
    workdir, env = demo_on_slurm
    run = {"dataset": "demo", "detector": "demo_import",
           "clip": {"model": "hoi-tiny-rn", "pretrained": "results/models/hoi-tiny-rn_random-init.pt"},
           "model": {"input_size": 192, "hidden_dim": 128, "spatial_dim": 32}, "loss": {"relatedness_warmup": 4},
           "train": {"gpus": 2, "device": "auto", "iterations": 32, "batch_size": 4, "checkpoint_every": 4,
                     "log_every": 1, "num_workers": 2, "precision": "fp32", "lr_milestones": [24]}}  # fmt: skip
    ddp = write_yaml(workdir / "ddp.yaml", {"runs": {"demo_ddp": run}})
    target = "results/demo_ddp/train/model.pt"
    process = snakemake_on_slurm(workdir, env, "--configfile", "config.yaml", "reduced.yaml", str(ddp), "--", target)
    # the run's training lives at its address under results/shared/train/ (beside the demo's own training)
    earlier = set(workdir.glob("results/shared/train/*/checkpoints/last.pt"))
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while not (new := set(workdir.glob("results/shared/train/*/checkpoints/last.pt")) - earlier):
            assert process.poll() is None, f"finished before its first checkpoint:\n{log_tail(workdir)}"
            assert time.monotonic() < deadline, log_tail(workdir)
            time.sleep(1)
        (checkpoint,) = new
        training = checkpoint.parent.parent.name
        (job,) = slurm_jobs(env, workdir).query(f"Comment == 'rule_train_wildcards_{training}'")["JobId"]
        # a preemption with PreemptMode=REQUEUE: the job is killed and queued again under its id
        subprocess.run(["scontrol", "requeue", job], env=env, check=True)
        release_now(job, env)
        finish(process, workdir)
    finally:
        stop(process)

    (train,) = slurm_jobs(env, workdir).query(f"Comment == 'rule_train_wildcards_{training}'").itertuples()
    assert train.TresPerJob == "gres:gpu:2"  # one job, two GPUs (fake ones here: CUDA_VISIBLE_DEVICES
    # is set but there is no CUDA, so torchrun's two processes train on the CPU)
    assert train.Restarts == "1" and train.JobState == "COMPLETED"
    node_cpus = int(subprocess.run(["sinfo", "-h", "-o", "%c"], env=env, capture_output=True, text=True).stdout.split()[0])
    assert int(train.NumCPUs) == min(6, node_cpus)  # asks 2 x (2 workers + 1); cut to the node, not pending forever
    train_log = (workdir / f"results/logs/train/{training}.log").read_text()
    assert "over 2 process(es)" in train_log  # torchrun started two processes
    assert re.search(rf"resum\w+ from results/shared/train/{training}/checkpoints/last.pt at iteration", train_log)
    assert (workdir / target).is_file()
