"""V-COCO role AP and agent AP: hand-computed scenario 1 / scenario 2 / agent cases, a literal port of
vsrl_eval.py's `_do_role_eval` and `_do_agent_eval` as reference on random data, the common json loader,
the CLI, and the real test split."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from hoi_pipeline.artifacts import write_detections
from hoi_pipeline.cli import main
from hoi_pipeline.datasets import load_annotations
from hoi_pipeline.datasets.vcoco import official_boxes, vcoco_from_payload
from hoi_pipeline.evaluation import (
    DetectionArrays,
    VCOCOGroundTruth,
    VCOCOImageTruth,
    evaluate_vcoco,
    vcoco_ground_truth,
    voc_ap,
)
from hoi_pipeline.evaluation.tables import write_vcoco_tables
from hoi_pipeline.structures import HOIDetections

SHARED = Path(__file__).resolve().parents[2] / "shared"
ACTIONS = ("hit", "eat", "read", "stand")  # 'stand' is agent-only: no action-role class
ROLES = ("hit instr", "hit obj", "eat obj", "read obj")  # 'read obj' has no ground truth below
ROLE_ACTION = [0, 0, 1, 2]
NAN4 = [np.nan] * 4
A = [0.0, 0.0, 10.0, 10.0]  # person A hits with an instrument, no object
B = [30.0, 0.0, 40.0, 10.0]  # person B: no action annotation (ignored)
I = [10.0, 0.0, 20.0, 10.0]  # A's instrument
C = [0.0, 0.0, 10.0, 10.0]  # person C eats F
D = [4.0, 0.0, 14.0, 10.0]  # person D stands beside C
F = [10.0, 10.0, 20.0, 20.0]
ZEROS = [0.0, 0.0, 0.0, 0.0]


def truth(boxes, ignore, actions, role_boxes, r: int = len(ROLES), a: int = len(ACTIONS)) -> VCOCOImageTruth:
    """Ground truth of one image from continuous boxes (converted to the official inclusive ones)."""
    role_boxes = np.array(role_boxes, dtype=float).reshape(-1, 4)
    return VCOCOImageTruth(
        boxes=official_boxes(np.array(boxes, dtype=float).reshape(-1, 4)),
        ignore=np.array(ignore, dtype=bool),
        actions=np.array(actions, dtype=bool).reshape(-1, a),
        role_boxes=np.where(np.isnan(role_boxes), np.nan, official_boxes(np.nan_to_num(role_boxes))).reshape(-1, r, 4),
    )


GROUND_TRUTH = VCOCOGroundTruth(
    action_names=ACTIONS,
    role_names=ROLES,
    role_action=ROLE_ACTION,
    images=(
        truth([A, B], [False, True], [[1, 0, 0, 0], [0, 0, 0, 0]], [[I, NAN4, NAN4, NAN4], [NAN4] * 4]),
        truth([C, D], [False, False], [[0, 1, 0, 0], [0, 0, 0, 1]], [[NAN4, NAN4, F, NAN4], [NAN4] * 4]),
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


HAND_ROWS = [
    # 'hit obj' (A's object role has no box): a predicted object box fails scenario 1 only
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
]


def test_hand_built_scenarios() -> None:
    result = evaluate_vcoco(GROUND_TRUTH, arrays(HAND_ROWS))
    s1, s2 = result.scenario("scenario_1"), result.scenario("scenario_2")
    # hit obj: S1 tp 0, 1 -> precision .5 at recall 1; S2 tp 1, 0 (A covered) -> AP 1
    assert s1.ap[1] == pytest.approx(0.5) and s2.ap[1] == pytest.approx(1.0)
    assert s1.num_detections[1] == 2  # the detection matched to B is not counted
    # hit instr: tp 0, 1, 0 -> envelope .5 up to recall 1
    assert s1.ap[0] == pytest.approx(0.5) and s2.ap[0] == pytest.approx(0.5)
    # eat obj: tp 0, 1
    assert s1.ap[2] == pytest.approx(0.5) and s2.ap[2] == pytest.approx(0.5)
    # recall is over the persons doing the action: A for both 'hit' classes, C for 'eat'
    assert np.isnan(s1.ap[3]) and s1.num_gt.tolist() == [1, 1, 1, 0]
    assert result.role_map("scenario_1") == pytest.approx(100 * 0.5)
    assert result.role_map("scenario_2") == pytest.approx(100 * 2 / 3)


def test_hand_built_agent_ap_and_the_agent_only_action() -> None:
    result = evaluate_vcoco(GROUND_TRUTH, arrays(HAND_ROWS))
    agent = result.agent
    # hit: one person detection per agent box, its best score over 'hit instr' / 'hit obj':
    # B .95 (ignored: skipped), A .9 (true), A on the image without persons .2 (false) -> AP 1
    assert agent.ap[0] == pytest.approx(1.0) and agent.num_detections[0] == 2
    # eat: the box nearer D .9 (false), C .6 (true) -> AP .5
    assert agent.ap[1] == pytest.approx(0.5)
    # read: no person reads; stand: D stands, but no class predicts it -> both out of the mean
    assert np.isnan(agent.ap[2]) and np.isnan(agent.ap[3]) and agent.num_gt.tolist() == [1, 1, 0, 1]
    assert result.agent_map() == pytest.approx(100 * 0.75)
    assert "stand" in result.notes["agent"]
    rows = {row.setting: row for row in result.summary()}
    assert rows["agent"].num_classes == 2 and rows["agent"].ap_agent == pytest.approx(75.0)
    assert np.isnan(rows["agent"].ap_role) and np.isnan(rows["scenario_1"].ap_agent)


def test_duplicate_detections_are_false_positives() -> None:
    p, q = [0.0, 0.0, 10.0, 20.0], [40.0, 0.0, 50.0, 20.0]
    racket_p, racket_q = [10.0, 0.0, 20.0, 5.0], [50.0, 0.0, 60.0, 5.0]
    gt = VCOCOGroundTruth(
        action_names=ACTIONS,
        role_names=ROLES,
        role_action=ROLE_ACTION,
        images=(truth([p, q], [False, False], [[1, 0, 0, 0]] * 2, [[racket_p] + [NAN4] * 3, [racket_q] + [NAN4] * 3]),),
    )
    shifted = [1.0, 0.0, 11.0, 20.0]  # P again, one pixel off: a second person detection for the agent AP
    rows = [(0, 0, p, racket_p, 0.9), (0, 0, shifted, racket_p, 0.8), (0, 0, q, racket_q, 0.7)]
    result = evaluate_vcoco(gt, arrays(rows))
    # tp 1, 0, 1: precision 1, .5, 2/3 at recall .5, .5, 1 -> .5 * 1 + .5 * 2/3
    for ap in (result.scenario("scenario_1").ap[0], result.scenario("scenario_2").ap[0], result.agent.ap[0]):
        assert ap == pytest.approx(0.5 + 1 / 3)


def test_agent_and_role_thresholds() -> None:
    # agent IoU exactly .5 passes (A vs [0, 0, 5, 10]: 50 / 100); role IoU .49 fails
    r = evaluate_vcoco(GROUND_TRUTH, arrays([(0, 0, [0.0, 0.0, 5.0, 10.0], I, 0.9)])).scenario("scenario_1")
    assert r.ap[0] == pytest.approx(1.0)
    r = evaluate_vcoco(GROUND_TRUTH, arrays([(0, 0, A, [10.0, 0.0, 14.9, 10.0], 0.9)])).scenario("scenario_1")
    assert r.ap[0] == 0.0
    # a NaN role box is 'no role': right in scenario 1 where the role is absent, wrong where present
    r = evaluate_vcoco(GROUND_TRUTH, arrays([(0, 1, A, NAN4, 0.9), (0, 0, A, NAN4, 0.9)])).scenario("scenario_1")
    assert r.ap[1] == pytest.approx(1.0) and r.ap[0] == 0.0


def perfect_rows(gt: VCOCOGroundTruth) -> list[tuple[int, int, list[float], list[float], float]]:
    """One detection per (person, action-role) it does: its role box, or an empty box where absent.

    Boxes go back to continuous coordinates (inclusive x2 + 1), as the inference stage writes them.
    """
    rows = []
    for i, t in enumerate(gt.images):
        positive = t.actions[:, gt.role_action]
        for h, r in zip(*np.nonzero(positive)):
            role = t.role_boxes[h, r]
            agent = (t.boxes[h] + [0, 0, 1, 1]).tolist()
            rows.append((i, int(r), agent, ZEROS if np.isnan(role).any() else (role + [0, 0, 1, 1]).tolist(), 1.0))
    return rows


def test_ground_truth_as_predictions_gives_100_everywhere() -> None:
    result = evaluate_vcoco(GROUND_TRUTH, arrays(perfect_rows(GROUND_TRUTH)))
    assert result.role_map("scenario_1") == pytest.approx(100.0)
    assert result.role_map("scenario_2") == pytest.approx(100.0)
    assert result.agent_map() == pytest.approx(100.0)


# --------------------------------------------------------------------------------------------
# a literal port of vsrl_eval.py `_do_role_eval` and `_do_agent_eval` as reference


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


def reference_voc_ap(tp: list, fp: list, sc: list, npos: float) -> float:
    idx = sorted(range(len(sc)), key=lambda k: -sc[k])
    a_tp = np.cumsum(np.array(tp, dtype=float)[idx])
    a_fp = np.cumsum(np.array(fp, dtype=float)[idx])
    rec = a_tp / npos
    prec = a_tp / np.maximum(a_tp + a_fp, np.finfo(np.float64).eps)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for k in range(mpre.size - 1, 0, -1):
        mpre[k - 1] = max(mpre[k - 1], mpre[k])
    k = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[k + 1] - mrec[k]) * mpre[k + 1]))


def reference_role_ap(gt: VCOCOGroundTruth, det: DetectionArrays, scenario: str) -> np.ndarray:
    r_count = len(gt.role_names)
    tp, fp, sc = ([[] for _ in range(r_count)] for _ in range(3))
    npos = np.zeros(len(gt.action_names))
    for i, t in enumerate(gt.images):
        gt_boxes = t.boxes  # float32, inclusive
        npos += t.actions.sum(0)
        for rid in range(r_count):
            aid = gt.role_action[rid]
            covered = np.zeros(len(gt_boxes), dtype=bool)
            rows = np.flatnonzero((det.image == i) & (det.verb == rid))
            rows = rows[sorted(range(len(rows)), key=lambda k: -det.score[rows[k]])]  # stable
            for j in rows:
                score = float(det.score[j])
                if len(gt_boxes) == 0:  # extension: no person in the image
                    sc[rid].append(score), tp[rid].append(0), fp[rid].append(1)
                    continue
                overlaps = get_overlap(gt_boxes, official_boxes(det.boxes_h[j])[0])
                jmax, ovmax = overlaps.argmax(), overlaps.max()
                if t.ignore[jmax]:
                    continue
                role_box = det.boxes_o[j]
                if np.all(np.isnan(t.role_boxes[jmax, rid])):
                    if scenario == "scenario_1":
                        ov_role = 1.0 if np.all(role_box == 0.0) or np.all(np.isnan(role_box)) else 0.0
                    else:
                        ov_role = 1.0
                else:
                    ov_role = get_overlap(t.role_boxes[jmax, rid][None], official_boxes(role_box)[0])[0]
                sc[rid].append(score)
                if t.actions[jmax, aid] and ovmax >= 0.5 and ov_role >= 0.5 and not covered[jmax]:
                    tp[rid].append(1), fp[rid].append(0)
                    covered[jmax] = True
                else:
                    tp[rid].append(0), fp[rid].append(1)
    ap = np.full(r_count, np.nan)
    for rid in range(r_count):
        if npos[gt.role_action[rid]] > 0:
            ap[rid] = reference_voc_ap(tp[rid], fp[rid], sc[rid], npos[gt.role_action[rid]])
    return ap


def reference_agent_ap(gt: VCOCOGroundTruth, det: DetectionArrays) -> np.ndarray:
    a_count = len(gt.action_names)
    tp, fp, sc = ([[] for _ in range(a_count)] for _ in range(3))
    npos = np.zeros(a_count)
    for i, t in enumerate(gt.images):
        npos += t.actions.sum(0)
        # the official format: one entry per person box with a score per action (its best row); ties keep
        # the order in which each (box, action) first appears
        people: dict[tuple, float] = {}
        for j in np.flatnonzero(det.image == i):
            key = (tuple(det.boxes_h[j].tolist()), int(gt.role_action[det.verb[j]]))
            people[key] = max(people.get(key, -np.inf), float(det.score[j]))
        for aid in range(a_count):
            covered = np.zeros(len(t.boxes), dtype=bool)
            entries = [(box, score) for (box, a), score in people.items() if a == aid]
            for box, score in sorted(entries, key=lambda e: -e[1]):
                if len(t.boxes) == 0:
                    sc[aid].append(score), tp[aid].append(0), fp[aid].append(1)
                    continue
                overlaps = get_overlap(t.boxes, official_boxes(np.array(box, dtype=np.float32))[0])
                jmax, ovmax = overlaps.argmax(), overlaps.max()
                if t.ignore[jmax]:
                    continue
                sc[aid].append(score)
                if t.actions[jmax, aid] and ovmax >= 0.5 and not covered[jmax]:
                    tp[aid].append(1), fp[aid].append(0)
                    covered[jmax] = True
                else:
                    tp[aid].append(0), fp[aid].append(1)
    predictable = set(gt.role_action.tolist())
    return np.array([
        reference_voc_ap(tp[a], fp[a], sc[a], npos[a]) if npos[a] > 0 and a in predictable else np.nan
        for a in range(a_count)
    ])  # fmt: skip


def random_vcoco(seed: int) -> tuple[VCOCOGroundTruth, DetectionArrays]:
    rng = np.random.default_rng(seed)
    r, a = len(ROLES), len(ACTIONS)

    def box() -> list[float]:
        x, y = rng.integers(0, 12, 2)
        w, h = rng.integers(5, 12, 2)
        return [float(x), float(y), float(x + w), float(y + h)]

    images, rows = [], []
    for i in range(6):
        h = int(rng.integers(0, 4))
        ignore = rng.uniform(size=h) < 0.2
        does = (rng.uniform(size=(h, a)) < 0.5) & ~ignore[:, None]
        positive = does[:, ROLE_ACTION]
        role_boxes = np.array(
            [[box() if positive[p, q] and rng.uniform() < 0.7 else NAN4 for q in range(r)] for p in range(h)]
        )
        images.append(truth([box() for _ in range(h)], ignore, does, role_boxes.reshape(h, r, 4)))
        for _ in range(int(rng.integers(0, 12))):
            t = images[-1]
            role_class, kind = int(rng.integers(0, r)), rng.uniform()
            role = ZEROS if kind < 0.2 else NAN4 if kind < 0.3 else box()
            if len(t.boxes) and rng.uniform() < 0.7:  # near an annotated person, often on one of its roles
                p = int(rng.integers(0, len(t.boxes)))
                agent = (t.boxes[p] + [0, 0, 1, 1] + rng.integers(-1, 2, 4)).tolist()
                if positive[p].any() and rng.uniform() < 0.7:
                    role_class = int(rng.choice(np.flatnonzero(positive[p])))
                    if not np.isnan(t.role_boxes[p, role_class]).any() and kind >= 0.3:
                        role = (t.role_boxes[p, role_class] + [0, 0, 1, 1] + rng.integers(-1, 2, 4)).tolist()
            else:
                agent = box()
            rows.append((i, role_class, agent, role, round(float(rng.uniform()), 1)))
    gt = VCOCOGroundTruth(action_names=ACTIONS, role_names=ROLES, role_action=ROLE_ACTION, images=tuple(images))
    return gt, arrays(rows)


@pytest.mark.parametrize("seed", range(30))
def test_matches_the_official_loops_on_random_cases(seed: int) -> None:
    gt, detections = random_vcoco(seed)
    result = evaluate_vcoco(gt, detections)
    for scenario in ("scenario_1", "scenario_2"):
        np.testing.assert_array_equal(result.scenario(scenario).ap, reference_role_ap(gt, detections, scenario))
    np.testing.assert_array_equal(result.agent.ap, reference_agent_ap(gt, detections))


# --------------------------------------------------------------------------------------------
# the common json: loader, incomplete ground truth, CLI, real test split

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
    assert vocab.verbs == ("hit instr", "hit obj", "eat obj") and vocab.verb_roles == ("instr", "obj", "obj")
    assert vocab.objects == ("person", "sports ball", "pizza") and vocab.person == 0  # 'background' dropped
    assert vocab.hoi_classes.tolist() == [[0, 1], [1, 1], [2, 2]]
    assert len(vocab.rare) == 0 and vocab.non_rare.tolist() == [0, 1, 2]
    assert data.images[0].object.tolist() == [1, 1] and data.images[0].hoi.tolist() == [0, 1]
    assert data.empty == ("z.jpg",) and data.benchmark == "vcoco"
    bad = json.loads(json.dumps(PAYLOAD))
    bad["annotations"][0]["objects"] = [3, 2]  # a pizza is no instrument for 'hit'
    with pytest.raises(ValueError, match="does not allow"):
        vcoco_from_payload(bad, "bad.json")
    with pytest.raises(ValueError, match="missing keys"):
        vcoco_from_payload({"classes": []}, "bad.json")
    bad = dict(PAYLOAD, classes=["hit", "hit obj", "eat obj"])
    with pytest.raises(ValueError, match=r"bad.json: V-COCO class 'hit' is not '<action> <role>'"):
        vcoco_from_payload(bad, "bad.json")


def test_ground_truth_from_the_common_json_is_incomplete() -> None:
    gt = vcoco_ground_truth(vcoco_from_payload(PAYLOAD, "test.json"))
    assert gt.action_names == ("hit", "eat") and gt.role_action.tolist() == [0, 0, 1]
    assert not gt.complete and "only persons with a role box" in gt.limitation
    x, y, z = gt.images
    np.testing.assert_array_equal(x.boxes, official_boxes(np.array([A])))  # inclusive: x2 - 1
    assert x.actions.tolist() == [[True, False]] and not x.ignore.any()
    np.testing.assert_array_equal(x.role_boxes[0, :2], official_boxes(np.array([I, F])))
    # C only has 'hit obj': it does 'hit', so it counts for 'hit instr' with the role absent
    assert y.actions.tolist() == [[True, False]] and np.isnan(y.role_boxes[0, 0]).all()
    assert len(z.boxes) == 0 and z.actions.shape == (0, 2) and z.role_boxes.shape == (0, 3, 4)


def test_incomplete_ground_truth_computes_no_scenario_1_and_no_agent_ap(tmp_path: Path, caplog) -> None:
    gt = vcoco_ground_truth(vcoco_from_payload(PAYLOAD, "test.json"))
    result = evaluate_vcoco(gt, arrays(perfect_rows(gt)))
    assert [s.setting for s in result.scenarios] == ["scenario_2"] and result.agent is None
    assert result.notes["scenario_1"].startswith("not computed: test.json: the common json lists only persons")
    assert result.notes["scenario_2"].startswith("approximate: ")
    assert "scenario 1 not computed" in caplog.text
    with pytest.raises(KeyError, match="scenario_1' was not computed: not computed: test.json"):
        result.scenario("scenario_1")
    write_vcoco_tables(result, tmp_path)
    with open(tmp_path / "metrics.csv", newline="") as handle:
        metrics = list(csv.DictReader(handle))
    assert [m["setting"] for m in metrics] == ["scenario_1", "scenario_2", "agent"]
    assert metrics[0]["ap_role"] == "" and metrics[0]["note"].startswith("not computed")
    assert float(metrics[1]["ap_role"]) == pytest.approx(100.0) and metrics[1]["note"].startswith("approximate")
    assert metrics[2]["ap_agent"] == "" and metrics[2]["note"].startswith("not computed")
    table = (tmp_path / "table.md").read_text()
    assert "| Scenario 1 | - | - | 0 |" in table and "- Scenario 1: not computed: test.json" in table


def test_cli_on_official_like_complete_truth_writes_every_row(tmp_path: Path) -> None:
    result = evaluate_vcoco(GROUND_TRUTH, arrays(HAND_ROWS))
    write_vcoco_tables(result, tmp_path, title="hand case")
    with open(tmp_path / "metrics.csv", newline="") as handle:
        metrics = list(csv.DictReader(handle))
    assert list(metrics[0]) == ["setting", "ap_role", "ap_agent", "num_classes", "num_gt", "num_detections", "note"]
    assert [m["setting"] for m in metrics] == ["scenario_1", "scenario_2", "agent"]
    assert [float(m["ap_role"]) for m in metrics[:2]] == pytest.approx([50.0, 200 / 3])
    assert float(metrics[2]["ap_agent"]) == pytest.approx(75.0) and metrics[2]["ap_role"] == ""
    assert [m["num_classes"] for m in metrics] == ["3", "3", "2"] and metrics[0]["num_gt"] == "3"
    assert metrics[0]["num_detections"] == "8"  # 9 rows, one matched to the ignored person
    with open(tmp_path / "per_class_ap.csv", newline="") as handle:
        per_class = list(csv.DictReader(handle))
    agent_rows = [row for row in per_class if row["setting"] == "agent"]
    assert [row["name"] for row in agent_rows] == list(ACTIONS) and agent_rows[3]["ap"] == "nan"
    assert "| Agent | - | 75.00 | 2 |" in (tmp_path / "table.md").read_text()


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
        metrics = {m["setting"]: m for m in csv.DictReader(handle)}
    assert metrics["scenario_1"]["ap_role"] == "" and "not computed" in metrics["scenario_1"]["note"]
    assert float(metrics["scenario_2"]["ap_role"]) == pytest.approx(100.0)
    assert metrics["scenario_2"]["num_classes"] == "2"  # 'eat obj' has no ground truth
    with open(out / "per_class_ap.csv", newline="") as handle:
        per_class = list(csv.DictReader(handle))
    assert (per_class[0]["action"], per_class[0]["role"]) == ("hit", "instr") and per_class[2]["ap"] == "nan"
    assert "| Scenario 2 | 100.00 | - | 2 |" in (out / "table.md").read_text()


@pytest.mark.skipif(not (SHARED / "vcoco" / "instances_vcoco_test.json").is_file(), reason="../shared not present")
def test_real_vcoco_test_split() -> None:
    data = load_annotations(SHARED / "vcoco" / "instances_vcoco_test.json")
    assert len(data.images) == 4946 and data.vocabulary.num_verbs == 24 and data.vocabulary.num_objects == 80
    assert set(data.vocabulary.verb_roles) == {"obj", "instr"}
    gt = vcoco_ground_truth(data)
    assert not gt.complete and len(gt.action_names) == 21 and not gt.agent_only
    result = evaluate_vcoco(gt, arrays(perfect_rows(gt)))
    assert result.role_map("scenario_2") == pytest.approx(100.0)
    assert int(result.scenario("scenario_2").evaluated.sum()) == 24
    assert "scenario_1" in result.notes and result.agent is None
