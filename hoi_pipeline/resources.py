"""What each pipeline job asks a cluster for: GPUs, CPUs, memory and a time limit, from the work it does.

A job asks for a GPU only when it runs a network on one: proposal extraction with a detector, the
training and the inference (one GPU each, `train.gpus` for training), unless the section's `device`
is `cpu`. Imported (precomputed) detections, evaluation, the demo data and the merges run on CPUs;
so does the knowledge bank (at most 600 prompts through a text tower, minutes on a CPU) unless
`clip.device` names a GPU. CPUs, memory and time follow the run's settings (model, batch size,
iterations, DataLoader workers) and the split's size, so the demo asks for little (at most 2 CPUs
and a few GB) and HICO-DET for what it needs.

The figures behind the estimates are in `FIGURES` with where each comes from: "measured" ones by
this repository's benchmarks on a 2-core CPU without a GPU (README, Benchmarks), "assumed" ones from
published figures, because no GPU was measured. A time limit is `SETUP_MINUTES` plus `MARGIN` times
the estimate; a retry of a job that ran out of time gets a longer one (attempt x), except training,
which resumes from its checkpoint and continues where it stopped.

Site settings come from the environment (read once per job by `snakemake_resources`):

    HOI_SLURM_PARTITION      partition of CPU jobs (unset: the cluster's default partition)
    HOI_SLURM_GPU_PARTITION  partition of GPU jobs (unset: HOI_SLURM_PARTITION)
    HOI_SLURM_ACCOUNT        account to charge (unset: none given)
    HOI_JOB_MAX_CPUS, HOI_JOB_MAX_MEM_MB, HOI_JOB_MAX_RUNTIME (minutes)
                             the largest job the site runs; requests are cut to them (unset: no cap).
                             A training cut short by the time cap resumes in the next attempt.

On SLURM, requests are also cut to the largest node of the job's partition as `sinfo` reports it (a
job larger than every node would wait forever), and more GPUs than any node has is an error.

Everything here is a pure function of settings except `count_images` (lists a folder),
`slurm_limits` (asks `sinfo`) and `snakemake_resources` (reads the environment); a rule uses them as

    threads: job_threads(lambda w: train_job(RUNS[w.run]), on_slurm)
    resources: **snakemake_resources(lambda w: train_job(RUNS[w.run]), on_slurm)

with `on_slurm()` telling whether the workflow runs with the SLURM executor (rules/common.smk).
"""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from hoi_pipeline.config import ClipConfig, DatasetConfig, DetectorConfig, InferConfig, RunConfig

SETUP_MINUTES = 10  # job start, Python and torch imports, model loading, Snakemake inside the job
MARGIN = 2.0  # time limit = setup + MARGIN x estimate (slower or busier nodes than the figures' machines)
MIN_MEM_MB = 2000  # Python with torch imported peaks at 0.9-1.0 GB (results/benchmarks/*.tsv of the demo, max_rss)
MEM_MARGIN = 1.5
WORKER_MEM_MB = 1000  # a DataLoader worker: a forked process with torch imported, plus its prefetched batches
CPU_COMPUTE_THREADS = 2  # threads of a network run on the CPU (the CPU figures were measured with 2 cores)


@dataclass(frozen=True)
class Figure:
    value: float
    source: str


