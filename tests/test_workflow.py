"""The Snakemake workflow: lint, dry runs, what reruns after a change, and one end-to-end demo run.

The end-to-end run uses the real demo config at a reduced size (fewer images and iterations) in a
temporary working directory; the caching tests then dry-run changed configs against its outputs.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pandas as pd
import pytest
import yaml

from hoi_pipeline import workflow as wf
from hoi_pipeline.config import with_overrides

ROOT = Path(__file__).resolve().parents[1]
REDUCED = {
    "datasets": {"demo": {"synthetic": {"num_train": 160, "num_test": 24, "image_size": 128}}},
    "runs": {"demo": {"train": {"iterations": 12, "batch_size": 4, "checkpoint_every": 6, "lr_milestones": [8]},
                      "loss": {"relatedness_warmup": 4}}},
}  # fmt: skip


WORKFLOW_FILES = ("Snakefile", "rules", "schemas", "envs", "report", "config.yaml", "hoi_pipeline")


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
    return job_counts(result.stdout + result.stderr)


def job_counts(text: str) -> dict[str, int]:
    """Rule -> job count of a dry run's output."""
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
        "generate_demo": 1, "init_clip": 1, "detect": 2, "embed_prompts": 1, "bank_settings": 1, "train": 1,
        "training_settings": 1, "link_training": 1, "infer": 1, "evaluate": 1,
    }  # fmt: skip


def test_ablation_table_plans_each_variant_and_reuses_shared_work(workflow):
    counts = planned_rules(workflow, "results/demo/ablations.md", workflow / "config.yaml")
    presets = yaml.safe_load((workflow / "config.yaml").read_text())["runs"]["demo"]["ablations"]
    # presets that train what the full model trains (or change inference only) share its training
    project = wf.load_workflow_config(yaml.safe_load((workflow / "config.yaml").read_text()))
    runs = ["demo", *wf.ablation_runs(project, "demo")]
    trainings = {wf.training_key(project, wf.resolve_run(project, run)) for run in runs}
    assert len(trainings) == len(runs) - 3  # exp4 = exp3, exp7 = the full model, no_ktn = exp6 but for inference
    assert counts["train"] == counts["training_settings"] == len(trainings)
    assert counts["infer"] == counts["evaluate"] == counts["link_training"] == 1 + len(presets)
    assert counts["embed_prompts"] == 1 and counts["detect"] == 2 and counts["ablations"] == 1


def shell_commands(text: str, command: str) -> list[list[str]]:
    """The words of each planned `python -m hoi_pipeline {command}` call of a `snakemake -n -p` output."""
    calls = [line.split("> results/logs")[0] for line in text.splitlines() if f" hoi_pipeline {command} " in line]
    return [shlex.split(call.split("Shell command:")[-1]) for call in calls]


def option(words: list[str], flag: str) -> str:
    return words[words.index(flag) + 1]


def test_abl3_enhances_exp8s_training_instead_of_training_its_own(workflow, tmp_path):
    """Table 3 Abl 3: enhance-with-clip wraps the model.pt of Exp 8's training (one training for both rows)."""
    table3 = write_yaml(tmp_path / "table3.yaml", {"runs": {"demo": {"ablations": ["exp8", "abl3"]}}})
    configs = [str(workflow / "config.yaml"), str(table3)]
    abl3 = "results/demo/ablations/abl3/metrics.csv"
    result = snakemake(workflow, "-n", "-p", "--configfile", *configs, "--", abl3)
    counts = job_counts(result.stdout)
    assert counts["train"] == counts["enhance_with_clip"] == counts["link_training"] == 1
    assert counts["infer"] == counts["evaluate"] == 1
    project = wf.load_workflow_config(yaml.safe_load((workflow / "config.yaml").read_text()))
    exp8 = wf.training_dir(wf.training_key(project, wf.resolve_run(project, "demo/ablations/exp8")))
    enhanced = wf.enhanced_dir(wf.enhanced_key(project, wf.resolve_run(project, "demo/ablations/abl3")))
    [train] = shell_commands(result.stdout, "train")
    assert option(train, "--out-dir") == exp8  # the base training is Exp 8's, a bi-level model
    assert json.loads(option(train, "--config-json"))["model"]["kind"] == "bilevel"
    [enhance] = shell_commands(result.stdout, "enhance-with-clip")
    assert option(enhance, "--checkpoint") == f"{exp8}/model.pt"
    assert option(enhance, "--out") == f"{enhanced}/model.pt"
    assert option(enhance, "--bank").endswith("/knowledge_bank.h5")
    # the job order: the enhance job after the training, the run's links after the enhance job
    assert result.stdout.index("rule train:") < result.stdout.index("rule enhance_with_clip:")
    # both rows in one table: Exp 8's training once, Abl 3 trains nothing of its own
    both = job_counts(snakemake(workflow, "-n", "--configfile", *configs, "--", abl3,
                                "results/demo/ablations/exp8/metrics.csv").stdout)  # fmt: skip
    assert both["train"] == both["training_settings"] == 1 and both["enhance_with_clip"] == 1
    assert both["link_training"] == both["infer"] == both["evaluate"] == 2
    table = planned_rules(workflow, "results/demo/ablations.md", workflow / "config.yaml", table3)
    assert table["train"] == 2 and table["enhance_with_clip"] == 1 and table["evaluate"] == 3  # run, exp8, abl3


