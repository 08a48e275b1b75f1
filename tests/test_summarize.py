"""The ablation table collects each run's metrics.csv, one row per run and setting."""

from __future__ import annotations

import pandas as pd
import pytest

from hoi_pipeline.cli import main


def test_summarize_writes_csv_and_markdown(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    pd.DataFrame({"setting": ["default", "known_object"], "full": [20.5, 22.25]}).to_csv(a, index=False)
    pd.DataFrame({"setting": ["default", "known_object"], "full": [10.0, 11.125]}).to_csv(b, index=False)
    out = tmp_path / "table.csv"
    assert main(["summarize", "--metrics", str(a), str(b), "--names", "full_model", "no_ktn", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table["run"]) == ["full_model", "full_model", "no_ktn", "no_ktn"]
    assert table["full"].tolist() == pytest.approx([20.5, 22.25, 10.0, 11.125])
    markdown = out.with_suffix(".md").read_text().splitlines()
    assert markdown[0] == "| run | setting | full |"
    assert markdown[3] == "| full_model | known_object | 22.25 |"
    assert markdown[4] == "| no_ktn | default | 10.00 |"


def test_summarize_names_a_missing_file(tmp_path):
    code = main(["summarize", "--metrics", str(tmp_path / "nope.csv"), "--names", "x", "--out", str(tmp_path / "t.csv")])
    assert code == 2
    assert not (tmp_path / "t.csv").exists()
