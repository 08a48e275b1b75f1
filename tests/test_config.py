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
    assert rn101.train.iterations == 60000 and rn101.train.batch_size == 24
    assert rn101.train.lr_backbone == 1e-5 and rn101.train.lr_head == 1e-4
    assert rn101.train.lr_milestones == (12000, 24000)
    assert rn101.infer.gamma == 2.8
    assert project.detectors[rn101.detector].backend == "torchvision"


def test_resolved_run_yaml_has_every_key_and_loads_back(tmp_path):
    project = C.load_project_config(ROOT / "config.yaml")
    text = C.resolved_run_yaml(project, "demo/ablations/exp1")
    data = yaml.safe_load(text)
    assert list(data) == ["datasets", "detectors", "runs"] and list(data["runs"]) == ["demo/ablations/exp1"]
    run = data["runs"]["demo/ablations/exp1"]
    assert set(run["model"]) == {f.name for f in C.dataclasses.fields(C.ModelConfig)}  # defaults written out
    assert run["model"]["use_knowledge_transfer"] is False and run["model"]["hidden_dim"] == 128  # preset, config
    assert run["infer"]["use_global_score"] is False and run["train"]["iterations"] == 300
    assert set(data["detectors"]) == {"demo_import"} and set(data["datasets"]) == {"demo"}
    (tmp_path / "resolved.yaml").write_text(text)
    again = C.load_project_config(tmp_path / "resolved.yaml")
    assert again.run("demo/ablations/exp1") == wf.resolve_run(project, "demo/ablations/exp1")
    assert again.detectors["demo_import"] == project.detectors["demo_import"]
    with pytest.raises(C.ConfigError, match="unknown ablation 'exp99'"):
        C.resolved_run_yaml(project, "demo/ablations/exp99")


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
    with pytest.raises(C.ConfigError, match="missing \\['eval'\\]"):
        resolve_sections(None, None, json.dumps({"train": {}}), ["eval"])
    with pytest.raises(C.ConfigError, match="not valid JSON"):
        resolve_sections(None, None, "{", ["eval"])


def test_cli_sections_from_config_file_and_run():
    sections = resolve_sections(str(ROOT / "config.yaml"), "demo", None, ["clip", "train", "detector"])
    assert sections["clip"].model == "hoi-tiny-rn"
    assert sections["detector"].backend == "precomputed"


def test_runs_sharing_training_settings_share_the_checkpoint_and_bank():
    project = C.load_project_config(ROOT / "config.yaml")
    runs = dict(project.runs)
    runs["demo_gamma1"] = C.with_overrides(runs["demo"], {"infer": {"gamma": 1.0}})
    runs["demo_long"] = C.with_overrides(runs["demo"], {"train": {"iterations": 999}})
    assert wf.training_owner(runs, "demo_gamma1") == "demo"
    assert wf.training_owner(runs, "demo_long") == "demo_long"
    assert wf.bank_owner(runs, "demo_long") == "demo"
    assert wf.bank_owner(runs, "hico_rn101") == "hico_rn101"


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
