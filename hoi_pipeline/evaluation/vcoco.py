"""V-COCO role AP (scenarios 1 and 2) and agent AP, as the official `vsrl_eval.py` computes them
(`VCOCOeval._do_role_eval`, `_do_agent_eval`; github.com/s-gupta/v-coco; paper appendix H).

Ground truth is a `VCOCOGroundTruth` (datasets/vcoco.py): every person of every image, `ignore` for
persons without action annotation, the actions each person does (agent-only ones included) and a
role box or none per action-role class. Detections are the inference stage's rows (agent box, role
box, action-role class in `verb`, score); each row is one entry of vsrl_eval.py's detection list.

Role AP, per action-role class r (action a), over the split, conventions of `_do_role_eval`:
- ranking: score descending, over all images (ties: image order, then row order; vsrl_eval.py's
  argsort leaves them unspecified);
- the agent box is matched to the person of its image with the highest IoU, the first on ties,
  whatever that IoU; a detection matched to an `ignore`d person is skipped (neither true nor false);
- role overlap: IoU of the predicted role box with that person's box for r. Where the person has no
  box for r (a missing role), scenario 1 counts the role as right only when the predicted role box
  is empty (all zeros or all NaN) and scenario 2 always counts it as right;
- a true positive when the person does a, agent IoU >= 0.5, role overlap >= 0.5 and the person is
  not yet covered for r in this image; every other counted detection is a false positive (so a
  duplicate of a found person is one);
- recall is over the persons doing a (not ignored), whether or not their role has a box;
- AP is the area under the precision envelope (`voc_ap`); AP_role of a scenario is the mean over
  the classes with ground truth (vsrl_eval.py's nanmean over action-role pairs). Actions without an
  object role (stand, smile, run, walk) have no class and no role AP, as in vsrl_eval.py.
Agent AP, per action a (`_do_agent_eval`): the same matching without the role; a person detection's
score for a is the best score of its rows (same image, same agent box) over a's classes. Agent-only
actions cannot be predicted by a human-object pair model: their AP is left out (NaN) of the mean,
where vsrl_eval.py averages over all actions (it needs a score for each).
IoU: vsrl_eval.py's `get_overlap` on inclusive boxes with the +1 pixel convention, in float32 as there
(its boxes are float32); detection boxes (continuous) enter as (x1, y1, max(x1, x2 - 1), max(y1, y2 - 1))
(`datasets.vcoco.official_boxes`), the ground truth is already in that convention. AP sums in float64
(vsrl_eval.py stores float32: differences below 1e-6).
Extension: an image without any person (vsrl_eval.py would fail on it): its detections are false positives.

Incomplete ground truth (the common json, `VCOCOGroundTruth.complete` False): scenario 1 and agent
AP are not computed (their note says why, with a warning) and scenario 2 is marked approximate.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np

from hoi_pipeline.datasets.vcoco import (
    VCOCOAnnotations,
    VCOCOGroundTruth,
    VCOCOImageTruth,
    ground_truth_from_pairs,
    official_boxes,
    split_action_role,
)
from hoi_pipeline.evaluation.average_precision import ClassAP, class_ap
from hoi_pipeline.evaluation.detections import DetectionArrays
from hoi_pipeline.evaluation.matching import best_targets, first_claims, group_pairs, iou_inclusive
from hoi_pipeline.structures import HOIAnnotations

log = logging.getLogger(__name__)

__all__ = [
    "AGENT",
    "SCENARIOS",
    "SCENARIO_TITLES",
    "RoleEvaluationResult",
    "SummaryRow",
    "VCOCOGroundTruth",
    "VCOCOImageTruth",
    "agent_detections",
    "evaluate_vcoco",
    "split_action_role",
    "vcoco_ground_truth",
]

SCENARIOS = ("scenario_1", "scenario_2")
AGENT = "agent"
SCENARIO_TITLES = {"scenario_1": "Scenario 1", "scenario_2": "Scenario 2", AGENT: "Agent"}


@dataclass(frozen=True)
class SummaryRow:
    """One row of metrics.csv: a scenario's AP_role or the agent AP (percent; NaN when not computed)."""

    setting: str
    ap_role: float
    ap_agent: float
    num_classes: int  # classes (scenarios) or actions (agent) in the mean
    num_gt: int  # their ground-truth (person, class) instances
    num_detections: int  # detections counted (those matched to ignored persons are skipped)
    note: str