# seconds per image (training: per image of a batch, one process) and peak memory per process
FIGURES: dict[str, Figure] = {
    # detection (Faster R-CNN R50-FPN v2, torchvision)
    "detect_cpu_s": Figure(8.3, "measured: benchmarks/bench_detect.py --device cpu, 0.12 images/s on 2 cores"),
    "detect_gpu_s": Figure(
        0.12,
        "assumed: torchvision's published 0.059 s/image for Faster R-CNN R50-FPN (v1) on a V100, "
        "x2 for v2's 280 vs 134 GFLOPs",
    ),
    "detect_mem_mb": Figure(6000, "assumed: weights 0.2 GB, 800x1333 inputs in batches of 4, torch runtime"),
    "precomputed_s": Figure(0.02, "measured: demo detect (240 images imported in 5.8 s, imports included)"),
    "precomputed_mem_mb": Figure(0.05, "assumed: 50 KB per image of parsed json (100 boxes as Python objects)"),
    # training, per image of the (per-process) batch
    "train_cpu_s:hoi-tiny-rn": Figure(0.025, "measured: demo train, 300 iterations of batch 8 in 61 s on 2 cores"),
    "train_cpu_s:RN50": Figure(1.67, "measured: benchmarks/bench_train.py --model RN50 --batch-size 24: 40 s/iteration"),
    "train_cpu_s:RN101": Figure(
        1.75, "measured: benchmarks/bench_train.py --model RN101 --batch-size 24: 42 s/iteration"
    ),
    "train_gpu_s:hoi-tiny-rn": Figure(0.002, "assumed: a tenth of RN50's"),
    "train_gpu_s:RN50": Figure(
        0.01,
        "assumed: 100 images/s (open_clip trains RN50 at several hundred images/s per A100; "
        "our step adds the pair networks and image decoding)",
    ),
    "train_gpu_s:RN101": Figure(0.013, "assumed: RN50's x1.3 (7.8 vs 5.4 GFLOPs per 224 px image)"),
    "train_mem_mb:hoi-tiny-rn": Figure(1600, "measured: demo train process, 1.6 GB resident"),
    "train_mem_mb:RN50": Figure(7100, "measured: benchmarks/bench_train.py --model RN50 --batch-size 24 --device cpu"),
    "train_mem_mb:RN101": Figure(8300, "measured: benchmarks/bench_train.py --model RN101 --batch-size 24 --device cpu"),
    # inference, per image
    "infer_cpu_s:hoi-tiny-rn": Figure(0.065, "measured: demo infer, 80 images in 5.2 s"),
    "infer_cpu_s:RN50": Figure(1.6, "measured: benchmarks/bench_infer.py --device cpu --clip-model RN50: 0.63 images/s"),
    "infer_cpu_s:RN101": Figure(2.1, "assumed: RN50's x1.3 (7.8 vs 5.4 GFLOPs per 224 px image)"),
    "infer_gpu_s:hoi-tiny-rn": Figure(0.002, "assumed: as training"),
    "infer_gpu_s:RN50": Figure(0.01, "assumed: as training (every pair scored, no backward pass)"),
    "infer_gpu_s:RN101": Figure(0.013, "assumed: as training"),
    # the knowledge bank: one text-tower pass per HOI class (600 for HICO-DET)
    "embed_cpu_s_per_prompt": Figure(
        0.42, "measured: RN101 text tower, 600 prompts in 251 s on 2 busy cores (load 20; an upper bound)"
    ),
    "embed_mem_mb": Figure(1950, "measured: the same run's peak resident set (RN101, both towers built)"),
    # demo data, evaluation
    "generate_s": Figure(0.03, "measured: generate_demo, 320 images in 9.7 s"),
    "evaluate_s": Figure(0.001, "measured: benchmarks/bench_evaluate.py, HICO-DET test (9,658 images) in 1.5-1.9 s"),
    "evaluate_mem_mb": Figure(
        380, "measured: /usr/bin/time -v benchmarks/bench_evaluate.py (965,800 detections): 0.37 GB peak"
    ),
}
LARGEST_KNOWN = "RN101"  # figures for models without their own (x UNKNOWN_MODEL_FACTOR)
UNKNOWN_MODEL_FACTOR = 2.0


@dataclass(frozen=True)
class JobResources:
    """One job's request. `runtime` in minutes (SLURM's -t); `resumable` jobs keep it on retries."""

    gpus: int
    cpus: int
    mem_mb: int
    runtime: int
    resumable: bool = False

    def __post_init__(self) -> None:
        if self.gpus < 0 or self.cpus < 1 or self.mem_mb < 1 or self.runtime < 1:
            raise ValueError(f"impossible job resources {self}")


# --------------------------------------------------------------------------------------------
# pure estimates


def figure(name: str, model: str | None = None) -> float:
    """A figure of `FIGURES`, per model where it depends on one; unknown models get the largest known x2."""
    if model is None:
        return FIGURES[name].value
    base = model.removesuffix("-quickgelu")
    key = f"{name}:{base}"
    if key in FIGURES:
        return FIGURES[key].value
    return FIGURES[f"{name}:{LARGEST_KNOWN}"].value * UNKNOWN_MODEL_FACTOR


def on_gpu(device: str) -> bool:
    """Whether a network with this `device` setting runs on a GPU of the job (auto: it does when given one)."""
    return device != "cpu"


def job(*, gpus: int, cpus: int, mem_mb: float, seconds: float, resumable: bool = False) -> JobResources:
    """A request from an estimate: memory x MEM_MARGIN (at least MIN_MEM_MB), setup + MARGIN x time."""
    return JobResources(
        gpus=gpus,
        cpus=max(1, cpus),
        mem_mb=int(math.ceil(max(MIN_MEM_MB, mem_mb * MEM_MARGIN) / 100) * 100),
        runtime=int(math.ceil(SETUP_MINUTES + MARGIN * seconds / 60)),
        resumable=resumable,
    )


