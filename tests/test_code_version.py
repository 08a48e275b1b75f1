"""Each stage's code digest covers exactly the package modules the stage runs."""

from __future__ import annotations

from hoi_pipeline.code_version import PACKAGE_DIR, module_closure, stage_code_digest


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


def test_model_configs_count_for_stages_that_load_clip():
    assert "model_configs/hoi-tiny-rn.json" in closure("embed_prompts")
    assert "model_configs/hoi-tiny-rn.json" not in closure("evaluate")


def test_digest_is_stable_and_differs_between_stages():
    assert stage_code_digest("hoi_pipeline.stages.train") == stage_code_digest("hoi_pipeline.stages.train")
    assert stage_code_digest("hoi_pipeline.stages.train") != stage_code_digest("hoi_pipeline.stages.detect")
