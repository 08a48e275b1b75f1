"""V-COCO role AP: hand-computed scenario 1 / scenario 2 cases, a literal port of vsrl_eval.py's
`_do_role_eval` as reference on random data, the json loader, the CLI and the real test split."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from hoi_pipeline.artifacts import write_detections
from hoi_pipeline.cli import main
from hoi_pipeline.datasets import load_annotations
from hoi_pipeline.datasets.vcoco import vcoco_from_payload
from hoi_pipeline.evaluation import (
    DetectionArrays,
    VCOCOGroundTruth,
    VCOCOImageTruth,
    evaluate_vcoco,
    vcoco_ground_truth,
    voc_ap,
)
from hoi_pipeline.structures import HOIDetections

SHARED = Path(__file__).parents[2] / "shared"
ROLES = ("hit instr", "hit obj", "eat obj", "read obj")  # 'read obj' has no ground truth below
NAN4 = [np.nan] * 4
A = [0.0, 0.0, 10.0, 10.0]  # person A hits with an instrument, no object
B = [30.0, 0.0, 40.0, 10.0]  # person B: no action annotation (ignored)
I = [10.0, 0.0, 20.0, 10.0]  # A's instrument
C = [0.0, 0.0, 10.0, 10.0]  # person C eats F
D = [4.0, 0.0, 14.0, 10.0]  # person D stands beside C (annotated, none of these actions)
F = [10.0, 10.0, 20.0, 20.0]
ZEROS = [0.0, 0.0, 0.0, 0.0]


def truth(boxes, ignore, positive, role_boxes) -> VCOCOImageTruth:
    r = len(ROLES)
    return VCOCOImageTruth(
        boxes=np.array(boxes, dtype=float).reshape(-1, 4),
        ignore=np.array(ignore, dtype=bool),
        positive=np.array(positive, dtype=bool).reshape(-1, r),
        role_boxes=np.array(role_boxes, dtype=float).reshape(-1, r, 4),
    )


GROUND_TRUTH = VCOCOGroundTruth(
    role_names=ROLES,
    images=(
        truth([A, B], [False, True], [[1, 1, 0, 0], [0, 0, 0, 0]], [[I, NAN4, NAN4, NAN4], [NAN4] * 4]),
        truth([C, D], [False, False], [[0, 0, 1, 0], [0, 0, 0, 0]], [[NAN4, NAN4, F, NAN4], [NAN4] * 4]),
        truth([], [], [], []),  # an image without any person
    ),
)


def arrays(rows: list[tuple[int, int, list[float], list[float], float]]) -> DetectionArrays:
    """Detections from (image, action-role, agent box, role box, score) rows (rows grouped by image)."""
    return DetectionArrays(
        image=np.array([r[0] for r in rows], dtype=np.int64),
        boxes_h=np.array([r[2] for r in rows], dtype=np.float32).reshape(-1, 4),
        boxes_o=np.array([r[3] for r in rows], dtype=np.float32).reshape(-1, 4),
        hoi=np.zeros(len(rows), dtype=np.int64),
        verb=np.array([r[1] for r in rows], dtype=np.int64),
        score=np.array([r[4] for r in rows], dtype=np.float32),
    )


def test_voc_ap_hand_case() -> None:
    # recall .5 at precision 1, recall 1 at precision .5: area .5 * 1 + .5 * .5
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 0.5])) == pytest.approx(0.75)
    # precision rises later: the envelope lifts the first step to 2/3
    assert voc_ap(np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.5, 2 / 3])) == pytest.approx(2 / 3)
    assert voc_ap(np.array([]), np.array([])) == 0.0


def test_hand_built_scenarios() -> None:
    detections = arrays([
        # 'hit obj' (A has no object): a predicted object box fails scenario 1 only
        (0, 1, A, I, 0.9),
        (0, 1, A, ZEROS, 0.8),
        (0, 1, B, ZEROS, 0.95),  # matched to the ignored person B: skipped entirely
        # 'hit instr': wrong instrument box (role IoU 1/3) first, then the right one
        (0, 0, A, [15.0, 0.0, 25.0, 10.0], 0.75),
        (0, 0, A, I, 0.7),
        # 'eat obj': the agent overlaps D (IoU .82) more than C (IoU .54): matched to D, false positive
        (1, 2, [3.0, 0.0, 13.0, 10.0], F, 0.9),
        (1, 2, C, F, 0.6),
        # an image without persons: a false positive
        (2, 0, A, I, 0.2),
        (0, 3, A, I, 0.5),  # 'read obj' has no ground truth
    ])  # fmt: skip
    result = evaluate_vcoco(GROUND_TRUTH, detections)
    s1, s2 = result.scenario("scenario_1"), result.scenario("scenario_2")
    # hit obj: S1 tp 0, 1 -> precision .5 at recall 1; S2 tp 1, 0 (A covered) -> AP 1
    assert s1.ap[1] == pytest.approx(0.5) and s2.ap[1] == pytest.approx(1.0)
    assert s1.num_detections[1] == 2  # the detection matched to B is not counted
    # hit instr: tp 0, 1, 0 -> envelope .5 up to recall 1
    assert s1.ap[0] == pytest.approx(0.5) and s2.ap[0] == pytest.approx(0.5)
    # eat obj: tp 0, 1
    assert s1.ap[2] == pytest.approx(0.5) and s2.ap[2] == pytest.approx(0.5)
    assert np.isnan(s1.ap[3]) and s1.num_gt.tolist() == [1, 1, 1, 0]
    assert result.role_map("scenario_1") == pytest.approx(100 * 0.5)
    assert result.role_map("scenario_2") == pytest.approx(100 * 2 / 3)


def test_agent_and_role_thresholds() -> None:
    # agent IoU exactly .5 passes (A vs [0, 0, 5, 10]: 50 / 100); role IoU .49 fails
    r = evaluate_vcoco(GROUND_TRUTH, arrays([(0, 0, [0.0, 0.0, 5.0, 10.0], I, 0.9)])).scenario("scenario_1")
    assert r.ap[0] == pytest.approx(1.0)
    r = evaluate_vcoco(GROUND_TRUTH, arrays([(0, 0, A, [10.0, 0.0, 14.9, 10.0], 0.9)])).scenario("scenario_1")
    assert r.ap[0] == 0.0
    # a NaN role box is 'no role': right in scenario 1 where the role is absent, wrong where present
    r = evaluate_vcoco(GROUND_TRUTH, arrays([(0, 1, A, NAN4, 0.9), (0, 0, A, NAN4, 0.9)])).scenario("scenario_1")
    assert r.ap[1] == pytest.approx(1.0) and r.ap[0] == 0.0


def test_ground_truth_as_predictions_gives_100_in_both_scenarios() -> None:
    detections = arrays(perfect_rows(GROUND_TRUTH))
    result = evaluate_vcoco(GROUND_TRUTH, detections)
    assert result.role_map("scenario_1") == pytest.approx(100.0)
    assert result.role_map("scenario_2") == pytest.approx(100.0)


def perfect_rows(gt: VCOCOGroundTruth) -> list[tuple[int, int, list[float], list[float], float]]:
    """One detection per (person, action-role) it does: its role box, or an empty box where absent."""
    rows = []
    for i, t in enumerate(gt.images):
        for h, r in zip(*np.nonzero(t.positive)):
            role = t.role_boxes[h, r]
            rows.append((i, int(r), t.boxes[h].tolist(), ZEROS if np.isnan(role).any() else role.tolist(), 1.0))
    return rows


# --------------------------------------------------------------------------------------------
# a literal port of vsrl_eval.py `_do_role_eval` as reference


def get_overlap(boxes: np.ndarray, ref_box: np.ndarray) -> np.ndarray:
    ixmin = np.maximum(boxes[:, 0], ref_box[0])
    iymin = np.maximum(boxes[:, 1], ref_box[1])
    ixmax = np.minimum(boxes[:, 2], ref_box[2])
    iymax = np.minimum(boxes[:, 3], ref_box[3])
    iw = np.maximum(ixmax - ixmin + 1.0, 0.0)
    ih = np.maximum(iymax - iymin + 1.0, 0.0)
    inters = iw * ih
    uni = (
        (ref_box[2] - ref_box[0] + 1.0) * (ref_box[3] - ref_box[1] + 1.0)
        + (boxes[:, 2] - boxes[:, 0] + 1.0) * (boxes[:, 3] - boxes[:, 1] + 1.0)
        - inters
    )
    return inters / uni


def coco_inclusive(boxes: np.ndarray) -> np.ndarray:
    """vsrl_eval's x2 = x1 + max(0, w - 1) from continuous boxes."""
    b = np.array(boxes, dtype=float).reshape(-1, 4)
    return np.stack([b[:, 0], b[:, 1], b[:, 0] + np.maximum(0.0, b[:, 2] - b[:, 0] - 1.0),
                     b[:, 1] + np.maximum(0.0, b[:, 3] - b[:, 1] - 1.0)], 1)  # fmt: skip


