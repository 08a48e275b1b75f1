"""The bi-level model (paper Sec. 3.2): a global image branch and a local pair branch on one CLIP backbone.

    images (B, 3, H, W) --backbone--> layer3 / layer4 feature maps
      global: v_g = attention_pool(layer4 cells of the image)   s_g = HOIRecognitionNetwork(v_g, W_T) (B, N)
      local:  for every (human, object) proposal pair of an image
              v_h, v_o = attention_pool(RoIAlign(features, box))                             (P, Dv)
              v_sp = SpatialEncoder(encode_box_pairs(box_h, box_o))                          (P, spatial)
              v_p  = F_E([v_h; v_o; v_sp])                                                   (P, hidden)
              v^_p = KnowledgeTransferNetwork(v_p, v_u = pooled union box, W_T detached)     (P, hidden)
              s_p, s_b = PairwiseClassificationNetwork(v^_p)                                 (P, A), (P,)

Inputs are batches of images of any size (a multiple of 32; `hoi_pipeline/datasets/hoi_images.py`
resizes each image to `model.input_size` on its longer side and pads a batch to its largest image).
v_g pools only the layer4 cells of each image's content, with CLIP's positional embedding
interpolated to that image's own grid (20 x 15 for a 640 x 480 image), so it does not depend on
the padding a batch needs; RoIs are pooled on the 7 x 7 grid CLIP was trained on.

RoI features come from layer4, or from layer4 plus layer3 (`model.feature_layers`): the layer3 map
goes through a 1x1 convolution P3 to layer4's width, initialised at zero so training starts from the
layer4-only model, and its RoI grid is added to layer4's before the attention pool. RoIs are pooled
from the attention pool's projections of the whole maps (`backbone.project_qkv`), exactly equal to
pooling each RoI grid and far cheaper with many pairs. The pairs of the whole batch come from one
`enumerate_batch_pairs` call (`pair_batch`; the training step makes them on the host and passes
them in, so the forward pass never waits for the device). `build_model` is the one place that wires
the components from the config; `forward` only predicts (losses live in `hoi_pipeline/losses.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from hoi_pipeline.config import ClipConfig, ModelConfig
from hoi_pipeline.modeling.backbone import (
    FEATURE_STRIDES,
    CLIPResNetBackbone,
    QKVProjection,
    TorchvisionResNetBackbone,
    VisualBackbone,
    align_rois,
    build_detector_fpn_backbone,
    load_torchvision_resnet50,
    pool_roi_tokens,
    project_qkv,
    stack_qkv,
)
from hoi_pipeline.modeling.hoi_recognition import HOIRecognitionNetwork
from hoi_pipeline.modeling.knowledge_bank import KnowledgeBank, random_bank
from hoi_pipeline.modeling.knowledge_transfer import KnowledgeTransferNetwork, PairFeatureEncoder
from hoi_pipeline.modeling.pairing import BatchPairs, pair_images, union_boxes
from hoi_pipeline.modeling.pairwise_classification import PairwiseClassificationNetwork
from hoi_pipeline.modeling.spatial_encoding import SpatialEncoder, encode_box_pairs
from hoi_pipeline.structures import ModelOutput, Vocabulary


class BiLevelHOIModel(nn.Module):
    """The whole network; see the module docstring. Built by `build_model`."""

    def __init__(
        self,
        *,
        backbone: VisualBackbone,
        bank: KnowledgeBank,
        hoi_recognition: HOIRecognitionNetwork | None,
        spatial_encoder: SpatialEncoder,
        pair_encoder: PairFeatureEncoder,
        knowledge_transfer: KnowledgeTransferNetwork,
        pairwise: PairwiseClassificationNetwork,
        person: int,
        num_verbs: int,
        feature_layers: Sequence[str] = ("layer4",),
        roi_size: int = 7,
        max_pairs: int = 256,
        freeze_batchnorm: bool = True,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.bank = bank
        self.hoi_recognition = hoi_recognition
        self.spatial_encoder = spatial_encoder
        self.pair_encoder = pair_encoder
        self.knowledge_transfer = knowledge_transfer
        self.pairwise = pairwise
        self.person = person
        self.num_verbs = num_verbs
        self.feature_layers = tuple(feature_layers)
        self.roi_size = roi_size
        self.max_pairs = max_pairs
        self.freeze_batchnorm = freeze_batchnorm
        # channels-last convolutions: faster on CPUs (oneDNN) and on GPU tensor cores
        self.backbone.to(memory_format=torch.channels_last)
        if "layer3" in self.feature_layers:
            self.layer3_projection = nn.Conv2d(backbone.channels["layer3"], backbone.channels["layer4"], kernel_size=1)
            nn.init.zeros_(self.layer3_projection.weight)
            nn.init.zeros_(self.layer3_projection.bias)

    # ---------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> BiLevelHOIModel:
        """Like nn.Module.train, but backbone BatchNorm layers stay in eval mode when frozen."""
        super().train(mode)
        if self.freeze_batchnorm:
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(pretrained backbone parameters, all other trainable parameters), for the two learning rates."""
        backbone = [p for p in self.backbone.pretrained_parameters() if p.requires_grad]
        ids = {id(p) for p in backbone}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return backbone, rest

    # ---------------------------------------------------------------------------------------
    def forward(
        self,
        images: torch.Tensor,
        boxes: Sequence[torch.Tensor],
        labels: Sequence[torch.Tensor],
        scores: Sequence[torch.Tensor] | None = None,
        image_sizes: torch.Tensor | None = None,
        max_pairs: int | None = None,
        pairs: BatchPairs | None = None,
    ) -> ModelOutput:
        """Predict for B images.

        images (B, 3, H, W) normalised; boxes[b] (M_b, 4) proposals in input pixels; labels[b] (M_b,)
        dataset object classes; scores[b] (M_b,) detector scores (rank pairs beyond `max_pairs`);
        image_sizes (B, 2) (height, width) of the image content inside the padded input (default: H, W);
        on the host, the global branch's grouping by content grid needs no synchronisation.
        `pairs`: `pair_batch(labels, scores, max_pairs)` made ahead, e.g. on the host (then the
        forward pass never waits for the device); made here when None.
        """
        batch = images.shape[0]
        if len(boxes) != batch or len(labels) != batch:
            raise ValueError(f"got {batch} images but {len(boxes)} box sets and {len(labels)} label sets")
        device = images.device
        if image_sizes is None:
            image_sizes = torch.tensor([images.shape[-2:]] * batch)
        host_sizes = image_sizes  # read by the global branch on the host: pass a host tensor to avoid a sync
        image_sizes = image_sizes.to(device, non_blocking=True)
        features = self.backbone(images.contiguous(memory_format=torch.channels_last))

        # global branch: image-level HOI recognition
        num_classes = self.bank.num_classes
        if self.hoi_recognition is not None:
            v_g = self._pool_images(features["layer4"], host_sizes)  # (B, Dv)
            global_logits = self.hoi_recognition(v_g, self.bank.for_global())  # (B, N)
        else:
            global_logits = torch.zeros(batch, num_classes, device=device)

        # local branch: pairs of each image's proposals, the whole batch at once
        if pairs is None:
            pairs = self.pair_batch(labels, scores, max_pairs)
        pairs = pairs.to(device, non_blocking=True)
        if len(pairs) == 0:  # the number of pairs is known on the host: no synchronisation
            empty = global_logits.new_zeros((0, self.num_verbs))
            return ModelOutput(global_logits, empty, empty[:, 0], pairs.pairs, pairs.pair_image)

        flat_boxes = torch.cat([b.to(device=device, dtype=torch.float32) for b in boxes])  # (M, 4)
        box_image = pairs.proposal_image  # (M,)
        qkv_maps = self._qkv_maps(features)
        v_box = self._pool_rois(qkv_maps, flat_boxes, box_image)  # (M, Dv)
        human, obj, pair_image = pairs.flat[:, 0], pairs.flat[:, 1], pairs.pair_image  # (P,) flat proposal indices
        boxes_h, boxes_o = flat_boxes[human], flat_boxes[obj]  # (P, 4)

        v_sp = self.spatial_encoder(encode_box_pairs(boxes_h, boxes_o, image_sizes[pair_image]))  # (P, spatial)
        v_p = self.pair_encoder(v_box[human], v_box[obj], v_sp.to(v_box.dtype))  # (P, hidden)
        v_u = None
        if self.knowledge_transfer.needs_union_features:
            v_u = self._pool_rois(qkv_maps, union_boxes(boxes_h, boxes_o), pair_image)  # (P, Dv)
        refined = self.knowledge_transfer(v_p, v_u, self.bank.for_local())  # (P, hidden)
        pair_logits, relatedness_logits = self.pairwise(refined)  # (P, A), (P,)
        return ModelOutput(global_logits, pair_logits, relatedness_logits, pairs.pairs, pair_image)

    def pair_batch(
        self,
        labels: Sequence[torch.Tensor],
        scores: Sequence[torch.Tensor] | None = None,
        max_pairs: int | None = None,
    ) -> BatchPairs:
        """The (human, object) pairs of B images' proposals, on the proposals' device (`pairing.pair_images`).

        Pairing has data-dependent shapes: on a GPU it waits for the device. The training step calls
        it on the host copy of a batch and hands the pairs to `forward`, which then never waits.
        """
        return pair_images(labels, self.person, scores, self.max_pairs if max_pairs is None else max_pairs)

    def _pool_images(self, layer4: torch.Tensor, image_sizes: torch.Tensor) -> torch.Tensor:
        """(B, C4, h, w) layer4 maps -> (B, Dv) v_g, each image pooled over its own content cells.

        The attention pool's query is the mean of exactly the image's content cells, and CLIP's
        positional embedding is interpolated to that image's grid (`attention_pool`); images with the
        same content grid are pooled in one call. Images of different grids cannot share a call without
        changing v_g (a masked pool over the padded grid would interpolate one embedding for all and sum
        in another order), so there is one call per distinct grid: one for a batch of one aspect ratio
        (pooled without indexing), a few for HICO-DET's mix of landscape and portrait images.
        The grids are read from `image_sizes` (B, 2) on the host: from a host tensor, no synchronisation.
        """
        grids = [tuple(g) for g in content_grids(image_sizes, layer4.shape[-2:], FEATURE_STRIDES["layer4"]).tolist()]
        groups = sorted(set(grids))
        if len(groups) == 1:
            rows, cols = groups[0]
            # copied as indexing copies (same memory layout, so the pool sums in the same order)
            return self.backbone.pool(layer4[:, :, :rows, :cols].clone(memory_format=torch.preserve_format))
        members = [[b for b, grid in enumerate(grids) if grid == group] for group in groups]
        order = torch.tensor([b for images in members for b in images])  # (B,) images grouped by grid
        index = order.to(layer4.device, non_blocking=True)
        pooled, start = [], 0
        for (rows, cols), images in zip(groups, members):
            chosen = index[start : start + len(images)]
            pooled.append(self.backbone.pool(layer4[chosen, :, :rows, :cols]))  # (B_g, Dv)
            start += len(images)
        inverse = torch.argsort(order).to(layer4.device, non_blocking=True)  # (B,) back to batch order
        return torch.cat(pooled)[inverse]

    def _qkv_maps(self, features: dict[str, torch.Tensor]) -> RoISources:
        """Attention-pool projections of the RoI source maps, once per batch (see `project_qkv`)."""
        if hasattr(self.backbone, "pool_rois"):  # RN50-FPN(COCO) pools RoIs from its own pyramid (backbone.py)
            return RoISources(features, None)
        pool = self.backbone.attnpool
        projection = stack_qkv(pool, features["layer4"].dtype)  # one copy for the whole pass (`stack_qkv`)
        maps = {"layer4": project_qkv(pool, features["layer4"], projection)}  # (B, 3 C4, H, W)
        if "layer3" in self.feature_layers:
            layer3 = self.layer3_projection(features["layer3"])  # (B, C4, 2H, 2W)
            maps["layer3"] = project_qkv(pool, layer3, projection)  # (B, 3 C4, 2H, 2W)
        return RoISources(maps, projection)

    def _pool_rois(self, sources: RoISources, boxes: torch.Tensor, box_image: torch.Tensor) -> torch.Tensor:
        """(K, 4) boxes of images `box_image` (K,) -> (K, Dv) attention-pooled RoI features.

        The RoI grid is RoIAlign(layer4) [+ RoIAlign(P3 layer3)], pooled by the backbone's attention
        pool; computed on the projected maps, which gives the same result at a fraction of the cost.
        """
        if sources.projection is None:  # RN50-FPN(COCO): multi-scale RoI-Align (backbone.py)
            return self.backbone.pool_rois(sources.maps, boxes, box_image)
        rois = torch.cat([box_image[:, None].to(boxes.dtype), boxes], dim=1)  # (K, 5)
        grid = None
        for name, qkv in sources.maps.items():
            aligned = align_rois(qkv, rois, self.roi_size, 1.0 / FEATURE_STRIDES[name])
            grid = aligned if grid is None else grid + aligned  # (K, 3 C4, R, R)
        return pool_roi_tokens(self.backbone.attnpool, grid, sources.projection)


