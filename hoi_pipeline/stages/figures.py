"""Stage `figures`: a run's figures and tables for people, and a Markdown gallery linking them.

Reads what the other stages wrote (nothing reruns for a plot change) and writes into `out_dir`:

    index.md                    the gallery: every figure and table below on one page
    metrics.html                Full / Rare / Non-Rare (or V-COCO role AP) beside the paper's Table 1
    training_curves.png         L_g, L_p, L_b, the total loss and both learning rates against iterations
    per_class_ap.png            AP of every class, sorted, Rare classes marked; one panel per setting
    ap_vs_training_images.png   AP against the number of training images of the class (the long tail)
    precision_recall.png        precision-recall of the best, median and worst class
    qualitative.png             test images with their top tuples and score factors (paper Fig. 3),
                                the most confident successes and failures
    ablations.html              the run's ablation table when it was built (else how to build it)
    provenance.html / .json     what made each input: HDF5 attributes, checkpoint info, code digests

Precision-recall curves are recomputed here from the detections and the test annotation with the
evaluation code itself (`evaluation.protocol.evaluate_split`, whose `ClassAP.curves` are the points
each AP is computed from), rather than written by the evaluate stage: a curve per class of a
HICO-DET run is a million points that only this stage reads. The recomputed AP of every class must
equal per_class_ap.csv, so the figures cannot silently show other detections than the tables.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from hoi_pipeline.artifacts import DETECTION_DTYPES, DetectionsFile, atomic_path, write_json
from hoi_pipeline.config import EvalConfig, to_dict
from hoi_pipeline.datasets import load_annotations
from hoi_pipeline.datasets.images import read_image
from hoi_pipeline.evaluation import detections as flat
from hoi_pipeline.evaluation.curves import chosen_curves
from hoi_pipeline.evaluation.protocol import SplitResult, class_names, class_results, evaluate_split
from hoi_pipeline.report import plots, provenance
from hoi_pipeline.report.gallery import Section, figure_markdown, gallery_markdown
from hoi_pipeline.report.long_tail import training_image_counts
from hoi_pipeline.report.paper import PaperResult, paper_result
from hoi_pipeline.report.qualitative import Choice, choose_examples, class_column, split_by_image
from hoi_pipeline.report.tables import SETTING_NAMES, ablation_table, html_page, metrics_table, read_csv
from hoi_pipeline.structures import HOIAnnotations

log = logging.getLogger(__name__)

OUTPUTS = {
    "index": "index.md",
    "metrics": "metrics.html",
    "training": "training_curves.png",
    "per_class": "per_class_ap.png",
    "long_tail": "ap_vs_training_images.png",
    "precision_recall": "precision_recall.png",
    "qualitative": "qualitative.png",
    "ablations": "ablations.html",
    "provenance": "provenance.html",
    "provenance_json": "provenance.json",
}
AP_TOLERANCE = 1e-6  # percent; per_class_ap.csv stores full precision


def run(
    *,
    eval_config: EvalConfig,
    run_name: str,
    annotations: Path,
    split: str,
    train_annotations: Path,
    train_split: str,
    images: Path,
    detections: Path,
    proposals: Path,
    checkpoint: Path,
    losses: Path,
    metrics: Path,
    per_class: Path,
    out_dir: Path,
    ablations: Path | None = None,
    paper_backbone: str | None = None,
    code_versions: Mapping[str, str] | None = None,
    examples: int = 4,
    top: int = 3,
) -> None:
    """Write every file of `OUTPUTS` into `out_dir` (see the module docstring).

    `paper_backbone` (RN50 / RN101, `report.paper.paper_backbone`) puts the paper's numbers beside
    ours; `examples` successes and as many failures are drawn with their `top` best tuples.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    test = load_annotations(annotations, split)
    arrays, columns, factor_names = read_detections(Path(detections), test)
    result = evaluate_split(test, arrays, eval_config)
    per_class_frame = read_csv(per_class, "per-class AP table")
    check_agreement(per_class_frame, result, Path(per_class), Path(detections))
    history = read_csv(losses, "training loss history")
    groups = split_by_image(arrays.image, columns, factor_names)
    choices = choose_examples(test, groups, per_kind=examples, top=top, iou_threshold=eval_config.iou_threshold)
    sections = [
        metrics_section(out_dir, run_name, Path(metrics), paper_result(test.benchmark, paper_backbone)),
        training_section(out_dir, run_name, history, Path(losses)),
        per_class_section(out_dir, per_class_frame, test, Path(train_annotations), train_split),
        precision_recall_section(out_dir, result),
        qualitative_section(out_dir, choices, test, Path(images), len(groups)),
        ablations_section(out_dir, run_name, ablations, Path(metrics).parent),
    ]
    records = [
        provenance.h5_record(Path(detections), "infer"),
        provenance.h5_record(Path(proposals), "detect"),
        provenance.checkpoint_record(Path(checkpoint)),
        provenance.plain_record(Path(losses), "train", rows=len(history)),
        provenance.plain_record(Path(metrics), "evaluate", eval=to_dict(eval_config)),
        provenance.plain_record(Path(per_class), "evaluate"),
        provenance.plain_record(Path(annotations), "dataset", split=split),
        provenance.plain_record(Path(train_annotations), "dataset", split=train_split),
        *([provenance.plain_record(Path(ablations), "summarize")] if ablations is not None else []),
        provenance.code_record(code_versions or {}),
    ]
    sections.append(provenance_section(out_dir, run_name, records))
    intro = (
        f"Run `{run_name}`, test split `{split}` ({'V-COCO' if test.benchmark == 'vcoco' else 'HICO-DET'} protocol). "
        f"Made by `snakemake -j2 {out_dir}/index.md`; `snakemake {out_dir}/index.md --report "
        f"{out_dir.parent}/report.html` gathers the same files into Snakemake's report."
    )
    write_text(out_dir / OUTPUTS["index"], gallery_markdown(f"{run_name}: results", intro, sections))
    log.info("wrote %d files to %s in %.1f s", len(OUTPUTS), out_dir, time.perf_counter() - start)


