"""Evaluation outputs: metrics.csv, per_class_ap.csv and a Markdown table like the paper's Table 1.

All numbers in the files are percent at full precision (the Markdown table rounds to 2 decimals);
classes without ground truth have AP and recall `nan`. The three files are one set, written with
`atomic_outputs`: two evaluations into one folder never leave a mix of their files.

HICO-DET  metrics.csv:      setting, full, rare, non_rare, num_classes  (one row per setting)
          per_class_ap.csv: setting, class, name, verb, object, rare, ap, num_gt, recall, num_detections
V-COCO    metrics.csv:      setting, ap_role, num_classes  (rows scenario_1, scenario_2)
          per_class_ap.csv: setting, class, name, action, role, ap, num_gt, recall, num_detections
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hoi_pipeline.artifacts import atomic_outputs
from hoi_pipeline.evaluation.hicodet import SETTING_TITLES, EvaluationResult
from hoi_pipeline.evaluation.vcoco import SCENARIO_TITLES, RoleEvaluationResult, split_action_role


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


def vcoco_markdown(result: RoleEvaluationResult, title: str = "") -> str:
    """Role mAP (%) per scenario, then AP (%) of each action-role pair."""
    names = [s.setting for s in result.scenarios]
    head = f"### {title}\n\n" if title else ""
    summary = markdown_table(
        ["Scenario", "AP_role"], [[SCENARIO_TITLES[s.setting], _cell(100.0 * s.mean())] for s in result.scenarios]
    )
    per_role = markdown_table(
        ["Action-role"] + [SCENARIO_TITLES[n] for n in names],
        [[name] + [_cell(_percent(s.ap[i])) for s in result.scenarios] for i, name in enumerate(result.role_names)],
    )
    return head + summary + f"\nRole AP (%) per action-role pair ({len(result.role_names)} pairs):\n\n" + per_role


def write_vcoco_tables(result: RoleEvaluationResult, out_dir: str | Path, title: str = "") -> None:
    """metrics.csv, per_class_ap.csv and table.md of a V-COCO role evaluation in `out_dir`."""
    metrics = (
        ["setting", "ap_role", "num_classes"],
        [[s.setting, 100.0 * s.mean(), int(s.evaluated.sum())] for s in result.scenarios],
    )
    rows = []
    for s in result.scenarios:
        for i, name in enumerate(result.role_names):
            action, role = split_action_role(name)
            rows.append([
                s.setting, i, name, action, role, _percent(s.ap[i]), int(s.num_gt[i]),
                _percent(s.recall[i]), int(s.num_detections[i]),
            ])  # fmt: skip
    header = ["setting", "class", "name", "action", "role", "ap", "num_gt", "recall", "num_detections"]
    _write_set(out_dir, metrics, (header, rows), vcoco_markdown(result, title))
