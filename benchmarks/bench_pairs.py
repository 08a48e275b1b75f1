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
autocast with the maps in bf16 (as the backbone gives them there), the CPU in fp32. Each variant runs at K and at fewer RoIs per image; the row's figures
are those at K, "per 1,000 RoIs" the difference between the two counts per 1,000 RoIs more (what
more RoIs cost, without the cost paid once per step). The first step of each count measures
memory, the mean of the next steps is the time. On the CPU `align_rois` cuts RoIs with dense
matrices while K * cells * channels is small and with torchvision's roi_align above
(`backbone.uses_dense_roi_align`), so the fewer RoIs are K / 4 or, where K / 4 would take the
other method, the fewest that take K's: both counts run the same kernels. The row names the
method ("RoI-Align") and the two counts ("per 1,000 RoIs between"); when no smaller count takes
K's method ("none"), the figures per 1,000 RoIs are None.

    peak MiB                  the most memory the step's tensors held at once beyond what was live
                              before it (the maps, the pool): CUDA `max_memory_allocated`; CPU the
                              profiler's allocation events (`bench_common.cpu_tensor_peak`)
    max allocated, MiB per    CUDA only: the difference of two such peaks
      1,000 RoIs
    saved for backward MiB    the bytes of the tensors autograd keeps from the forward pass for the
                              backward pass, each storage once, parameters and inputs left out
                              (`bench_common.saved_activation_bytes`): the activation memory a
                              training step holds between its forward and backward passes; exact
                              for the kernels the device runs, whatever its allocator
    saved for backward, MiB   its difference per 1,000 RoIs: what each RoI (a pair's union box, a
      per 1,000 RoIs          proposal) adds to a training step's activations; the projected variant
                              also saves its stacked q/k/v weight once per step (`stack_qkv`, 48 MiB
                              for RN50 in fp32), in the total but not in this figure

    python benchmarks/bench_pairs.py --device cpu --images 2 --rois 64
    python benchmarks/bench_pairs.py --device cuda --images 96 --rois 286
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from dataclasses import dataclass

import open_clip
import torch

