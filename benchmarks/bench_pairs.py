"""Time and memory of the pair branch's RoI pooling, per 1,000 RoIs, forward and backward.

The pair branch pools one feature vector per proposal and per union box (one union box per pair)
with CLIP's attention pool on a 7 x 7 RoI grid. Two ways give the same vectors (to float rounding):

    projected  RoI-Align of the attention pool's q/k/v projections of the whole layer4 map
               (`project_qkv` + `pool_roi_tokens`): the projections cost once per map cell, the
               RoI grids hold 3 C4 channels (6,144 for RN50)
    grid       RoI-Align of the layer4 map itself (C4 = 2,048 channels), then the attention pool on
               each grid (`attention_pool`): the projections cost once per RoI grid cell

Random layer4 maps of B images at the input size (640 -> 20 x 15 cells) and K RoIs per image;
the attention pool is built alone with the CLIP model's sizes (random init). CUDA runs under bf16
autocast, the CPU in fp32. Memory is what the first step adds to the maps at its peak (CUDA: max
allocated; CPU: peak resident set over the resident set before), time the mean of the next steps.

    python benchmarks/bench_pairs.py --device cpu --images 2 --rois 64
    python benchmarks/bench_pairs.py --device cuda --images 96 --rois 286
"""

from __future__ import annotations

import argparse
import sys
import time

import open_clip
import torch

from bench_common import (
    Measurement,
    current_memory_mib,
    device_name,
    peak_memory_mib,
    reset_peak_memory,
    synchronize,
)
from hoi_pipeline.devices import autocast, resolve_device
from hoi_pipeline.modeling.backbone import FEATURE_STRIDES, align_rois, attention_pool, pool_roi_tokens, project_qkv
from hoi_pipeline.modeling.clip_loading import register_model_configs

VARIANTS = ("projected", "grid")


def random_rois(images: int, per_image: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """(K, 5) RoIs (image index, x1, y1, x2, y2) in input pixels, K = images * per_image."""
    count = images * per_image
    corner = torch.rand(count, 2, generator=generator) * torch.tensor([width, height]) * 0.7
    size = torch.rand(count, 2, generator=generator) * torch.tensor([width, height]) * 0.3 + 8
    image = torch.arange(images).repeat_interleave(per_image).float()[:, None]
    return torch.cat([image, corner, corner + size], dim=1)


def clip_attention_pool(model: str) -> torch.nn.Module:
    """The attention pool of open_clip's ResNet `model` (random init), as its ModifiedResNet builds it."""
    from open_clip.modified_resnet import AttentionPool2d

    register_model_configs()
    config = open_clip.get_model_config(model)
    if config is None or config["vision_cfg"].get("layers") is None or isinstance(config["vision_cfg"]["layers"], int):
        raise ValueError(f"--model: '{model}' is not an open_clip ResNet")
    vision = config["vision_cfg"]
    width = vision["width"] * 32  # C4
    heads = width // vision.get("head_width", 64)
    return AttentionPool2d(vision["image_size"] // 32, width, heads, config["embed_dim"])


def pool_rois(variant: str, pool: torch.nn.Module, layer4: torch.Tensor, rois: torch.Tensor, roi_size: int = 7):
    """(B, C4, h, w) maps and (K, 5) RoIs -> (K, D) attention-pooled RoI features."""
    scale = 1.0 / FEATURE_STRIDES["layer4"]
    if variant == "projected":
        return pool_roi_tokens(pool, align_rois(project_qkv(pool, layer4), rois, roi_size, scale))
    if variant == "grid":
        return attention_pool(pool, align_rois(layer4, rois, roi_size, scale))
    raise ValueError(f"variant: '{variant}' is not one of {list(VARIANTS)}")


def measure_pairs(
    *,
    variant: str,
    model: str = "RN50",
    device: str = "cpu",
    images: int = 2,
    rois: int = 64,
    input_size: int = 640,
    precision: str = "bf16",
    repeat: int = 2,
) -> Measurement:
    """Forward + backward of `pool_rois` on `images` random layer4 maps, at `rois` // 4 and `rois` RoIs
    per image: the table's figures are those at `rois`; per 1,000 RoIs, the difference between the two
    (what more RoIs cost, without the fixed cost of the maps)."""
    torch_device = resolve_device(device)
    torch.manual_seed(0)
    pool = clip_attention_pool(model).to(torch_device)
    height, width = round(input_size * 3 / 4), input_size
    stride = FEATURE_STRIDES["layer4"]
    generator = torch.Generator().manual_seed(0)
    channels = pool.k_proj.in_features
    layer4 = torch.randn(images, channels, -(-height // stride), -(-width // stride), generator=generator)
    layer4 = layer4.to(torch_device).requires_grad_(True)
    few, many = max(1, rois // 4), rois
    # fewer RoIs first: the CPU's peak resident set only grows
    (few_s, few_mib), (many_s, many_mib) = (
        _time_and_memory(variant, pool, layer4, random_rois(images, count, height, width, generator).to(torch_device),
                         precision, repeat)  # fmt: skip
        for count in (few, many)
    )
    added = images * (many - few) / 1000
    # a CPU process's peak resident set never falls, so the difference of two peaks in one process says nothing
    per_roi_mib = round((many_mib - few_mib) / added, 1) if added and torch_device.type == "cuda" else None
    used_precision = precision if torch_device.type == "cuda" else "fp32"
    return Measurement(
        "pairs", f"RoI pooling {variant}, {model}, {images} images x {rois} RoIs at {width}x{height}, "
        f"{used_precision}, forward + backward", device_name(torch_device),
        images_per_s=images / many_s, s_per_iteration=many_s, peak_mib=many_mib,
        details={"ms per 1,000 RoIs": round((many_s - few_s) * 1000 / added, 1) if added else None,
                 "MiB per 1,000 RoIs (CUDA only)": per_roi_mib},
    )  # fmt: skip


def _time_and_memory(
    variant: str, pool: torch.nn.Module, layer4: torch.Tensor, rois: torch.Tensor, precision: str, repeat: int
) -> tuple[float, float]:
    """(seconds per step, MiB the first step adds at its peak) of forward + backward on these RoIs."""
    device = layer4.device

    def step() -> None:
        with autocast(device, precision):
            out = pool_rois(variant, pool, layer4, rois)
        out.float().square().mean().backward()
        layer4.grad = None
        pool.zero_grad(set_to_none=True)

    synchronize(device)
    base = current_memory_mib(device)
    reset_peak_memory(device)
    step()  # also the warm-up
    synchronize(device)
    peak = peak_memory_mib(device) - base
    start = time.perf_counter()
    for _ in range(repeat):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / repeat, peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--variant", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--model", default="RN50", help="open_clip ResNet (random init)")
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--rois", nargs="+", type=int, default=[64], help="RoIs per image")
    parser.add_argument("--input-size", type=int, default=640, help="longer side; 4:3 landscape images")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "fp16", "bf16"], help="autocast on CUDA")
    args = parser.parse_args(argv)
    for rois in args.rois:
        for variant in args.variant:
            result = measure_pairs(variant=variant, model=args.model, device=args.device, images=args.images,
                                   rois=rois, input_size=args.input_size, precision=args.precision)  # fmt: skip
            print(result.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
