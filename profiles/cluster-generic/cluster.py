#!/usr/bin/env python3
"""Submit, query and cancel Snakemake's job scripts on SGE, PBS, LSF, or locally (for tests).

Called by the `cluster-generic` profile (profiles/cluster-generic/config.yaml):

    cluster.py submit --name RULE --gpus N --cpus N --mem-mb N --runtime MIN JOBSCRIPT   prints the job id
    cluster.py status JOBID                                   prints running, success or failed
    cluster.py cancel JOBID...

Site settings come from the environment:

    HOI_CLUSTER_SCHEDULER    sge | pbs | lsf | local  (local: the job runs on this machine, in the background)
    HOI_CLUSTER_QUEUE        queue of CPU jobs (unset: the scheduler's default)
    HOI_CLUSTER_GPU_QUEUE    queue of GPU jobs (unset: HOI_CLUSTER_QUEUE)
    HOI_CLUSTER_ACCOUNT      project / account to charge (unset: none)
    HOI_CLUSTER_SGE_PE       SGE parallel environment for multi-CPU jobs (default: smp)

The resources come from the rules (hoi_pipeline/resources.py). GPUs are asked as the schedulers'
usual generic forms: SGE `-l gpu=N`, PBS `select=1:ngpus=N`, LSF `-gpu "num=N"`; SGE memory is per
slot (h_vmem = memory / CPUs), LSF memory in MB (LSF_UNIT_FOR_LIMITS=MB, the common setting).
Only the standard library is used, so the script runs with any Python 3.8+.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SCHEDULERS = ("sge", "pbs", "lsf", "local")
LOG_DIR = Path(".snakemake/cluster_logs")


@dataclass(frozen=True)
class Request:
    name: str
    gpus: int
    cpus: int
    mem_mb: int
    runtime: int  # minutes


@dataclass(frozen=True)
class Site:
    scheduler: str
    queue: str | None = None
    gpu_queue: str | None = None
    account: str | None = None
    sge_pe: str = "smp"

    @classmethod
    def from_environ(cls, environ: dict) -> Site:
        scheduler = environ.get("HOI_CLUSTER_SCHEDULER", "").strip().lower()
        if scheduler not in SCHEDULERS:
            raise SystemExit(f"HOI_CLUSTER_SCHEDULER={scheduler!r}: set it to one of {', '.join(SCHEDULERS)}")

        def text(name: str) -> str | None:
            return environ.get(name, "").strip() or None

        return cls(
            scheduler, text("HOI_CLUSTER_QUEUE"), text("HOI_CLUSTER_GPU_QUEUE"), text("HOI_CLUSTER_ACCOUNT"),
            text("HOI_CLUSTER_SGE_PE") or "smp",
        )  # fmt: skip

    def queue_for(self, gpus: int) -> str | None:
        return (self.gpu_queue or self.queue) if gpus else self.queue


def clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


def job_name(rule: str) -> str:
    """A name every scheduler accepts: letters, digits, _ and -, starting with a letter, at most 15 characters."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", rule)
    return ("j" + name if not name[:1].isalpha() else name)[:15]


def submit_command(site: Site, request: Request, jobscript: str) -> list[str]:
    """The scheduler's submission of `jobscript` with the request (not for `local`)."""
    queue, name = site.queue_for(request.gpus), job_name(request.name)
    if site.scheduler == "sge":
        command = ["qsub", "-terse", "-cwd", "-V", "-N", name, "-j", "y", "-o", f"{LOG_DIR}/",
                   "-l", f"h_rt={clock(request.runtime)}",
                   "-l", f"h_vmem={-(-request.mem_mb // request.cpus)}M"]  # fmt: skip
        if request.cpus > 1:
            command += ["-pe", site.sge_pe, str(request.cpus)]
        if request.gpus:
            command += ["-l", f"gpu={request.gpus}"]
        command += ["-q", queue] if queue else []
        command += ["-P", site.account] if site.account else []
    elif site.scheduler == "pbs":
        select = f"select=1:ncpus={request.cpus}:mem={request.mem_mb}mb"
        select += f":ngpus={request.gpus}" if request.gpus else ""
        command = ["qsub", "-V", "-N", name, "-j", "oe", "-o", f"{LOG_DIR}/",
                   "-l", select, "-l", f"walltime={clock(request.runtime)}"]  # fmt: skip
        command += ["-q", queue] if queue else []
        command += ["-A", site.account] if site.account else []
    elif site.scheduler == "lsf":
        command = ["bsub", "-J", name, "-o", f"{LOG_DIR}/%J.log", "-n", str(request.cpus),
                   "-R", f"span[hosts=1] rusage[mem={-(-request.mem_mb // request.cpus)}]",
                   "-M", str(request.mem_mb), "-W", str(request.runtime)]  # fmt: skip
        if request.gpus:
            command += ["-gpu", f"num={request.gpus}"]
        command += ["-q", queue] if queue else []
        command += ["-P", site.account] if site.account else []
    else:
        raise ValueError(f"no submission command for scheduler '{site.scheduler}'")
    return command + [jobscript]