def per_job_images(images: int, shards: int) -> int:
    """Images of the largest shard (shard sizes differ by at most one)."""
    return -(-images // shards)


def detect_job(detector: DetectorConfig, images: int, shards: int = 1) -> JobResources:
    """Proposal extraction (or import) of a split of `images` images, or of one of its `shards` blocks."""
    if detector.backend == "precomputed":  # the whole json is read by every shard; no network
        return job(gpus=0, cpus=1, mem_mb=1000 + images * figure("precomputed_mem_mb"),
                   seconds=images * figure("precomputed_s"))  # fmt: skip
    count = per_job_images(images, shards)
    gpu = on_gpu(detector.device)
    seconds = count * figure("detect_gpu_s" if gpu else "detect_cpu_s")
    cpus = detector.num_workers + (1 if gpu else CPU_COMPUTE_THREADS)
    return job(gpus=int(gpu), cpus=cpus, mem_mb=figure("detect_mem_mb") + detector.num_workers * WORKER_MEM_MB,
               seconds=seconds)  # fmt: skip


def embed_prompts_job(clip: ClipConfig, prompts: int = 600) -> JobResources:
    """The knowledge bank: `prompts` (HOI classes) through CLIP's text tower; on a GPU only if clip.device names one."""
    gpu = clip.device.startswith("cuda")
    return job(gpus=int(gpu), cpus=1 if gpu else CPU_COMPUTE_THREADS, mem_mb=figure("embed_mem_mb"),
               seconds=prompts * figure("embed_cpu_s_per_prompt") / (10 if gpu else 1))  # fmt: skip


def enhance_job(run: RunConfig) -> JobResources:
    """Table 3 Abl 3: a trained model and CLIP's visual tower loaded once and saved together, on a CPU; the
    models' memory bounded by a training process's (at most a minute of work)."""
    return job(gpus=0, cpus=1, mem_mb=figure("train_mem_mb", run.clip.model), seconds=60)


def train_job(run: RunConfig) -> JobResources:
    """One job with `train.gpus` GPUs (torchrun, one process each) or, with `device: cpu`, as many CPU processes."""
    train = run.train
    gpu = on_gpu(train.device)
    processes = max(1, train.gpus)
    per_process_images = train.batch_size / processes
    seconds = train.iterations * per_process_images * figure("train_gpu_s" if gpu else "train_cpu_s", run.clip.model)
    cpus = processes * (train.num_workers + (1 if gpu else CPU_COMPUTE_THREADS))
    mem = processes * (figure("train_mem_mb", run.clip.model) + train.num_workers * WORKER_MEM_MB)
    return job(gpus=processes if gpu else 0, cpus=cpus, mem_mb=mem, seconds=seconds, resumable=True)


def infer_job(run: RunConfig, images: int, shards: int = 1) -> JobResources:
    """Inference over a split of `images` images, or over one of its `shards` blocks."""
    infer: InferConfig = run.infer
    gpu = on_gpu(infer.device)
    seconds = per_job_images(images, shards) * figure("infer_gpu_s" if gpu else "infer_cpu_s", run.clip.model)
    cpus = infer.num_workers + (1 if gpu else CPU_COMPUTE_THREADS)
    mem = figure("train_mem_mb", run.clip.model) + infer.num_workers * WORKER_MEM_MB  # training's peak bounds it
    return job(gpus=int(gpu), cpus=cpus, mem_mb=mem, seconds=seconds)


def evaluate_job(images: int) -> JobResources:
    return job(gpus=0, cpus=1, mem_mb=figure("evaluate_mem_mb") * max(1.0, images / 9658),
               seconds=images * figure("evaluate_s"))  # fmt: skip


def generate_demo_job(images: int) -> JobResources:
    return job(gpus=0, cpus=1, mem_mb=0, seconds=images * figure("generate_s"))  # 0.12 GB measured


def small_job() -> JobResources:
    """init_clip, summarize: one CPU, the minimum memory, the setup time (init_clip of the demo: 1.0 GB)."""
    return job(gpus=0, cpus=1, mem_mb=0, seconds=60)


def merge_job(images: int) -> JobResources:
    """Joining shard files: every row is read and written once (detections: 100 tuples x 56 bytes per image)."""
    return job(gpus=0, cpus=1, mem_mb=1000 + images * 0.02, seconds=60 + images * 0.001)


# --------------------------------------------------------------------------------------------
# the split's size


def split_images(dataset: DatasetConfig, split: str) -> int:
    """Images of a split: the synthetic generator's count, else the image files in its folder."""
    if dataset.synthetic is not None:
        return dataset.synthetic.num_train if split == "train" else dataset.synthetic.num_test
    return count_images(dataset.splits[split].images)


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@functools.cache
def count_images(folder: str) -> int:
    """Image files directly in `folder` (0 when it does not exist; the rules report missing data)."""
    path = Path(folder)
    if not path.is_dir():
        return 0
    with os.scandir(path) as entries:
        return sum(1 for entry in entries if Path(entry.name).suffix.lower() in IMAGE_SUFFIXES)


# --------------------------------------------------------------------------------------------
# site settings, the partitions' limits, and the Snakemake resources


@dataclass(frozen=True)
class Limits:
    """The largest job a partition runs (None: no limit known): CPUs, memory and GPUs of its largest node."""

    cpus: int | None = None
    mem_mb: int | None = None
    runtime: int | None = None  # minutes
    gpus: int | None = None

    def tighter(self, other: Limits) -> Limits:
        def low(a: int | None, b: int | None) -> int | None:
            return b if a is None else a if b is None else min(a, b)

        return Limits(*(low(getattr(self, f), getattr(other, f)) for f in ("cpus", "mem_mb", "runtime", "gpus")))


@dataclass(frozen=True)
class SiteSettings:
    partition: str | None = None
    gpu_partition: str | None = None
    account: str | None = None
    limits: Limits = Limits()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SiteSettings:
        def text(name: str) -> str | None:
            return environ.get(name, "").strip() or None

        def number(name: str) -> int | None:
            value = text(name)
            if value is None:
                return None
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"environment variable {name}={value!r}: expected a positive whole number")
            return int(value)

        return cls(
            partition=text("HOI_SLURM_PARTITION"),
            gpu_partition=text("HOI_SLURM_GPU_PARTITION"),
            account=text("HOI_SLURM_ACCOUNT"),
            limits=Limits(number("HOI_JOB_MAX_CPUS"), number("HOI_JOB_MAX_MEM_MB"), number("HOI_JOB_MAX_RUNTIME")),
        )

    def partition_for(self, gpus: int) -> str | None:
        return (self.gpu_partition or self.partition) if gpus else self.partition


