"""Stage `summarize`: a run's and its ablation presets' metrics laid out as the paper's ablation tables.

Inputs: one metrics.csv per row name (`full_model` for the run itself, else an ablation preset of
`hoi_pipeline/ablations.py`). Outputs: `out` (.csv) and the same tables as Markdown beside it (.md).

Each row shows what it is (the paper's switch columns: backbone, knowledge bank, HOI recognition,
KTN, score fusion, SRC, derived from the config the row runs with), our mAP, the paper's mAP
(HICO-DET Default setting, CLIP RN50) and our minus the paper's. Rows follow the paper's Tables 2, 4
and 5 (and 3 when its presets exist); a paper row that was not run shows empty "ours" cells, rows
not in the paper come last, marked as such. The CSV holds every setting of the metrics files (the
paper reports Default only, so the paper columns are empty elsewhere); the Markdown has one table
per paper table and setting.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from hoi_pipeline.ablations import ABLATIONS, FULL_MODEL, NOT_IN_PAPER, PRESETS, TABLE_LAYOUT, row_switches
from hoi_pipeline.artifacts import atomic_outputs, refuse_overwriting_inputs
from hoi_pipeline.config import ClipConfig, InferConfig, LossConfig, ModelConfig, RunConfig, with_overrides

log = logging.getLogger(__name__)

PAPER_SETTING = "default"  # the paper's tables report the HICO-DET Default setting
PAPER_METRICS = ("full", "rare", "non_rare")
SWITCH_COLUMNS = ("backbone", "bank", "hoi_recognition", "ktn", "score_fusion", "src")
HEADERS = {
    "row": "Row", "backbone": "Backbone", "bank": "Knowledge bank", "hoi_recognition": "HOI recognition",
    "ktn": "KTN", "score_fusion": "Score fusion", "src": "SRC", "full": "Full", "rare": "Rare",
    "non_rare": "Non-Rare", "ap_role": "AP role", "paper_full": "Paper Full", "paper_rare": "Paper Rare",
    "paper_non_rare": "Paper Non-Rare", "diff_full": "Δ Full", "diff_rare": "Δ Rare", "diff_non_rare": "Δ Non-Rare",
}  # fmt: skip
OTHER = "other runs"
SETTING_TITLES = {"default": "Default setting", "known_object": "Known Object setting"}


def collect_metrics(metrics: Sequence[Path], names: Sequence[str]) -> pd.DataFrame:
    """One row per (run, setting) with every metric column of the runs' metrics.csv files."""
    if len(metrics) != len(names):
        raise ValueError(f"{len(metrics)} metrics files but {len(names)} names")
    frames = []
    for path, name in zip(metrics, names):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: metrics file not found")
        frame = pd.read_csv(path)
        if "setting" not in frame.columns:
            raise ValueError(f"{path}: not a metrics.csv of the evaluate stage (no 'setting' column)")
        frame.insert(0, "run", name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def row_config(name: str, base: RunConfig) -> RunConfig | None:
    """The config a row runs with: the run itself for `full_model`, the run with the preset's overrides for
    a preset the workflow runs, None otherwise."""
    if name == FULL_MODEL.name:
        return base
    if name not in ABLATIONS:
        return None
    return with_overrides(base, dict(ABLATIONS[name]), f"ablation '{name}'")


def row_table(name: str) -> str | None:
    """The table a row name belongs to (`full_model`: Table 2), None for names that are not presets."""
    if name == FULL_MODEL.name:
        return FULL_MODEL.table
    return PRESETS[name].table if name in PRESETS else None


def ablation_table(collected: pd.DataFrame, base: RunConfig | None = None) -> pd.DataFrame:
    """The paper-layout table (long format, one row per table, row and setting) of `collect_metrics`' output.

    `base`: the run the presets modify (its model, loss, infer sections decide the switch columns);
    default: the default config.
    """
    base = base or RunConfig(dataset="-", detector="-")
    metric_columns = [c for c in collected.columns if c not in ("run", "setting", "num_classes")]
    settings = list(dict.fromkeys(collected["setting"]))
    ran = set(collected["run"])
    layout = {table: rows for table, rows in TABLE_LAYOUT.items() if rows}
    placed = {name for rows in layout.values() for name, _ in rows}
    unknown = [name for name in dict.fromkeys(collected["run"]) if name not in placed]
    if unknown:
        layout[OTHER] = tuple((name, name) for name in unknown)

    records = []
    for table, rows in layout.items():
        # a table shows when one of its own rows ran (not only a row it shares, e.g. Table 4's Exp 7)
        own = {name for name, _ in rows if table == OTHER or row_table(name) == table}
        if not own & ran:
            continue
        for name, label in rows:
            if table == NOT_IN_PAPER and name not in ran:
                continue
            config = row_config(name, base)
            known = FULL_MODEL if name == FULL_MODEL.name else PRESETS.get(name)
            switches = dict.fromkeys(SWITCH_COLUMNS, "")
            if config is not None:
                switches = {column: getattr(row_switches(config), column) for column in SWITCH_COLUMNS}
            elif known is not None:  # a row the workflow does not run: as the paper states it
                switches = {column: getattr(known.switches, column) for column in SWITCH_COLUMNS}
            for setting in settings:
                ours = collected[(collected["run"] == name) & (collected["setting"] == setting)]
                record = {
                    "table": table, "row": label, "preset": name, "in_paper": bool(known and known.in_paper),
                    **switches, "setting": setting,
                    **{column: float(ours[column].iloc[0]) if len(ours) else math.nan for column in metric_columns},
                }  # fmt: skip
                paper = known.paper if known is not None and setting == PAPER_SETTING else None
                theirs = {m: getattr(paper, m) if paper is not None else math.nan for m in PAPER_METRICS}
                record.update({f"paper_{m}": theirs[m] for m in PAPER_METRICS})
                record.update({f"diff_{m}": record.get(m, math.nan) - theirs[m] for m in PAPER_METRICS})
                records.append(record)
    return pd.DataFrame.from_records(records)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.2f}"
    return str(value)


