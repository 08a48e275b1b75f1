"""Throughput of the torchvision detector backend (images/s) for a device and batch size.

Runs the detect stage's own path: JPEG files read by a DataLoader, the detector, label mapping and
post-processing. Without `--weights` the detector is randomly initialised, saved to a temporary
file and loaded through `detector.weights` like real weights (the network's cost is the same; a
random detector keeps fewer boxes, so post-processing is cheaper than with real weights).

    python benchmarks/bench_detect.py --device cpu --batch-size 2 --images 8
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.models import get_model_builder
from torchvision.models.detection import FasterRCNN_ResNet50_FPN_V2_Weights

from hoi_pipeline.config import DetectorConfig
from hoi_pipeline.detection import build_proposal_extractor
from hoi_pipeline.detection.extractor import extract_split
from hoi_pipeline.detection.label_map import normalise_class_name


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--images", type=int, default=16, help="images timed (after one warm-up batch)")
    parser.add_argument("--model", default=DetectorConfig.model, help="torchvision Faster R-CNN builder")
    parser.add_argument("--weights", default=None, help="weights file; default: random init")
    parser.add_argument("--precision", default="fp16", choices=["fp32", "fp16", "bf16"], help="autocast on CUDA")
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--width", type=int, default=640, help="image size (HICO-DET images are about 640x480)")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    objects = tuple(
        normalise_class_name(c)
        for c in FasterRCNN_ResNet50_FPN_V2_Weights.DEFAULT.meta["categories"]
        if c not in ("__background__", "N/A")
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        weights = args.weights
        if weights is None:
            torch.manual_seed(0)
            model = get_model_builder(args.model)(weights=None, weights_backbone=None)
            weights = str(root / "random_init.pt")
            torch.save(model.state_dict(), weights)
            del model
        config = DetectorConfig(
            model=args.model, weights=weights, batch_size=args.batch_size, num_workers=args.num_workers,
            device=args.device, precision=args.precision,
        )  # fmt: skip
        rng = np.random.default_rng(0)
        names = [f"{i:05d}.jpg" for i in range(args.images + args.batch_size)]
        for name in names:
            pixels = rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name, quality=90)

        extractor = build_proposal_extractor(config, objects, args.device)
        warmup, timed = names[: args.batch_size], names[args.batch_size :]
        extract_split(extractor, root, warmup, batch_size=args.batch_size, num_workers=0)
        if extractor.device.type == "cuda":
            torch.cuda.synchronize(extractor.device)
        start = time.perf_counter()
        extract_split(extractor, root, timed, batch_size=args.batch_size, num_workers=args.num_workers)
        if extractor.device.type == "cuda":
            torch.cuda.synchronize(extractor.device)
        seconds = time.perf_counter() - start
    device_name = torch.cuda.get_device_name(extractor.device) if extractor.device.type == "cuda" else "cpu"
    print(
        f"{len(timed) / seconds:.2f} images/s  ({len(timed)} images {args.width}x{args.height} in {seconds:.1f} s; "
        f"{args.model}, {'random init' if args.weights is None else args.weights}, device {device_name}, "
        f"batch {args.batch_size}, precision {extractor.precision}, workers {args.num_workers}, "
        f"torch threads {torch.get_num_threads()})"
    )


if __name__ == "__main__":
    main()
