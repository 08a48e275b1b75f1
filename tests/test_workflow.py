"""The Snakemake workflow: lint, dry runs, what reruns after a change, and one end-to-end demo run.

The end-to-end run uses the real demo config at a reduced size (fewer images and iterations) in a
temporary working directory; the caching tests then dry-run changed configs against its outputs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
REDUCED = {
    "datasets": {"demo": {"synthetic": {"num_train": 160, "num_test": 24, "image_size": 128}}},
    "runs": {"demo": {"train": {"iterations": 12, "batch_size": 4, "checkpoint_every": 6, "lr_milestones": [8]},
                      "loss": {"relatedness_warmup": 4}}},
}  # fmt: skip


WORKFLOW_FILES = ("Snakefile", "rules", "schemas", "envs", "config.yaml", "hoi_pipeline")


def copy_workflow(dest: Path) -> Path:
    """The workflow and package in a fresh folder (Snakemake imports the package beside the Snakefile)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / name)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "-s", str(workdir / "Snakefile"), "-d", str(workdir), *args]
    result = subprocess.run(command, capture_output=True, text=True, cwd=workdir)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def planned_rules(workdir: Path, target: str, *configfiles: Path) -> dict[str, int]:
    """Rule -> job count of a dry run (empty when nothing needs to run)."""
    result = snakemake(workdir, "-n", "--configfile", *map(str, configfiles), "--", target)
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    counts = {}
    in_table = False
    for line in text.splitlines():
        if line.strip().startswith("job") and "count" in line:
            in_table = True
            continue
        if in_table:
            match = re.match(r"^\s*([A-Za-z_]\w*)\s+(\d+)\s*$", line)
            if match and match.group(1) != "total":
                counts[match.group(1)] = int(match.group(2))
            elif line.strip().startswith("total"):
                break
    assert counts, f"could not read the dry run's job table:\n{text}"
    return counts


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_lint_is_clean():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def workflow(tmp_path) -> Path:
    return copy_workflow(tmp_path / "workflow")


def test_demo_dry_run_plans_every_stage(workflow):
    counts = planned_rules(workflow, "results/demo/metrics.csv", workflow / "config.yaml")
    assert counts == {
        "generate_demo": 1, "init_clip": 1, "detect": 2, "embed_prompts": 1, "train": 1, "infer": 1, "evaluate": 1,
    }  # fmt: skip


def test_ablation_table_plans_each_variant_and_reuses_shared_work(workflow):
    counts = planned_rules(workflow, "results/demo/ablations.md", workflow / "config.yaml")
    presets = yaml.safe_load((workflow / "config.yaml").read_text())["runs"]["demo"]["ablations"]
    # exp4 (exp3 + score fusion), exp7 (the full model without it) and no_ktn (exp6 + score fusion) differ from
    # another row in inference only: no training of their own
    assert {"exp4", "exp7", "no_ktn"} <= set(presets)
    assert counts["train"] == 1 + len(presets) - 3
    assert counts["infer"] == counts["evaluate"] == 1 + len(presets)
    assert counts["embed_prompts"] == 1 and counts["detect"] == 2 and counts["ablations"] == 1


def test_multi_gpu_training_launches_torchrun(workflow, tmp_path):
    gpus = write_yaml(tmp_path / "gpus.yaml", {"runs": {"demo": {"train": {"gpus": 4}}}})
    result = snakemake(workflow, "-n", "-p", "--configfile", str(workflow / "config.yaml"), str(gpus), "--",
                       "results/demo/train/model.pt")  # fmt: skip
    assert "torchrun --standalone --nproc_per_node=4 -m hoi_pipeline train" in result.stdout


def test_missing_dataset_stops_with_where_and_which_key(workflow):
    result = snakemake(workflow, "-n", "--configfile", str(workflow / "config.yaml"), "--",
                       "results/hico_rn101/metrics.csv", check=False)  # fmt: skip
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Dataset 'hicodet' is not on this machine" in text
    assert "datasets.hicodet.splits." in text


def test_bad_config_key_stops_snakemake(workflow, tmp_path):
    bad = write_yaml(tmp_path / "bad.yaml", {"runs": {"demo": {"train": {"lrate": 0.1}}}})
    result = snakemake(workflow, "-n", "--configfile", str(workflow / "config.yaml"), str(bad), "--",
                       "results/demo/metrics.csv", check=False)  # fmt: skip
    assert result.returncode != 0
    assert "lrate" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    """A reduced-size demo run, end to end, in its own working directory."""
    workdir = copy_workflow(tmp_path_factory.mktemp("demo"))
    reduced = write_yaml(workdir / "reduced.yaml", REDUCED)
    snakemake(workdir, "-j2", "--configfile", str(workdir / "config.yaml"), str(reduced), "--", "results/demo/metrics.csv")
    return workdir