@dataclass(frozen=True)
class RoleEvaluationResult:
    """V-COCO result: per-class role AP of each computed scenario, per-action agent AP, and notes."""

    role_names: tuple[str, ...]
    action_names: tuple[str, ...]
    scenarios: tuple[ClassAP, ...]  # the computed scenarios
    agent: ClassAP | None = None  # per action; None when not computed
    requested: tuple[str, ...] = SCENARIOS
    notes: dict[str, str] = field(default_factory=dict)  # setting -> why it is missing or approximate

    def scenario(self, name: str) -> ClassAP:
        for result in self.scenarios:
            if result.setting == name:
                return result
        reason = self.notes.get(name, "")
        raise KeyError(f"scenario '{name}' was not computed{': ' + reason if reason else ''}")

    def role_map(self, name: str) -> float:
        """Mean role AP (percent) of a scenario over the action-role classes with ground truth."""
        return 100.0 * self.scenario(name).mean()

    def agent_map(self) -> float:
        """Mean agent AP (percent) over the predictable actions with ground truth; NaN when not computed."""
        return float("nan") if self.agent is None else 100.0 * self.agent.mean()

    def summary(self) -> list[SummaryRow]:
        """Rows of metrics.csv: each requested scenario, then the agent."""
        computed = {s.setting: s for s in self.scenarios}
        rows = []
        for name in [*self.requested, AGENT]:
            result = self.agent if name == AGENT else computed.get(name)
            if result is None:
                rows.append(SummaryRow(name, float("nan"), float("nan"), 0, 0, 0, self.notes.get(name, "")))
                continue
            used = ~np.isnan(result.ap)
            value = 100.0 * result.mean()
            rows.append(
                SummaryRow(
                    setting=name,
                    ap_role=float("nan") if name == AGENT else value,
                    ap_agent=value if name == AGENT else float("nan"),
                    num_classes=int(used.sum()),
                    num_gt=int(result.num_gt[used].sum()),
                    num_detections=int(result.num_detections.sum()),
                    note=self.notes.get(name, ""),
                )
            )
        return rows


def vcoco_ground_truth(annotations: HOIAnnotations) -> VCOCOGroundTruth:
    """The person-level ground truth of a V-COCO split: the one its reader built, or (for plain
    `HOIAnnotations` whose verbs are action-role classes) one rebuilt from its pairs, incomplete."""
    if isinstance(annotations, VCOCOAnnotations) and annotations.ground_truth is not None:
        return annotations.ground_truth
    return ground_truth_from_pairs(
        annotations.images,
        annotations.vocabulary.verbs,
        f"{annotations.source or 'these annotations'}: only annotated pairs, not every person with its actions",
    )


def _flatten(truths: tuple[VCOCOImageTruth, ...], num_actions: int, num_roles: int):
    """Persons of the split as arrays, plus one sentinel person (no box, no action) at index H."""
    counts = np.array([len(t.boxes) for t in truths], dtype=np.int64)
    person_image = np.repeat(np.arange(len(truths)), counts)  # (H,)
    boxes = np.concatenate([t.boxes for t in truths] + [np.zeros((1, 4), dtype=np.float32)])  # (H + 1, 4)
    ignore = np.concatenate([t.ignore for t in truths] + [np.zeros(1, dtype=bool)])  # (H + 1,)
    actions = np.concatenate([t.actions.reshape(-1, num_actions) for t in truths] + [np.zeros((1, num_actions), bool)])
    role_boxes = np.concatenate(
        [t.role_boxes.reshape(-1, num_roles, 4) for t in truths] + [np.full((1, num_roles, 4), np.nan, np.float32)]
    )  # (H + 1, R, 4)
    return person_image, boxes, ignore, actions, role_boxes


