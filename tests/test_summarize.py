"""The ablation table: each row's metrics beside the paper's numbers, laid out as the paper's tables."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from hoi_pipeline.cli import main
from hoi_pipeline.config import RunConfig, with_overrides
from hoi_pipeline.stages import summarize


def write_metrics(path, full: float, rare: float = 10.0, non_rare: float = 12.5):
    pd.DataFrame({"setting": ["default", "known_object"], "full": [full, full + 1.0], "rare": [rare, rare + 1.0],
                  "non_rare": [non_rare, non_rare + 1.0], "num_classes": [600, 600]}).to_csv(path, index=False)  # fmt: skip
    return path


def test_summarize_lays_rows_out_as_the_paper_with_its_numbers(tmp_path):
    names = ["full_model", "baseline", "exp1", "exp7", "exp11", "no_ktn"]
    paths = [write_metrics(tmp_path / f"{name}.csv", 20.0 + i) for i, name in enumerate(names)]
    out = tmp_path / "ablations.csv"
    assert main(["summarize", "--metrics", *map(str, paths), "--names", *names, "--out", str(out)]) == 0
    table = pd.read_csv(out)
    for column in ("table", "row", "preset", "in_paper", "backbone", "bank", "hoi_recognition", "ktn", "score_fusion",
                   "src", "setting", "full", "rare", "non_rare", "paper_full", "paper_rare", "paper_non_rare",
                   "diff_full", "diff_rare", "diff_non_rare"):  # fmt: skip
        assert column in table.columns, column
    default = table[table["setting"] == "default"]
    exp1 = default[default["preset"] == "exp1"].iloc[0]
    assert (exp1["table"], exp1["row"], exp1["hoi_recognition"], exp1["ktn"], exp1["src"]) == (
        "Table 2", "Exp 1", "✓", "-", "-")  # fmt: skip
    assert (exp1["full"], exp1["paper_full"], exp1["paper_rare"], exp1["paper_non_rare"]) == (22.0, 20.31, 18.34, 20.90)
    assert exp1["diff_full"] == pytest.approx(22.0 - 20.31)
    # the paper's row order; rows of a table that did not run are listed with the paper's numbers only
    table2 = default[default["table"] == "Table 2"]
    assert list(table2["row"]) == ["baseline", "Exp 1", "Exp 2", "Exp 3", "Exp 4", "Exp 5", "Exp 6", "Exp 7", "ours",
                                   "Exp 8", "Exp 9", "Exp 10"]  # fmt: skip
    exp2 = table2[table2["preset"] == "exp2"].iloc[0]
    assert math.isnan(exp2["full"]) and exp2["paper_full"] == 20.09
    # Table 4's "ours" is Exp 7; the full model is "ours (Top-1)" only where Table 5 ran (it did not)
    table4 = default[default["table"] == "Table 4"]
    assert list(table4["row"]) == ["Exp 11", "Exp 12", "Exp 13", "ours (Exp 7)"]
    assert table4.iloc[-1]["full"] == 23.0 and table4.iloc[0]["ktn"] == "✓ (union)"
    assert "Table 5" not in set(table["table"])
    extra = default[default["table"] == "not in the paper"]
    assert list(extra["preset"]) == ["no_ktn"] and not extra.iloc[0]["in_paper"] and math.isnan(extra.iloc[0]["paper_full"])
    # the paper reports the Default setting only
    assert table[table["setting"] == "known_object"]["paper_full"].isna().all()

    markdown = out.with_suffix(".md").read_text()
    assert "## Table 2, Default setting" in markdown and "## Not in the paper, Default setting" in markdown
    assert "| Row | Backbone | Knowledge bank | HOI recognition | KTN | Score fusion | SRC | Full | Rare | Non-Rare | " \
           "Paper Full | Paper Rare | Paper Non-Rare | Δ Full | Δ Rare | Δ Non-Rare |" in markdown
    assert "| Exp 1 | CLIP RN50 | CLIP Text | ✓ | - | - | - | 22.00 | 10.00 | 12.50 | 20.31 | 18.34 | 20.90 | +1.69 |" \
           in markdown
    assert "- `no_ktn` (not in the paper): the full model without the knowledge transfer network" in markdown


def test_switch_columns_follow_the_run_the_presets_modify(tmp_path):
    paths = [write_metrics(tmp_path / "a.csv", 20.0), write_metrics(tmp_path / "b.csv", 19.0)]
    default = summarize.ablation_table(summarize.collect_metrics(paths, ["full_model", "exp3"]))
    ran = default[default["preset"].isin(["full_model", "exp3"])]
    assert set(ran["backbone"]) == {"CLIP RN50"}
    changed = {"clip": {"model": "RN101"}, "model": {"use_knowledge_transfer": False}}
    base = with_overrides(RunConfig(dataset="d", detector="x"), changed)
    table = summarize.ablation_table(summarize.collect_metrics(paths, ["full_model", "exp3"]), base)
    full = table[(table["preset"] == "full_model") & (table["setting"] == "default")].iloc[0]
    exp3 = table[(table["preset"] == "exp3") & (table["setting"] == "default")].iloc[0]
    assert (full["backbone"], full["ktn"]) == ("CLIP RN101", "-")  # the run itself, as configured
    assert (exp3["backbone"], exp3["ktn"]) == ("CLIP RN101", "✓")  # the preset sets its own switches
    # the stage takes the run's sections
    summarize.run(metrics=paths, names=["full_model", "exp3"], out=tmp_path / "t.csv", clip=base.clip, model=base.model)
    written = pd.read_csv(tmp_path / "t.csv")
    assert written[written["preset"] == "full_model"].iloc[0]["ktn"] == "-"
    assert set(written[written["preset"].isin(["full_model", "exp3"])]["backbone"]) == {"CLIP RN101"}


def test_other_names_and_other_metrics_still_tabulate(tmp_path):
    vcoco = tmp_path / "v.csv"
    pd.DataFrame({"setting": ["scenario_1", "scenario_2"], "ap_role": [40.0, 45.5], "num_classes": [24, 24]}).to_csv(
        vcoco, index=False
    )
    table = summarize.ablation_table(summarize.collect_metrics([vcoco, vcoco], ["full_model", "my_run"]))
    assert list(table["setting"].unique()) == ["scenario_1", "scenario_2"]
    assert table["paper_full"].isna().all() and "ap_role" in table.columns
    other = table[table["preset"] == "my_run"]
    assert list(other["table"].unique()) == ["other runs"] and other.iloc[0]["ap_role"] == 40.0
    assert "AP role" in summarize.markdown_tables(table)


def test_summarize_names_a_missing_file(tmp_path):
    code = main(["summarize", "--metrics", str(tmp_path / "nope.csv"), "--names", "x", "--out", str(tmp_path / "t.csv")])
    assert code == 2
    assert not (tmp_path / "t.csv").exists()
