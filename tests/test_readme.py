"""Every command in README.md is run by a test: cheap ones here, the others by the test `COVERED` names.

Commands are read from the README's ```bash blocks and from inline code that starts like a command
(`snakemake ...`, `python ...`, `hoi-pipeline ...`, `pip ...`, `VAR=... snakemake ...`). A command
that is neither run here nor listed in `COVERED` fails `test_every_readme_command_is_run_by_a_test`,
so a new README command needs a test before it lands.
"""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hoi_pipeline import cli
from hoi_pipeline.ablations import PRESETS
from hoi_pipeline.stages.specs import STAGES
from test_workflow import copy_workflow, planned_rules, snakemake, write_yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
COMMAND_START = re.compile(r"^(?:[A-Z_]+=\S+ )?(?:snakemake|python|hoi-pipeline|pip)\s")

# command -> (test file, test function, a string the test's source must contain: what it runs)
COVERED: dict[str, tuple[str, str, str]] = {
    'pip install -e ".[dev]"': (".ci/run", "", 'pip install -e ".[dev'),
    'pip install -e ".[slurm]"': (".ci/run", "", "slurm"),
    'pip install -e ".[cluster]"': (".ci/run", "", "cluster"),
    "python -m pytest -q": (".ci/run", "", "python -m pytest -q"),
    # the demo at a reduced size (fewer images and iterations: tests/test_workflow.py REDUCED)
    "snakemake -j2 results/demo/metrics.csv": ("tests/test_workflow.py", "demo_run", '"results/demo/metrics.csv"'),
    "snakemake -j2 results/vcoco_demo/metrics.csv": (
        "tests/test_workflow.py", "test_vcoco_demo_runs_end_to_end", '"results/vcoco_demo/metrics.csv"'),
    "snakemake -j2 results/demo/figures/index.md": (
        "tests/test_workflow.py", "test_demo_figures_and_report", '"results/demo/figures/index.md"'),
    "snakemake results/demo/figures/index.md --report results/demo/report.html": (
        "tests/test_workflow.py", "test_demo_figures_and_report", '"--report", "results/demo/report.html"'),
    # on a real single-node SLURM; the hicodet target differs only in its partitions and data
    "HOI_SLURM_PARTITION=debug HOI_SLURM_GPU_PARTITION=debug snakemake --workflow-profile profiles/slurm "
    "results/demo/metrics.csv": ("tests/test_slurm.py", "demo_on_slurm", '"HOI_SLURM_GPU_PARTITION": "debug"'),
    "HOI_SLURM_PARTITION=cpu HOI_SLURM_GPU_PARTITION=gpu snakemake --workflow-profile profiles/slurm "
    "results/hico_rn101/metrics.csv": ("tests/test_slurm.py", "snakemake_on_slurm", '"profiles/slurm"'),
    "HOI_CLUSTER_SCHEDULER=sge snakemake --workflow-profile profiles/cluster-generic results/hico_rn101/metrics.csv": (
        "tests/test_cluster_generic.py", "test_the_profile_runs_jobs_through_the_submit_command",
        '"--workflow-profile", "profiles/cluster-generic"'),
    "hoi-pipeline predict --run hico_rn50 photo.jpg more_photos/ --out predictions/": (
        "tests/test_predict.py", "test_predict_through_the_real_detector", '"predict", "--config"'),
    # the same script on the CPU (--quick); its GPU cases are checked against their functions by
    # test_every_case_calls_its_function_with_keywords_it_takes, and ran on a GPU for the README's table
    "python benchmarks/run_all.py --device cuda": (
        "tests/test_benchmarks.py", "test_run_all_quick_on_the_cpu_writes_one_table_with_a_row_per_stage",
        'str(RUN_ALL), "--device"'),
    "python benchmarks/run_all.py --device cpu": (
        "tests/test_benchmarks.py", "test_run_all_quick_on_the_cpu_writes_one_table_with_a_row_per_stage",
        '"--device", "cpu"'),
    "python benchmarks/bench_deviations.py": (
        "tests/test_benchmarks.py", "test_bench_deviations_trains_the_demo_under_a_switch", "bench_deviations.py"),
    "python -m hoi_pipeline config-schema": (
        "tests/test_config.py", "test_schema_file_is_generated_from_the_dataclasses", "config-schema"),
}
# commands run by the tests below
RUN_HERE = {
    "python -m hoi_pipeline <stage> --help": "test_every_stage_has_help",
    "hoi-pipeline <stage>": "test_every_stage_has_help",
    "python -m hoi_pipeline config --run hico_rn50": "test_config_prints_the_resolved_run",
    "snakemake -n results/demo/metrics.csv": "test_dry_runs_of_the_readme",
    "snakemake -j4 results/my_run/metrics.csv --configfile config.yaml my_runs.yaml": "test_dry_runs_of_the_readme",
    "snakemake -j4 results/hico_rn101/metrics.csv": "test_paper_targets_without_data_stop_at_once",
    "snakemake -j4 results/hico_rn50/ablations.md": "test_paper_targets_without_data_stop_at_once",
    "snakemake -j4 results/vcoco_rn50/metrics.csv": "test_paper_targets_without_data_stop_at_once",
    "snakemake --workflow-profile profiles/local results/hico_rn101/metrics.csv": (
        "test_paper_targets_without_data_stop_at_once"),
}