@pytest.mark.slow
def test_demo_runs_end_to_end(demo_run):
    metrics = pd.read_csv(demo_run / "results/demo/metrics.csv")
    assert list(metrics["setting"]) == ["default", "known_object"]
    for column in ("full", "rare", "non_rare"):
        assert metrics[column].between(0, 100).all()
    assert (demo_run / "results/demo/per_class_ap.csv").is_file()
    assert (demo_run / "results/demo/table.md").is_file()
    for stage in ("generate_demo", "detect", "embed_prompts", "train", "infer", "evaluate"):
        assert list((demo_run / "results/benchmarks" / stage).rglob("*.tsv")), stage
        assert list((demo_run / "results/logs" / stage).rglob("*.log")), stage
    assert not list(demo_run.rglob("*.tmp")), "a temporary file was left behind"


@pytest.mark.slow
def test_a_paper_size_backbone_runs_through_the_dag(demo_run, tmp_path):
    """CLIP RN50 (random init: no downloads here) through embed, train, infer and evaluate on the demo data."""
    rn50 = write_yaml(tmp_path / "rn50.yaml", {"runs": {"demo_rn50": {
        "dataset": "demo", "detector": "demo_import", "clip": {"model": "RN50", "pretrained": None},
        "train": {"iterations": 2, "batch_size": 2, "num_workers": 0, "checkpoint_every": 1},
        "infer": {"batch_size": 8, "num_workers": 0},
    }}})  # fmt: skip
    configs = [str(demo_run / "config.yaml"), str(demo_run / "reduced.yaml"), str(rn50)]
    snakemake(demo_run, "-j2", "--configfile", *configs, "--", "results/demo_rn50/metrics.csv")
    with h5py.File(demo_run / "results/demo_rn50/knowledge_bank.h5") as bank:
        assert bank["embeddings"].shape[1] == 1024  # RN50's joint embedding width
    metrics = pd.read_csv(demo_run / "results/demo_rn50/metrics.csv")
    assert metrics["full"].between(0, 100).all()


@pytest.mark.slow
def test_nothing_reruns_without_a_change(demo_run):
    assert planned_rules(demo_run, "results/demo/metrics.csv", demo_run / "config.yaml", demo_run / "reduced.yaml") == {}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"runs": {"demo": {"train": {"iterations": 13}}}}, {"train", "infer", "evaluate"}),
        ({"runs": {"demo": {"infer": {"gamma": 1.0}}}}, {"infer", "evaluate"}),
        ({"runs": {"demo": {"eval": {"iou_threshold": 0.6}}}}, {"evaluate"}),
        ({"runs": {"demo": {"clip": {"template": "a photo of a person {verb_ing} {article} {object}"}}}},
         {"embed_prompts", "train", "infer", "evaluate"}),
        ({"detectors": {"demo_import": {"human_score_threshold": 0.3}}}, {"detect", "train", "infer", "evaluate"}),
    ],
)  # fmt: skip
def test_a_config_change_reruns_only_what_it_touches(demo_run, tmp_path, change, expected):
    changed = write_yaml(tmp_path / "change.yaml", change)
    counts = planned_rules(demo_run, "results/demo/metrics.csv", demo_run / "config.yaml", demo_run / "reduced.yaml", changed)
    assert set(counts) == expected


@pytest.mark.slow
def test_a_code_change_reruns_the_stages_that_run_it(demo_run, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(demo_run, workdir)  # keeps mtimes and Snakemake's records
    configs = (workdir / "config.yaml", workdir / "reduced.yaml")
    assert planned_rules(workdir, "results/demo/metrics.csv", *configs) == {}
    with open(workdir / "hoi_pipeline/evaluation/hicodet.py", "a") as handle:
        handle.write("\n# an edit\n")
    assert set(planned_rules(workdir, "results/demo/metrics.csv", *configs)) == {"evaluate"}
    with open(workdir / "hoi_pipeline/losses.py", "a") as handle:
        handle.write("\n# an edit\n")
    assert set(planned_rules(workdir, "results/demo/metrics.csv", *configs)) == {"train", "infer", "evaluate"}