# --------------------------------------------------------------------------------------------
# one function per section: it writes the section's files and returns its part of the gallery


def metrics_section(out_dir: Path, run_name: str, metrics: Path, paper: PaperResult | None) -> Section:
    table = metrics_table(read_csv(metrics, "metrics table"), paper, str(metrics))
    write_text(out_dir / OUTPUTS["metrics"], html_page(f"{run_name}: metrics", [("Metrics", table.html())]))
    return Section("Metrics", table.markdown())


def training_section(out_dir: Path, run_name: str, history: pd.DataFrame, losses: Path) -> Section:
    plots.plot_training_curves(history, out_dir / OUTPUTS["training"], title=f"{run_name}: training")
    return Section("Training", figure_markdown(
        OUTPUTS["training"], "training curves",
        f"Loss terms and learning rates over {int(history['iteration'].max())} iterations (`{losses}`).",
    ))  # fmt: skip


def per_class_section(
    out_dir: Path, per_class: pd.DataFrame, test: HOIAnnotations, train_annotations: Path, train_split: str
) -> Section:
    panels = class_ap_panels(per_class)
    plots.plot_per_class_ap(panels, out_dir / OUTPUTS["per_class"])
    train = load_annotations(train_annotations, train_split)
    counts = training_image_counts(train, class_column(test.benchmark), len(panels[0].names))
    plots.plot_ap_vs_training_images(panels[0], counts, out_dir / OUTPUTS["long_tail"])
    return Section("Per-class AP", "\n".join([
        figure_markdown(OUTPUTS["per_class"], "per-class AP", "AP of every class with ground truth, sorted."),
        figure_markdown(OUTPUTS["long_tail"], "AP against training images",
                        f"AP ({panels[0].setting}) against the number of training images of the class "
                        f"(`{train_annotations}`)."),
    ]))  # fmt: skip


def precision_recall_section(out_dir: Path, result: SplitResult) -> Section:
    primary = class_results(result)[0]
    curves = chosen_curves(primary, class_names(result))
    setting = SETTING_NAMES.get(primary.setting, primary.setting)
    plots.plot_precision_recall(curves, out_dir / OUTPUTS["precision_recall"], setting=setting)
    chosen = ", ".join(f"{c.role} *{c.name}* (AP {100 * c.ap:.2f})" for c in curves)
    return Section("Precision-recall", figure_markdown(
        OUTPUTS["precision_recall"], "precision-recall curves", f"{setting}: {chosen}."
    ))  # fmt: skip


def qualitative_section(
    out_dir: Path, choices: list[Choice], test: HOIAnnotations, images: Path, with_detections: int
) -> Section:
    plots.plot_qualitative([drawn_example(c, test, images) for c in choices], out_dir / OUTPUTS["qualitative"])
    kinds = [c.kind for c in choices]
    return Section("Qualitative detections", figure_markdown(
        OUTPUTS["qualitative"], "qualitative detections",
        f"The {kinds.count('success')} most confident successes and {kinds.count('failure')} most confident "
        f"failures (best tuple right or wrong) among the {with_detections} test images with detections.",
    ))  # fmt: skip


