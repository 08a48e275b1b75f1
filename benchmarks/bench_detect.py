"""Throughput of the torchvision detector backend (images/s) for a device, batch size and builder.

Runs the detect stage's own path (`extract_split`): JPEG files read by a DataLoader, the detector
(batched, autocast on CUDA), label mapping and post-processing. Without `--weights` the detector is
randomly initialised, saved to a temporary file and loaded through `detector.weights` like real
weights (the network's cost is the same; a random detector keeps fewer boxes, so post-processing is
cheaper than with real weights). Images are HICO-DET-sized (640 x 480), which the detector's own
transform resizes (shorter side 800 for the R50-FPN builders, 320 for `*_320_fpn`).

    python benchmarks/bench_detect.py --device cpu --batch-size 2 --images 4 --model fasterrcnn_resnet50_fpn_v2
    python benchmarks/bench_detect.py --device cuda --batch-size 8 --images 128 --model all
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torchvision.models import get_model_builder, get_model_weights

from bench_common import (
    HICO_HEIGHT,
    HICO_WIDTH,
    Measurement,
    device_name,
    peak_memory_mib,
    reset_peak_memory,
    synchronize,
    write_jpegs,
)
from hoi_pipeline.config import DetectorConfig
from hoi_pipeline.detection import build_proposal_extractor
from hoi_pipeline.detection.extractor import extract_split
from hoi_pipeline.detection.label_map import normalise_class_name
from hoi_pipeline.detection.torchvision_backend import FASTER_RCNN_MODELS


def measure_detect(
    *,
    model: str = DetectorConfig.model,
    device: str = "cpu",
    batch_size: int = 4,
    images: int = 16,
    num_workers: int = 2,
    precision: str = "fp16",
    weights: str | None = None,
    width: int = HICO_WIDTH,
    height: int = HICO_HEIGHT,
) -> Measurement:
    """Detect `images` JPEGs of width x height after one untimed warm-up batch."""
    categories = get_model_weights(model).DEFAULT.meta["categories"]
    objects = tuple(normalise_class_name(c) for c in categories if c not in ("__background__", "N/A"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if weights is None:
            torch.manual_seed(0)
            weights = str(root / "random_init.pt")
            torch.save(get_model_builder(model)(weights=None, weights_backbone=None).state_dict(), weights)
            source = "random init"
        else:
            source = Path(weights).name
        config = DetectorConfig(
            model=model, weights=weights, batch_size=batch_size, num_workers=num_workers, device=device,
            precision=precision,
        )  # fmt: skip
        names = write_jpegs(root / "images", images + batch_size, width, height)
        extractor = build_proposal_extractor(config, objects, device)
        torch_device = extractor.device
        warmup, timed = names[:batch_size], names[batch_size:]
        extract_split(extractor, root / "images", warmup, batch_size=batch_size, num_workers=0)
        synchronize(torch_device)
        reset_peak_memory(torch_device)
        start = time.perf_counter()
        extract_split(extractor, root / "images", timed, batch_size=batch_size, num_workers=num_workers)
        synchronize(torch_device)
        seconds = time.perf_counter() - start
    return Measurement(
        "detect",
        f"{model}, {source}, batch {batch_size}, {extractor.precision}, {num_workers} workers, {width}x{height}",
        device_name(torch_device),
        images_per_s=len(timed) / seconds,
        s_per_iteration=seconds * batch_size / len(timed),
        peak_mib=peak_memory_mib(torch_device),
        details={"images timed": len(timed)},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--images", type=int, default=16, help="images timed (after one warm-up batch)")
    parser.add_argument("--model", nargs="+", default=[DetectorConfig.model],
                        help=f"torchvision Faster R-CNN builders, or 'all' ({', '.join(FASTER_RCNN_MODELS)})")
    parser.add_argument("--weights", default=None, help="weights file; default: random init")
    parser.add_argument("--precision", default="fp16", choices=["fp32", "fp16", "bf16"], help="autocast on CUDA")
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--width", type=int, default=HICO_WIDTH, help="image size (HICO-DET images are about 640x480)")
    parser.add_argument("--height", type=int, default=HICO_HEIGHT)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = FASTER_RCNN_MODELS if args.model == ["all"] else args.model
    for model in models:
        result = measure_detect(
            model=model, device=args.device, batch_size=args.batch_size, images=args.images,
            num_workers=args.num_workers, precision=args.precision, weights=args.weights, width=args.width,
            height=args.height,
        )  # fmt: skip
        print(result.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
