"""V-COCO role AP in scenario 1 and scenario 2, with the semantics of the official `vsrl_eval.py`
(`VCOCOeval._do_role_eval`).

For each action-role pair r (R pairs, e.g. "hit instr", "hit obj") and each detection
(agent box, role box, score):
- the agent is matched to the person of the image with the highest IoU (the first on ties),
  whatever that IoU; a detection matched to a person without action annotation (`ignore`) is
  skipped entirely (neither true nor false positive);
- role overlap: IoU with that person's role box; where the person has the action but the role
  is absent, scenario 1 counts the role as right only when the predicted role box is empty (all
  zeros or NaN) and scenario 2 always counts it as right;
- a true positive when the person does the action, agent IoU >= 0.5, role overlap >= 0.5 and the
  person is not yet covered for this pair in this image; otherwise a false positive. Ranking is
  score descending (ties: image order, then row order; the official argsort leaves ties unspecified).
- AP is the area under the precision envelope (`voc_ap`), with recall over the persons doing the
  action; the reported number is the mean over the action-role pairs with ground truth.
- IoU: the official code builds inclusive boxes from COCO's (x, y, w, h) as x2 = x + max(0, w - 1)
  and uses the +1 pixel convention; continuous boxes (x1, y1, x2, y2) are converted the same way
  (x2 -> x1 + max(0, x2 - x1 - 1)) for both ground truth and detections.
- An image without any annotated person (the official code would fail on it): its detections are
  false positives.

`VCOCOImageTruth` is the general ground truth (every person, its actions, a role box or none per
action-role); `vcoco_ground_truth` builds it from the annotation json's pair list, which only has
persons with at least one role box, see `datasets/vcoco.py`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from hoi_pipeline.evaluation.average_precision import ClassAP, class_ap
from hoi_pipeline.evaluation.detections import DetectionArrays
from hoi_pipeline.evaluation.matching import best_targets, first_claims, group_pairs, iou_inclusive
from hoi_pipeline.structures import HOIAnnotations

log = logging.getLogger(__name__)

SCENARIOS = ("scenario_1", "scenario_2")
SCENARIO_TITLES = {"scenario_1": "Scenario 1", "scenario_2": "Scenario 2"}


def split_action_role(name: str) -> tuple[str, str]:
    """'talk_on_phone instr' -> ('talk_on_phone', 'instr'): V-COCO class names are '<action> <role>'."""
    action, _, role = name.rpartition(" ")
    if not action:
        raise ValueError(f"V-COCO class '{name}' is not '<action> <role>'")
    return action, role


@dataclass(frozen=True)
class VCOCOImageTruth:
    """Ground truth of one image: H annotated persons and R action-role pairs; continuous boxes."""

    boxes: np.ndarray  # (H, 4) every person of the image
    ignore: np.ndarray  # (H,) bool: persons without action annotation (matches to them are skipped)
    positive: np.ndarray  # (H, R) bool: the person does the action of pair r
    role_boxes: np.ndarray  # (H, R, 4) role box, NaN where the role is absent

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        h = len(boxes)
        positive = np.asarray(self.positive, dtype=bool)
        role_boxes = np.asarray(self.role_boxes, dtype=np.float64)
        if positive.ndim != 2 or positive.shape[0] != h or role_boxes.shape != (h, positive.shape[1], 4):
            raise ValueError(
                f"VCOCOImageTruth: expected positive (H, R) and role_boxes (H, R, 4) for H = {h} persons, "
                f"got {positive.shape} and {role_boxes.shape}"
            )
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "ignore", np.asarray(self.ignore, dtype=bool).reshape(h))
        object.__setattr__(self, "positive", positive)
        object.__setattr__(self, "role_boxes", role_boxes)
        if np.any(self.positive & self.ignore[:, None]):
            raise ValueError("VCOCOImageTruth: a person without action annotation (ignore) has an action")


@dataclass(frozen=True)
class VCOCOGroundTruth:
    """Ground truth of a split; `images[i]` is image i of the annotation (detections index it)."""

    role_names: tuple[str, ...]  # (R,) action-role pairs, e.g. 'hold obj'
    images: tuple[VCOCOImageTruth, ...]


@dataclass(frozen=True)
class RoleEvaluationResult:
    """V-COCO result: per action-role AP of each scenario."""

    role_names: tuple[str, ...]
    scenarios: tuple[ClassAP, ...]

    def scenario(self, name: str) -> ClassAP:
        for result in self.scenarios:
            if result.setting == name:
                return result
        raise KeyError(f"scenario '{name}' was not evaluated (have {[r.setting for r in self.scenarios]})")

    def role_map(self, name: str) -> float:
        """Mean role AP (percent) of a scenario over the action-role pairs with ground truth."""
        return 100.0 * self.scenario(name).mean()


def vcoco_ground_truth(annotations: HOIAnnotations) -> VCOCOGroundTruth:
    """General ground truth from a V-COCO split loaded as HOIAnnotations (verbs = action-role pairs).

    A person is a distinct human box of the image. A person with any role of an action does that
    action, so it is positive for every role of the action; roles without a pair are absent.
    The json lists only persons with at least one role box, so nobody is `ignore`d and persons
    with role-less actions (stand, smile, ...) are missing, unlike the official COCO-based files.
    """
    role_names = annotations.vocabulary.verbs
    actions = [split_action_role(name)[0] for name in role_names]
    _, action_of = np.unique(actions, return_inverse=True)
    same_action = action_of[:, None] == action_of[None, :]  # (R, R)
    r = len(role_names)
    images = []
    duplicates = 0
    for image in annotations.images:
        boxes, first, person = np.unique(image.boxes_h, axis=0, return_index=True, return_inverse=True)
        rank = np.argsort(np.argsort(first))  # persons in order of first appearance
        person = rank[person.reshape(-1)]
        h = len(boxes)
        person_boxes = np.zeros((h, 4), dtype=np.float64)
        person_boxes[rank] = boxes
        has_role = np.zeros((h, r), dtype=bool)
        role_boxes = np.full((h, r, 4), np.nan)
        for row in range(image.num_pairs - 1, -1, -1):  # backwards: the first pair wins on duplicates
            duplicates += bool(has_role[person[row], image.verb[row]])
            has_role[person[row], image.verb[row]] = True
            role_boxes[person[row], image.verb[row]] = image.boxes_o[row]
        positive = (has_role.astype(np.int64) @ same_action.astype(np.int64)) > 0  # (H, R)
        images.append(VCOCOImageTruth(person_boxes, np.zeros(h, dtype=bool), positive, role_boxes))
    if duplicates:
        log.warning(
            "%s: %d persons have several boxes for one action-role; the first is used", annotations.source, duplicates
        )
    return VCOCOGroundTruth(role_names=tuple(role_names), images=tuple(images))


def _inclusive(boxes: np.ndarray) -> np.ndarray:
    """Continuous (x1, y1, x2, y2) -> the official inclusive box (x1, y1, x1 + max(0, w - 1), ...)."""
    out = np.array(boxes, dtype=np.float64)
    out[:, 2] = out[:, 0] + np.maximum(0.0, out[:, 2] - out[:, 0] - 1.0)
    out[:, 3] = out[:, 1] + np.maximum(0.0, out[:, 3] - out[:, 1] - 1.0)
    return out


def evaluate_vcoco(
    ground_truth: VCOCOGroundTruth,
    detections: DetectionArrays,
    *,
    scenarios: tuple[str, ...] = SCENARIOS,
    iou_threshold: float = 0.5,
) -> RoleEvaluationResult:
    """Role AP per action-role pair (the detections' `verb` column) in each scenario."""
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown V-COCO scenario(s) {unknown}; allowed: {list(SCENARIOS)}")
    r = len(ground_truth.role_names)
    if len(detections) and (detections.verb.min() < 0 or detections.verb.max() >= r):
        raise ValueError(f"detections name an action-role class outside 0..{r - 1}")
    if len(detections) and detections.image.max() >= len(ground_truth.images):
        raise ValueError("detections name an image outside the ground truth")
    truths = ground_truth.images
    counts = np.array([len(t.boxes) for t in truths], dtype=np.int64)
    h = int(counts.sum())
    person_image = np.repeat(np.arange(len(truths)), counts)  # (H,) over the split
    # person H is a sentinel for "no person in the image": not ignored, no action, no role
    person_boxes = _inclusive(np.concatenate([t.boxes for t in truths] + [np.zeros((1, 4))]))  # (H + 1, 4)
    ignore = np.concatenate([t.ignore for t in truths] + [np.zeros(1, dtype=bool)])  # (H + 1,)
    positive = np.concatenate([t.positive.reshape(-1, r) for t in truths] + [np.zeros((1, r), dtype=bool)])
    role_boxes = np.concatenate([t.role_boxes.reshape(-1, r, 4) for t in truths] + [np.full((1, r, 4), np.nan)])
    num_gt = positive.sum(axis=0)  # (R,) persons doing each pair's action

    order = detections.ranking(detections.verb)  # (K,) ranking order
    role = detections.verb[order]
    image = detections.image[order]
    agents = _inclusive(detections.boxes_h[order])
    raw_roles = detections.boxes_o[order].astype(np.float64)
    no_role_predicted = np.all(raw_roles == 0, axis=1) | np.all(np.isnan(raw_roles), axis=1)

    # agent: the highest-IoU person of the image (the sentinel where the image has none)
    pair_det, pair_person = group_pairs(image, person_image)
    agent_iou = iou_inclusive(agents[pair_det], person_boxes[pair_person])
    agent_best, person = best_targets(agent_iou, pair_det, pair_person, len(order))
    person[person < 0] = h
    counted = ~ignore[person]  # detections matched to a person without action annotation are skipped

    true_action = positive[person, role]
    gt_role = role_boxes[person, role]  # (K, 4)
    role_absent = np.any(np.isnan(gt_role), axis=1)
    role_iou = np.zeros(len(order))
    role_iou[~role_absent] = iou_inclusive(_inclusive(gt_role[~role_absent]), _inclusive(raw_roles[~role_absent]))

    results = []
    for scenario in scenarios:
        role_ok = role_iou.copy()
        if scenario == "scenario_1":
            role_ok[role_absent] = no_role_predicted[role_absent].astype(np.float64)
        else:
            role_ok[role_absent] = 1.0
        candidate = true_action & (agent_best >= iou_threshold) & (role_ok >= iou_threshold) & counted
        true_positive = first_claims(candidate, role * (h + 1) + person)
        results.append(class_ap(scenario, role[counted], true_positive[counted], num_gt, "voc"))
    missing = int(np.sum(num_gt == 0))
    if missing:
        log.warning("%d of %d action-role pairs have no ground truth: AP NaN, left out of the mean", missing, r)
    return RoleEvaluationResult(role_names=ground_truth.role_names, scenarios=tuple(results))
