"""Which protocol scores a split: HICO-DET mAP or V-COCO role AP, chosen by the annotation's benchmark.

`evaluate_split` is the one place that dispatches on `HOIAnnotations.benchmark`; `class_results`
gives the per-class AP of either result in the same shape (one `ClassAP` per setting or scenario,
the first being the headline: Default for HICO-DET, scenario 1 for V-COCO).
"""

from __future__ import annotations

from hoi_pipeline.config import EvalConfig
from hoi_pipeline.evaluation.average_precision import ClassAP
from hoi_pipeline.evaluation.detections import DetectionArrays
from hoi_pipeline.evaluation.hicodet import EvaluationResult, evaluate_hicodet
from hoi_pipeline.evaluation.vcoco import RoleEvaluationResult, evaluate_vcoco, vcoco_ground_truth
from hoi_pipeline.structures import HOIAnnotations

SplitResult = EvaluationResult | RoleEvaluationResult


def evaluate_split(annotations: HOIAnnotations, detections: DetectionArrays, eval_config: EvalConfig) -> SplitResult:
    """HICO-DET mAP (eval.settings) or V-COCO role AP (eval.scenarios) of a split's detections."""
    if annotations.benchmark == "vcoco":
        return evaluate_vcoco(
            vcoco_ground_truth(annotations),
            detections,
            scenarios=eval_config.scenarios,
            iou_threshold=eval_config.iou_threshold,
        )
    return evaluate_hicodet(
        annotations, detections, settings=eval_config.settings, iou_threshold=eval_config.iou_threshold
    )


def class_results(result: SplitResult) -> tuple[ClassAP, ...]:
    """Per-class AP of every evaluated setting (HICO-DET) or scenario (V-COCO), in evaluation order."""
    return result.scenarios if isinstance(result, RoleEvaluationResult) else result.settings


def class_names(result: SplitResult) -> tuple[str, ...]:
    """Names of the classes AP is taken over: HOI classes 'verb object', or V-COCO 'action role' pairs."""
    if isinstance(result, RoleEvaluationResult):
        return result.role_names
    vocabulary = result.vocabulary
    return tuple(vocabulary.class_name(c) for c in range(vocabulary.num_classes))