def _signed(value: float) -> str:
    return "" if math.isnan(value) else f"{value:+.2f}"


def markdown_tables(table: pd.DataFrame) -> str:
    """The ablation tables as Markdown: one per paper table and setting, then what each row is."""
    if table.empty:
        return "No ablation rows.\n"
    metric_columns = [c for c in table.columns if c not in {"table", "row", "preset", "in_paper", "setting",
                                                             *SWITCH_COLUMNS} and not c.startswith(("paper_", "diff_"))]  # fmt: skip
    lines = [
        "# Ablations",
        "",
        "Our mAP (%) beside the paper's (HICO-DET test, Default setting, CLIP RN50 backbone; Δ = ours - paper).",
        "Switch columns as in the paper's tables: ✓ on, - off. Rows marked *not in the paper* have no paper numbers.",
    ]
    for setting in dict.fromkeys(table["setting"]):
        with_paper = setting == PAPER_SETTING and not table[f"paper_{PAPER_METRICS[0]}"].isna().all()
        columns = ["row", *SWITCH_COLUMNS, *metric_columns]
        if with_paper:
            columns += [f"paper_{m}" for m in PAPER_METRICS] + [f"diff_{m}" for m in PAPER_METRICS]
        for name in dict.fromkeys(table["table"]):
            rows = table[(table["table"] == name) & (table["setting"] == setting)]
            if rows.empty:
                continue
            title = "Not in the paper" if name == NOT_IN_PAPER else name.capitalize()
            lines += ["", f"## {title}, {SETTING_TITLES.get(setting, setting)}", ""]
            lines.append("| " + " | ".join(HEADERS.get(c, c) for c in columns) + " |")
            lines.append("|" + "|".join("---" for _ in columns) + "|")
            for row in rows.itertuples(index=False):
                values = row._asdict()
                cells = [_signed(values[c]) if c.startswith("diff_") else _cell(values[c]) for c in columns]
                lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Rows", ""]
    for name in dict.fromkeys(table["preset"]):
        first = table[table["preset"] == name].iloc[0]
        known = FULL_MODEL if name == FULL_MODEL.name else PRESETS.get(name)
        description = known.description if known is not None else ""
        where = "not in the paper" if not first["in_paper"] else first["table"]
        lines.append(f"- `{name}` ({where}): {description}".rstrip(": "))
    return "\n".join(lines) + "\n"


def run(
    *,
    metrics: list[Path],
    names: list[str],
    out: Path,
    clip: ClipConfig | None = None,
    model: ModelConfig | None = None,
    loss: LossConfig | None = None,
    infer: InferConfig | None = None,
) -> None:
    """Write `out` (.csv) and the same tables as Markdown beside it (.md), as one set (`atomic_outputs`).

    `clip`, `model`, `loss`, `infer`: the sections of the run the presets modify; they decide the
    switch columns (default: the defaults, i.e. the paper's full model on CLIP RN50).
    """
    defaults = RunConfig(dataset="-", detector="-")
    base = dataclasses.replace(
        defaults, clip=clip or defaults.clip, model=model or defaults.model, loss=loss or defaults.loss,
        infer=infer or defaults.infer,
    )  # fmt: skip
    out = Path(out)
    if out.suffix != ".csv":
        raise ValueError(f"{out}: the table to write must be a .csv file (its .md is written beside it)")
    refuse_overwriting_inputs([out, out.with_suffix(".md")], metrics)
    table = ablation_table(collect_metrics(metrics, names), base)
    with atomic_outputs(out, out.with_suffix(".md")) as (csv_tmp, md_tmp):
        table.to_csv(csv_tmp, index=False)
        md_tmp.write_text(markdown_tables(table))
    log.info("wrote %s (%d rows)", out, len(table))