@dataclass(frozen=True)
class RoISources:
    """What a forward pass pools RoIs from (`BiLevelHOIModel._qkv_maps`).

    maps: the attention pool's q / k / v projections of each RoI source map, (B, 3 C4, H, W) by layer
    name, and projection: the stacked weights they were made with, which `pool_roi_tokens` reuses; or,
    for a backbone that pools RoIs itself (RN50-FPN(COCO)), its feature maps and None.
    """

    maps: dict[str, torch.Tensor]
    projection: QKVProjection | None


def content_grids(image_sizes: torch.Tensor, grid: Sequence[int], stride: int) -> torch.Tensor:
    """(B, 2) content (height, width) -> (B, 2) feature cells (rows, cols) that see image content.

    A cell covers input pixels [i * stride, (i + 1) * stride); it counts when it starts inside the image.
    """
    cells = torch.div(image_sizes.long() + stride - 1, stride, rounding_mode="floor")  # ceil
    limit = torch.tensor(list(grid), device=cells.device)
    return torch.minimum(cells.clamp(min=1), limit)


def build_model(
    *,
    clip: ClipConfig,
    model: ModelConfig,
    vocabulary: Vocabulary,
    bank_embeddings: torch.Tensor | None,
    max_pairs: int = 256,
    seed: int = 0,
    visual: nn.Module | None = None,
    pretrained: bool = True,
) -> BiLevelHOIModel:
    """Wire the model of a config.

    bank_embeddings (N, D): the knowledge bank file's embeddings (CLIP text); with `bank_source:
    random` a seeded random bank of the same shape replaces them (None allowed, D = visual D).
    `visual`: a ready CLIP visual tower (tests); default `load_clip(clip)`'s. `pretrained=False`
    builds the architecture without loading any weights (to load a trained state dict next).
    """
    num_classes = vocabulary.num_classes
    if bank_embeddings is not None and bank_embeddings.shape[0] != num_classes:
        raise ValueError(
            f"the knowledge bank has {bank_embeddings.shape[0]} rows but the dataset has {num_classes} HOI classes"
        )
    if model.kind != "bilevel":  # Table 3 Abl 1 / Abl 3: CLIP zero-shot scores (modeling/zero_shot.py)
        from hoi_pipeline.modeling.zero_shot import build_table3_model

        return build_table3_model(  # type: ignore[return-value]
            clip=clip, model=model, vocabulary=vocabulary, bank_embeddings=bank_embeddings, max_pairs=max_pairs,
            seed=seed, visual=visual, pretrained=pretrained,
        )  # fmt: skip
    if model.backbone_source == "clip":
        if visual is None:
            import dataclasses

            from hoi_pipeline.modeling.clip_loading import load_clip

            source = clip if pretrained else dataclasses.replace(clip, pretrained=None)
            visual = load_clip(source).visual
        backbone: VisualBackbone = CLIPResNetBackbone(visual)
    elif model.backbone_source == "coco_detector_fpn":  # Exp 8-10 "RN50-FPN(COCO)" (backbone.py)
        if bank_embeddings is None or model.feature_layers != ("layer4",):
            raise ValueError(
                "backbone_source 'coco_detector_fpn' needs the bank (to size its attention pool) and "
                "model.feature_layers ['layer4'] (its RoIs come from the whole pyramid P2-P5)"
            )
        backbone = build_detector_fpn_backbone(
            embed_dim=int(bank_embeddings.shape[1]), weights=model.backbone_weights, roi_size=model.roi_size,
            pretrained=pretrained,
        )  # fmt: skip
    else:
        if bank_embeddings is None:
            raise ValueError(f"backbone_source '{model.backbone_source}' needs the bank to size its attention pool")
        import torchvision

        resnet = (
            load_torchvision_resnet50(model.backbone_source, model.backbone_weights)
            if pretrained
            else torchvision.models.resnet50(weights=None)
        )
        backbone = TorchvisionResNetBackbone(resnet, embed_dim=int(bank_embeddings.shape[1]))

    if bank_embeddings is None or model.bank_source == "random":
        dim = backbone.embed_dim if bank_embeddings is None else int(bank_embeddings.shape[1])
        bank_embeddings = random_bank(num_classes, dim, seed)
    bank = KnowledgeBank(torch.as_tensor(bank_embeddings), trainable=model.bank_trainable)

    hoi_recognition = None
    if model.use_hoi_recognition:
        hoi_recognition = HOIRecognitionNetwork(
            visual_dim=backbone.embed_dim,
            bank_dim=bank.dim,
            logits=model.global_logits,
            scale_init=model.logit_scale_init,
            bias_init=model.logit_bias_init,
        )
    return BiLevelHOIModel(
        backbone=backbone,
        bank=bank,
        hoi_recognition=hoi_recognition,
        spatial_encoder=SpatialEncoder(model.spatial_dim),
        pair_encoder=PairFeatureEncoder(
            visual_dim=backbone.embed_dim, spatial_dim=model.spatial_dim, hidden_dim=model.hidden_dim
        ),
        knowledge_transfer=KnowledgeTransferNetwork(
            hidden_dim=model.hidden_dim,
            visual_dim=backbone.embed_dim,
            bank_dim=bank.dim,
            enabled=model.use_knowledge_transfer,
            query=model.ktn_query,
            attention=model.ktn_attention,
            logits=model.ktn_logits,
            knowledge=model.ktn_knowledge,
            meta_projection=model.ktn_meta_projection,
            fk_without_ktn=model.fk_without_ktn,
        ),
        pairwise=PairwiseClassificationNetwork(hidden_dim=model.hidden_dim, num_verbs=vocabulary.num_verbs),
        person=vocabulary.person,
        num_verbs=vocabulary.num_verbs,
        feature_layers=model.feature_layers,
        roi_size=model.roi_size,
        max_pairs=max_pairs,
        freeze_batchnorm=model.freeze_batchnorm,
    )
