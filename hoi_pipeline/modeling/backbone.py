"""Visual backbones (paper Sec. 4.1) and the attention pooling shared by the global and local branches.

A backbone maps images (B, 3, S, S) to named feature maps, `layer3` (B, C3, S/16, S/16) and `layer4`
(B, C4, S/32, S/32), and owns an attention pool (CLIP's `AttentionPool2d`) that turns a feature map,
or a RoI grid cut from it, into one D-dim vector in the CLIP joint embedding space.

- `CLIPResNetBackbone`: the CLIP ModifiedResNet visual encoder (RN50 / RN101 / tiny), all pretrained.
- `TorchvisionResNetBackbone`: the ResNet-50 body of torchvision's COCO Faster R-CNN or an ImageNet
  ResNet-50, with a new, randomly initialised attention pool of our own.
- `DetectorFPNBackbone` (Table 2 Exp 8-10, Table 3 "RN50-FPN(COCO)"): that detector's ResNet-50 *with its
  FPN*; RoIs are pooled from P2-P5 by the FPN level mapper, v_g from P5 (see the class docstring).

The stock `AttentionPool2d.forward` only accepts the pretrain grid (7x7 at 224 px); `attention_pool`
interpolates its positional embedding (bicubic, as when fine-tuning CLIP at another resolution) to
any grid and can ignore padded cells, so larger inputs and RoI grids of any size work.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from torchvision.ops import roi_align

from hoi_pipeline.segments import segment_counts

log = logging.getLogger(__name__)

FEATURE_STRIDES = {"layer3": 16, "layer4": 32}


def interpolate_positional_embedding(positional: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(1 + G*G, C) CLIP positional embedding (mean token first) -> (1 + height*width, C)."""
    cls_pos, grid_pos = positional[:1], positional[1:]
    side = math.isqrt(grid_pos.shape[0])
    assert side * side == grid_pos.shape[0], "the positional embedding is not a square grid"
    if (height, width) == (side, side):
        return positional
    channels = grid_pos.shape[1]
    grid = grid_pos.reshape(1, side, side, channels).permute(0, 3, 1, 2)  # (1, C, G, G)
    grid = F.interpolate(grid.float(), size=(height, width), mode="bicubic", align_corners=False)
    grid = grid.to(positional.dtype).permute(0, 2, 3, 1).reshape(height * width, channels)  # (HW, C)
    return torch.cat([cls_pos, grid], dim=0)


