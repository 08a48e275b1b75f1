"""HICO-DET mAP (official MATLAB protocol) and V-COCO role and agent AP (official vsrl_eval.py protocol).

Pure functions on NumPy arrays (no torch, no files): build `DetectionArrays`, call
`evaluate_hicodet` or `evaluate_vcoco`, and write the tables with `evaluation.tables`.
"""

from hoi_pipeline.evaluation.average_precision import ClassAP, eleven_point_ap, matlab_colon, voc_ap
from hoi_pipeline.evaluation.detections import DetectionArrays, from_columns, from_hoi_detections
from hoi_pipeline.evaluation.hicodet import EvaluationResult, MeanAP, evaluate_hicodet
from hoi_pipeline.evaluation.vcoco import (
    RoleEvaluationResult,
    VCOCOGroundTruth,
    VCOCOImageTruth,
    evaluate_vcoco,
    vcoco_ground_truth,
)

__all__ = [
    "ClassAP",
    "DetectionArrays",
    "EvaluationResult",
    "MeanAP",
    "RoleEvaluationResult",
    "VCOCOGroundTruth",
    "VCOCOImageTruth",
    "eleven_point_ap",
    "evaluate_hicodet",
    "evaluate_vcoco",
    "from_columns",
    "from_hoi_detections",
    "matlab_colon",
    "vcoco_ground_truth",
    "voc_ap",
]
