"""Visual backbones (paper Sec. 4.1) and the attention pooling shared by the global and local branches.

A backbone maps images (B, 3, S, S) to named feature maps, `layer3` (B, C3, S/16, S/16) and `layer4`
(B, C4, S/32, S/32), and owns an attention pool (CLIP's `AttentionPool2d`) that turns a feature map,
or a RoI grid cut from it, into one D-dim vector in the CLIP joint embedding space.

- `CLIPResNetBackbone`: the CLIP ModifiedResNet visual encoder (RN50 / RN101 / tiny), all pretrained.
- `TorchvisionResNetBackbone` (Table 2 ablations): the ResNet-50 body of torchvision's COCO Faster R-CNN
  or an ImageNet ResNet-50, with a new, randomly initialised attention pool of our own.

The stock `AttentionPool2d.forward` only accepts the pretrain grid (7x7 at 224 px); `attention_pool`
interpolates its positional embedding (bicubic, as when fine-tuning CLIP at another resolution) to
any grid and can ignore padded cells, so larger inputs and RoI grids of any size work.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

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


def project_qkv(pool: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) features -> (B, 3C, H, W) query / key / value projections of every cell, without biases.

    The projections are linear per cell, so they commute with RoI-Align (a weighted sum of cells):
    projecting the whole map once and cutting RoIs from it gives the same tokens as projecting each
    RoI grid, at a fraction of the cost when an image has many RoIs (`pool_roi_tokens`).
    """
    weight = torch.cat([pool.q_proj.weight, pool.k_proj.weight, pool.v_proj.weight])  # (3C, C)
    return F.conv2d(features, weight[:, :, None, None].to(features.dtype))


def pool_roi_tokens(pool: nn.Module, qkv: torch.Tensor) -> torch.Tensor:
    """CLIP attention pooling of RoI grids given as projected tokens: (K, 3C, R, R) -> (K, D).

    Equals `attention_pool(pool, grid)` for qkv = RoIAlign(project_qkv(pool, map)) and grid =
    RoIAlign(map): the mean token and the positional embedding enter through the (linear)
    projections, so their terms are added to the attention logits and output separately and the
    (K, 3C, R, R) grid is only read, never copied.
    """
    num, three_c, height, width = qkv.shape
    channels, heads = three_c // 3, pool.num_heads
    head_dim, cells = channels // heads, height * width
    positional = interpolate_positional_embedding(pool.positional_embedding, height, width)  # (1 + RR, C)
    weight = torch.cat([pool.q_proj.weight, pool.k_proj.weight, pool.v_proj.weight])  # (3C, C)
    bias = torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias])  # (3C,)
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


def align_rois(
    features: torch.Tensor, rois: torch.Tensor, output_size: int, spatial_scale: float, sampling_ratio: int = 2
) -> torch.Tensor:
    """RoI-Align, (B, C, H, W) features and (K, 5) rois (image index, x1, y1, x2, y2) -> (K, C, R, R).

    `torchvision.ops.roi_align(aligned=True)` on GPUs and for large inputs. On the CPU with small
    maps (the demo) the same bilinear sampling is computed as two small matrix products
    (`dense_roi_align`, equal to torchvision's to float precision): torchvision's CPU backward is a
    single-threaded scatter that otherwise dominates a CPU training step.
    """
    _, channels, height, width = features.shape
    if features.device.type == "cpu" and rois.shape[0] * height * width * channels <= DENSE_ROI_ALIGN_MAX_ELEMENTS:
        return dense_roi_align(features, rois, output_size, spatial_scale, sampling_ratio)
    return roi_align(features, rois.to(features.dtype), (output_size, output_size), spatial_scale, sampling_ratio,
                     aligned=True)  # fmt: skip


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


def load_torchvision_resnet50(source: str, weights: str | None) -> nn.Module:
    """ResNet-50 body of a COCO Faster R-CNN (`coco_detector`) or an ImageNet classifier (`imagenet`).

    `weights`: a local state dict (torch.load weights_only); None = torchvision's published weights
    (fasterrcnn_resnet50_fpn_v2 COCO_V1 / ResNet50 IMAGENET1K_V2), which needs the torch hub cache or internet.
    """
    import torchvision

    resnet = torchvision.models.resnet50(weights=None)
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: backbone weights file not found (model.backbone_weights)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("model", "state_dict"):
            if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                state = state[key]
        origin = str(path)
    else:
        from torchvision.models import ResNet50_Weights
        from torchvision.models.detection import FasterRCNN_ResNet50_FPN_V2_Weights

        published = (
            FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1 if source == "coco_detector" else ResNet50_Weights.IMAGENET1K_V2
        )
        try:
            state = published.get_state_dict(progress=False)
        except Exception as error:  # download errors come in many types
            raise FileNotFoundError(
                f"cannot get torchvision's {published} weights ({error}); download them and set model.backbone_weights"
            ) from error
        origin = str(published)
    if source == "coco_detector":
        prefix = "backbone.body."
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if not state:
            raise ValueError(f"{origin}: no 'backbone.body.*' weights; expected a torchvision Faster R-CNN state dict")
    missing, unexpected = resnet.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.") and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in unexpected if not k.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(
            f"{origin}: not a ResNet-50 {source} state dict (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    log.info("loaded a ResNet-50 %s body from %s", source, origin)
    return resnet