def readme_commands() -> set[str]:
    commands = set()
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line:
                commands.add(line)
    prose = re.sub(r"```.*?```", "", README, flags=re.S)  # the python example runs in tests/test_infer.py
    for span in re.findall(r"`([^`]+)`", prose):
        span = " ".join(span.split())
        if COMMAND_START.match(span):
            commands.add(span)
    return commands


def function_source(path: Path, name: str) -> str:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(path.read_text(), node)
    raise AssertionError(f"{path.name} has no function {name}")


def test_every_readme_command_is_run_by_a_test():
    commands = readme_commands()
    assert "snakemake -j2 results/demo/metrics.csv" in commands  # the reader finds the main command
    missing = sorted(c for c in commands if c not in COVERED and c not in RUN_HERE)
    assert not missing, f"README commands no test runs: {missing}"
    assert not sorted(c for c in (*COVERED, *RUN_HERE) if c not in commands), "listed commands the README lacks"
    for command, (file, function, needle) in COVERED.items():
        source = (ROOT / file).read_text() if not function else function_source(ROOT / file, function)
        assert needle in source, f"{file}::{function} does not run {command!r} ({needle!r})"
    for function in set(RUN_HERE.values()):
        assert callable(globals().get(function)), function


def test_the_readme_lists_every_ablation_preset():
    for name in PRESETS:
        assert f"`{name}`" in README, name


def test_every_stage_has_help(capsys):
    commands = [spec.command for spec in STAGES]
    for stage in commands:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([stage, "--help"])
        assert exit_info.value.code == 0
        assert "usage:" in capsys.readouterr().out, stage
    result = subprocess.run(["hoi-pipeline", "--help"], capture_output=True, text=True)  # the console script
    assert result.returncode == 0 and all(stage in result.stdout for stage in commands)


def test_config_prints_the_resolved_run():
    command = "python -m hoi_pipeline config --run hico_rn50"
    result = subprocess.run([sys.executable, *shlex.split(command)[1:]], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert resolved["run"] == "hico_rn50"
    assert resolved["clip"]["model"] == "RN50" and resolved["train"]["iterations"] == 60000
    assert resolved["model"]["input_size"] == 640 and resolved["train"]["batch_size"] == 96


@pytest.fixture(scope="module")
def workflow(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("readme"))


def readme_snakemake(workflow: Path, command: str, *extra: str) -> subprocess.CompletedProcess:
    args = shlex.split(command)
    assert args[0] == "snakemake"
    return snakemake(workflow, *extra, *args[1:], check=False)


def test_dry_runs_of_the_readme(workflow):
    result = readme_snakemake(workflow, "snakemake -n results/demo/metrics.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "reason: Missing output files" in result.stdout + result.stderr
    # your own runs in another file, targets first
    write_yaml(workflow / "my_runs.yaml", {"runs": {"my_run": {"dataset": "demo", "detector": "demo_import",
                                                               "clip": {"model": "hoi-tiny-rn"}}}})  # fmt: skip
    command = "snakemake -j4 results/my_run/metrics.csv --configfile config.yaml my_runs.yaml"
    result = readme_snakemake(workflow, command, "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = planned_rules(workflow, "results/my_run/metrics.csv", workflow / "config.yaml", workflow / "my_runs.yaml")
    assert counts["train"] == 1 and counts["evaluate"] == 1


def test_paper_targets_without_data_stop_at_once(workflow):
    """Without the data, each paper target stops before any job with where the data goes and which key to set."""
    for command, dataset in (
        ("snakemake -j4 results/hico_rn101/metrics.csv", "hicodet"),
        ("snakemake -j4 results/hico_rn50/ablations.md", "hicodet"),
        ("snakemake -j4 results/vcoco_rn50/metrics.csv", "vcoco"),
    ):
        result = readme_snakemake(workflow, command)
        text = result.stdout + result.stderr
        assert result.returncode != 0 and f"Dataset '{dataset}' is not on this machine" in text, command
        assert f"datasets.{dataset}.splits." in text, command
        assert not (workflow / "results").exists() or not list((workflow / "results").rglob("*.h5")), command
    (workflow / "profiles").mkdir(exist_ok=True)
    (workflow / "profiles" / "local").mkdir(exist_ok=True)
    (workflow / "profiles" / "local" / "config.yaml").write_text((ROOT / "profiles/local/config.yaml").read_text())
    result = readme_snakemake(workflow, "snakemake --workflow-profile profiles/local results/hico_rn101/metrics.csv")
    assert result.returncode != 0 and "Dataset 'hicodet' is not on this machine" in result.stdout + result.stderr
