"""detectron2 backend: a model-zoo config (name or yaml path) and its weights.

detectron2 is optional and not on PyPI; when it is not importable, building this backend raises
an error that says how to install it. Its outputs (`{"instances": Instances}` with `pred_boxes`,
`scores`, `pred_classes`, boxes in absolute x1y1x2y2 continuous coordinates of the original image,
like ours) become proposals through the pure `proposals_from_detectron2`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hoi_pipeline.artifacts import file_digest
from hoi_pipeline.config import DetectorConfig
from hoi_pipeline.detection.extractor import ProposalExtractor, RawDetections, to_proposals
from hoi_pipeline.detection.label_map import build_label_table
from hoi_pipeline.detection.postprocess import PostprocessSettings
from hoi_pipeline.structures import Proposals

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "detectron2 is not installed (it is not on PyPI); install it with "
    "`pip install 'git+https://github.com/facebookresearch/detectron2.git'` (needs a C++ compiler; see "
    "https://detectron2.readthedocs.io/en/latest/tutorials/install.html), or use detector.backend: torchvision"
)


def _as_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu().numpy() if value.is_floating_point() else value.detach().cpu().numpy()
    return np.asarray(value)


def detectron2_to_raw(output: Mapping[str, Any]) -> RawDetections:
    """Boxes (M, 4), scores (M,) and contiguous class ids (M,) of one detectron2 output dict."""
    if "instances" not in output:
        raise ValueError(f"a detectron2 detection output has an 'instances' entry; got keys {sorted(output)}")
    instances = output["instances"]
    boxes = instances.pred_boxes
    boxes = getattr(boxes, "tensor", boxes)  # detectron2 `Boxes` wraps an (M, 4) tensor
    return RawDetections(
        boxes=_as_numpy(boxes).astype(np.float32).reshape(-1, 4),
        scores=_as_numpy(instances.scores).astype(np.float32).reshape(-1),
        labels=_as_numpy(instances.pred_classes).astype(np.int64).reshape(-1),
    )


def proposals_from_detectron2(
    output: Mapping[str, Any],
    filename: str,
    *,
    label_table: np.ndarray,
    person: int,
    settings: PostprocessSettings,
) -> Proposals:
    """One image's detectron2 output -> proposals in the dataset's object order, post-processed."""
    return to_proposals(filename, detectron2_to_raw(output), label_table=label_table, person=person, settings=settings)


def import_detectron2() -> Any:
    try:
        import detectron2
    except ImportError as error:
        raise ValueError(INSTALL_HINT) from error
    return detectron2


class Detectron2Extractor(ProposalExtractor):
    """Batched inference of a detectron2 model; it resizes as its config says and rescales boxes back."""

    def __init__(self, model: torch.nn.Module, cfg: Any, **kwargs) -> None:
        super().__init__(**kwargs)
        import detectron2.data.transforms as T

        self.model = model.to(self.device).eval()
        self.input_format = cfg.INPUT.FORMAT
        self.resize = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)

    @torch.inference_mode()
    def detect(self, images: list[torch.Tensor]) -> list[RawDetections]:
        inputs = []
        for image in images:
            array = image.permute(1, 2, 0).numpy()  # (H, W, 3) RGB uint8
            if self.input_format == "BGR":
                array = array[:, :, ::-1]
            height, width = array.shape[:2]
            resized = self.resize.get_transform(array).apply_image(np.ascontiguousarray(array))
            tensor = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1)).to(self.device)
            inputs.append({"image": tensor, "height": height, "width": width})
        with self.autocast():
            outputs = self.model(inputs)
        return [detectron2_to_raw(out) for out in outputs]


def build_detectron2_extractor(
    config: DetectorConfig, objects: Sequence[str], device: torch.device
) -> Detectron2Extractor:
    import_detectron2()
    from detectron2 import model_zoo
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.config import get_cfg
    from detectron2.data import MetadataCatalog
    from detectron2.modeling import build_model

    if config.detectron2_config is None:
        raise ValueError(
            "detector.detectron2_config: required for the detectron2 backend "
            "(a model-zoo name such as COCO-Detection/faster_rcnn_R_101_FPN_3x.yaml, or a yaml path)"
        )
    cfg = get_cfg()
    local = Path(config.detectron2_config)
    cfg.merge_from_file(str(local) if local.is_file() else model_zoo.get_config_file(config.detectron2_config))
    if config.weights is not None:
        if not Path(config.weights).is_file():
            raise FileNotFoundError(f"{config.weights}: detector weights file not found (detector.weights)")
        cfg.MODEL.WEIGHTS = config.weights
        weights = f"file:{Path(config.weights).name}:sha256:{file_digest(config.weights)}"
    else:
        cfg.MODEL.WEIGHTS = model_zoo.get_checkpoint_url(config.detectron2_config)
        weights = f"detectron2:{cfg.MODEL.WEIGHTS}"
    cfg.MODEL.DEVICE = str(device)
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = config.detector_score_threshold
    cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST = config.nms_threshold
    cfg.TEST.DETECTIONS_PER_IMAGE = config.max_detections
    if config.min_size is not None:
        cfg.INPUT.MIN_SIZE_TEST = config.min_size
    if config.max_size is not None:
        cfg.INPUT.MAX_SIZE_TEST = config.max_size
    cfg.freeze()
    model = build_model(cfg)
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    classes = list(MetadataCatalog.get(cfg.DATASETS.TEST[0]).get("thing_classes", []))
    if not classes:
        if config.label_map is None:
            raise ValueError(
                f"{config.detectron2_config}: no class names in its dataset metadata; give detector.label_map"
            )
        classes = [str(i) for i in range(cfg.MODEL.ROI_HEADS.NUM_CLASSES)]
    label_table = build_label_table(classes, objects, config.label_map)
    log.info("detectron2 %s (%s) on %s", config.detectron2_config, weights, device)
    return Detectron2Extractor(
        model,
        cfg,
        objects=objects,
        label_table=label_table,
        settings=PostprocessSettings.from_config(config),
        device=device,
        precision=config.precision,
        identity={"backend": "detectron2", "model": config.detectron2_config, "weights": weights},
    )
