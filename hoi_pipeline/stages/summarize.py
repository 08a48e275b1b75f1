"""Collect the metrics of several runs (a run and its ablation presets) into one table."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from hoi_pipeline.artifacts import atomic_outputs, refuse_overwriting_inputs

log = logging.getLogger(__name__)


def collect_metrics(metrics: list[Path], names: list[str]) -> pd.DataFrame:
    """One row per (run, setting) with every metric column of the runs' metrics.csv files."""
    if len(metrics) != len(names):
        raise ValueError(f"{len(metrics)} metrics files but {len(names)} names")
    frames = []
    for path, name in zip(metrics, names):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: metrics file not found")
        frame = pd.read_csv(path)
        frame.insert(0, "run", name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def markdown_table(table: pd.DataFrame) -> str:
    """A Markdown table with metrics in percent, two decimals (like the paper's tables)."""
    columns = list(table.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in table.itertuples(index=False):
        cells = [f"{value:.2f}" if isinstance(value, float) else str(value) for value in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(*, metrics: list[Path], names: list[str], out: Path) -> None:
    """Write `out` (.csv) and the same table as Markdown beside it (.md), as one set (`atomic_outputs`)."""
    out = Path(out)
    if out.suffix != ".csv":
        raise ValueError(f"{out}: the table to write must be a .csv file (its .md is written beside it)")
    refuse_overwriting_inputs([out, out.with_suffix(".md")], metrics)
    table = collect_metrics(metrics, names)
    with atomic_outputs(out, out.with_suffix(".md")) as (csv_tmp, md_tmp):
        table.to_csv(csv_tmp, index=False)
        md_tmp.write_text(markdown_table(table))
    log.info("wrote %s (%d rows)", out, len(table))