def test_abl3_addresses_and_rerun_triggers():
    """The enhanced model's address follows its base training and clip section, not its inference settings."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    project = wf.load_workflow_config(config)
    workflow = wf.Workflow(project)
    abl3, exp8 = workflow.run("demo/ablations/abl3"), workflow.run("demo/ablations/exp8")
    assert abl3.model.kind == "clip_enhanced" and wf.trained_run(abl3).model == exp8.model
    assert wf.training_key(project, abl3) == wf.training_key(project, exp8)
    key = wf.enhanced_key(project, abl3)
    assert workflow.enhanced[key] == "demo/ablations/abl3"
    links = workflow.inputs("link_training", {"run": "demo/ablations/abl3"})
    assert links["model"] == f"{wf.enhanced_dir(key)}/model.pt"
    assert links["losses"] == f"{wf.training_dir(wf.training_key(project, exp8))}/losses.csv"
    # the train job of the shared address trains the bi-level model, whichever run stands for it
    training = {"training": wf.training_key(project, exp8)}
    assert workflow.sections("train", training)["model"].kind == "bilevel"
    params = workflow.rerun_params("enhance_with_clip")
    assert {"set_clip_model", "set_clip_pretrained", "code_stages_enhance_with_clip_py"} <= set(params)
    assert params["set_clip_model"]({"enhanced": key}) == "clip.model = hoi-tiny-rn"

    def changed(overrides: dict) -> str:
        return wf.enhanced_key(project, with_overrides(abl3, overrides))

    assert changed({"infer": {"gamma": 1.0}}) == key  # inference settings: the same model
    assert changed({"clip": {"model": "RN50"}}) != key and changed({"train": {"iterations": 3}}) != key


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
        "model": {"input_size": 224},  # CLIP RN50's own size: the demo's 128 px images need no 640 px input
        "train": {"iterations": 2, "batch_size": 2, "num_workers": 0, "checkpoint_every": 1},
        "infer": {"batch_size": 8, "num_workers": 0},
    }}})  # fmt: skip
    configs = [str(demo_run / "config.yaml"), str(demo_run / "reduced.yaml"), str(rn50)]
    snakemake(demo_run, "-j2", "--configfile", *configs, "--", "results/demo_rn50/metrics.csv")
    with h5py.File(demo_run / "results/demo_rn50/knowledge_bank.h5") as bank:
        assert bank["embeddings"].shape[1] == 1024  # RN50's joint embedding width
    metrics = pd.read_csv(demo_run / "results/demo_rn50/metrics.csv")
    assert metrics["full"].between(0, 100).all()


# a training rerun in its folder, and one that moves to a new address (its settings changed)
RETRAIN = {"train", "link_training", "infer", "evaluate"}
NEW_TRAINING = RETRAIN | {"training_settings"}


@pytest.mark.slow
def test_nothing_reruns_without_a_change(demo_run):
    assert planned_rules(demo_run, "results/demo/metrics.csv", demo_run / "config.yaml", demo_run / "reduced.yaml") == {}


@pytest.mark.slow
def test_a_run_sees_its_shared_training_through_links(demo_run):
    link = demo_run / "results/demo/train/model.pt"
    assert link.is_symlink()
    target = link.resolve()
    assert target.parent.parent.name == "train" and target.parent.parent.parent.name == "shared"
    settings = yaml.safe_load((target.parent / "settings.yaml").read_text())
    assert settings["train"]["iterations"] == REDUCED["runs"]["demo"]["train"]["iterations"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"runs": {"demo": {"train": {"iterations": 13}}}}, NEW_TRAINING),
        ({"runs": {"demo": {"infer": {"gamma": 1.0}}}}, {"infer", "evaluate"}),
        ({"runs": {"demo": {"eval": {"iou_threshold": 0.6}}}}, {"evaluate"}),
        ({"runs": {"demo": {"clip": {"template": "a photo of a person {verb_ing} {article} {object}"}}}},
         {"embed_prompts", "bank_settings"} | NEW_TRAINING),
        ({"detectors": {"demo_import": {"human_score_threshold": 0.3}}}, {"detect"} | RETRAIN),
        # how a stage runs is not what it computes: runtime keys rerun nothing
        ({"runs": {"demo": {"train": {"num_workers": 1, "log_every": 1, "checkpoint_every": 3, "device": "cpu"},
                            "infer": {"batch_size": 3, "num_workers": 1}}}}, set()),
    ],
)  # fmt: skip
def test_a_config_change_reruns_only_what_it_touches(demo_run, tmp_path, change, expected):
    changed = write_yaml(tmp_path / "change.yaml", change)
    counts = planned_rules(demo_run, "results/demo/metrics.csv", demo_run / "config.yaml", demo_run / "reduced.yaml", changed)
    assert set(counts) == expected


@pytest.mark.slow
def test_a_dry_run_says_which_setting_changed(demo_run, tmp_path):
    changed = write_yaml(tmp_path / "change.yaml", {"runs": {"demo": {"infer": {"gamma": 1.5}}}})
    result = snakemake(demo_run, "-n", "--configfile", str(demo_run / "config.yaml"), str(demo_run / "reduced.yaml"),
                       str(changed), "--", "results/demo/metrics.csv")  # fmt: skip
    assert "infer.gamma = 2.8" in result.stdout and "infer.gamma = 1.5" in result.stdout


@pytest.mark.slow
def test_adding_or_reordering_runs_reruns_nothing_of_demo(demo_copy):
    config = yaml.safe_load((demo_copy / "config.yaml").read_text())
    runs = config["runs"]
    # a new run with demo's settings, above demo, and the other runs in reverse order
    config["runs"] = {"demo_twin": runs["demo"], **dict(reversed(list(runs.items())))}
    write_yaml(demo_copy / "config.yaml", config)
    reduced = yaml.safe_load((demo_copy / "reduced.yaml").read_text())
    reduced["runs"]["demo_twin"] = reduced["runs"]["demo"]
    write_yaml(demo_copy / "reduced.yaml", reduced)
    configs = (demo_copy / "config.yaml", demo_copy / "reduced.yaml")
    assert planned_rules(demo_copy, "results/demo/metrics.csv", *configs) == {}
    # the twin trains exactly what demo trains: it reuses demo's training (links it, then infers and evaluates)
    assert set(planned_rules(demo_copy, "results/demo_twin/metrics.csv", *configs)) == {"link_training", "infer", "evaluate"}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@pytest.fixture
def demo_copy(demo_run, tmp_path) -> Path:
    workdir = tmp_path / "copy"
    shutil.copytree(demo_run, workdir, symlinks=True)  # keeps mtimes, links and Snakemake's records
    return workdir


@pytest.mark.slow
def test_comments_docstrings_and_formatting_rerun_nothing(demo_copy):
    configs = (demo_copy / "config.yaml", demo_copy / "reduced.yaml")
    package = demo_copy / "hoi_pipeline"
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        if text.startswith('"""'):
            text = '"""An edited docstring. ' + text[3:]
        path.write_text("# a comment\n" + text.replace("\n\n\n", "\n\n\n\n") + "\n# end\n")
    assert planned_rules(demo_copy, "results/demo/metrics.csv", *configs) == {}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("modeling/knowledge_transfer.py", RETRAIN),
        ("detection/precomputed.py", {"detect"} | RETRAIN),
        ("evaluation/hicodet.py", {"evaluate"}),
        ("prompts.py", {"embed_prompts"} | RETRAIN),
    ],
)
def test_a_code_change_reruns_the_stages_that_run_it(demo_copy, module, expected):
    configs = (demo_copy / "config.yaml", demo_copy / "reduced.yaml")
    path = demo_copy / "hoi_pipeline" / module
    path.write_text(path.read_text() + "\n\ndef _an_edit():\n    return 1\n")  # a real change of the module's code
    result = snakemake(demo_copy, "-n", "--configfile", *map(str, configs), "--", "results/demo/metrics.csv")
    assert set(planned_rules(demo_copy, "results/demo/metrics.csv", *configs)) == expected
    assert f"code hoi_pipeline/{module}" in result.stdout  # the dry run names the changed file


