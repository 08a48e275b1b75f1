"""The tables of a run's report: metrics beside the paper's, the ablation table, and their rendering.

A `Table` holds formatted cells; it renders as GitHub Markdown (the gallery) or as an HTML
fragment (the pages Snakemake's report embeds). Percentages are shown with two decimals, as in the
paper; a missing number is "-".
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hoi_pipeline.evaluation.hicodet import SETTING_TITLES
from hoi_pipeline.evaluation.tables import markdown_table
from hoi_pipeline.evaluation.vcoco import SCENARIO_TITLES
from hoi_pipeline.report.paper import PaperResult

METRIC_TITLES = {"full": "Full", "rare": "Rare", "non_rare": "Non-Rare", "ap_role": "AP_role"}
HICODET_METRICS = ("full", "rare", "non_rare")
VCOCO_METRICS = ("ap_role",)
SETTING_NAMES = {**SETTING_TITLES, **SCENARIO_TITLES}


@dataclass(frozen=True)
class Table:
    """Formatted cells: a header and rows of strings, with a note shown below the table."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""

    def markdown(self) -> str:
        def cell(text: str) -> str:  # a '|' would end the cell
            return text.replace("|", "\\|")

        text = markdown_table([cell(c) for c in self.header], [[cell(c) for c in row] for row in self.rows])
        return text + (f"\n{self.note}\n" if self.note else "")

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(cell)}</th>" for cell in self.header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in self.rows
        )
        note = f"<p>{html.escape(self.note)}</p>" if self.note else ""
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


def format_number(value: object) -> str:
    """Two decimals for floats, '-' for NaN or None, integers and text as they are."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.2f}"
    return str(value)


def benchmark_of_metrics(metrics: pd.DataFrame, source: str = "metrics.csv") -> str:
    """'vcoco' for role AP columns, 'hicodet' for Full / Rare / Non-Rare; anything else is an error."""
    columns = set(metrics.columns)
    if "setting" in columns and set(VCOCO_METRICS) <= columns:
        return "vcoco"
    if "setting" in columns and set(HICODET_METRICS) <= columns:
        return "hicodet"
    raise ValueError(
        f"{source}: expected columns setting + {list(HICODET_METRICS)} (HICO-DET) or setting + "
        f"{list(VCOCO_METRICS)} (V-COCO), found {sorted(columns)}"
    )


def metrics_table(metrics: pd.DataFrame, paper: PaperResult | None, source: str = "metrics.csv") -> Table:
    """One row per evaluated setting: our mAP (%) and, for a run mirroring a paper setting, the paper's."""
    benchmark = benchmark_of_metrics(metrics, source)
    names = HICODET_METRICS if benchmark == "hicodet" else VCOCO_METRICS
    if paper is not None and paper.benchmark != benchmark:
        raise ValueError(f"{source}: {benchmark} metrics, but the run is compared with the paper's {paper.benchmark}")
    header = ["Setting", *(METRIC_TITLES[n] for n in names)]
    if paper is not None:
        header += [f"{METRIC_TITLES[n]} (paper)" for n in names]
    rows = []
    for record in metrics.to_dict("records"):
        setting = str(record["setting"])
        row = [SETTING_NAMES.get(setting, setting), *(format_number(float(record[n])) for n in names)]
        if paper is not None:
            reported = paper.metrics.get(setting, {})
            row += [format_number(reported.get(n)) for n in names]
        rows.append(tuple(row))
    unit = "mAP (%)" if benchmark == "hicodet" else "role AP (%)"
    note = f"{unit} of this run"
    note += f"; paper: {paper.title}, '-' where it reports no number." if paper else "; it mirrors no paper setting."
    return Table(tuple(header), tuple(rows), note)


def ablation_table(frame: pd.DataFrame) -> Table:
    """The ablation CSV as it is (every column, whatever the ablation stage writes), numbers formatted."""
    rows = tuple(tuple(format_number(value) for value in record) for record in frame.itertuples(index=False))
    return Table(tuple(str(c) for c in frame.columns), rows)


def read_csv(path: str | Path, what: str) -> pd.DataFrame:
    """A CSV with an error naming the file when it is missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as error:
        raise ValueError(f"{path}: not a readable {what} ({error})") from error
    if frame.empty:
        raise ValueError(f"{path}: the {what} has no rows")
    return frame


def html_page(title: str, sections: Sequence[tuple[str, str]]) -> str:
    """A standalone HTML page of (heading, HTML fragment) sections, for Snakemake's report."""
    style = (
        "body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0}"
        "th,td{border:1px solid #bbb;padding:.25em .6em;text-align:right}th:first-child,td:first-child"
        "{text-align:left}th{background:#eee}code{font-size:90%;word-break:break-all}"
    )
    body = "".join(f"<h2>{html.escape(heading)}</h2>{fragment}" for heading, fragment in sections)
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )
