"""A run's figures: plot functions, paper comparison, example choice, provenance, the figures stage on
small HICO-DET and V-COCO runs, and (slow) the demo workflow's gallery and Snakemake report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hoi_pipeline.artifacts import write_detections, write_proposals
from hoi_pipeline.config import EvalConfig, ProjectConfig, from_dict
from hoi_pipeline.datasets import load_annotations
from hoi_pipeline.datasets.hicodet import save_hicodet_json
from hoi_pipeline.evaluation import eleven_point_ap, evaluate_hicodet, from_hoi_detections, voc_ap
from hoi_pipeline.evaluation.average_precision import ClassAP
from hoi_pipeline.evaluation.curves import chosen_curves, precision_envelope, representative_classes
from hoi_pipeline.evaluation.protocol import class_results, evaluate_split
from hoi_pipeline.report import plots
from hoi_pipeline.report.long_tail import training_image_counts
from hoi_pipeline.report.paper import PAPER_RESULTS, paper_backbone, paper_result
from hoi_pipeline.report.qualitative import choose_examples, split_by_image, tuples_match
from hoi_pipeline.report.tables import ablation_table, metrics_table
from hoi_pipeline.stages import evaluate, figures
from hoi_pipeline.structures import HOIAnnotations, HOIDetections, ImageAnnotation, Proposals, Vocabulary
from tiny_models import write_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[1]
# classes: 0 ride bicycle, 1 hold cup, 2 hold bicycle (rare)
VOCAB = Vocabulary(
    verbs=("ride", "hold"),
    objects=("person", "bicycle", "cup"),
    hoi_classes=np.array([[0, 1], [1, 2], [1, 1]]),
    rare=np.array([2]),
    non_rare=np.array([0, 1]),
)
H = (2.0, 2.0, 30.0, 60.0)  # a person (continuous coordinates)
O = (34.0, 30.0, 60.0, 60.0)  # an object


# --------------------------------------------------------------------------------------------
# plot functions: each writes a non-empty image from small inputs


def curve_of(ap: np.ndarray, num_gt: np.ndarray) -> ClassAP:
    return ClassAP("default", np.asarray(ap, float), np.zeros(len(ap)), np.asarray(num_gt), np.zeros(len(ap), int))


def small_history(n: int = 30) -> pd.DataFrame:
    iteration = np.arange(1, n + 1)
    return pd.DataFrame({
        "iteration": iteration, "loss_image": 1 / iteration, "loss_pair": 0.7 - iteration / 100,
        "loss_relatedness": np.where(iteration > 10, 0.6, 0.0), "loss_total": 2 / iteration + 0.5,
        "lr_backbone": np.where(iteration > 20, 1e-6, 1e-5), "lr_head": np.where(iteration > 20, 1e-5, 1e-4),
    })  # fmt: skip


def small_panel(setting: str = "Default") -> plots.ClassAPs:
    return plots.ClassAPs(setting, ("ride bicycle", "hold cup", "hold bicycle", "kick ball"),
                          np.array([80.0, 20.0, 45.0, np.nan]), np.array([False, False, True, True]))  # fmt: skip


def small_curves() -> list:
    result = evaluate_hicodet(*small_case())
    return chosen_curves(result.setting("default"), [VOCAB.class_name(c) for c in range(3)])


def small_examples() -> list[plots.Example]:
    image = Image.new("RGB", (64, 64), (120, 160, 200))
    factors = {"score_global": 0.9, "score_pair": 0.6, "score_relatedness": 0.8, "score_detection": 0.5}
    right = plots.DrawnTuple(H, O, "ride bicycle", 0.216, factors, True)
    wrong = plots.DrawnTuple(H, (5.0, 5.0, 20.0, 20.0), "hold cup", 0.05, {}, False)
    return [
        plots.Example("a.png", image, "success", (right, wrong)),
        plots.Example("b.png", image, "failure", (wrong,)),
    ]


PLOTS = {
    "training_curves": lambda out: plots.plot_training_curves(small_history(), out, title="tiny"),
    "per_class_ap": lambda out: plots.plot_per_class_ap([small_panel(), small_panel("Known Object")], out),
    "ap_vs_training_images": lambda out: plots.plot_ap_vs_training_images(
        small_panel(), np.array([30, 0, 4, 1]), out
    ),
    "precision_recall": lambda out: plots.plot_precision_recall(small_curves(), out, setting="Default"),
    "qualitative": lambda out: plots.plot_qualitative(small_examples(), out),
}


@pytest.mark.parametrize("suffix", [".png", ".svg"])
@pytest.mark.parametrize("name", sorted(PLOTS))
def test_each_plot_writes_a_non_empty_image(tmp_path, name, suffix):
    out = tmp_path / f"{name}{suffix}"
    PLOTS[name](out)
    assert out.stat().st_size > 1000
    if suffix == ".png":
        with Image.open(out) as image:
            assert image.format == "PNG" and min(image.size) > 100
    else:
        assert "<svg" in out.read_text()[:2000]
    assert [p.name for p in tmp_path.iterdir()] == [out.name], "a temporary file was left behind"


def test_plots_refuse_what_they_cannot_draw(tmp_path):
    with pytest.raises(ValueError, match="lacks the column"):
        plots.plot_training_curves(small_history().drop(columns="loss_pair"), tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        plots.plot_per_class_ap([small_panel()], tmp_path / "a.jpg")
    with pytest.raises(ValueError, match="3 training image counts for 4 classes"):
        plots.plot_ap_vs_training_images(small_panel(), np.array([1, 2, 3]), tmp_path / "a.png")
    with pytest.raises(ValueError, match="no test image"):
        plots.plot_qualitative([], tmp_path / "a.png")


def test_qualitative_caption_lists_factors_in_the_papers_order():
    item = small_examples()[0].tuples[0]
    assert plots.tuple_caption(1, item) == "\u2713 1 ride bicycle 0.216\n      (p 0.60 g 0.90 b 0.80 d 0.50)"


# --------------------------------------------------------------------------------------------
# precision-recall curves come with the AP they are computed from


def image(name: str, pairs: list[tuple[tuple, tuple, int]]) -> ImageAnnotation:
    hoi = np.array([p[2] for p in pairs], dtype=np.int64)
    return ImageAnnotation(
        filename=name, width=64, height=64, boxes_h=[p[0] for p in pairs], boxes_o=[p[1] for p in pairs],
        hoi=hoi, verb=VOCAB.hoi_classes[hoi, 0], object=VOCAB.hoi_classes[hoi, 1],
    )  # fmt: skip


def detection(name: str, rows: list[tuple[tuple, tuple, int, float]]) -> HOIDetections:
    hoi = np.array([r[2] for r in rows], dtype=np.int64)
    rng = np.random.default_rng(len(name) + len(rows))
    factors = {f: rng.uniform(0.1, 1.0, len(rows)).astype(np.float32) for f in
               ("score_global", "score_pair", "score_relatedness", "score_detection")}  # fmt: skip
    return HOIDetections(
        filename=name, boxes_h=[r[0] for r in rows], boxes_o=[r[1] for r in rows], hoi=hoi,
        verb=VOCAB.hoi_classes[hoi, 0], object=VOCAB.hoi_classes[hoi, 1], score=[r[3] for r in rows],
        factors=factors,
    )  # fmt: skip


FAR = (40.0, 2.0, 50.0, 12.0)  # overlaps neither ground-truth box


def small_annotations() -> HOIAnnotations:
    images = (
        image("a.png", [(H, O, 0), (H, O, 2)]),
        image("b.png", [(H, O, 1)]),
        image("c.png", [(H, O, 0)]),
        image("d.png", [(H, O, 1)]),
    )
    return HOIAnnotations(vocabulary=VOCAB, images=images, source="small")


def small_detections() -> list[HOIDetections]:
    return [
        detection("a.png", [(H, O, 0, 0.9), (H, O, 2, 0.3), (H, FAR, 1, 0.2)]),
        detection("b.png", [(H, FAR, 1, 0.95), (H, O, 1, 0.4)]),  # best tuple wrong: a failure
        detection("c.png", [(H, O, 2, 0.8), (H, O, 0, 0.5)]),  # best tuple of the wrong class: a failure
        detection("d.png", [(H, O, 1, 0.7)]),
    ]


def small_case():
    annotations = small_annotations()
    return annotations, from_hoi_detections(annotations, small_detections())


def test_class_ap_keeps_the_curve_its_ap_comes_from():
    result = evaluate_hicodet(*small_case())
    for setting in result.settings:
        for c in np.flatnonzero(setting.evaluated):
            curve = setting.curves[c]
            assert setting.ap[c] == eleven_point_ap(curve.recall, curve.precision)
            assert len(curve.recall) == setting.num_detections[c]
    default = result.setting("default")
    # hold cup, ranked: b.png FAR 0.95 wrong, d.png 0.7 right, b.png 0.4 right, a.png FAR 0.2 wrong (2 GT)
    np.testing.assert_allclose(default.curves[1].precision, [0.0, 0.5, 2 / 3, 0.5])
    np.testing.assert_allclose(default.curves[1].recall, [0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(precision_envelope(default.curves[1]), [2 / 3, 2 / 3, 2 / 3, 0.5])


def test_vcoco_curves_give_its_area_ap(tmp_path):
    data = load_annotations(write_vcoco_json(tmp_path / "vcoco.json"))
    result = evaluate_split(data, from_hoi_detections(data, vcoco_detections(data)), EvalConfig())
    for scenario in class_results(result):
        for c in np.flatnonzero(scenario.evaluated):
            assert scenario.ap[c] == pytest.approx(voc_ap(scenario.curves[c].recall, scenario.curves[c].precision))


def test_representative_classes_prefer_more_ground_truth_on_ties():
    result = curve_of([0.5, 0.9, 0.0, 0.0, np.nan, 0.9, 0.4], [3, 1, 2, 5, 0, 4, 1])
    assert representative_classes(result) == {"best": 5, "median": 6, "worst": 3}
    assert representative_classes(curve_of([0.3], [2])) == {"best": 0, "median": 0, "worst": 0}
    assert representative_classes(curve_of([np.nan], [0])) == {}


# --------------------------------------------------------------------------------------------
# paper comparison and tables


def project(**runs: dict) -> ProjectConfig:
    return from_dict(ProjectConfig, {
        "datasets": {"demo": {"synthetic": {}, "splits": {"train": {"annotations": "a", "images": "i"},
                                                           "test": {"annotations": "a", "images": "i"}}},
                     "hicodet": {"splits": {"train": {"annotations": "a", "images": "i"},
                                            "test": {"annotations": "a", "images": "i"}}}},
        "detectors": {"frcnn": {}},
        "runs": runs,
    })  # fmt: skip


def test_which_runs_mirror_a_paper_setting():
    config = project(
        rn50={"dataset": "hicodet", "detector": "frcnn"},
        rn101={"dataset": "hicodet", "detector": "frcnn", "clip": {"model": "RN101-quickgelu", "pretrained": "w.pt"}},
        scratch={"dataset": "hicodet", "detector": "frcnn", "clip": {"pretrained": None}},
        vit={"dataset": "hicodet", "detector": "frcnn", "clip": {"model": "ViT-B-32"}},
        demo={"dataset": "demo", "detector": "frcnn"},
    )
    assert paper_backbone(config, "rn50") == "RN50"
    assert paper_backbone(config, "rn101") == "RN101"
    for name in ("scratch", "vit", "demo", "rn50/ablations/no_ktn"):
        assert paper_backbone(config, name) is None, name
    assert paper_result("vcoco", "RN101").metrics["scenario_2"] == {"ap_role": 49.97}
    assert paper_result("hicodet", None) is None
    assert len({(r.benchmark, r.backbone) for r in PAPER_RESULTS}) == len(PAPER_RESULTS) == 4


def test_metrics_table_puts_the_papers_numbers_beside_ours():
    metrics = pd.DataFrame({"setting": ["default", "known_object"], "full": [20.0, 21.5], "rare": [18.25, 19.0],
                            "non_rare": [20.5, np.nan], "num_classes": [600, 600]})  # fmt: skip
    table = metrics_table(metrics, paper_result("hicodet", "RN50"))
    assert table.header == ("Setting", "Full", "Rare", "Non-Rare", "Full (paper)", "Rare (paper)", "Non-Rare (paper)")
    assert table.rows == (("Default", "20.00", "18.25", "20.50", "22.89", "22.41", "23.03"),
                          ("Known Object", "21.50", "19.00", "-", "-", "-", "-"))  # fmt: skip
    assert "| Default | 20.00 | 18.25 | 20.50 | 22.89 | 22.41 | 23.03 |" in table.markdown()
    assert metrics_table(metrics, None).header == ("Setting", "Full", "Rare", "Non-Rare")
    roles = pd.DataFrame({"setting": ["scenario_1", "scenario_2"], "ap_role": [40.0, 45.0], "num_classes": [24, 24]})
    assert metrics_table(roles, paper_result("vcoco", "RN50")).rows == (
        ("Scenario 1", "40.00", "42.97"), ("Scenario 2", "45.00", "48.06"))  # fmt: skip
    with pytest.raises(ValueError, match="compared with the paper's hicodet"):
        metrics_table(roles, paper_result("hicodet", "RN50"))
    with pytest.raises(ValueError, match="m.csv: expected columns"):
        metrics_table(pd.DataFrame({"setting": ["x"], "map": [1.0]}), None, "m.csv")


def test_ablation_table_shows_every_column_it_is_given():
    frame = pd.DataFrame({"run": ["full_model", "no_ktn"], "setting": ["default", "default"],
                          "full": [30.0, 28.123], "paper_full": [22.89, np.nan], "note|x": ["a", "b|c"]})  # fmt: skip
    table = ablation_table(frame)
    assert table.rows == (("full_model", "default", "30.00", "22.89", "a"), ("no_ktn", "default", "28.12", "-", "b|c"))
    assert "| no_ktn | default | 28.12 | - | b\\|c |" in table.markdown()
    assert "<td>b|c</td>" in table.html()


# --------------------------------------------------------------------------------------------
# qualitative examples and the long tail


def test_a_tuple_is_right_when_a_pair_of_its_class_overlaps_both_boxes():
    truth = image("a.png", [(H, O, 0), (H, O, 2)])
    nudged = (O[0] + 2, O[1], O[2] + 2, O[3])  # IoU (with +1 pixel) 25*31 / (27*31) > 0.5
    boxes_h = np.array([H, H, H, H])
    boxes_o = np.array([O, nudged, FAR, O])
    classes = np.array([0, 2, 0, 1])
    assert tuples_match(boxes_h, boxes_o, classes, truth, truth.hoi, 0.5).tolist() == [True, True, False, False]
    assert tuples_match(boxes_h, boxes_o, classes, truth, truth.hoi, 0.95).tolist() == [True, False, False, False]


def test_examples_are_the_most_confident_successes_and_failures():
    annotations, arrays = small_case()
    detections = small_detections()
    columns = {name: np.concatenate([getattr(d, name) for d in detections]) for name in
               ("boxes_h", "boxes_o", "hoi", "verb", "score")}  # fmt: skip
    columns.update({f: np.concatenate([d.factors[f] for d in detections]) for f in detections[0].factors})
    groups = split_by_image(arrays.image, columns, tuple(detections[0].factors))
    assert [len(g.score) for g in groups] == [3, 2, 2, 1] and groups[1].score.tolist() == pytest.approx([0.95, 0.4])
    choices = choose_examples(annotations, groups, per_kind=1, top=3, iou_threshold=0.5)
    assert [(annotations.images[c.tuples.image].filename, c.kind) for c in choices] == [
        ("a.png", "success"), ("b.png", "failure")]  # fmt: skip
    assert choices[0].correct.tolist() == [True, True, False]  # a.png has no hold cup pair
    assert choices[1].correct.tolist() == [False, True]
    all_choices = choose_examples(annotations, groups, per_kind=5, top=1, iou_threshold=0.5)
    assert [c.kind for c in all_choices] == ["success", "success", "failure", "failure"]


def test_training_image_counts_count_images_not_pairs():
    annotations = HOIAnnotations(VOCAB, (image("a", [(H, O, 0), (H, O, 0), (H, O, 2)]), image("b", [(H, O, 0)]),
                                         image("c", [])))  # fmt: skip
    assert training_image_counts(annotations, "hoi", 3).tolist() == [2, 0, 1]
    assert training_image_counts(annotations, "verb", 2).tolist() == [2, 1]
    with pytest.raises(ValueError, match="outside 0..1"):
        training_image_counts(annotations, "hoi", 2)


# --------------------------------------------------------------------------------------------
# the figures stage on small runs


def write_vcoco_json(path: Path) -> Path:
    """A V-COCO split of three images: roles hold obj (cup, ball), hit instr (bat), hit obj (ball)."""
    rows = [
        ("a.png", [H, H], [O, FAR], [0, 1], [2, 3]),  # holds a cup, hits with a bat
        ("b.png", [H], [O], [2], [4]),  # hits a ball
        ("c.png", [H], [O], [0], [4]),  # holds a ball
    ]
    payload = {
        "classes": ["hold obj", "hit instr", "hit obj"],
        "objects": ["background", "person", "cup", "bat", "ball"],
        "action_to_object": [[2, 4], [3], [4]],
        "annotations": [{"file_name": f, "boxes_h": bh, "boxes_o": bo, "actions": a, "objects": o}
                        for f, bh, bo, a, o in rows],  # fmt: skip
    }
    path.write_text(json.dumps(payload))
    return path


def vcoco_detections(data: HOIAnnotations) -> list[HOIDetections]:
    """Every ground-truth pair detected, and one wrong role per image scored higher in b.png."""
    out = []
    for k, truth in enumerate(data.images):
        wrong_verb = np.array([(int(truth.verb[0]) + 1) % 3])
        wrong_hoi = np.array([data.vocabulary.hoi_lookup()[wrong_verb[0]].max()])  # an HOI class of that role
        verb = np.r_[truth.verb, wrong_verb]
        score = np.r_[np.full(truth.num_pairs, 0.6), 0.9 if k == 1 else 0.1].astype(np.float32)
        out.append(HOIDetections(
            filename=truth.filename, boxes_h=np.r_[truth.boxes_h, truth.boxes_h[:1]],
            boxes_o=np.r_[truth.boxes_o, truth.boxes_o[:1]], hoi=np.r_[truth.hoi, wrong_hoi], verb=verb,
            object=data.vocabulary.hoi_classes[np.r_[truth.hoi, wrong_hoi], 1], score=score,
            factors={"score_global": score, "score_pair": score, "score_relatedness": score, "score_detection": score},
        ))  # fmt: skip
    return out


def make_run(tmp_path: Path, benchmark: str) -> dict:
    """The inputs of the figures stage, made by the writers of the stages that make them for a real run."""
    images = tmp_path / "images"
    images.mkdir()
    if benchmark == "vcoco":
        annotations = write_vcoco_json(tmp_path / "test.json")
        data = load_annotations(annotations)
        detections = vcoco_detections(data)
    else:
        annotations = tmp_path / "test.json"
        save_hicodet_json(small_annotations(), annotations)
        data = load_annotations(annotations)
        detections = small_detections()
    for k, truth in enumerate(data.images):
        Image.new("RGB", (64, 64), (40 * k, 120, 200)).save(images / truth.filename)
    write_detections(tmp_path / "detections_test.h5", detections, {
        "stage": "infer", "split": "test", "checkpoint": "model.pt", "checkpoint_iterations": 7,
        "infer": {"gamma": 2.8},
    })  # fmt: skip
    proposals = [Proposals(d.filename, np.r_[d.boxes_h, d.boxes_o], np.ones(2 * len(d)), np.r_[
        np.zeros(len(d), int), d.object]) for d in detections]  # fmt: skip
    write_proposals(tmp_path / "proposals.h5", proposals, {"stage": "detect", "backend": "precomputed"})
    write_tiny_checkpoint(tmp_path / "model.pt", data.vocabulary)
    small_history().to_csv(tmp_path / "losses.csv", index=False)
    evaluate.run(eval_config=EvalConfig(), annotations=annotations, split="test",
                 detections=tmp_path / "detections_test.h5", out_dir=tmp_path)  # fmt: skip
    return dict(
        eval_config=EvalConfig(), run_name="tiny", annotations=annotations, split="test",
        train_annotations=annotations, train_split="train", images=images,
        detections=tmp_path / "detections_test.h5", proposals=tmp_path / "proposals.h5",
        checkpoint=tmp_path / "model.pt", losses=tmp_path / "losses.csv", metrics=tmp_path / "metrics.csv",
        per_class=tmp_path / "per_class_ap.csv", out_dir=tmp_path / "figures",
    )  # fmt: skip


SECTIONS = ("## Metrics", "## Training", "## Per-class AP", "## Precision-recall", "## Qualitative detections",
            "## Ablations", "## Provenance")  # fmt: skip


@pytest.mark.parametrize("benchmark", ["hicodet", "vcoco"])
def test_figures_stage_writes_every_output(tmp_path, benchmark):
    inputs = make_run(tmp_path, benchmark)
    figures.run(**inputs, paper_backbone="RN50", code_versions={"train": "abc123"}, examples=2, top=2)
    out = inputs["out_dir"]
    assert sorted(p.name for p in out.iterdir()) == sorted(figures.OUTPUTS.values())
    assert all((out / name).stat().st_size > 0 for name in figures.OUTPUTS.values())
    index = (out / "index.md").read_text()
    assert [s for s in SECTIONS if s in index] == list(SECTIONS)
    for name in figures.OUTPUTS.values():  # every figure is linked from the gallery
        assert name.endswith((".html", ".json", ".md")) or f"]({name})" in index
    paper = "22.89" if benchmark == "hicodet" else "42.97"
    assert paper in index and paper in (out / "metrics.html").read_text()
    assert "Not built" in (out / "ablations.html").read_text()
    records = {r["path"]: r for r in json.loads((out / "provenance.json").read_text())}
    assert records[str(inputs["detections"])]["facts"]["checkpoint_iterations"] == 7
    assert records[str(inputs["checkpoint"])]["facts"]["clip"]["model"] == "hoi-tiny-rn"
    assert records[str(inputs["proposals"])]["stage"] == "detect"
    assert records["hoi_pipeline"]["facts"]["train code digest"] == "abc123"
    assert "checkpoint_iterations" in (out / "provenance.html").read_text()


def test_figures_stage_shows_the_ablation_table_when_given(tmp_path):
    inputs = make_run(tmp_path, "hicodet")
    pd.DataFrame({"run": ["full_model", "no_ktn"], "setting": ["default"] * 2, "full": [31.0, 27.5]}).to_csv(
        tmp_path / "ablations.csv", index=False
    )
    figures.run(**inputs, ablations=tmp_path / "ablations.csv", examples=1, top=1)
    assert "| no_ktn | default | 27.50 |" in (inputs["out_dir"] / "index.md").read_text()
    assert "<td>27.50</td>" in (inputs["out_dir"] / "ablations.html").read_text()
    assert "mirrors no paper setting" in (inputs["out_dir"] / "metrics.html").read_text()


def test_figures_stage_refuses_tables_of_other_detections(tmp_path):
    inputs = make_run(tmp_path, "hicodet")
    rows = list(csv.DictReader(open(inputs["per_class"])))
    rows[0]["ap"] = str(float(rows[0]["ap"]) / 2 + 1)
    with open(inputs["per_class"], "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(ValueError, match="per_class_ap.csv: its default AP differs"):
        figures.run(**inputs)
    with pytest.raises(ValueError, match=r"settings \['default', 'known_object'\], but the eval config"):
        figures.run(**{**inputs, "eval_config": EvalConfig(settings=("default",))})
    assert not inputs["out_dir"].exists() or not list(inputs["out_dir"].glob("*.tmp"))