DEFAULT_PARTITION = ""  # key of the cluster's default partition in `parse_sinfo`'s result
SINFO_FORMAT = "%P|%c|%m|%l|%G"  # partition (default marked *), CPUs, memory MB, time limit, generic resources


def parse_sinfo(text: str) -> dict[str, Limits]:
    """Limits per partition from `sinfo -h -N -o '%P|%c|%m|%l|%G'` (one line per node and partition).

    The default partition (marked `*`) is also listed under DEFAULT_PARTITION.
    """
    limits: dict[str, Limits] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 5:
            continue
        name, cpus, mem, runtime, gres = fields
        try:
            minutes = parse_slurm_time(runtime)
        except ValueError:
            minutes = None
        node = Limits(_leading_int(cpus), _leading_int(mem), minutes, _gres_gpus(gres))
        names = [name.rstrip("*")] + ([DEFAULT_PARTITION] if name.endswith("*") else [])
        for key in names:
            seen = limits.get(key)
            limits[key] = node if seen is None else _larger(seen, node)
    return limits


def _leading_int(text: str) -> int | None:
    match = re.match(r"\d+", text.strip())
    return int(match.group()) if match else None


def _gres_gpus(gres: str) -> int:
    """GPUs of a node's generic resources: `gpu:2`, `gpu:a100:4(S:0-1)`, `gpu:2,mps:100`, `(null)`."""
    return sum(int(m.group(1)) for m in re.finditer(r"(?:^|,)gpu(?::[^:,(]+)?:(\d+)", gres.strip()))


def _larger(a: Limits, b: Limits) -> Limits:
    def high(x: int | None, y: int | None) -> int | None:
        return None if x is None or y is None else max(x, y)  # None: unlimited or unknown

    return Limits(high(a.cpus, b.cpus), high(a.mem_mb, b.mem_mb), high(a.runtime, b.runtime), high(a.gpus, b.gpus))