def reference_role_ap(gt: VCOCOGroundTruth, det: DetectionArrays, scenario: str) -> np.ndarray:
    r_count = len(gt.role_names)
    tp = [[] for _ in range(r_count)]
    fp = [[] for _ in range(r_count)]
    sc = [[] for _ in range(r_count)]
    npos = np.zeros(r_count)
    for i, t in enumerate(gt.images):
        gt_boxes = coco_inclusive(t.boxes)
        npos += t.positive.sum(0)
        for aid in range(r_count):
            covered = np.zeros(len(gt_boxes), dtype=bool)
            rows = np.flatnonzero((det.image == i) & (det.verb == aid))
            rows = rows[sorted(range(len(rows)), key=lambda k: -det.score[rows[k]])]  # stable
            for j in rows:
                score = float(det.score[j])
                if len(gt_boxes) == 0:  # extension: no person in the image
                    sc[aid].append(score), tp[aid].append(0), fp[aid].append(1)
                    continue
                overlaps = get_overlap(gt_boxes, coco_inclusive(det.boxes_h[j])[0])
                jmax, ovmax = overlaps.argmax(), overlaps.max()
                if t.ignore[jmax]:
                    continue
                role_box = det.boxes_o[j].astype(float)
                if np.all(np.isnan(t.role_boxes[jmax, aid])):
                    if scenario == "scenario_1":
                        ov_role = 1.0 if np.all(role_box == 0.0) or np.all(np.isnan(role_box)) else 0.0
                    else:
                        ov_role = 1.0
                else:
                    ov_role = get_overlap(coco_inclusive(t.role_boxes[jmax, aid]), coco_inclusive(role_box)[0])[0]
                sc[aid].append(score)
                if t.positive[jmax, aid] and ovmax >= 0.5 and ov_role >= 0.5 and not covered[jmax]:
                    tp[aid].append(1), fp[aid].append(0)
                    covered[jmax] = True
                else:
                    tp[aid].append(0), fp[aid].append(1)
    ap = np.full(r_count, np.nan)
    for aid in range(r_count):
        if npos[aid] == 0:
            continue
        idx = sorted(range(len(sc[aid])), key=lambda k: -sc[aid][k])
        a_tp = np.cumsum(np.array(tp[aid], dtype=float)[idx])
        a_fp = np.cumsum(np.array(fp[aid], dtype=float)[idx])
        rec = a_tp / npos[aid]
        prec = a_tp / np.maximum(a_tp + a_fp, np.finfo(np.float64).eps)
        mrec = np.concatenate(([0.0], rec, [1.0]))
        mpre = np.concatenate(([0.0], prec, [0.0]))
        for k in range(mpre.size - 1, 0, -1):
            mpre[k - 1] = max(mpre[k - 1], mpre[k])
        k = np.where(mrec[1:] != mrec[:-1])[0]
        ap[aid] = np.sum((mrec[k + 1] - mrec[k]) * mpre[k + 1])
    return ap