def ablations_section(out_dir: Path, run_name: str, ablations: Path | None, run_dir: Path) -> Section:
    if ablations is not None:
        table = ablation_table(read_csv(ablations, "ablation table"))
        text, fragment = f"From `{ablations}`.\n\n" + table.markdown(), table.html()
    else:
        text = (
            f"Not built for this run. Build it with `snakemake -j2 {run_dir}/ablations.md`; "
            "the figures are then remade with it."
        )
        fragment = f"<p>{html.escape(text)}</p>"
    write_text(out_dir / OUTPUTS["ablations"], html_page(f"{run_name}: ablations", [("Ablations", fragment)]))
    return Section("Ablations", text)


def provenance_section(out_dir: Path, run_name: str, records: list[provenance.ArtifactRecord]) -> Section:
    write_text(out_dir / OUTPUTS["provenance"], html_page(
        f"{run_name}: provenance", [(f"{r.path} ({r.stage})", r.table().html()) for r in records]
    ))  # fmt: skip
    write_json(out_dir / OUTPUTS["provenance_json"], provenance.as_json(records))
    return Section("Provenance", "\n".join(f"### `{r.path}` ({r.stage})\n\n{r.markdown()}" for r in records))


# --------------------------------------------------------------------------------------------
# helpers


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_detections(path: Path, annotations: HOIAnnotations) -> tuple[flat.DetectionArrays, dict, tuple[str, ...]]:
    """Flat detections in the annotation's image numbering, all columns (score factors included)."""
    reader = DetectionsFile(path)
    try:
        columns = reader.read_all(tuple(DETECTION_DTYPES) + reader.factors)
    finally:
        reader.close()
    arrays = flat.from_columns(annotations, reader.filenames, reader.offsets, columns, source=str(path))
    return arrays, columns, reader.factors


def class_ap_panels(frame: pd.DataFrame) -> list[plots.ClassAPs]:
    """Per-class AP of each setting in per_class_ap.csv (settings in file order, classes by index)."""
    missing = [c for c in ("setting", "class", "name", "ap") if c not in frame.columns]
    if missing:
        raise ValueError(f"per-class AP table lacks the column(s) {missing}")
    panels = []
    for setting, rows in frame.groupby("setting", sort=False):
        rows = rows.sort_values("class")
        rare = rows["rare"].to_numpy(dtype=bool) if "rare" in rows.columns else np.zeros(len(rows), dtype=bool)
        name = SETTING_NAMES.get(str(setting), str(setting))
        panels.append(plots.ClassAPs(name, tuple(rows["name"].astype(str)), rows["ap"].to_numpy(np.float64), rare))
    return panels


def check_agreement(frame: pd.DataFrame, result: SplitResult, per_class: Path, detections: Path) -> None:
    """The recomputed per-class AP must be per_class_ap.csv's: same settings, same numbers."""
    recomputed = {r.setting: 100.0 * r.ap for r in class_results(result)}
    in_file = list(dict.fromkeys(frame["setting"].astype(str)))
    if in_file != list(recomputed):
        raise ValueError(
            f"{per_class}: settings {in_file}, but the eval config evaluates {list(recomputed)}; rerun evaluate"
        )
    for setting, ap in recomputed.items():
        stored = frame.loc[frame["setting"] == setting].sort_values("class")["ap"].to_numpy(np.float64)
        if len(stored) != len(ap) or not np.allclose(stored, ap, atol=AP_TOLERANCE, rtol=0.0, equal_nan=True):
            raise ValueError(
                f"{per_class}: its {setting} AP differs from that of {detections} evaluated again; "
                "the two files come from different runs (rerun evaluate)"
            )


def drawn_example(choice: Choice, annotations: HOIAnnotations, images: Path) -> plots.Example:
    """A chosen image read from disk, with its judged top tuples."""
    group = choice.tuples
    filename = annotations.images[group.image].filename
    vocabulary = annotations.vocabulary
    tuples = tuple(
        plots.DrawnTuple(
            box_h=tuple(float(v) for v in group.boxes_h[t]),
            box_o=tuple(float(v) for v in group.boxes_o[t]),
            name=vocabulary.class_name(int(group.hoi[t])),
            score=float(group.score[t]),
            factors={name: float(values[t]) for name, values in group.factors.items()},
            correct=bool(choice.correct[t]),
        )
        for t in range(len(choice.correct))
    )
    return plots.Example(filename, read_image(images / filename), choice.kind, tuples)