def _match_agents(
    image: np.ndarray, agents: np.ndarray, person_image: np.ndarray, person_boxes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(K,) best agent IoU and matched person (the sentinel H where the image has no person)."""
    h = len(person_image)
    pair_det, pair_person = group_pairs(image, person_image)
    iou = iou_inclusive(agents[pair_det], person_boxes[pair_person])
    best, person = best_targets(iou, pair_det, pair_person, len(image))
    person[person < 0] = h
    return best, person


def agent_detections(detections: DetectionArrays, role_action: np.ndarray) -> DetectionArrays:
    """Person detections per action: one row per (image, agent box, action), its best score over the
    action's classes (`verb` holds the action); rows in order of first appearance."""
    if len(detections) == 0:
        return detections
    action = np.asarray(role_action)[detections.verb]
    key = np.column_stack([
        detections.image, detections.boxes_h.astype(np.float32).view(np.int32).astype(np.int64), action,
    ])  # fmt: skip
    _, first, group = np.unique(key, axis=0, return_index=True, return_inverse=True)
    group = group.reshape(-1)
    score = np.full(len(first), -np.inf, dtype=np.float32)
    np.maximum.at(score, group, detections.score)
    order = np.argsort(first, kind="stable")  # groups in order of first appearance
    rows = first[order]
    return DetectionArrays(
        image=detections.image[rows],
        boxes_h=detections.boxes_h[rows],
        boxes_o=np.zeros((len(rows), 4), dtype=np.float32),
        hoi=np.zeros(len(rows), dtype=np.int64),
        verb=action[rows],
        score=score[order],
    )


def evaluate_vcoco(
    ground_truth: VCOCOGroundTruth,
    detections: DetectionArrays,
    *,
    scenarios: tuple[str, ...] = SCENARIOS,
    iou_threshold: float = 0.5,
) -> RoleEvaluationResult:
    """Role AP per action-role class (the detections' `verb`) in each scenario, and agent AP per action."""
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown V-COCO scenario(s) {unknown}; allowed: {list(SCENARIOS)}")
    r, num_actions = len(ground_truth.role_names), len(ground_truth.action_names)
    if len(detections) and (detections.verb.min() < 0 or detections.verb.max() >= r):
        raise ValueError(f"detections name an action-role class outside 0..{r - 1}")
    if len(detections) and detections.image.max() >= len(ground_truth.images):
        raise ValueError("detections name an image outside the ground truth")
    person_image, person_boxes, ignore, actions, role_boxes = _flatten(ground_truth.images, num_actions, r)
    h = len(person_image)
    role_action = ground_truth.role_action
    positive = actions[:, role_action]  # (H + 1, R) the person does the class's action
    num_gt = positive.sum(axis=0)  # (R,) persons doing each class's action (ignored ones do nothing)

    order = detections.ranking(detections.verb)  # (K,) ranking order
    role = detections.verb[order]
    image = detections.image[order]
    agent_iou, person = _match_agents(image, official_boxes(detections.boxes_h[order]), person_image, person_boxes)
    counted = ~ignore[person]  # detections matched to a person without action annotation are skipped
    raw_roles = detections.boxes_o[order].astype(np.float32)
    no_role_predicted = np.all(raw_roles == 0, axis=1) | np.all(np.isnan(raw_roles), axis=1)
    gt_role = role_boxes[person, role]  # (K, 4)
    role_absent = np.any(np.isnan(gt_role), axis=1)
    role_iou = np.zeros(len(order))
    role_iou[~role_absent] = iou_inclusive(gt_role[~role_absent], official_boxes(raw_roles[~role_absent]))
    true_action = positive[person, role]

    notes: dict[str, str] = {}
    results = []
    for scenario in scenarios:
        if scenario == "scenario_1" and not ground_truth.complete:
            notes[scenario] = f"not computed: {ground_truth.limitation}"
            log.warning("V-COCO scenario 1 not computed: %s", ground_truth.limitation)
            continue
        role_ok = role_iou.copy()
        role_ok[role_absent] = no_role_predicted[role_absent] if scenario == "scenario_1" else 1.0
        candidate = true_action & (agent_iou >= iou_threshold) & (role_ok >= iou_threshold) & counted
        true_positive = first_claims(candidate, role * (h + 1) + person)
        results.append(class_ap(scenario, role[counted], true_positive[counted], num_gt, "voc"))
        if not ground_truth.complete:
            notes[scenario] = f"approximate: {ground_truth.limitation}"
            log.warning("V-COCO %s is approximate: %s", scenario, ground_truth.limitation)
    missing = int(np.sum(num_gt == 0))
    if missing:
        log.warning("%d of %d action-role classes have no ground truth: AP NaN, left out of the mean", missing, r)

    agent = None
    if ground_truth.complete:
        agent = _agent_ap(detections, role_action, person_image, person_boxes, ignore, actions, iou_threshold)
        if ground_truth.agent_only:
            notes[AGENT] = (
                f"mean over the actions with an object role; agent-only actions ({', '.join(ground_truth.agent_only)}) "
                "have no human-object pair to predict and are left out"
            )
    else:
        notes[AGENT] = f"not computed: {ground_truth.limitation}"
    return RoleEvaluationResult(
        role_names=ground_truth.role_names,
        action_names=ground_truth.action_names,
        scenarios=tuple(results),
        agent=agent,
        requested=tuple(scenarios),
        notes=notes,
    )


def _agent_ap(
    detections: DetectionArrays,
    role_action: np.ndarray,
    person_image: np.ndarray,
    person_boxes: np.ndarray,
    ignore: np.ndarray,
    actions: np.ndarray,
    iou_threshold: float,
) -> ClassAP:
    """Per-action agent AP (`_do_agent_eval`); NaN for actions no class predicts."""
    h, num_actions = len(person_image), actions.shape[1]
    people = agent_detections(detections, role_action)
    order = people.ranking(people.verb)
    action = people.verb[order]
    iou, person = _match_agents(people.image[order], official_boxes(people.boxes_h[order]), person_image, person_boxes)
    counted = ~ignore[person]
    candidate = actions[person, action] & (iou >= iou_threshold) & counted
    true_positive = first_claims(candidate, action * (h + 1) + person)
    result = class_ap(AGENT, action[counted], true_positive[counted], actions.sum(axis=0), "voc")
    predictable = np.zeros(num_actions, dtype=bool)
    predictable[role_action] = True
    return dataclasses.replace(
        result,
        ap=np.where(predictable, result.ap, np.nan),
        recall=np.where(predictable, result.recall, np.nan),
    )
