"""Each stage's code version covers exactly the package modules the stage runs, and ignores what never runs."""

from __future__ import annotations

from pathlib import Path

from hoi_pipeline import code_version
from hoi_pipeline.code_version import PACKAGE_DIR, file_version, module_closure, normalized_source, stage_code_digest


def closure(stage: str) -> set[str]:
    return {p.relative_to(PACKAGE_DIR).as_posix() for p in module_closure(f"hoi_pipeline.stages.{stage}")}


def test_training_code_is_in_train_but_not_in_detect_or_evaluate():
    train, detect, evaluate = closure("train"), closure("detect"), closure("evaluate")
    for module in ("losses.py", "modeling/knowledge_transfer.py", "modeling/spatial_encoding.py"):
        assert module in train
        assert module not in detect and module not in evaluate
    assert "stages/train.py" in train and "stages/detect.py" not in train


def test_lazy_imports_and_package_inits_count():
    detect = closure("detect")
    assert "detection/__init__.py" in detect and "datasets/__init__.py" in detect
    assert "datasets/hicodet_mat.py" in detect  # imported inside load_annotations


def test_configuration_plumbing_is_neither_counted_nor_followed():
    # config.py imports prompts.py to check templates: detection must not depend on prompt wording
    for stage in ("detect", "train", "infer", "evaluate", "embed_prompts"):
        assert not {"config.py", "cli.py", "workflow.py", "stages/specs.py"} & closure(stage), stage
    assert "prompts.py" not in closure("detect")
    assert "prompts.py" in closure("embed_prompts")


def test_model_configs_count_for_stages_that_load_clip():
    assert "model_configs/hoi-tiny-rn.json" in closure("embed_prompts")
    assert "model_configs/hoi-tiny-rn.json" not in closure("evaluate")


def test_digest_is_stable_and_differs_between_stages():
    assert stage_code_digest("hoi_pipeline.stages.train") == stage_code_digest("hoi_pipeline.stages.train")
    assert stage_code_digest("hoi_pipeline.stages.train") != stage_code_digest("hoi_pipeline.stages.detect")


def test_comments_docstrings_and_formatting_do_not_change_a_version_but_code_does(tmp_path):
    original = tmp_path / "a.py"
    original.write_text('"""Module doc."""\n\ndef f(x):\n    """Doc."""\n    return x + 1  # one\n')
    reformatted = tmp_path / "b.py"
    reformatted.write_text('"""Other doc."""\n# a comment\n\n\ndef f(\n    x,\n):\n    return (x + 1)\n')
    changed = tmp_path / "c.py"
    changed.write_text('"""Module doc."""\n\ndef f(x):\n    """Doc."""\n    return x + 2  # one\n')
    assert normalized_source(original) == normalized_source(reformatted)
    assert normalized_source(original) != normalized_source(changed)
    data = tmp_path / "config.json"
    data.write_text('{"a": 1}')
    assert normalized_source(data) == b'{"a": 1}'  # data files count by their bytes


def test_every_package_module_parses_to_a_version():
    for path in Path(PACKAGE_DIR).rglob("*.py"):
        assert len(file_version(path)) == code_version.VERSION_LENGTH