def random_vcoco(seed: int) -> tuple[VCOCOGroundTruth, DetectionArrays]:
    rng = np.random.default_rng(seed)
    r = len(ROLES)

    def box() -> list[float]:
        x, y = rng.integers(0, 12, 2)
        w, h = rng.integers(5, 12, 2)
        return [float(x), float(y), float(x + w), float(y + h)]

    images, rows = [], []
    for i in range(6):
        h = int(rng.integers(0, 4))
        ignore = rng.uniform(size=h) < 0.2
        positive = (rng.uniform(size=(h, r)) < 0.5) & ~ignore[:, None]
        role_boxes = np.array(
            [[box() if positive[p, q] and rng.uniform() < 0.7 else NAN4 for q in range(r)] for p in range(h)]
        )
        images.append(truth([box() for _ in range(h)], ignore, positive, role_boxes.reshape(h, r, 4)))
        for _ in range(int(rng.integers(0, 12))):
            t = images[-1]
            role_class, kind = int(rng.integers(0, r)), rng.uniform()
            role = ZEROS if kind < 0.2 else NAN4 if kind < 0.3 else box()
            if len(t.boxes) and rng.uniform() < 0.7:  # near an annotated person, often on one of its roles
                p = int(rng.integers(0, len(t.boxes)))
                agent = (t.boxes[p] + rng.integers(-1, 2, 4)).tolist()
                if t.positive[p].any() and rng.uniform() < 0.7:
                    role_class = int(rng.choice(np.flatnonzero(t.positive[p])))
                    if not np.isnan(t.role_boxes[p, role_class]).any() and kind >= 0.3:
                        role = (t.role_boxes[p, role_class] + rng.integers(-1, 2, 4)).tolist()
            else:
                agent = box()
            rows.append((i, role_class, agent, role, round(float(rng.uniform()), 1)))
    return VCOCOGroundTruth(role_names=ROLES, images=tuple(images)), arrays(rows)