def parse_slurm_time(text: str) -> int | None:
    """Minutes of a SLURM time limit, rounded up; None: unlimited.

    SLURM's forms: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`, `infinite`.
    """
    text = text.strip()
    if not text or text.lower() in {"infinite", "unlimited", "n/a"}:
        return None
    if not re.fullmatch(r"(\d+-)?\d+(:\d+){0,2}", text):
        raise ValueError(f"'{text}' is not a SLURM time limit")
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if days:  # D-HH[:MM[:SS]]
        hours, minutes, seconds = (parts + [0, 0])[:3]
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    else:  # MM[:SS]
        hours, (minutes, seconds) = 0, (parts + [0])[:2]
    return int(days or 0) * 1440 + hours * 60 + minutes + (1 if seconds else 0)


@functools.cache
def slurm_limits() -> dict[str, Limits]:
    """The partitions' limits from `sinfo` (empty when SLURM's commands are absent or do not answer)."""
    if shutil.which("sinfo") is None:
        return {}
    try:
        result = subprocess.run(
            ["sinfo", "-h", "-N", "-o", SINFO_FORMAT], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return parse_sinfo(result.stdout) if result.returncode == 0 else {}


def for_attempt(request: JobResources, attempt: int, limits: Limits = Limits()) -> JobResources:
    """The request of a job's `attempt` (1, 2, ...): longer after a timeout unless resumable, cut to `limits`.

    More GPUs than a node has is an error (the job would wait forever), not something to cut.
    """
    if limits.gpus is not None and request.gpus > limits.gpus:
        raise ValueError(
            f"a job needs {request.gpus} GPUs but the partition's nodes have at most {limits.gpus} "
            "(set train.gpus to at most that, or HOI_SLURM_GPU_PARTITION to a partition with more)"
        )
    runtime = request.runtime if request.resumable else request.runtime * max(1, attempt)

    def cap(value: int, limit: int | None) -> int:
        return value if limit is None else min(value, limit)

    return replace(
        request,
        cpus=cap(request.cpus, limits.cpus),
        mem_mb=cap(request.mem_mb, limits.mem_mb),
        runtime=cap(runtime, limits.runtime),
    )


def slurm_resources(request: JobResources, partition: str | None, account: str | None) -> dict:
    """Snakemake resource values for the SLURM executor plugin (None: not given)."""
    return {
        "gpu": request.gpus,  # the plugin asks `--gpus=N`; a local run limits concurrent GPU jobs with it
        "cpus_per_task": request.cpus,
        "mem_mb": request.mem_mb,
        "runtime": request.runtime,
        "slurm_partition": partition,
        "slurm_account": account,
    }


RESOURCE_NAMES = ("gpu", "cpus_per_task", "mem_mb", "runtime", "slurm_partition", "slurm_account")

JobOf = Callable[..., JobResources]  # wildcards -> the job's request


def site_request(request: JobResources, attempt: int, environ: Mapping[str, str], on_slurm: bool = False) -> dict:
    """A job's resources on this site: its partition, cut to the HOI_JOB_MAX_* caps and, when the job goes to
    SLURM, to the largest node `sinfo` shows in its partition."""
    site = SiteSettings.from_environ(environ)
    partition = site.partition_for(request.gpus)
    limits = site.limits
    if on_slurm:
        limits = limits.tighter(slurm_limits().get(DEFAULT_PARTITION if partition is None else partition, Limits()))
    return slurm_resources(for_attempt(request, attempt, limits), partition, site.account)


def snakemake_resources(job_of: JobOf, on_slurm: Callable[[], bool] = lambda: False) -> dict[str, Callable]:
    """A rule's `resources:` (as `**snakemake_resources(...)`): one callable per resource, per attempt.

    `on_slurm()` says whether this Snakemake submits to SLURM (or runs inside a SLURM job): only then do the
    partitions' limits apply (a local run on a login node is not cut to the cluster's nodes).
    """

    def value(name: str) -> Callable:
        def resource(wildcards, attempt: int) -> int | str | None:
            return site_request(job_of(wildcards), attempt, os.environ, on_slurm())[name]

        return resource

    return {name: value(name) for name in RESOURCE_NAMES}


def job_threads(job_of: JobOf, on_slurm: Callable[[], bool] = lambda: False) -> Callable:
    """A rule's `threads:`: the job's CPUs (Snakemake sets OMP_NUM_THREADS and friends to it)."""

    def threads(wildcards) -> int:
        return site_request(job_of(wildcards), 1, os.environ, on_slurm())["cpus_per_task"]

    return threads