@pytest.mark.slow
def test_demo_figures_and_report(demo_copy):
    """The figures rule on the demo run: every figure, the Markdown gallery and Snakemake's report."""
    from hoi_pipeline.stages import figures

    configs = [str(demo_copy / "config.yaml"), str(demo_copy / "reduced.yaml")]
    # the figures read only what the run already made: nothing upstream reruns
    assert set(planned_rules(demo_copy, "results/demo/figures/index.md", *map(Path, configs))) == {"figures"}
    snakemake(demo_copy, "-j2", "--configfile", *configs, "--", "results/demo/figures/index.md")
    figures_dir = demo_copy / "results/demo/figures"
    index = (figures_dir / "index.md").read_text()
    from test_report import SECTIONS

    assert [s for s in SECTIONS if s in index] == list(SECTIONS)
    assert "it mirrors no paper setting" in index and "Not built" in index
    for name in figures.OUTPUTS.values():
        assert (figures_dir / name).stat().st_size > 0, name
    snakemake(demo_copy, "--report", "results/demo/report.html", "--configfile", *configs, "--",
              "results/demo/figures/index.md")  # fmt: skip
    report = (demo_copy / "results/demo/report.html").read_text()
    for category in ("Metrics", "Training", "Per-class AP", "Qualitative", "Ablations", "Provenance"):
        assert f'"{category}"' in report, category
    for name in ("training_curves.png", "qualitative.png", "precision_recall.png", "provenance.html"):
        assert name in report, name
    assert "self-taught relatedness loss" in report  # a caption
    assert not list(demo_copy.rglob("*.tmp")), "a temporary file was left behind"


@pytest.mark.slow
def test_vcoco_demo_runs_end_to_end(demo_run, tmp_path):
    """The synthetic V-COCO-style scenes (official layout) through every stage: role AP in both scenarios."""
    reduced = write_yaml(tmp_path / "vcoco.yaml", {
        "datasets": {"vcoco_demo": {"synthetic": {"num_train": 60, "num_test": 24, "image_size": 128}}},
        "runs": {"vcoco_demo": REDUCED["runs"]["demo"]},
    })  # fmt: skip
    configs = [str(demo_run / "config.yaml"), str(demo_run / "reduced.yaml"), str(reduced)]
    snakemake(demo_run, "-j2", "--configfile", *configs, "--", "results/vcoco_demo/metrics.csv")
    metrics = pd.read_csv(demo_run / "results/vcoco_demo/metrics.csv")
    roles = metrics.set_index("setting").loc[["scenario_1", "scenario_2"], "ap_role"]
    assert roles.between(0, 100).all()
    assert (demo_run / "results/data/vcoco_demo/instances_vcoco_all_2014.json").is_file()  # the official layout


@pytest.mark.slow
def test_abl3_runs_end_to_end_and_reruns_after_its_base_model(demo_copy, tmp_path):
    """Abl 3 on the reduced demo: Exp 8 trains (a random-init COCO detector's RN50-FPN: no downloads), the
    enhance job wraps its model.pt, the run infers and evaluates; then what reruns after a code change."""
    from test_detector_fpn import save_random_detector
    from torchvision.models.detection import fasterrcnn_resnet50_fpn_v2

    from hoi_pipeline.checkpoints import load_trained_model

    weights = tmp_path / "fasterrcnn_resnet50_fpn_v2.pth"
    save_random_detector(fasterrcnn_resnet50_fpn_v2, weights)
    abl3 = write_yaml(tmp_path / "abl3.yaml", {"runs": {"demo": {
        "model": {"backbone_weights": str(weights)}, "train": {"iterations": 2, "batch_size": 2, "checkpoint_every": 1},
    }}})  # fmt: skip
    configs = (demo_copy / "config.yaml", demo_copy / "reduced.yaml", abl3)
    target = "results/demo/ablations/abl3/metrics.csv"
    snakemake(demo_copy, "-j2", "--configfile", *map(str, configs), "--", target)
    metrics = pd.read_csv(demo_copy / target)
    assert metrics["full"].between(0, 100).all()
    model = demo_copy / "results/demo/ablations/abl3/train/model.pt"
    assert model.resolve().parent.parent.name == "enhanced"
    _, info = load_trained_model(model)
    assert info.model.kind == "clip_enhanced" and info.model.backbone_source == "coco_detector_fpn"
    # the model it enhances: the training whose losses.csv the run links, a bi-level Exp 8 model
    training = (demo_copy / "results/demo/ablations/abl3/train/losses.csv").resolve().parent
    assert (demo_copy / info.bank["enhanced_checkpoint"]["path"]).resolve() == training / "model.pt"
    assert yaml.safe_load((training / "settings.yaml").read_text())["model"]["kind"] == "bilevel"
    assert planned_rules(demo_copy, target, *configs) == {}
    # the enhance stage's code: only the enhanced model and what reads it
    stage = demo_copy / "hoi_pipeline/stages/enhance_with_clip.py"
    original = stage.read_text()
    stage.write_text(original + "\n\ndef _an_edit():\n    return 1\n")
    assert set(planned_rules(demo_copy, target, *configs)) == {"enhance_with_clip", "link_training", "infer", "evaluate"}
    stage.write_text(original)
    # the base model's training code: a new base model, hence a new enhanced model
    train = demo_copy / "hoi_pipeline/stages/train.py"
    train.write_text(train.read_text() + "\n\ndef _an_edit():\n    return 1\n")
    assert set(planned_rules(demo_copy, target, *configs)) == {"train", "enhance_with_clip", "link_training", "infer",
                                                               "evaluate"}  # fmt: skip