@pytest.mark.parametrize("seed", range(30))
def test_matches_the_official_loop_on_random_cases(seed: int) -> None:
    gt, detections = random_vcoco(seed)
    result = evaluate_vcoco(gt, detections)
    for scenario in ("scenario_1", "scenario_2"):
        np.testing.assert_array_equal(result.scenario(scenario).ap, reference_role_ap(gt, detections, scenario))


# --------------------------------------------------------------------------------------------
# the json loader and the CLI

PAYLOAD = {
    "classes": ["hit instr", "hit obj", "eat obj"],
    "objects": ["background", "person", "sports ball", "pizza"],
    "images": [1, 2, 3],
    "action_to_object": [[2], [2], [3]],
    "annotations": [
        {"file_name": "x.jpg", "boxes_h": [A, A], "boxes_o": [I, F], "actions": [0, 1], "objects": [2, 2]},
        {"file_name": "y.jpg", "boxes_h": [C], "boxes_o": [I], "actions": [1], "objects": [2]},
        {"file_name": "z.jpg", "boxes_h": [], "boxes_o": [], "actions": [], "objects": []},
    ],
}


def test_vcoco_json_loader() -> None:
    data = vcoco_from_payload(PAYLOAD, "test.json")
    vocab = data.vocabulary
    assert vocab.verbs == ("hit instr", "hit obj", "eat obj")
    assert vocab.objects == ("person", "sports ball", "pizza") and vocab.person == 0  # 'background' dropped
    assert vocab.hoi_classes.tolist() == [[0, 1], [1, 1], [2, 2]]
    assert len(vocab.rare) == 0 and vocab.non_rare.tolist() == [0, 1, 2]
    assert data.images[0].object.tolist() == [1, 1] and data.images[0].hoi.tolist() == [0, 1]
    assert data.empty == ("z.jpg",)
    bad = json.loads(json.dumps(PAYLOAD))
    bad["annotations"][0]["objects"] = [3, 2]  # a pizza is no instrument for 'hit'
    with pytest.raises(ValueError, match="does not allow"):
        vcoco_from_payload(bad, "bad.json")
    with pytest.raises(ValueError, match="missing keys"):
        vcoco_from_payload({"classes": []}, "bad.json")