def attention_pool(pool: nn.Module, features: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """CLIP attention pooling of (B, C, H, W) features -> (B, D); `valid` (B, H, W) masks padded cells.

    The query is the mean of the (valid) cells plus its positional embedding, exactly as in CLIP;
    only that token's output is computed (the other tokens' outputs are unused by CLIP too).
    """
    batch, channels, height, width = features.shape
    tokens = features.flatten(2).permute(2, 0, 1)  # (HW, B, C)
    if valid is None:
        mean = tokens.mean(dim=0, keepdim=True)  # (1, B, C)
        key_padding_mask = None
    else:
        weights = valid.flatten(1).to(tokens.dtype).T.unsqueeze(-1)  # (HW, B, 1)
        mean = (tokens * weights).sum(0, keepdim=True) / weights.sum(0, keepdim=True).clamp(min=1.0)
        ignore = ~valid.flatten(1)  # (B, HW)
        key_padding_mask = torch.cat([ignore.new_zeros(batch, 1), ignore], dim=1)  # (B, 1 + HW)
    tokens = torch.cat([mean, tokens], dim=0)  # (1 + HW, B, C)
    positional = interpolate_positional_embedding(pool.positional_embedding, height, width)
    tokens = tokens + positional[:, None, :].to(tokens.dtype)
    out, _ = F.multi_head_attention_forward(
        query=tokens[:1],
        key=tokens,
        value=tokens,
        embed_dim_to_check=channels,
        num_heads=pool.num_heads,
        q_proj_weight=pool.q_proj.weight,
        k_proj_weight=pool.k_proj.weight,
        v_proj_weight=pool.v_proj.weight,
        in_proj_weight=None,
        in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
        bias_k=None,
        bias_v=None,
        add_zero_attn=False,
        dropout_p=0.0,
        out_proj_weight=pool.c_proj.weight,
        out_proj_bias=pool.c_proj.bias,
        use_separate_proj_weight=True,
        training=pool.training,
        key_padding_mask=key_padding_mask,
        need_weights=False,
    )
    return out[0]  # (B, D)


@dataclass(frozen=True)
class QKVProjection:
    """An attention pool's query, key and value projections stacked (`stack_qkv`).

    full: the (3C, C) weight in the parameters' dtype; low: its one cast to a lower precision, or None;
    bias: (3C,) in the parameters' dtype.
    """

    full: torch.Tensor
    low: torch.Tensor | None
    bias: torch.Tensor

    @property
    def weight(self) -> torch.Tensor:
        """The (3C, C) weight for one use: `low` (its gradient returned to `full`) when there is one."""
        return self.full if self.low is None else SharedCast.apply(self.full, self.low)


def stack_qkv(pool: nn.Module, dtype: torch.dtype | None = None) -> QKVProjection:
    """`pool`'s q / k / v weights concatenated once, and cast once to `dtype` when it is another dtype.

    Build it once per forward pass and hand it to every `project_qkv` and `pool_roi_tokens` call of
    that pass: each call that builds its own (the default) makes autograd keep one more (3C, C)
    weight for the backward pass (48 MiB for RN50 in fp32, 24 MiB in bf16). Under autocast, `dtype` =
    the features' dtype is the cast that autocast (and `project_qkv`) would otherwise make at each
    use, made once; the uses' weight gradients still add up in the parameters' dtype (`SharedCast`),
    so the results and the gradients are the same bit for bit. (Low-precision features without
    autocast would also move `pool_roi_tokens`' positional projection to `dtype`.)
    """
    weight = torch.cat([pool.q_proj.weight, pool.k_proj.weight, pool.v_proj.weight])  # (3C, C)
    bias = torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias])  # (3C,)
    low = None if dtype is None or dtype == weight.dtype else weight.detach().to(dtype)
    return QKVProjection(weight, low, bias)


