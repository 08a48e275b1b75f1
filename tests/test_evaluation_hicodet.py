"""HICO-DET evaluation: hand-computed AP cases, a literal port of the official MATLAB loop as a
reference on random data, the evaluate CLI (without torch) and the real test annotation."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hoi_pipeline.artifacts import write_detections
from hoi_pipeline.datasets import load_annotations
from hoi_pipeline.datasets.hicodet import save_hicodet_json
from hoi_pipeline.evaluation import (
    DetectionArrays,
    eleven_point_ap,
    evaluate_hicodet,
    from_columns,
    from_hoi_detections,
    matlab_colon,
)
from hoi_pipeline.evaluation.matching import iou_inclusive
from hoi_pipeline.structures import HOIAnnotations, HOIDetections, ImageAnnotation, Vocabulary

SHARED = Path(__file__).parents[2] / "shared"
MATLAB_THRESHOLDS = [0.0, 0.1, 0.2, 0.30000000000000004, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]  # MATLAB's 0:0.1:1

# classes: 0 ride bicycle, 1 hold cup, 2 hold bicycle (rare)
VOCAB = Vocabulary(
    verbs=("ride", "hold"),
    objects=("person", "bicycle", "cup"),
    hoi_classes=np.array([[0, 1], [1, 2], [1, 1]]),
    rare=np.array([2]),
    non_rare=np.array([0, 1]),
)
H = [0.0, 0.0, 10.0, 10.0]  # a person (continuous coordinates)
O = [20.0, 0.0, 30.0, 10.0]  # an object


def image(name: str, pairs: list[tuple[list[float], list[float], int]]) -> ImageAnnotation:
    """Ground truth of an image from (human box, object box, hoi) pairs."""
    hoi = np.array([p[2] for p in pairs], dtype=np.int64)
    return ImageAnnotation(
        filename=name,
        width=64,
        height=64,
        boxes_h=[p[0] for p in pairs],
        boxes_o=[p[1] for p in pairs],
        hoi=hoi,
        verb=VOCAB.hoi_classes[hoi, 0],
        object=VOCAB.hoi_classes[hoi, 1],
    )


def dets(name: str, rows: list[tuple[list[float], list[float], int, float]]) -> HOIDetections:
    """Detections of an image from (human box, object box, hoi, score) rows."""
    hoi = np.array([r[2] for r in rows], dtype=np.int64)
    return HOIDetections(
        filename=name,
        boxes_h=[r[0] for r in rows],
        boxes_o=[r[1] for r in rows],
        hoi=hoi,
        verb=VOCAB.hoi_classes[hoi, 0],
        object=VOCAB.hoi_classes[hoi, 1],
        score=[r[3] for r in rows],
    )


def shifted(box: list[float], dx: float) -> list[float]:
    return [box[0] + dx, box[1], box[2] + dx, box[3]]


def evaluate(images: list[ImageAnnotation], detections: list[HOIDetections], **kwargs):
    annotations = HOIAnnotations(vocabulary=VOCAB, images=tuple(images))
    return evaluate_hicodet(annotations, from_hoi_detections(annotations, detections), **kwargs)


# --------------------------------------------------------------------------------------------
# AP definition


def test_matlab_colon_reproduces_matlab_values() -> None:
    values = matlab_colon(0.0, 0.1, 1.0)
    assert values.tolist() == MATLAB_THRESHOLDS  # exact, bit for bit
    assert values[3] == 0.30000000000000004 and values[6] == 0.6 and values[7] == 0.7
    arange = np.arange(0, 1.1, 0.1)
    assert arange[6] != 0.6 and arange[7] != 0.7  # why np.arange is wrong here
    assert matlab_colon(1, 1, 4).tolist() == [1, 2, 3, 4]
    assert matlab_colon(0, 0.25, 1).tolist() == [0, 0.25, 0.5, 0.75, 1.0]


def ap_of(flags: list[int], npos: int) -> float:
    tp = np.cumsum(flags, dtype=np.float64)
    fp = np.cumsum(1 - np.array(flags), dtype=np.float64)
    return eleven_point_ap(tp / npos, tp / (tp + fp))


def test_eleven_point_ap_hand_cases() -> None:
    assert ap_of([1, 1], 2) == pytest.approx(1.0)
    assert ap_of([], 3) == 0.0
    assert ap_of([0, 0], 3) == 0.0
    # recall exactly 0.6 (3 of 5) reaches MATLAB's 7th threshold 0.6: 7 thresholds at precision 1,
    # then recall 0.8 at precision 0.8 covers 0.7 and 0.8 (np.arange would give (6 + 3 * 0.8) / 11)
    assert ap_of([1, 1, 1, 0, 1], 5) == pytest.approx((7 * 1.0 + 2 * 0.8) / 11, abs=1e-15)
    # recall exactly 0.7 (7 of 10) reaches MATLAB's 0.7: thresholds 0 .. 0.7 = 8 at precision 1
    assert ap_of([1] * 7, 10) == pytest.approx(8 / 11, abs=1e-15)
    # recall exactly 0.3 (3 of 10) does NOT reach MATLAB's 0.30000000000000004: 3 thresholds only
    assert ap_of([1] * 3, 10) == pytest.approx(3 / 11, abs=1e-15)
    # the max precision at recall >= t is taken over later detections too (interpolation)
    assert ap_of([0, 1, 1], 2) == pytest.approx(11 * (2 / 3) / 11)


def test_iou_uses_the_plus_one_pixel_convention() -> None:
    a = np.array([[1.0, 1.0, 2.0, 2.0]])  # 2 x 2 pixels, inclusive
    b = np.array([[2.0, 2.0, 3.0, 3.0]])  # overlaps a on one pixel
    assert iou_inclusive(a, b)[0] == pytest.approx(1 / 7)
    assert iou_inclusive(a, np.array([[3.0, 3.0, 4.0, 4.0]]))[0] == 0.0  # touching is no overlap
    assert iou_inclusive(a, a)[0] == 1.0


# --------------------------------------------------------------------------------------------
# matching rules, hand-computed


def test_ground_truth_as_predictions_gives_100() -> None:
    images = [
        image("a.jpg", [(H, O, 0), (shifted(H, 5), O, 0), (H, shifted(O, 3), 1)]),
        image("b.jpg", [(H, O, 2)]),
        image("c.jpg", []),
    ]
    detections = [
        dets(
            im.filename, [(bh.tolist(), bo.tolist(), int(c), 1.0) for bh, bo, c in zip(im.boxes_h, im.boxes_o, im.hoi)]
        )
        for im in images
    ]
    result = evaluate(images, detections)
    for mean in result.summary():  # 11 x (1 / 11) sums to 1 + 2e-16, as in MATLAB
        assert (mean.full, mean.rare, mean.non_rare) == pytest.approx((100.0, 100.0, 100.0), abs=1e-12)
        assert mean.num_classes == 3


def test_duplicate_detection_is_a_false_positive() -> None:
    images = [image("a.jpg", [(H, O, 0)]), image("b.jpg", [(H, O, 0)])]
    detections = [
        dets("a.jpg", [(H, O, 0, 0.9), (H, shifted(O, 1), 0, 0.8)]),  # the second is a duplicate
        dets("b.jpg", [(H, O, 0, 0.7)]),
    ]
    r = evaluate(images, detections).setting("default")
    # tp 1, 0, 1: recall .5 .5 1, precision 1 .5 2/3 -> thresholds 0..0.5 at 1, 0.6..1 at 2/3
    assert r.ap[0] == pytest.approx((6 + 5 * 2 / 3) / 11)
    assert r.recall[0] == 1.0 and r.num_gt[0] == 2 and r.num_detections[0] == 3


def test_no_fallback_to_the_second_best_ground_truth() -> None:
    near = shifted(H, 1)  # a second person right beside the first
    images = [image("a.jpg", [(H, O, 0), (near, O, 0)])]
    detections = [dets("a.jpg", [(H, O, 0, 0.9), (H, O, 0, 0.8)])]  # both best match the first pair
    r = evaluate(images, detections).setting("default")
    # tp 1, 0 with 2 ground truth: recall .5 .5 -> thresholds 0..0.5 at precision 1
    assert r.ap[0] == pytest.approx(6 / 11) and r.recall[0] == 0.5


def test_first_ground_truth_wins_on_ties() -> None:
    # two identical ground-truth pairs: both detections take the first, the second stays unmatched
    images = [image("a.jpg", [(H, O, 0), (H, O, 0)])]
    detections = [dets("a.jpg", [(H, O, 0, 0.9), (H, O, 0, 0.8)])]
    assert evaluate(images, detections).setting("default").recall[0] == 0.5


def test_overlap_is_the_minimum_of_human_and_object_iou() -> None:
    images = [image("a.jpg", [(H, O, 0)])]
    half_object = [20.0, 0.0, 25.0, 10.0]  # object IoU 0.5 exactly (50 / 100 pixels), human IoU 1
    less = [20.0, 0.0, 24.9, 10.0]  # object IoU 0.49
    assert evaluate(images, [dets("a.jpg", [(H, half_object, 0, 0.9)])]).setting("default").ap[0] == pytest.approx(1.0)
    assert evaluate(images, [dets("a.jpg", [(H, less, 0, 0.9)])]).setting("default").ap[0] == 0.0
    less_h = [0.0, 0.0, 4.9, 10.0]  # human IoU 0.49, object IoU 1
    assert evaluate(images, [dets("a.jpg", [(less_h, O, 0, 0.9)])]).setting("default").ap[0] == 0.0
    r = evaluate(images, [dets("a.jpg", [(H, half_object, 0, 0.9)])], iou_threshold=0.6).setting("default")
    assert r.ap[0] == 0.0


def test_score_ties_follow_image_order_then_row_order() -> None:
    images = [image("a.jpg", [(H, O, 0)]), image("b.jpg", [(H, O, 0)])]
    miss = shifted(H, 40)
    # equal scores: the false positive on the earlier image a.jpg ranks first, whatever the file order
    detections = [dets("b.jpg", [(H, O, 0, 0.5)]), dets("a.jpg", [(miss, O, 0, 0.5)])]
    # tp 0, 1: precision 0, .5 at recall 0, .5 -> thresholds 0..0.5 at 0.5
    assert evaluate(images, detections).setting("default").ap[0] == pytest.approx(6 * 0.5 / 11)
    # within an image the row order decides: true positive first
    detections = [dets("a.jpg", [(H, O, 0, 0.5), (miss, O, 0, 0.5)]), dets("b.jpg", [(H, O, 0, 0.5)])]
    assert evaluate(images, detections).setting("default").ap[0] == pytest.approx((6 + 5 * 2 / 3) / 11)
    detections = [dets("a.jpg", [(miss, O, 0, 0.5), (H, O, 0, 0.5)]), dets("b.jpg", [(H, O, 0, 0.5)])]
    # tp 0, 1, 1: recall 0 .5 1, precision 0 .5 2/3 -> all 11 thresholds at 2/3
    assert evaluate(images, detections).setting("default").ap[0] == pytest.approx(2 / 3)


def test_image_without_ground_truth_and_known_object() -> None:
    images = [
        image("a.jpg", [(H, O, 0)]),  # ride bicycle
        image("b.jpg", []),  # nothing annotated
        image("c.jpg", [(H, O, 1)]),  # hold cup: has a cup, no bicycle
        image("d.jpg", [(H, O, 2)]),  # hold bicycle: has a bicycle
    ]
    detections = [
        dets("b.jpg", [(H, O, 0, 0.95)]),  # no ground truth at all: false positive
        dets("c.jpg", [(H, O, 0, 0.9)]),  # no bicycle here: false positive (dropped in Known Object)
        dets("d.jpg", [(H, O, 0, 0.85)]),  # a bicycle but no 'ride bicycle': false positive in both
        dets("a.jpg", [(H, O, 0, 0.8)]),
    ]
    result = evaluate(images, detections)
    # Default: tp 0 0 0 1 -> precision 1/4 at recall 1
    assert result.setting("default").ap[0] == pytest.approx(0.25)
    assert result.setting("default").num_detections[0] == 4
    # Known Object: only a.jpg and d.jpg hold a bicycle: tp 0 1 -> precision 1/2 at recall 1
    assert result.setting("known_object").ap[0] == pytest.approx(0.5)
    assert result.setting("known_object").num_detections[0] == 2


def test_unmatched_classes_and_rare_means(caplog: pytest.LogCaptureFixture) -> None:
    images = [image("a.jpg", [(H, O, 0), (H, O, 2)])]  # class 1 (hold cup) has no ground truth
    detections = [dets("a.jpg", [(H, O, 0, 0.9), (H, O, 1, 0.8)])]  # class 2 (rare) is never detected
    result = evaluate(images, detections)
    r = result.setting("default")
    assert r.ap[0] == pytest.approx(1.0) and r.ap[2] == 0.0 and r.recall[2] == 0.0
    assert np.isnan(r.ap[1]) and np.isnan(r.recall[1])  # no ground truth: NaN, out of the means
    default = result.summary()[0]
    assert (default.full, default.rare, default.non_rare) == pytest.approx((50.0, 0.0, 100.0))
    assert default.num_classes == 2
    assert "1 of 3 HOI classes have no ground truth" in caplog.text


def test_bad_inputs_are_errors() -> None:
    annotations = HOIAnnotations(vocabulary=VOCAB, images=(image("a.jpg", [(H, O, 0)]),))
    with pytest.raises(ValueError, match="not in the annotation"):
        from_hoi_detections(annotations, [dets("zzz.jpg", [(H, O, 0, 0.9)])])
    with pytest.raises(ValueError, match="outside"):
        evaluate_hicodet(annotations, from_hoi_detections(annotations, [with_hoi(dets("a.jpg", [(H, O, 0, 0.9)]), 7)]))
    with pytest.raises(ValueError, match="not finite"):
        from_hoi_detections(annotations, [dets("a.jpg", [(H, O, 0, float("nan"))])])
    # an annotated image absent from the detections simply has none
    empty = from_columns(annotations, [], np.zeros(1, dtype=np.int64), {
        "boxes_h": np.zeros((0, 4)), "boxes_o": np.zeros((0, 4)), "hoi": [], "verb": [], "score": []})  # fmt: skip
    assert evaluate_hicodet(annotations, empty).setting("default").ap[0] == 0.0


def with_hoi(d: HOIDetections, hoi: int) -> HOIDetections:
    """The same detections, all relabelled to class `hoi` (which may be invalid)."""
    return HOIDetections(d.filename, d.boxes_h, d.boxes_o, np.full(len(d), hoi), d.verb, d.object, d.score)


# --------------------------------------------------------------------------------------------
# a literal port of the official MATLAB loop (eval_one.m / VOCevaldet_bboxpair.m) as reference


def matlab_reference_ap(annotations: HOIAnnotations, detections: list[HOIDetections], hoi: int, ko: bool) -> float:
    shift = np.array([1.0, 1.0, 0.0, 0.0])
    obj = annotations.vocabulary.hoi_classes[hoi, 1]
    by_name = {d.filename: d for d in detections}
    gt, det = {}, []
    npos = 0
    for i, im in enumerate(annotations.images):  # every test image, in the annotation's order
        if ko and obj not in im.object.tolist():
            continue
        sel = im.hoi == hoi
        gt[i] = {
            "bb": [(h + shift, o + shift) for h, o in zip(im.boxes_h[sel], im.boxes_o[sel])],
            "det": [False] * int(sel.sum()),
        }
        npos += int(sel.sum())
        d = by_name.get(im.filename)
        if d is not None:
            for row in np.flatnonzero(d.hoi == hoi):
                det.append((float(d.score[row]), i, d.boxes_h[row] + shift, d.boxes_o[row] + shift))
    order = sorted(range(len(det)), key=lambda k: -det[k][0])  # stable, like MATLAB's sort
    tp, fp = [], []

    def overlap(bb, bbgt):
        bi = [max(bb[0], bbgt[0]), max(bb[1], bbgt[1]), min(bb[2], bbgt[2]), min(bb[3], bbgt[3])]
        iw, ih = bi[2] - bi[0] + 1, bi[3] - bi[1] + 1
        if iw > 0 and ih > 0:
            ua = (bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1) + (bbgt[2] - bbgt[0] + 1) * (bbgt[3] - bbgt[1] + 1) - iw * ih
            return iw * ih / ua
        return None

    for k in order:
        _, i, bh, bo = det[k]
        ovmax, jmax = -np.inf, -1
        for j, (gh, go) in enumerate(gt[i]["bb"]):
            ov1, ov2 = overlap(bh, gh), overlap(bo, go)
            if ov1 is not None and ov2 is not None and min(ov1, ov2) > ovmax:
                ovmax, jmax = min(ov1, ov2), j
        if ovmax >= 0.5 and not gt[i]["det"][jmax]:
            tp.append(1), fp.append(0)
            gt[i]["det"][jmax] = True
        else:
            tp.append(0), fp.append(1)
    tp_c, fp_c = np.cumsum(tp, dtype=float), np.cumsum(fp, dtype=float)
    rec, prec = tp_c / npos, tp_c / (fp_c + tp_c)
    ap = 0.0
    for t in MATLAB_THRESHOLDS:
        p = prec[rec >= t].max() if np.any(rec >= t) else 0.0
        ap = ap + p / 11
    return ap


def random_case(seed: int) -> tuple[HOIAnnotations, list[HOIDetections]]:
    """Integer boxes on a small grid (many equal overlaps), scores rounded to ties, empty images."""
    rng = np.random.default_rng(seed)

    def box() -> list[float]:
        x, y = rng.integers(0, 6, 2)
        w, h = rng.integers(2, 6, 2)
        return [float(x), float(y), float(x + w), float(y + h)]

    images, detections = [], []
    for i in range(8):
        n = int(rng.integers(0, 5)) if i % 4 else 0
        images.append(image(f"{i}.jpg", [(box(), box(), int(rng.integers(0, 3))) for _ in range(n)]))
        if rng.uniform() < 0.9:
            rows = []
            for _ in range(int(rng.integers(0, 12))):
                if images[-1].num_pairs and rng.uniform() < 0.5:  # near a ground-truth pair
                    g = int(rng.integers(0, images[-1].num_pairs))
                    bh = images[-1].boxes_h[g] + rng.integers(-1, 2, 4)
                    bo = images[-1].boxes_o[g] + rng.integers(-1, 2, 4)
                    rows.append((bh.tolist(), bo.tolist(), int(images[-1].hoi[g]), round(rng.uniform(), 1)))
                else:
                    rows.append((box(), box(), int(rng.integers(0, 3)), round(rng.uniform(), 1)))
            detections.append(dets(f"{i}.jpg", rows))
    order = rng.permutation(len(detections))  # the file's image order must not matter
    return HOIAnnotations(vocabulary=VOCAB, images=tuple(images)), [detections[k] for k in order]


@pytest.mark.parametrize("seed", range(40))
def test_matches_the_matlab_loop_on_random_cases(seed: int) -> None:
    annotations, detections = random_case(seed)
    result = evaluate_hicodet(annotations, from_hoi_detections(annotations, detections))
    for setting, ko in (("default", False), ("known_object", True)):
        r = result.setting(setting)
        for c in range(VOCAB.num_classes):
            if r.num_gt[c] == 0:
                assert np.isnan(r.ap[c])
            else:
                assert r.ap[c] == matlab_reference_ap(annotations, detections, c, ko), (setting, c)


# --------------------------------------------------------------------------------------------
# the evaluate CLI


def write_case(tmp_path: Path, perfect: bool) -> tuple[Path, Path]:
    images = [image("a.jpg", [(H, O, 0), (H, shifted(O, 2), 1)]), image("b.jpg", [(H, O, 2)]), image("c.jpg", [])]
    annotations = HOIAnnotations(vocabulary=VOCAB, images=tuple(images))
    save_hicodet_json(annotations, tmp_path / "test.json")
    rows = [(H, O, 0, 0.9), (H, shifted(O, 2), 1, 0.8)] + ([] if perfect else [(H, shifted(O, 30), 1, 0.95)])
    write_detections(tmp_path / "det.h5", [dets("b.jpg", [(H, O, 2, 0.5)]), dets("a.jpg", rows)], attrs={})
    return tmp_path / "test.json", tmp_path / "det.h5"


CLI_WITHOUT_TORCH = """
import sys
from hoi_pipeline.cli import main
code = main(sys.argv[1:])
assert "torch" not in sys.modules, "the evaluate CLI imported torch"
sys.exit(code)
"""


def test_cli_writes_tables_without_importing_torch(tmp_path: Path) -> None:
    anno, det = write_case(tmp_path, perfect=False)
    out = tmp_path / "results"
    args = ["evaluate", "--annotations", str(anno), "--detections", str(det), "--out", str(out)]
    done = subprocess.run([sys.executable, "-c", CLI_WITHOUT_TORCH, *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    with open(out / "metrics.csv", newline="") as handle:
        rows = {row["setting"]: row for row in csv.DictReader(handle)}
    # class 1 (hold cup) ranks a false positive (0.95) before its true positive: precision 1/2
    assert float(rows["default"]["full"]) == pytest.approx(100 * (1 + 0.5 + 1) / 3)
    assert float(rows["default"]["rare"]) == pytest.approx(100.0)
    assert float(rows["default"]["non_rare"]) == pytest.approx(75.0)
    assert set(rows) == {"default", "known_object"}
    with open(out / "per_class_ap.csv", newline="") as handle:
        per_class = list(csv.DictReader(handle))
    assert (
        len(per_class) == 6 and per_class[1]["name"] == "hold cup" and float(per_class[1]["ap"]) == pytest.approx(50.0)
    )
    assert per_class[2]["rare"] == "1" and per_class[1]["num_gt"] == "1"
    table = (out / "table.md").read_text()
    assert "| Default | 83.33 | 100.00 | 75.00 |" in table and "| Known Object |" in table
    assert not list(out.glob(".*tmp"))  # nothing half written left behind


def test_cli_rejects_detections_of_unknown_images(tmp_path: Path) -> None:
    anno, _ = write_case(tmp_path, perfect=True)
    write_detections(tmp_path / "bad.h5", [dets("elsewhere.jpg", [(H, O, 0, 0.9)])], attrs={})
    from hoi_pipeline.cli import main

    out = tmp_path / "results"
    args = ["evaluate", "--annotations", str(anno), "--detections", str(tmp_path / "bad.h5"), "--out", str(out)]
    assert main(args) == 2
    assert not out.exists() or not list(out.iterdir())


def test_cli_settings_from_config_json(tmp_path: Path) -> None:
    anno, det = write_case(tmp_path, perfect=True)
    from hoi_pipeline.cli import main

    config = json.dumps({"eval": {"settings": ["known_object"], "iou_threshold": 0.5}})
    out = tmp_path / "r"
    args = ["evaluate", "--config-json", config, "--annotations", str(anno), "--detections", str(det)]
    assert main([*args, "--out", str(out)]) == 0
    lines = (out / "metrics.csv").read_text().splitlines()
    assert lines[0] == "setting,full,rare,non_rare,num_classes" and len(lines) == 2
    setting, *means, num_classes = lines[1].split(",")
    assert setting == "known_object" and num_classes == "3"
    assert [float(m) for m in means] == pytest.approx([100.0] * 3)  # full precision in the file


# --------------------------------------------------------------------------------------------
# the real HICO-DET test annotation


@pytest.mark.skipif(not (SHARED / "hicodet" / "instances_test2015.json").is_file(), reason="../shared not present")
def test_real_test_annotation_round_trip() -> None:
    annotations = load_annotations(SHARED / "hicodet" / "instances_test2015.json")
    assert len(annotations.images) == 9658 and annotations.vocabulary.num_classes == 600
    images = annotations.images
    counts = np.array([im.num_pairs for im in images])
    arrays = DetectionArrays(
        image=np.repeat(np.arange(len(images)), counts),
        boxes_h=np.concatenate([im.boxes_h for im in images]),
        boxes_o=np.concatenate([im.boxes_o for im in images]),
        hoi=np.concatenate([im.hoi for im in images]),
        verb=np.concatenate([im.verb for im in images]),
        score=np.ones(int(counts.sum()), dtype=np.float32),
    )
    result = evaluate_hicodet(annotations, arrays)
    for mean in result.summary():
        assert (mean.full, mean.rare, mean.non_rare) == pytest.approx((100.0, 100.0, 100.0), abs=1e-12)
        assert mean.num_classes == 600
    # one pair in ten moved off its ground truth: recall drops below 1 exactly for the affected classes
    moved = arrays.boxes_o.copy()
    moved[::10] += 1000.0
    r = evaluate_hicodet(
        annotations, DetectionArrays(arrays.image, arrays.boxes_h, moved, arrays.hoi, arrays.verb, arrays.score)
    ).setting("default")
    lost = np.bincount(arrays.hoi[::10], minlength=600)
    np.testing.assert_allclose(r.recall, 1.0 - lost / r.num_gt)


def test_ranking_is_class_then_score_then_image_then_row() -> None:
    rng = np.random.default_rng(0)
    values = np.array([0.5, 0.0, -0.0, 1e-30, -2.0, 3.4e38, 0.25], dtype=np.float32)  # ties, signed zeros
    for shuffle in (False, True):
        image = np.sort(rng.integers(0, 30, 3000))
        image = rng.permutation(image) if shuffle else image
        score, hoi = rng.choice(values, 3000), rng.integers(0, 5, 3000)
        d = DetectionArrays(image, np.zeros((3000, 4)), np.zeros((3000, 4)), hoi, hoi, score)
        expected = np.lexsort((np.arange(3000), image, -score.astype(np.float64), hoi))
        np.testing.assert_array_equal(d.ranking(hoi), expected)
