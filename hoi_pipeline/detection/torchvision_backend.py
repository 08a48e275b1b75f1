"""torchvision Faster R-CNN backend (default: `fasterrcnn_resnet50_fpn_v2`, COCO box AP 46.7).

Weights are torchvision's COCO weights, fetched into torch's hub cache when the machine can reach
them, or a local state_dict file (`detector.weights`) loaded with `weights_only=True`. The class
names of a COCO model come from the weights' metadata (91 ids: background, 80 classes, 'N/A' gaps)
and are matched to the dataset's objects by name unless `detector.label_map` says otherwise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision.models import get_model_builder, get_model_weights
from torchvision.ops import clip_boxes_to_image

from hoi_pipeline.artifacts import file_digest
from hoi_pipeline.config import DetectorConfig
from hoi_pipeline.detection.extractor import ProposalExtractor, RawDetections
from hoi_pipeline.detection.label_map import build_label_table
from hoi_pipeline.detection.postprocess import PostprocessSettings

log = logging.getLogger(__name__)

FASTER_RCNN_MODELS = (
    "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
)
CLASSIFIER_KEY = "roi_heads.box_predictor.cls_score.weight"


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A weights file as a state_dict (plain, or under a 'model' / 'state_dict' key); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: detector weights file not found (detector.weights)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError or EOFError on bad files
        raise ValueError(f"{path}: not a loadable weights file ({type(error).__name__}: {error})") from error
    for key in ("model", "state_dict"):
        if isinstance(payload, dict) and isinstance(payload.get(key), dict):
            payload = payload[key]
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise ValueError(f"{path}: expected a state_dict of tensors")
    return payload


def check_state_dict_fits(model: nn.Module, state: dict[str, torch.Tensor], path: str, name: str) -> None:
    """A readable error when weights were saved from another architecture."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    reshaped = [key for key in expected if key in state and state[key].shape != expected[key].shape]
    if missing or unexpected or reshaped:
        problems = [
            f"{len(keys)} {what} (first: {keys[0]})"
            for keys, what in (
                (missing, "missing keys"),
                (unexpected, "unexpected keys"),
                (reshaped, "tensors of another shape"),
            )
            if keys
        ]
        raise ValueError(f"{path}: does not fit detector.model '{name}': " + ", ".join(problems))


def build_torchvision_detector(config: DetectorConfig) -> tuple[nn.Module, list[str], str]:
    """The detector in eval mode, its class names by label id, and the identity of its weights."""
    if config.model not in FASTER_RCNN_MODELS:
        raise ValueError(
            f"detector.model: '{config.model}' is not one of torchvision's Faster R-CNN builders {list(FASTER_RCNN_MODELS)}"
        )
    builder = get_model_builder(config.model)
    coco_weights = get_model_weights(config.model).DEFAULT
    classes = list(coco_weights.meta["categories"])
    kwargs: dict = {
        "box_score_thresh": config.detector_score_threshold,
        "box_nms_thresh": config.nms_threshold,
        "box_detections_per_img": config.max_detections,
    }
    if config.min_size is not None:
        kwargs["min_size"] = config.min_size
    if config.max_size is not None:
        kwargs["max_size"] = config.max_size

    if config.weights is not None:
        state = load_state_dict(config.weights)
        if CLASSIFIER_KEY not in state:
            raise ValueError(f"{config.weights}: no '{CLASSIFIER_KEY}'; not the weights of a torchvision Faster R-CNN")
        num_classes = int(state[CLASSIFIER_KEY].shape[0])
        model = builder(weights=None, weights_backbone=None, num_classes=num_classes, **kwargs)
        check_state_dict_fits(model, state, config.weights, config.model)
        model.load_state_dict(state)
        if num_classes != len(classes):
            if config.label_map is None:
                raise ValueError(
                    f"{config.weights}: the detector has {num_classes} classes, not COCO's {len(classes)}; "
                    "give detector.label_map (json: detector label id -> dataset object index)"
                )
            classes = [str(i) for i in range(num_classes)]
        identity = f"file:{Path(config.weights).name}:sha256:{file_digest(config.weights)}"
    else:
        try:
            model = builder(weights=coco_weights, **kwargs)
        except OSError as error:  # URLError, HTTPError, socket errors
            raise ValueError(
                f"cannot fetch torchvision's {coco_weights} weights ({error}); download {coco_weights.url} "
                "on a machine with internet access and set detector.weights to the file"
            ) from error
        identity = f"torchvision:{coco_weights}"
    return model.eval(), classes, identity


class TorchvisionExtractor(ProposalExtractor):
    """Batched inference of a torchvision detector (autocast on CUDA)."""

    def __init__(self, model: nn.Module, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model = model.to(self.device).eval()

    @torch.inference_mode()
    def detect(self, images: list[torch.Tensor]) -> list[RawDetections]:
        batch = [image.to(self.device, non_blocking=True).float().div_(255.0) for image in images]
        with self.autocast():
            outputs = self.model(batch)  # resizes internally and maps boxes back to the input size
        # the boxes mapped back to the input size can overshoot its edge by a rounding error
        return [
            RawDetections(
                boxes=clip_boxes_to_image(out["boxes"].float(), image.shape[-2:]).cpu().numpy(),
                scores=out["scores"].float().cpu().numpy(),
                labels=out["labels"].cpu().numpy(),
            )
            for out, image in zip(outputs, images)
        ]


def build_torchvision_extractor(
    config: DetectorConfig, objects: Sequence[str], device: torch.device
) -> TorchvisionExtractor:
    model, classes, weights = build_torchvision_detector(config)
    label_table = build_label_table(classes, objects, config.label_map)
    log.info(
        "torchvision %s (%s) on %s, %d of %d detector classes mapped to the dataset's %d objects",
        config.model, weights, device, int((label_table >= 0).sum()), len(classes), len(objects),
    )  # fmt: skip
    return TorchvisionExtractor(
        model,
        objects=objects,
        label_table=label_table,
        settings=PostprocessSettings.from_config(config),
        device=device,
        precision=config.precision,
        identity={"backend": "torchvision", "model": config.model, "weights": weights},
    )
