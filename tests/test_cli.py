"""Every stage is a plain command with its own --help, and bad settings are clean errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hoi_pipeline.cli import build_parser, main

STAGES = ["generate-demo", "init-clip", "detect", "embed-prompts", "train", "infer", "evaluate", "predict", "summarize",
          "config", "config-schema"]


def test_every_stage_is_a_subcommand():
    subcommands = build_parser()._subparsers._group_actions[0].choices
    assert set(STAGES) <= set(subcommands)


@pytest.mark.parametrize("stage", STAGES)
def test_stage_help(stage, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([stage, "--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "hoi_pipeline", "evaluate", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--detections" in result.stdout


def test_bad_config_json_is_a_clean_error(tmp_path, caplog):
    code = main(["evaluate", "--config-json", '{"eval": {"iou": 0.5}}', "--annotations", str(tmp_path / "a.json"),
                 "--detections", str(tmp_path / "d.h5"), "--out", str(tmp_path)])  # fmt: skip
    assert code == 2
    assert "eval: unknown key(s) ['iou']" in caplog.text


def test_config_prints_a_runs_resolved_settings(capsys):
    import yaml

    from hoi_pipeline.cli import main as cli_main

    assert cli_main(["config", "--run", "demo/ablations/exp4"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["loss"]["use_relatedness_loss"] is False  # the preset's override (Exp 4: no SRC)
    assert resolved["train"]["iterations"] == 300  # the demo run's own setting
    assert resolved["infer"]["gamma"] == 2.8  # a default


def test_verbose_adds_the_traceback(tmp_path, caplog):
    args = ["evaluate", "--config-json", '{"eval": {}}', "--annotations", str(tmp_path / "missing.json"),
            "--detections", str(tmp_path / "d.h5"), "--out", str(tmp_path)]  # fmt: skip
    assert main(args) == 2
    assert "Traceback" not in caplog.text and "missing.json" in caplog.text
    caplog.clear()
    assert main(["-v", *args]) == 2
    assert "Traceback" in caplog.text
