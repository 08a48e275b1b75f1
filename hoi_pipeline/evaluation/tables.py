"""Evaluation outputs: metrics.csv, per_class_ap.csv and a Markdown table like the paper's Table 1.

All numbers in the files are percent at full precision (the Markdown table rounds to 2 decimals);
classes without ground truth have AP and recall `nan`. The three files are one set, written with
`atomic_outputs`: two evaluations into one folder never leave a mix of their files.

HICO-DET  metrics.csv:      setting, full, rare, non_rare, num_classes  (one row per setting)
          per_class_ap.csv: setting, class, name, verb, object, rare, ap, num_gt, recall, num_detections
V-COCO    metrics.csv:      setting, ap_role, ap_agent, num_classes, num_gt, num_detections, note
                            (rows scenario_1, scenario_2, agent; num_classes: classes or actions in the
                            mean, num_gt: their ground-truth (person, class) instances; a number not
                            computed, or not applying to the row, is an empty cell, and `note` says why
                            or what it covers)
          per_class_ap.csv: setting, class, name, action, role, ap, num_gt, recall, num_detections
                            (scenario rows per action-role class, agent rows per action)
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hoi_pipeline.artifacts import atomic_outputs
from hoi_pipeline.evaluation.hicodet import SETTING_TITLES, EvaluationResult
from hoi_pipeline.evaluation.vcoco import AGENT, SCENARIO_TITLES, RoleEvaluationResult, split_action_role


OUTPUT_NAMES = ("metrics.csv", "per_class_ap.csv", "table.md")


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _write_set(
    out_dir: str | Path,
    metrics: tuple[Sequence[str], Sequence[Sequence[object]]],
    per_class: tuple[Sequence[str], Sequence[Sequence[object]]],
    table: str,
) -> None:
    """metrics.csv, per_class_ap.csv and table.md in `out_dir`, renamed into place together."""
    with atomic_outputs(*(Path(out_dir) / name for name in OUTPUT_NAMES)) as (metrics_tmp, per_class_tmp, table_tmp):
        _write_csv(metrics_tmp, *metrics)
        _write_csv(per_class_tmp, *per_class)
        table_tmp.write_text(table)


def _percent(value: float) -> float:
    return 100.0 * float(value)


def _cell(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table, first column left-aligned and the others right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([" --- "] + [" ---: "] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def hicodet_markdown(result: EvaluationResult, title: str = "") -> str:
    """mAP (%) with one row per setting and columns Full / Rare / Non-Rare (paper Table 1)."""
    rows = [[SETTING_TITLES[m.setting], _cell(m.full), _cell(m.rare), _cell(m.non_rare)] for m in result.summary()]
    vocab = result.vocabulary
    head = f"### {title}\n\n" if title else ""
    note = (
        f"\nmAP (%) over {vocab.num_classes} HOI classes (Rare: {len(vocab.rare)}, Non-Rare: {len(vocab.non_rare)}), "
        "11-point AP as in the official HICO-DET evaluation.\n"
    )
    return head + markdown_table(["Setting", "Full", "Rare", "Non-Rare"], rows) + note


def write_hicodet_tables(result: EvaluationResult, out_dir: str | Path, title: str = "") -> None:
    """metrics.csv, per_class_ap.csv and table.md of a HICO-DET evaluation in `out_dir`."""
    vocab = result.vocabulary
    metrics = (
        ["setting", "full", "rare", "non_rare", "num_classes"],
        [[m.setting, m.full, m.rare, m.non_rare, m.num_classes] for m in result.summary()],
    )
    rare = np.zeros(vocab.num_classes, dtype=bool)
    rare[vocab.rare] = True
    rows = []
    for r in result.settings:
        for c in range(vocab.num_classes):
            verb, obj = vocab.hoi_classes[c]
            rows.append([
                r.setting, c, vocab.class_name(c), vocab.verbs[verb], vocab.objects[obj], int(rare[c]),
                _percent(r.ap[c]), int(r.num_gt[c]), _percent(r.recall[c]), int(r.num_detections[c]),
            ])  # fmt: skip
    header = ["setting", "class", "name", "verb", "object", "rare", "ap", "num_gt", "recall", "num_detections"]
    _write_set(out_dir, metrics, (header, rows), hicodet_markdown(result, title))


def _number(value: float) -> float | str:
    """A metrics.csv cell: the number, or empty where it was not computed or does not apply."""
    return "" if math.isnan(value) else value


def vcoco_markdown(result: RoleEvaluationResult, title: str = "") -> str:
    """AP_role (%) per scenario and agent AP (%), their notes, then AP (%) of each class and action."""
    head = f"### {title}\n\n" if title else ""
    summary = result.summary()
    table = markdown_table(
        ["Setting", "AP_role", "AP_agent", "Classes"],
        [
            [SCENARIO_TITLES[row.setting], _cell(row.ap_role), _cell(row.ap_agent), str(row.num_classes)]
            for row in summary
        ],
    )
    protocol = (
        "\nAP (%) as the official vsrl_eval.py computes it: AP_role is the mean role AP over the action-role "
        "classes with ground truth (scenario 1: a role without a box must be predicted empty; scenario 2: it is "
        "not checked); AP_agent is the mean agent AP over the actions.\n"
    )
    notes = "".join(f"- {SCENARIO_TITLES[row.setting]}: {row.note}\n" for row in summary if row.note)
    text = head + table + protocol + (f"\nNotes:\n\n{notes}" if notes else "")
    if result.scenarios:
        text += f"\nRole AP (%) per action-role class ({len(result.role_names)} classes):\n\n" + markdown_table(
            ["Action-role"] + [SCENARIO_TITLES[s.setting] for s in result.scenarios],
            [[name] + [_cell(_percent(s.ap[i])) for s in result.scenarios] for i, name in enumerate(result.role_names)],
        )
    if result.agent is not None:
        text += f"\nAgent AP (%) per action ({len(result.action_names)} actions):\n\n" + markdown_table(
            ["Action", "Agent"],
            [[name, _cell(_percent(result.agent.ap[a]))] for a, name in enumerate(result.action_names)],
        )
    return text


def write_vcoco_tables(result: RoleEvaluationResult, out_dir: str | Path, title: str = "") -> None:
    """metrics.csv, per_class_ap.csv and table.md of a V-COCO evaluation in `out_dir`."""
    metrics = (
        ["setting", "ap_role", "ap_agent", "num_classes", "num_gt", "num_detections", "note"],
        [
            [row.setting, _number(row.ap_role), _number(row.ap_agent), row.num_classes, row.num_gt,
             row.num_detections, row.note]
            for row in result.summary()
        ],
    )  # fmt: skip
    rows = []
    for s in result.scenarios:
        for i, name in enumerate(result.role_names):
            action, role = split_action_role(name)
            rows.append([
                s.setting, i, name, action, role, _percent(s.ap[i]), int(s.num_gt[i]),
                _percent(s.recall[i]), int(s.num_detections[i]),
            ])  # fmt: skip
    if result.agent is not None:
        a = result.agent
        for i, name in enumerate(result.action_names):
            rows.append([
                AGENT, i, name, name, AGENT, _percent(a.ap[i]), int(a.num_gt[i]), _percent(a.recall[i]),
                int(a.num_detections[i]),
            ])  # fmt: skip
    header = ["setting", "class", "name", "action", "role", "ap", "num_gt", "recall", "num_detections"]
    _write_set(out_dir, metrics, (header, rows), vcoco_markdown(result, title))
