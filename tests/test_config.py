"""Config validation: the dataclasses, the generated JSON schema, and the run resolution."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from hoi_pipeline import config as C
from hoi_pipeline import workflow as wf
from hoi_pipeline.cli import resolve_sections

ROOT = Path(__file__).resolve().parents[1]


def project_dict() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_shipped_config_loads_with_paper_defaults():
    project = C.load_project_config(ROOT / "config.yaml")
    assert {"demo", "hico_rn50", "hico_rn101"} <= set(project.runs)
    rn101 = project.run("hico_rn101")
    assert rn101.clip.model == "RN101"
    assert rn101.train.iterations == 60000 and rn101.train.batch_size == 96  # 24 per GPU on 4 GPUs
    assert rn101.train.micro_batches == (24, 4)  # one GPU accumulates the paper's four per-GPU batches
    assert rn101.model.input_size == 640 and rn101.model.global_logits == rn101.model.ktn_logits == "inner_product"
    assert rn101.loss.relatedness_reduction == "sum" and rn101.loss.images_without_pairs == "train_global"
    detector = project.detectors[rn101.detector]
    assert (detector.max_detections, detector.human_score_threshold, detector.min_humans) == (100, 0.0, 0)
    assert rn101.train.lr_backbone == 1e-5 and rn101.train.lr_head == 1e-4
    assert rn101.train.lr_milestones == (12000, 24000)
    assert rn101.infer.gamma == 2.8
    assert project.detectors[rn101.detector].backend == "torchvision"


def test_schema_file_is_generated_from_the_dataclasses():
    on_disk = yaml.safe_load((ROOT / "schemas" / "config.schema.yaml").read_text())
    assert on_disk == C.json_schema(), "run: python -m hoi_pipeline config-schema > schemas/config.schema.yaml"


def test_schema_accepts_the_shipped_config():
    jsonschema.validate(project_dict(), C.json_schema())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["runs"]["demo"]["train"].update(lr=1), "runs.demo.train: unknown key(s) ['lr']"),
        (lambda d: d["runs"]["demo"]["train"].update(iterations="many"), "runs.demo.train.iterations: expected an integer"),
        (lambda d: d["runs"]["demo"]["infer"].update(use_global_score="yes"), "use_global_score: expected true or false"),
        (lambda d: d["detectors"]["demo_import"].update(backend="yolo"), "'yolo' is not one of"),
        (lambda d: d["runs"]["demo"].update(dataset="coco"), "runs.demo.dataset: 'coco' is not in datasets"),
        (lambda d: d["runs"]["demo"].pop("detector"), "runs.demo.detector: required key is missing"),
        (lambda d: d["runs"]["demo"]["train"].update(lr_milestones=5), "lr_milestones: expected a list"),
    ],
)
def test_bad_config_is_an_error_naming_the_key(edit, message):
    data = project_dict()
    edit(data)
    with pytest.raises(C.ConfigError) as error:
        C.from_dict(C.ProjectConfig, data, "config")
    assert message in str(error.value)
    if "is not in datasets" in message:  # a cross-reference: beyond a JSON schema, checked in Python only
        jsonschema.validate(data, C.json_schema())
    else:
        with pytest.raises(jsonschema.ValidationError):  # Snakemake's validate rejects it too
            jsonschema.validate(data, C.json_schema())


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("runs: [unclosed\n")
    with pytest.raises(C.ConfigError, match="broken.yaml: not valid YAML"):
        C.load_project_config(path)


def test_overrides_are_validated_and_do_not_touch_the_original():
    run = C.load_project_config(ROOT / "config.yaml").run("demo")
    changed = C.with_overrides(run, {"train": {"iterations": 7}, "infer": {"gamma": 1.0}})
    assert changed.train.iterations == 7 and changed.infer.gamma == 1.0
    assert changed.train.batch_size == run.train.batch_size
    assert run.train.iterations != 7
    with pytest.raises(C.ConfigError, match="unknown key"):
        C.with_overrides(run, {"train": {"iterationz": 7}})


def test_cli_sections_from_json_must_be_exactly_the_stage_sections():
    sections = resolve_sections(None, None, json.dumps({"eval": {"iou_threshold": 0.6}}), ["eval"])
    assert sections["eval"].iou_threshold == 0.6
    with pytest.raises(C.ConfigError, match="takes sections \\['eval'\\], not \\['train'\\]"):
        resolve_sections(None, None, json.dumps({"train": {}}), ["eval"])
    assert resolve_sections(None, None, "{}", ["eval"])["eval"] == C.EvalConfig()  # a section left out: defaults
    with pytest.raises(C.ConfigError, match="not valid JSON"):
        resolve_sections(None, None, "{", ["eval"])


def test_cli_sections_from_config_file_and_run():
    sections = resolve_sections(str(ROOT / "config.yaml"), "demo", None, ["clip", "train", "detector"])
    assert sections["clip"].model == "hoi-tiny-rn"
    assert sections["detector"].backend == "precomputed"


def test_runs_that_train_the_same_thing_share_one_training_address_and_bank():
    project = C.load_project_config(ROOT / "config.yaml")
    demo = project.runs["demo"]
    key = wf.training_key(project, demo)
    # inference, evaluation and runtime-only keys do not change what is trained
    for overrides in ({"infer": {"gamma": 1.0}}, {"eval": {"iou_threshold": 0.6}},
                      {"train": {"num_workers": 7, "log_every": 3, "checkpoint_every": 5, "device": "cpu"}}):
        assert wf.training_key(project, C.with_overrides(demo, overrides)) == key, overrides
    longer = C.with_overrides(demo, {"train": {"iterations": 999}})
    assert wf.training_key(project, longer) != key
    assert wf.bank_key(project, longer) == wf.bank_key(project, demo)
    assert wf.bank_key(project, project.runs["hico_rn101"]) != wf.bank_key(project, demo)
    assert key.startswith("demo-demo_import-hoi-tiny-rn-")


def test_shared_addresses_do_not_depend_on_run_names_or_order():
    project = C.load_project_config(ROOT / "config.yaml")
    renamed = C.ProjectConfig(
        datasets=project.datasets, detectors=project.detectors,
        runs={"zzz_first": project.runs["demo"], **{k: v for k, v in reversed(project.runs.items())}},
    )  # fmt: skip
    assert wf.Workflow(renamed).training_of("demo") == wf.Workflow(project).training_of("demo")
    assert wf.Workflow(renamed).training_of("zzz_first") == wf.Workflow(project).training_of("demo")


def test_missing_dataset_message_says_where_and_which_key(tmp_path):
    project = C.load_project_config(ROOT / "config.yaml")
    with pytest.raises(C.ConfigError) as error:
        wf.split_files("hicodet", project.datasets["hicodet"], "test")
    text = str(error.value)
    assert "data/hicodet/instances_test2015.json" in text
    assert "datasets.hicodet.splits.test.annotations" in text
    assert "hico_20160224_det" in text  # where to get it


def test_local_weights_are_inputs_but_hub_tags_are_not():
    assert wf.local_weights("results/models/x.pt") == ["results/models/x.pt"]
    assert wf.local_weights("openai") == []
    assert wf.local_weights(None) == []


def test_a_shared_job_has_the_same_settings_whichever_run_stands_for_it():
    """A shared training or bank is one job: its settings (rerun triggers) must not depend on the run chosen."""
    project = C.load_project_config(ROOT / "config.yaml")
    workflow = wf.Workflow(project)
    for stage, key_of in (("train", workflow.training_of), ("embed_prompts", workflow.bank_of)):
        params = workflow.rerun_params(stage)
        by_key: dict[str, set] = {}
        for run in workflow.runs:
            if project.datasets[workflow.run(run).dataset].synthetic is None:
                continue  # real datasets are not on this machine (their option values check the files)
            wildcards = {"run": run}
            values = tuple(p(wildcards) if callable(p) else p for p in params.values())
            by_key.setdefault(key_of(run), set()).add(values)
        assert by_key and all(len(v) == 1 for v in by_key.values()), stage
        assert len(by_key) < sum(1 for r in workflow.runs if project.datasets[workflow.run(r).dataset].synthetic), stage
