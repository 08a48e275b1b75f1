"""Human and object proposals: detector backends, label mapping and post-processing.

`build_proposal_extractor` gives a ready detector for the torchvision or detectron2 backend; the
`precomputed` backend imports detections from a json instead (`precomputed.import_precomputed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hoi_pipeline.config import DetectorConfig
    from hoi_pipeline.detection.extractor import ProposalExtractor

__all__ = ["build_proposal_extractor"]


def build_proposal_extractor(detector: DetectorConfig, objects: Sequence[str], device: str) -> ProposalExtractor:
    """A detector whose `extract(images, filenames)` gives post-processed proposals in the order of `objects`.

    `device` is auto, cpu, cuda or cuda:N (it overrides `detector.device`).
    """
    from hoi_pipeline.devices import resolve_device

    if detector.backend == "precomputed":
        raise ValueError(
            "detector.backend 'precomputed' imports detections made elsewhere and cannot run on new images; "
            "use a detector with backend torchvision or detectron2"
        )
    torch_device = resolve_device(device, "detector.device")
    if detector.backend == "torchvision":
        from hoi_pipeline.detection.torchvision_backend import build_torchvision_extractor

        return build_torchvision_extractor(detector, objects, torch_device)
    if detector.backend == "detectron2":
        from hoi_pipeline.detection.detectron2_backend import build_detectron2_extractor

        return build_detectron2_extractor(detector, objects, torch_device)
    raise ValueError(f"detector.backend: '{detector.backend}' is not one of torchvision, detectron2, precomputed")