from bench_common import (
    Measurement,
    cpu_tensor_peak,
    current_memory_mib,
    device_name,
    peak_memory_mib,
    reset_peak_memory,
    saved_activation_bytes,
    synchronize,
)
from hoi_pipeline.devices import AUTOCAST_DTYPES, autocast, resolve_device
from hoi_pipeline.modeling.backbone import (
    FEATURE_STRIDES,
    align_rois,
    attention_pool,
    pool_roi_tokens,
    project_qkv,
    stack_qkv,
    uses_dense_roi_align,
)
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
        projection = stack_qkv(pool, layer4.dtype)  # one stacked weight for both uses, as the model does
        return pool_roi_tokens(pool, align_rois(project_qkv(pool, layer4, projection), rois, roi_size, scale),
                               projection)  # fmt: skip
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
    """Forward + backward of `pool_rois` on `images` random layer4 maps, at fewer RoIs (`fewer_rois`) and
    at `rois` RoIs per image: the table's figures are those at `rois`; per 1,000 RoIs, the difference
    between the two (what more RoIs cost, without the fixed cost of the maps)."""
    torch_device = resolve_device(device)
    torch.manual_seed(0)
    pool = clip_attention_pool(model).to(torch_device)
    height, width = round(input_size * 3 / 4), input_size
    stride = FEATURE_STRIDES["layer4"]
    generator = torch.Generator().manual_seed(0)
    channels = pool.k_proj.in_features
    layer4 = torch.randn(images, channels, -(-height // stride), -(-width // stride), generator=generator)
    # in training the map comes out of the backbone under autocast, in its dtype (bf16 / fp16 on CUDA)
    dtype = AUTOCAST_DTYPES.get(precision, torch.float32) if torch_device.type == "cuda" else torch.float32
    layer4 = layer4.to(torch_device, dtype).requires_grad_(True)
    aligned = 3 * channels if variant == "projected" else channels  # channels of the RoI-Aligned map
    cells = tuple(layer4.shape[-2:])
    few, many = fewer_rois(torch_device, images, rois, aligned, cells), rois
    costs = [
        step_cost(variant, pool, layer4, random_rois(images, count, height, width, generator).to(torch_device),
                  precision, repeat)
        for count in sorted({few, many})
    ]  # fmt: skip
    few_cost, many_cost = costs[0], costs[-1]
    added = images * (many - few) / 1000  # thousands of RoIs more

    def per_thousand(more: float) -> float | None:
        return round(more / added, 1) if added else None

    dense = uses_dense_roi_align(torch_device, images * many, aligned, *cells)
    details = {
        "RoI-Align": "dense matrices" if dense else "torchvision roi_align",
        "per 1,000 RoIs between": f"{few} and {many} RoIs per image" if few < many else "none",
        "ms per 1,000 RoIs": per_thousand((many_cost.seconds - few_cost.seconds) * 1000),
    }
    if torch_device.type == "cuda":
        details["max allocated, MiB per 1,000 RoIs"] = per_thousand(many_cost.peak_mib - few_cost.peak_mib)
    details["saved for backward MiB"] = round(many_cost.saved_mib, 1)
    details["saved for backward, MiB per 1,000 RoIs"] = per_thousand(many_cost.saved_mib - few_cost.saved_mib)
    used_precision = precision if torch_device.type == "cuda" else "fp32"
    return Measurement(
        "pairs", f"RoI pooling {variant}, {model}, {images} images x {rois} RoIs at {width}x{height}, "
        f"{used_precision}, forward + backward", device_name(torch_device),
        images_per_s=images / many_cost.seconds, s_per_iteration=many_cost.seconds, peak_mib=many_cost.peak_mib,
        details=details,
    )  # fmt: skip


def fewer_rois(device: torch.device, images: int, rois: int, channels: int, cells: tuple[int, int]) -> int:
    """The RoIs per image to compare `rois` with: `rois` // 4, or the fewest above it that `align_rois`
    cuts from a (images, channels, *cells) map with the same method as `rois` (`rois` itself if none)."""
    method = uses_dense_roi_align(device, images * rois, channels, *cells)
    return next(
        count for count in range(max(1, rois // 4), rois + 1)
        if uses_dense_roi_align(device, images * count, channels, *cells) == method
    )  # fmt: skip


@dataclass(frozen=True)
class StepCost:
    """Forward + backward of `pool_rois` on one set of RoIs."""

    seconds: float  # mean of the timed steps
    peak_mib: float | None  # the first step's tensors at their peak, beyond what was live before (CUDA, CPU)
    saved_mib: float  # what the first step's forward pass saved for backward (activations only)


def step_cost(
    variant: str, pool: torch.nn.Module, layer4: torch.Tensor, rois: torch.Tensor, precision: str, repeat: int
) -> StepCost:
    """Memory from a first step (also the warm-up), time from the `repeat` steps after it."""
    device = layer4.device

    def forward() -> torch.Tensor:
        with autocast(device, precision):
            out = pool_rois(variant, pool, layer4, rois)
        return out.float().square().mean()

    def backward(loss: torch.Tensor) -> None:
        loss.backward()
        layer4.grad = None
        pool.zero_grad(set_to_none=True)

    synchronize(device)
    base = current_memory_mib(device) if device.type == "cuda" else 0.0
    reset_peak_memory(device)
    with cpu_tensor_peak() if device.type == "cpu" else contextlib.nullcontext() as cpu_peak:
        with saved_activation_bytes(existing=[rois]) as saved:
            loss = forward()
        backward(loss)
        synchronize(device)
    if device.type == "cuda":
        peak = peak_memory_mib(device) - base
    else:
        peak = cpu_peak.peak / 2**20 if cpu_peak is not None else None
    start = time.perf_counter()
    for _ in range(repeat):
        backward(forward())
    synchronize(device)
    return StepCost((time.perf_counter() - start) / repeat, peak, saved.activations / 2**20)


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
