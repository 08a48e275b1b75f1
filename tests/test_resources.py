"""Cluster resources: GPUs only where a network runs on one, sizes from the run and the split, site settings."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from hoi_pipeline import resources as R
from hoi_pipeline.config import ClipConfig, DetectorConfig, load_project_config, with_overrides
from hoi_pipeline.workflow import bank_clip

ROOT = Path(__file__).resolve().parents[1]
PROJECT = load_project_config(ROOT / "config.yaml")
DEMO = PROJECT.runs["demo"]
HICO = PROJECT.runs["hico_rn101"]
HICO_TRAIN, HICO_TEST = 38118, 9658  # HICO-DET images (hico_20160224_det)
NODE = R.Limits(cpus=2, mem_mb=24000)  # the node of issue 12: 2 CPUs, 24 GB, no GPU


def demo_jobs() -> dict[str, R.JobResources]:
    dataset = PROJECT.datasets["demo"]
    train_images, test_images = R.split_images(dataset, "train"), R.split_images(dataset, "test")
    return {
        "generate_demo": R.generate_demo_job(train_images + test_images),
        "init_clip": R.small_job(),
        "detect": R.detect_job(PROJECT.detectors[DEMO.detector], train_images),
        "embed_prompts": R.embed_prompts_job(bank_clip(DEMO)),
        "train": R.train_job(DEMO),
        "infer": R.infer_job(DEMO, test_images),
        "evaluate": R.evaluate_job(test_images),
        "ablations": R.small_job(),
    }


def test_the_demo_asks_for_no_gpu_and_fits_a_small_node():
    for stage, job in demo_jobs().items():
        assert job.gpus == 0, stage
        assert job.cpus <= NODE.cpus and job.mem_mb <= 4000, (stage, job)
        assert job.runtime <= 30, (stage, job)  # minutes; the demo takes about 1.5 minutes on 2 cores


def test_hico_det_asks_for_gpus_where_networks_run_and_for_more_of_everything():
    detector = PROJECT.detectors[HICO.detector]  # torchvision Faster R-CNN, device auto
    demo = demo_jobs()
    hico = {
        "detect": R.detect_job(detector, HICO_TRAIN),
        "embed_prompts": R.embed_prompts_job(bank_clip(HICO)),
        "train": R.train_job(HICO),
        "infer": R.infer_job(HICO, HICO_TEST),
        "evaluate": R.evaluate_job(HICO_TEST),
    }
    assert {stage: job.gpus for stage, job in hico.items()} == {
        "detect": 1, "embed_prompts": 0, "train": 1, "infer": 1, "evaluate": 0,
    }  # fmt: skip
    for stage in ("detect", "train", "infer"):
        assert hico[stage].runtime > demo[stage].runtime and hico[stage].mem_mb > demo[stage].mem_mb, stage
    # RN101 on one GPU: 60K iterations x the global batch x the per-image figure, doubled, plus setup
    per_image = R.FIGURES["train_gpu_s:RN101"].value
    assert hico["train"].runtime == math.ceil(10 + 2 * 60000 * HICO.train.batch_size * per_image / 60)
    assert hico["train"].cpus == HICO.train.num_workers + 1 and hico["train"].resumable


def test_training_gpus_come_from_the_run_and_scale_cpus_and_memory():
    one, four = R.train_job(HICO), R.train_job(with_overrides(HICO, {"train": {"gpus": 4}}))
    assert four.gpus == 4 and four.cpus == 4 * one.cpus
    assert four.mem_mb == pytest.approx(4 * one.mem_mb, rel=0.01)
    assert four.runtime < one.runtime  # the global batch is split over the GPUs


def test_device_cpu_and_imported_detections_ask_for_no_gpu():
    on_cpu = with_overrides(HICO, {"train": {"device": "cpu", "gpus": 2}, "infer": {"device": "cpu"}})
    assert R.train_job(on_cpu).gpus == 0 and R.train_job(on_cpu).cpus == 2 * (R.CPU_COMPUTE_THREADS + HICO.train.num_workers)
    assert R.infer_job(on_cpu, HICO_TEST).gpus == 0
    assert R.detect_job(DetectorConfig(device="cpu"), 100).gpus == 0
    assert R.detect_job(DetectorConfig(backend="precomputed", device="cuda"), HICO_TRAIN).gpus == 0
    assert R.embed_prompts_job(ClipConfig(device="cuda")).gpus == 1


def test_shards_divide_the_work_of_a_job():
    detector = PROJECT.detectors[HICO.detector]
    whole, quarter = R.detect_job(detector, HICO_TRAIN), R.detect_job(detector, HICO_TRAIN, shards=4)
    assert quarter.gpus == whole.gpus == 1
    assert quarter.runtime - R.SETUP_MINUTES == pytest.approx((whole.runtime - R.SETUP_MINUTES) / 4, abs=1)
    assert R.per_job_images(10, 3) == 4


def test_unknown_models_get_twice_the_largest_known_figures():
    assert R.figure("train_gpu_s", "RN50-quickgelu") == R.FIGURES["train_gpu_s:RN50"].value
    assert R.figure("train_mem_mb", "ViT-B-16") == 2 * R.FIGURES["train_mem_mb:RN101"].value


def test_every_figure_says_whether_it_was_measured_or_assumed():
    for name, figure in R.FIGURES.items():
        assert figure.source.startswith(("measured: ", "assumed: ")), name


def test_retries_get_more_time_except_training_which_resumes():
    job = R.JobResources(gpus=0, cpus=1, mem_mb=2000, runtime=30)
    assert R.for_attempt(job, 3).runtime == 90
    resumable = dataclasses.replace(job, resumable=True)
    assert R.for_attempt(resumable, 3).runtime == 30


def test_requests_are_cut_to_the_site_and_too_many_gpus_is_an_error():
    job = R.JobResources(gpus=1, cpus=8, mem_mb=64000, runtime=3000)
    cut = R.for_attempt(job, 1, R.Limits(cpus=2, mem_mb=24000, runtime=1440, gpus=4))
    assert (cut.cpus, cut.mem_mb, cut.runtime, cut.gpus) == (2, 24000, 1440, 1)
    with pytest.raises(ValueError, match="needs 1 GPUs but the partition's nodes have at most 0"):
        R.for_attempt(job, 1, R.Limits(gpus=0))


def test_site_settings_from_the_environment():
    site = R.SiteSettings.from_environ(
        {"HOI_SLURM_PARTITION": "debug", "HOI_SLURM_GPU_PARTITION": "gpu", "HOI_JOB_MAX_CPUS": "4"}
    )
    assert (site.partition_for(0), site.partition_for(2), site.account) == ("debug", "gpu", None)
    assert site.limits == R.Limits(cpus=4)
    assert R.SiteSettings.from_environ({"HOI_SLURM_PARTITION": "short"}).partition_for(1) == "short"
    assert R.SiteSettings.from_environ({}).partition_for(1) is None  # the cluster's default partition
    with pytest.raises(ValueError, match="HOI_JOB_MAX_MEM_MB='24G': expected a positive whole number"):
        R.SiteSettings.from_environ({"HOI_JOB_MAX_MEM_MB": "24G"})


def test_sinfo_gives_each_partitions_largest_node():
    text = "\n".join([
        "node1|debug*|ignored",  # not sinfo's format: skipped
        "debug*|2|24105|infinite|gpu:2",
        "gpu|32|256000|2-00:00:00|gpu:a100:4(S:0-1),mps:100",
        "gpu|64|512000|2-00:00:00|gpu:a100:8(S:0-1)",
        "long|16+|64000|7-00:00:00|(null)",
    ])  # fmt: skip
    limits = R.parse_sinfo(text)
    assert limits["debug"] == limits[R.DEFAULT_PARTITION] == R.Limits(2, 24105, None, 2)
    assert limits["gpu"] == R.Limits(64, 512000, 2880, 8)
    assert limits["long"] == R.Limits(16, 64000, 7 * 1440, 0)


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("30", 30), ("30:00", 30), ("30:01", 31), ("2:00:00", 120), ("1-00:00:00", 1440), ("1-12", 2160),
     ("1-12:30", 2190), ("infinite", None), ("UNLIMITED", None)],
)  # fmt: skip
def test_slurm_time_limits(text, minutes):
    assert R.parse_slurm_time(text) == minutes


def test_split_size_from_the_generator_or_the_image_folder(tmp_path):
    assert R.split_images(PROJECT.datasets["demo"], "train") == 240
    for name in ("a.jpg", "b.PNG", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    dataset = dataclasses.replace(
        PROJECT.datasets["hicodet"],
        splits={"test": dataclasses.replace(PROJECT.datasets["hicodet"].splits["test"], images=str(tmp_path))},
    )
    assert R.split_images(dataset, "test") == 2
    assert R.count_images(str(tmp_path / "missing")) == 0


def test_snakemake_resources_per_attempt_with_the_sites_partitions(monkeypatch):
    monkeypatch.setenv("HOI_SLURM_PARTITION", "debug")
    monkeypatch.setenv("HOI_SLURM_GPU_PARTITION", "gpu")
    monkeypatch.delenv("HOI_SLURM_ACCOUNT", raising=False)
    monkeypatch.setattr(R, "slurm_limits", lambda: {"gpu": R.Limits(cpus=4, gpus=2)})
    resources = R.snakemake_resources(lambda wildcards: R.train_job(HICO), on_slurm=lambda: True)
    assert set(resources) == set(R.RESOURCE_NAMES)
    values = {name: fn(None, attempt=2) for name, fn in resources.items()}
    assert values["gpu"] == 1 and values["slurm_partition"] == "gpu" and values["slurm_account"] is None
    assert R.train_job(HICO).cpus > 4 and values["cpus_per_task"] == 4  # the gpu partition's nodes have 4
    assert values["runtime"] == R.train_job(HICO).runtime  # resumes: no longer on attempt 2
    assert R.job_threads(lambda wildcards: R.train_job(HICO), on_slurm=lambda: True)(None) == 4
    # a local run is not cut to the cluster's nodes
    assert R.job_threads(lambda wildcards: R.train_job(HICO))(None) == R.train_job(HICO).cpus
    cpu_job = R.snakemake_resources(lambda wildcards: R.evaluate_job(HICO_TEST))
    assert cpu_job["slurm_partition"](None, attempt=1) == "debug" and cpu_job["gpu"](None, attempt=1) == 0