def job_id(scheduler: str, output: str) -> str:
    """The job id in a submission's output: SGE `-terse` `123`, PBS `123.server`, LSF `Job <123> is submitted ...`."""
    text = output.strip()
    if scheduler == "lsf":
        match = re.search(r"Job <(\d+)>", text)
    elif scheduler == "pbs":
        match = re.match(r"(\d+(?:\[\d*\])?\.\S+|\d+)", text)
    else:
        match = re.match(r"(\d+)", text)
    if match is None:
        raise SystemExit(f"{scheduler}: no job id in the submission output {text!r}")
    return match.group(1)


def status_from(scheduler: str, output: str, returncode: int) -> str:
    """running / success / failed from the scheduler's query: SGE `qacct -j ID` (after `qstat -j ID` stopped
    knowing the job), PBS `qstat -x -f ID`, LSF `bjobs -noheader -o stat ID`."""
    if scheduler == "sge":  # qacct has no record yet for a job that just ended
        if "exit_status" not in output:
            return "running"
        failed = re.search(r"^failed\s+(\d+)", output, re.M)
        exit_status = re.search(r"^exit_status\s+(\d+)", output, re.M)
        ok = exit_status and exit_status.group(1) == "0" and not (failed and failed.group(1) != "0")
        return "success" if ok else "failed"
    if scheduler == "pbs":  # `qstat -x -f ID`
        state = re.search(r"job_state = (\w)", output)
        if state is None or state.group(1) != "F":
            return "running" if returncode == 0 else "failed"
        code = re.search(r"Exit_status = (-?\d+)", output)
        return "success" if code and code.group(1) == "0" else "failed"
    if scheduler == "lsf":  # `bjobs -noheader -o stat ID`
        stat = output.strip().split()[0] if output.strip() else ""
        return {"DONE": "success", "EXIT": "failed"}.get(stat, "running" if returncode == 0 else "failed")
    raise ValueError(scheduler)


# --------------------------------------------------------------------------------------------
# local: the job runs here, in the background (the profile's test)


def submit_local(jobscript: str, request: Request) -> str:
    """Start the job script in its own session; its exit status lands in LOG_DIR/<pid>.exit.

    Each submission and its request is listed in LOG_DIR/local_jobs.tsv (what a scheduler would have been asked).
    """
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    script = f'bash {shlex.quote(jobscript)}; echo $? > "{LOG_DIR}/$$.exit"'
    process = subprocess.Popen(
        ["bash", "-c", script],
        stdin=subprocess.DEVNULL,
        stdout=open(LOG_DIR / f"{Path(jobscript).name}.log", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    with open(LOG_DIR / "local_jobs.tsv", "a") as table:
        table.write(f"{process.pid}\t{request.name}\t{request.gpus}\t{request.cpus}\t{request.mem_mb}\t{request.runtime}\n")
    return str(process.pid)


def status_local(jobid: str) -> str:
    exit_file = LOG_DIR / f"{jobid}.exit"
    if exit_file.exists():
        return "success" if exit_file.read_text().strip() == "0" else "failed"
    try:
        os.kill(int(jobid), 0)
    except ProcessLookupError:
        return "failed"  # gone without writing its exit status: killed
    return "running"


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("submit")
    p.add_argument("--name", required=True)
    p.add_argument("--gpus", type=int, default=0)
    p.add_argument("--cpus", type=int, default=1)
    p.add_argument("--mem-mb", type=int, default=2000)
    p.add_argument("--runtime", type=int, default=60, help="minutes")
    p.add_argument("jobscript")
    p = sub.add_parser("status")
    p.add_argument("jobid")
    p = sub.add_parser("cancel")
    p.add_argument("jobids", nargs="+")
    args = parser.parse_args(argv)
    site = Site.from_environ(dict(os.environ))

    if args.action == "submit":
        request = Request(args.name, args.gpus, args.cpus, args.mem_mb, args.runtime)
        if site.scheduler == "local":
            print(submit_local(args.jobscript, request))
            return 0
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(submit_command(site, request, args.jobscript), capture_output=True, text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stderr or result.stdout)
            return result.returncode
        print(job_id(site.scheduler, result.stdout))
        return 0
    if args.action == "status":
        if site.scheduler == "local":
            print(status_local(args.jobid))
            return 0
        if site.scheduler == "sge":  # qstat knows queued and running jobs, qacct finished ones
            if subprocess.run(["qstat", "-j", args.jobid], capture_output=True).returncode == 0:
                print("running")
                return 0
            command = ["qacct", "-j", args.jobid]
        else:
            command = {"pbs": ["qstat", "-x", "-f", args.jobid], "lsf": ["bjobs", "-noheader", "-o", "stat", args.jobid]}[
                site.scheduler
            ]
        result = subprocess.run(command, capture_output=True, text=True)
        print(status_from(site.scheduler, result.stdout, result.returncode))
        return 0
    for jobid in args.jobids:  # cancel
        if site.scheduler == "local":
            try:
                os.killpg(int(jobid), 15)
            except ProcessLookupError:
                pass
        else:
            command = {"sge": ["qdel"], "pbs": ["qdel"], "lsf": ["bkill"]}[site.scheduler]
            subprocess.run(command + [jobid], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