def test_ground_truth_from_annotations() -> None:
    gt = vcoco_ground_truth(vcoco_from_payload(PAYLOAD, "test.json"))
    x, y, z = gt.images
    assert x.boxes.tolist() == [A] and x.positive.tolist() == [[True, True, False]]
    np.testing.assert_array_equal(x.role_boxes[0, :2], [I, F])
    # C only has 'hit obj': it does 'hit', so it counts for 'hit instr' with the role absent
    assert y.positive.tolist() == [[True, True, False]] and np.isnan(y.role_boxes[0, 0]).all()
    assert len(z.boxes) == 0 and z.positive.shape == (0, 3)


def test_cli_on_a_vcoco_json(tmp_path: Path) -> None:
    (tmp_path / "vcoco.json").write_text(json.dumps(PAYLOAD))
    gt = vcoco_ground_truth(vcoco_from_payload(PAYLOAD, "vcoco.json"))
    rows = perfect_rows(gt)
    files = ["x.jpg", "y.jpg", "z.jpg"]
    detections = [
        HOIDetections(
            filename=files[i],
            boxes_h=[r[2] for r in rows if r[0] == i],
            boxes_o=[r[3] for r in rows if r[0] == i],
            hoi=[0 for r in rows if r[0] == i],
            verb=[r[1] for r in rows if r[0] == i],
            object=[1 for r in rows if r[0] == i],
            score=[r[4] for r in rows if r[0] == i],
        )
        for i in (0, 1)
    ]
    write_detections(tmp_path / "det.h5", detections, attrs={})
    out = tmp_path / "results"
    args = ["evaluate", "--annotations", str(tmp_path / "vcoco.json"), "--detections", str(tmp_path / "det.h5")]
    assert main([*args, "--out", str(out)]) == 0
    with open(out / "metrics.csv", newline="") as handle:
        metrics = list(csv.DictReader(handle))
    assert [m["setting"] for m in metrics] == ["scenario_1", "scenario_2"]
    assert [float(m["ap_role"]) for m in metrics] == pytest.approx([100.0, 100.0])
    assert [m["num_classes"] for m in metrics] == ["2", "2"]  # 'eat obj' has no ground truth
    with open(out / "per_class_ap.csv", newline="") as handle:
        per_class = list(csv.DictReader(handle))
    assert (per_class[0]["action"], per_class[0]["role"]) == ("hit", "instr") and per_class[2]["ap"] == "nan"
    assert "| Scenario 1 | 100.00 |" in (out / "table.md").read_text()


@pytest.mark.skipif(not (SHARED / "vcoco" / "instances_vcoco_test.json").is_file(), reason="../shared not present")
def test_real_vcoco_test_split() -> None:
    data = load_annotations(SHARED / "vcoco" / "instances_vcoco_test.json")
    assert len(data.images) == 4946 and data.vocabulary.num_verbs == 24 and data.vocabulary.num_objects == 80
    gt = vcoco_ground_truth(data)
    result = evaluate_vcoco(gt, arrays(perfect_rows(gt)))
    assert result.role_map("scenario_1") == pytest.approx(100.0)
    assert result.role_map("scenario_2") == pytest.approx(100.0)
    assert int(result.scenario("scenario_1").evaluated.sum()) == 24