class SharedCast(torch.autograd.Function):
    """`low`, a cast of `full` made once, as one use's copy of `full`: every use saves the same `low` for
    backward, and each use's gradient goes back to `full` in full's dtype, where the uses' gradients
    add up as those of separate casts (`full.to(low.dtype)` at each use) would, not in `low`'s dtype."""

    @staticmethod
    def forward(ctx, full: torch.Tensor, low: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.dtype = full.dtype
        return low.detach()  # a new tensor on low's storage

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad.to(ctx.dtype), None


def project_qkv(pool: nn.Module, features: torch.Tensor, projection: QKVProjection | None = None) -> torch.Tensor:
    """(B, C, H, W) features -> (B, 3C, H, W) query / key / value projections of every cell, without biases.

    The projections are linear per cell, so they commute with RoI-Align (a weighted sum of cells):
    projecting the whole map once and cutting RoIs from it gives the same tokens as projecting each
    RoI grid, at a fraction of the cost when an image has many RoIs (`pool_roi_tokens`).
    `projection`: the pass's `stack_qkv(pool, ...)`, shared with the other calls (default: its own).
    """
    weight = (stack_qkv(pool) if projection is None else projection).weight  # (3C, C)
    return F.conv2d(features, weight[:, :, None, None].to(features.dtype))


def pool_roi_tokens(pool: nn.Module, qkv: torch.Tensor, projection: QKVProjection | None = None) -> torch.Tensor:
    """CLIP attention pooling of RoI grids given as projected tokens: (K, 3C, R, R) -> (K, D).

    Equals `attention_pool(pool, grid)` for qkv = RoIAlign(project_qkv(pool, map)) and grid =
    RoIAlign(map): the mean token and the positional embedding enter through the (linear)
    projections, so their terms are added to the attention logits and output separately and the
    (K, 3C, R, R) grid is only read, never copied. `projection`: as for `project_qkv`.
    """
    num, three_c, height, width = qkv.shape
    channels, heads = three_c // 3, pool.num_heads
    head_dim, cells = channels // heads, height * width
    positional = interpolate_positional_embedding(pool.positional_embedding, height, width)  # (1 + RR, C)
    projection = stack_qkv(pool) if projection is None else projection
    weight, bias = projection.weight, projection.bias  # (3C, C), (3C,)
    pos_q, pos_k, pos_v = (positional.to(weight.dtype) @ weight.T + bias).to(qkv.dtype).split(channels, dim=1)
    q_grid, k_grid, v_grid = (x.reshape(num, heads, head_dim, cells) for x in qkv.flatten(2).split(channels, dim=1))
    # the mean token (query and first key / value): mean of the grid + its positional term
    q = (q_grid.mean(dim=3) + pos_q[0].view(heads, head_dim)) * head_dim**-0.5  # (K, h, d)
    k_mean = k_grid.mean(dim=3) + pos_k[0].view(heads, head_dim)  # (K, h, d)
    v_mean = v_grid.mean(dim=3) + pos_v[0].view(heads, head_dim)
    pos_k_grid = pos_k[1:].reshape(cells, heads, head_dim)  # (RR, h, d)
    pos_v_grid = pos_v[1:].reshape(cells, heads, head_dim)
    logits = torch.cat(
        [
            (q * k_mean).sum(dim=2, keepdim=True),  # (K, h, 1)
            torch.einsum("khd,khdr->khr", q, k_grid) + torch.einsum("khd,rhd->khr", q, pos_k_grid),  # (K, h, RR)
        ],
        dim=2,
    )
    attention = logits.softmax(dim=2)  # (K, h, 1 + RR)
    grid_attention = attention[..., 1:]
    out = (
        attention[..., :1] * v_mean
        + torch.einsum("khr,khdr->khd", grid_attention, v_grid)
        + torch.einsum("khr,rhd->khd", grid_attention, pos_v_grid)
    )  # (K, h, d)
    return F.linear(out.reshape(num, channels), pool.c_proj.weight.to(out.dtype), pool.c_proj.bias.to(out.dtype))


DENSE_ROI_ALIGN_MAX_ELEMENTS = 1 << 25  # K * H * W * C above which the CPU path also uses torchvision
ROI_ALIGN_CHUNK_ELEMENTS = 1 << 28  # float32 elements of one chunk of low-precision RoI grids (1 GiB)


def align_rois(
    features: torch.Tensor, rois: torch.Tensor, output_size: int, spatial_scale: float, sampling_ratio: int = 2
) -> torch.Tensor:
    """RoI-Align, (B, C, H, W) features and (K, 5) rois (image index, x1, y1, x2, y2) -> (K, C, R, R).

    `torchvision.ops.roi_align(aligned=True)` on GPUs and for large inputs. On the CPU with small
    maps (the demo) the same bilinear sampling is computed as two small matrix products
    (`dense_roi_align`, equal to torchvision's to float precision): torchvision's CPU backward is a
    single-threaded scatter that otherwise dominates a CPU training step.

    Low-precision features (bf16 / fp16 under autocast) are sampled in float32 with float32 boxes (a
    box corner cast to bf16 moves by up to 2 pixels at 640) and the grids are returned in the
    features' dtype (`LowPrecisionRoIAlign`): the grids kept for the backward pass are bf16, and
    float32 grids exist one chunk of RoIs at a time, forward and backward.
    """
    _, channels, height, width = features.shape
    if uses_dense_roi_align(features.device, rois.shape[0], channels, height, width):
        return dense_roi_align(features, rois, output_size, spatial_scale, sampling_ratio)
    if features.dtype in (torch.float16, torch.bfloat16):
        return LowPrecisionRoIAlign.apply(features, rois, output_size, spatial_scale, sampling_ratio)
    size = (output_size, output_size)
    return roi_align(features, rois.to(features.dtype), size, spatial_scale, sampling_ratio, aligned=True)


def uses_dense_roi_align(device: torch.device, rois: int, channels: int, height: int, width: int) -> bool:
    """Whether `align_rois` cuts `rois` RoIs from a (B, channels, height, width) map on `device` with
    dense matrices (`dense_roi_align`): on the CPU while K * H * W * C <= DENSE_ROI_ALIGN_MAX_ELEMENTS;
    torchvision's roi_align otherwise."""
    return device.type == "cpu" and rois * height * width * channels <= DENSE_ROI_ALIGN_MAX_ELEMENTS


class LowPrecisionRoIAlign(torch.autograd.Function):
    """RoI-Align of bf16 / fp16 features computed in float32, kept in the features' dtype (see `align_rois`).

    Forward and backward go through RoIs in chunks of `ROI_ALIGN_CHUNK_ELEMENTS` float32 values, so
    besides the low-precision grids (and their gradient) only one chunk is ever in float32.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, features: torch.Tensor, rois: torch.Tensor, output_size: int, spatial_scale: float, sampling_ratio: int
    ) -> torch.Tensor:
        full, boxes = features.float(), rois.float()  # (B, C, H, W), (K, 5)
        channels = features.shape[1]
        grids = features.new_empty((boxes.shape[0], channels, output_size, output_size))  # (K, C, R, R)
        for part in _chunks(boxes.shape[0], channels * output_size * output_size):
            grids[part] = roi_align(full, boxes[part], (output_size, output_size), spatial_scale, sampling_ratio,
                                    aligned=True)  # fmt: skip
        ctx.save_for_backward(boxes)
        ctx.settings = (features.shape, features.dtype, output_size, spatial_scale, sampling_ratio)
        return grids

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        (boxes,) = ctx.saved_tensors
        shape, dtype, output_size, spatial_scale, sampling_ratio = ctx.settings
        batch, channels, height, width = shape
        total = torch.zeros(shape, dtype=torch.float32, device=grad.device)
        for part in _chunks(boxes.shape[0], channels * output_size * output_size):
            total += torch.ops.torchvision._roi_align_backward(
                grad[part].float().contiguous(), boxes[part], spatial_scale, output_size, output_size, batch,
                channels, height, width, sampling_ratio, True,
            )  # fmt: skip
        return total.to(dtype), None, None, None, None


def _chunks(count: int, elements_per_item: int) -> list[slice]:
    step = max(1, ROI_ALIGN_CHUNK_ELEMENTS // elements_per_item)
    return [slice(start, start + step) for start in range(0, count, step)]


def _axis_weights(start: torch.Tensor, length: torch.Tensor, cells: int, bins: int, samples: int) -> torch.Tensor:
    """(K,) RoI starts and lengths along one axis (feature cells) -> (K, bins, cells) interpolation weights.

    Each bin averages `samples` evenly spaced points; a point's linear-interpolation weights follow
    torchvision's roi_align (points beyond one cell outside the map count as zero, edges clamp).
    """
    steps = (torch.arange(bins * samples, dtype=start.dtype, device=start.device) + 0.5) / samples  # bin units
    coords = start[:, None] + steps[None, :] * (length / bins)[:, None]  # (K, bins * samples)
    inside = (coords >= -1.0) & (coords <= cells)
    coords = coords.clamp(min=0.0)
    low = coords.floor().clamp(max=cells - 1)
    coords = torch.where(low >= cells - 1, low, coords)
    high = (low + 1).clamp(max=cells - 1)
    frac = coords - low
    grid = torch.arange(cells, dtype=start.dtype, device=start.device)
    weights = (grid == low[..., None]) * (1 - frac)[..., None] + (grid == high[..., None]) * frac[..., None]
    weights = weights * inside[..., None]  # (K, bins * samples, cells)
    return weights.reshape(-1, bins, samples, cells).mean(dim=2)


def dense_roi_align(
    features: torch.Tensor, rois: torch.Tensor, output_size: int, spatial_scale: float, sampling_ratio: int = 2
) -> torch.Tensor:
    """torchvision's roi_align(aligned=True, sampling_ratio > 0) as separable interpolation matrices."""
    if sampling_ratio < 1:
        raise ValueError("dense_roi_align needs a fixed sampling_ratio >= 1")
    height, width = features.shape[-2:]
    boxes = rois[:, 1:].to(features.dtype) * spatial_scale - 0.5  # aligned=True: pixel centres
    x1, y1, x2, y2 = boxes.unbind(1)
    weight_y = _axis_weights(y1, y2 - y1, height, output_size, sampling_ratio)  # (K, R, H)
    weight_x = _axis_weights(x1, x2 - x1, width, output_size, sampling_ratio)  # (K, R, W)
    per_roi = features.permute(0, 2, 3, 1)[rois[:, 0].long()]  # (K, H, W, C)
    rows = torch.einsum("krh,khwc->krwc", weight_y, per_roi)  # (K, R, W, C)
    return torch.einsum("ksw,krwc->kcrs", weight_x, rows)  # (K, C, R, R)


class VisualBackbone(nn.Module):
    """Common interface: `forward` gives the feature maps, `pool` the attention-pooled vectors.

    `channels` maps a layer name to its channel count, `embed_dim` is D (the pool's output size);
    `pretrained_parameters()` are trained with the backbone learning rate, the rest with the head's.
    """

    channels: dict[str, int]
    embed_dim: int
    attnpool: nn.Module

    def pool(self, features: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C4, H, W) layer4 features (or RoI grids) -> (B, D)."""
        return attention_pool(self.attnpool, features, valid)

    def pretrained_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())


class CLIPResNetBackbone(VisualBackbone):
    """The CLIP ModifiedResNet visual tower (RN50, RN101, ...): stem, layer1-4 and its attention pool."""

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        for name in ("layer3", "layer4", "attnpool"):
            if not hasattr(visual, name):
                raise ValueError(
                    f"the CLIP visual tower {type(visual).__name__} is not a ModifiedResNet (no '{name}'); "
                    "use a CLIP ResNet model (RN50, RN101, hoi-tiny-rn, ...)"
                )
        self.visual = visual
        self.attnpool = visual.attnpool
        self.channels = {"layer3": _out_channels(visual.layer3), "layer4": _out_channels(visual.layer4)}
        self.embed_dim = visual.attnpool.c_proj.out_features

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        v = self.visual
        x = v.stem(images) if hasattr(v, "stem") else _clip_stem(v, images)
        x = v.layer2(v.layer1(x))
        layer3 = v.layer3(x)
        layer4 = v.layer4(layer3)
        return {"layer3": layer3, "layer4": layer4}


def _clip_stem(visual: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = visual.act1(visual.bn1(visual.conv1(x)))
    x = visual.act2(visual.bn2(visual.conv2(x)))
    x = visual.act3(visual.bn3(visual.conv3(x)))
    return visual.avgpool(x)


def _out_channels(layer: nn.Sequential) -> int:
    last = layer[-1]
    return last.conv3.out_channels


class TorchvisionResNetBackbone(VisualBackbone):
    """A torchvision ResNet body (COCO detector or ImageNet weights) with a new attention pool -> D."""

    def __init__(self, resnet: nn.Module, *, embed_dim: int, heads: int = 32, grid: int = 7) -> None:
        super().__init__()
        from open_clip.modified_resnet import AttentionPool2d

        self.body = nn.ModuleDict(
            {
                name: getattr(resnet, name)
                for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
            }
        )
        self.channels = {"layer3": _out_channels(resnet.layer3), "layer4": _out_channels(resnet.layer4)}
        self.embed_dim = embed_dim
        self.attnpool = AttentionPool2d(grid, self.channels["layer4"], heads, embed_dim)
        std = self.channels["layer4"] ** -0.5
        for proj in (self.attnpool.q_proj, self.attnpool.k_proj, self.attnpool.v_proj, self.attnpool.c_proj):
            nn.init.normal_(proj.weight, std=std)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        b = self.body
        x = b["maxpool"](b["relu"](b["bn1"](b["conv1"](images))))
        x = b["layer2"](b["layer1"](x))
        layer3 = b["layer3"](x)
        layer4 = b["layer4"](layer3)
        return {"layer3": layer3, "layer4": layer4}

    def pretrained_parameters(self) -> list[nn.Parameter]:
        return list(self.body.parameters())


def read_backbone_weights(source: str, weights: str | None) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict of `model.backbone_weights` (torch.load weights_only) and where it came from.

    None = torchvision's published weights for `source` (ResNet50 IMAGENET1K_V2 for `imagenet`, else
    fasterrcnn_resnet50_fpn_v2 COCO_V1), which needs the torch hub cache or internet.
    """
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: backbone weights file not found (model.backbone_weights)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # unpickling and zip errors: not a weights file we can read safely
            raise ValueError(f"{path}: not a readable state dict (model.backbone_weights): {error}") from error
        for key in ("model", "state_dict"):
            if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                state = state[key]
        if not isinstance(state, dict):
            raise ValueError(f"{path}: expected a state dict (model.backbone_weights), got {type(state).__name__}")
        return state, str(path)
    from torchvision.models import ResNet50_Weights
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_V2_Weights

    published = ResNet50_Weights.IMAGENET1K_V2 if source == "imagenet" else FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1
    try:
        state = published.get_state_dict(progress=False)
    except Exception as error:  # download errors come in many types
        raise FileNotFoundError(
            f"cannot get torchvision's {published} weights ({error}); download them and set model.backbone_weights"
        ) from error
    return state, str(published)


def load_torchvision_resnet50(source: str, weights: str | None) -> nn.Module:
    """ResNet-50 body of a COCO Faster R-CNN (`coco_detector`) or an ImageNet classifier (`imagenet`).

    `weights`: a local state dict; None = torchvision's published weights (`read_backbone_weights`).
    """
    import torchvision

    resnet = torchvision.models.resnet50(weights=None)
    state, origin = read_backbone_weights(source, weights)
    if source == "coco_detector":
        prefix = "backbone.body."
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if not state:
            raise ValueError(f"{origin}: no 'backbone.body.*' weights; expected a torchvision Faster R-CNN state dict")
    _load_resnet_body(resnet, state, origin, source)
    log.info("loaded a ResNet-50 %s body from %s", source, origin)
    return resnet


def _load_resnet_body(resnet: nn.Module, state: dict[str, torch.Tensor], origin: str, source: str) -> None:
    missing, unexpected = resnet.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.") and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in unexpected if not k.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(
            f"{origin}: not a ResNet-50 {source} state dict (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )


# --------------------------------------------------------------------------------------------
# RN50-FPN(COCO): the COCO Faster R-CNN's ResNet-50 with its feature pyramid (Table 2 Exp 8-10)

FPN_LEVELS = ("p2", "p3", "p4", "p5")  # strides 4, 8, 16, 32
FPN_CHANNELS = 256
FPN_HEADS = 8  # attention-pool heads over the 256-channel pyramid (head width 32)
BODY_LAYERS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


class DetectorFPNBackbone(VisualBackbone):
    """"RN50-FPN(COCO)" of Table 2 (Exp 8-10) and Table 3: a torchvision COCO Faster R-CNN's ResNet-50 + FPN.

    The paper says only that this backbone is "initialized with Faster R-CNN parameters pretrained on
    MSCOCO"; how its pyramid feeds the bi-level model is our choice, made to match how the detector itself
    uses it and how the CLIP backbone feeds the same model:

    - RoI features (v_h, v_o, v_u): torchvision's `MultiScaleRoIAlign` over P2-P5, as the detector's box
      head does: each box is RoI-Aligned (roi_size x roi_size, sampling ratio 2) from one level chosen by
      the FPN level mapper k = floor(4 + log2(sqrt(area) / 224)) clamped to [2, 5] (Lin et al. 2017,
      Eq. 1), then the (K, 256, R, R) grid is attention-pooled to the bank width D.
    - Global feature v_g: the same attention pool over P5 (stride 32, the level of CLIP's layer4 and of
      the whole image under the level mapper), like CLIP's attention pool over layer4; padded cells are
      masked. The attention pool (256 -> D, 8 heads) is new and randomly initialised; it trains with the
      head learning rate, the ResNet body and the FPN with the backbone's.
    - P6 (the detector's max-pool level for large anchors) only serves the RPN and is not built.

    `forward` returns the pyramid under FPN_LEVELS plus `layer4` (= P5), the name the model's global
    branch reads; the model hands RoI pooling to `pool_rois`. The FPN is built without normalisation
    layers: a _v2 detector's FPN BatchNorm (eval statistics) is folded into its convolutions on loading
    (`fpn_state_from_detector`), so both detector versions load into one architecture and a trained
    model.pt rebuilds without knowing which one it came from.
    """

    def __init__(self, resnet: nn.Module, *, embed_dim: int, roi_size: int = 7, heads: int = FPN_HEADS) -> None:
        super().__init__()
        from open_clip.modified_resnet import AttentionPool2d
        from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign

        self.body = nn.ModuleDict({name: getattr(resnet, name) for name in BODY_LAYERS})
        in_channels = [_out_channels(getattr(resnet, f"layer{i}")) for i in range(1, 5)]
        self.fpn = FeaturePyramidNetwork(in_channels, FPN_CHANNELS)
        self.channels = {"layer3": FPN_CHANNELS, "layer4": FPN_CHANNELS}
        self.embed_dim = embed_dim
        self.attnpool = AttentionPool2d(roi_size, FPN_CHANNELS, heads, embed_dim)
        for proj in (self.attnpool.q_proj, self.attnpool.k_proj, self.attnpool.v_proj, self.attnpool.c_proj):
            nn.init.normal_(proj.weight, std=FPN_CHANNELS**-0.5)
        self.roi_align = MultiScaleRoIAlign(list(FPN_LEVELS), output_size=roi_size, sampling_ratio=2)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        b = self.body
        x = b["maxpool"](b["relu"](b["bn1"](b["conv1"](images))))
        stages = {}
        for level, name in zip(FPN_LEVELS, ("layer1", "layer2", "layer3", "layer4")):
            x = b[name](x)
            stages[level] = x  # C2..C5
        pyramid = dict(self.fpn(stages))  # P2..P5, 256 channels each
        return {**pyramid, "layer4": pyramid["p5"]}

    def pool_rois(
        self, features: dict[str, torch.Tensor], boxes: torch.Tensor, box_image: torch.Tensor
    ) -> torch.Tensor:
        """(K, 4) boxes in input pixels of images `box_image` (K,) -> (K, D) attention-pooled RoI features.

        `MultiScaleRoIAlign` takes a list of per-image boxes (it numbers the RoIs by list position) and
        offers no (K, 5) RoI input: the boxes, sorted by image, are split with one `torch.split` whose
        sizes are read from the device once (one synchronisation, not one per image; the pooler itself
        waits once per pyramid level to select that level's boxes).
        """
        p2 = features["p2"]
        batch = p2.shape[0]
        input_size = (p2.shape[-2] * 4, p2.shape[-1] * 4)  # the level mapper's scales come from it
        order = torch.argsort(box_image, stable=True)  # (K,) the boxes image after image
        counts = segment_counts(box_image, batch).tolist()  # (B,) boxes per image, on the host
        per_image = torch.split(boxes[order].to(p2.dtype), counts)  # B x (K_b, 4)
        grids = self.roi_align({level: features[level] for level in FPN_LEVELS}, list(per_image), [input_size] * batch)
        pooled = attention_pool(self.attnpool, grids)  # (K, D), in sorted order
        return pooled[torch.argsort(order)]

    def pretrained_parameters(self) -> list[nn.Parameter]:
        return [*self.body.parameters(), *self.fpn.parameters()]


def build_detector_fpn_backbone(
    *, embed_dim: int, weights: str | None, roi_size: int = 7, pretrained: bool = True
) -> DetectorFPNBackbone:
    """RN50-FPN(COCO) from a torchvision fasterrcnn_resnet50_fpn or _v2 state dict (`model.backbone_weights`).

    `pretrained=False` builds the architecture only (a trained model.pt fills it next).
    """
    import torchvision

    resnet = torchvision.models.resnet50(weights=None)
    backbone = DetectorFPNBackbone(resnet, embed_dim=embed_dim, roi_size=roi_size)
    if not pretrained:
        return backbone
    state, origin = read_backbone_weights("coco_detector_fpn", weights)
    body, fpn, version = split_detector_state(state, origin)
    _load_resnet_body(resnet, body, origin, "Faster R-CNN")
    try:
        backbone.fpn.load_state_dict(fpn, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{origin}: its FPN does not fit a ResNet-50 FPN ({str(error)[:500]})") from error
    log.info("loaded a ResNet-50 FPN (torchvision Faster R-CNN %s) from %s", version, origin)
    return backbone


def split_detector_state(
    state: dict[str, torch.Tensor], origin: str
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], str]:
    """A Faster R-CNN state dict -> (ResNet body state, FPN state without normalisation, 'v1' or 'v2').

    v1 (fasterrcnn_resnet50_fpn): FPN convolutions with biases; its body's FrozenBatchNorm was trained
    with eps 0 (torchvision sets eps 0 when it loads the COCO_V1 weights), folded here into BatchNorm
    statistics that give the same output with PyTorch's eps. v2 (fasterrcnn_resnet50_fpn_v2): FPN
    convolutions followed by BatchNorm, folded into the convolutions. Other detector parts are ignored.
    """
    body = {k.removeprefix("backbone.body."): v for k, v in state.items() if k.startswith("backbone.body.")}
    fpn = {k.removeprefix("backbone.fpn."): v for k, v in state.items() if k.startswith("backbone.fpn.")}
    if not body or not fpn:
        raise ValueError(
            f"{origin}: no 'backbone.body.*' and 'backbone.fpn.*' weights; expected a torchvision "
            "fasterrcnn_resnet50_fpn or fasterrcnn_resnet50_fpn_v2 state dict"
        )
    if "inner_blocks.0.1.running_var" in fpn:
        return body, fpn_state_from_detector(fpn), "v2"
    if "inner_blocks.0.0.bias" in fpn:
        return fold_zero_eps_batchnorm(body), fpn, "v1"
    raise ValueError(f"{origin}: its FPN is neither torchvision's fasterrcnn_resnet50_fpn nor _v2 layout")


def fpn_state_from_detector(fpn: dict[str, torch.Tensor], eps: float = 1e-5) -> dict[str, torch.Tensor]:
    """Fold a _v2 FPN's conv + BatchNorm (eval statistics) blocks into convolutions with biases.

    BN(W * x) = g * (W * x - m) / sqrt(v + eps) + b = (s W) * x + (b - s m) with s = g / sqrt(v + eps).
    """
    out = {}
    for kind in ("inner_blocks", "layer_blocks"):
        index = 0
        while f"{kind}.{index}.0.weight" in fpn:
            bn = f"{kind}.{index}.1."
            scale = fpn[bn + "weight"] / torch.sqrt(fpn[bn + "running_var"] + eps)  # (C,)
            out[f"{kind}.{index}.0.weight"] = fpn[f"{kind}.{index}.0.weight"] * scale[:, None, None, None]
            out[f"{kind}.{index}.0.bias"] = fpn[bn + "bias"] - scale * fpn[bn + "running_mean"]
            index += 1
    return out


def fold_zero_eps_batchnorm(body: dict[str, torch.Tensor], eps: float = 1e-5) -> dict[str, torch.Tensor]:
    """BatchNorm statistics trained with eps 0 rewritten for PyTorch's eps: same output, exactly.

    g (x - m) / sqrt(v) + b = g' (x - 0) / sqrt((1 - eps) + eps) + b'  with g' = g / sqrt(v), b' = b - g' m.
    """
    out = dict(body)
    for key in [k for k in body if k.endswith(".running_var")]:
        prefix = key.removesuffix("running_var")
        scale = body[prefix + "weight"] / torch.sqrt(body[key])
        out[prefix + "weight"] = scale
        out[prefix + "bias"] = body[prefix + "bias"] - scale * body[prefix + "running_mean"]
        out[prefix + "running_mean"] = torch.zeros_like(body[key])
        out[prefix + "running_var"] = torch.full_like(body[key], 1.0 - eps)
    return out
