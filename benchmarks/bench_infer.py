"""Throughput of the inference stage (images/s) for a device, model size and batch size.

Runs the stage's own loop (`hoi_pipeline.stages.infer.infer_dataset`): JPEG files and a proposals
HDF5 read by a DataLoader, letterboxing, the model under autocast, score fusion (Eq. 3) and top-K
selection. The model is randomly initialised (no weights to download): `--clip-model hoi-tiny-rn`
(default) is the demo's tiny CLIP, `RN50` / `RN101` the paper's architectures at their real cost.
The vocabulary has HICO-DET's sizes (117 verbs, 80 objects, 600 HOI classes); each image gets
`--humans` human and `--objects` object proposals, so H * (H + O - 1) pairs.

    python benchmarks/bench_infer.py --device cpu
    python benchmarks/bench_infer.py --device cuda --clip-model RN50 --batch-size 16 --images 256
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hoi_pipeline.artifacts import write_proposals
from hoi_pipeline.config import ClipConfig, InferConfig, ModelConfig
from hoi_pipeline.datasets.hoi_images import HOIImageDataset, Preprocessing
from hoi_pipeline.modeling.clip_loading import clip_image_size, clip_mean_std, load_clip
from hoi_pipeline.modeling.model import build_model
from hoi_pipeline.devices import resolve_device
from hoi_pipeline.stages.infer import infer_dataset
from hoi_pipeline.structures import Proposals, Vocabulary


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--clip-model", default="hoi-tiny-rn", help="open_clip model name (random init)")
    parser.add_argument("--image-size", type=int, default=None, help="model input side; default the CLIP model's")
    parser.add_argument("--hidden-dim", type=int, default=None, help="default: 128 for hoi-tiny-rn, else the paper's")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--images", type=int, default=32, help="images timed (after one warm-up batch)")
    parser.add_argument("--humans", type=int, default=4, help="human proposals per image")
    parser.add_argument("--objects", type=int, default=8, help="object proposals per image")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "fp16", "bf16"], help="autocast on CUDA")
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--width", type=int, default=640, help="image size (HICO-DET images are about 640x480)")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return parser.parse_args()


def hico_sized_vocabulary(rng: np.random.Generator) -> Vocabulary:
    """117 verbs, 80 objects (object 0 'person'), 600 random distinct (verb, object) classes."""
    cells = rng.choice(117 * 80, size=600, replace=False)
    hoi = np.stack([cells // 80, cells % 80], axis=1)
    return Vocabulary(
        verbs=tuple(f"verb{i}" for i in range(117)),
        objects=("person",) + tuple(f"object{i}" for i in range(1, 80)),
        hoi_classes=hoi,
        rare=np.arange(138),
        non_rare=np.arange(138, 600),
    )


def random_proposals(name: str, rng: np.random.Generator, args: argparse.Namespace) -> Proposals:
    count = args.humans + args.objects
    xy = rng.uniform(0, [args.width * 0.7, args.height * 0.7], size=(count, 2))
    wh = rng.uniform(20, [args.width * 0.3, args.height * 0.3], size=(count, 2))
    labels = np.concatenate([np.zeros(args.humans), rng.integers(1, 80, args.objects)])
    return Proposals(name, np.concatenate([xy, xy + wh], 1), rng.uniform(0.2, 1.0, count), labels)


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rng = np.random.default_rng(0)
    vocabulary = hico_sized_vocabulary(rng)
    torch.manual_seed(0)
    clip = ClipConfig(model=args.clip_model, pretrained=None, image_size=args.image_size)
    hidden = args.hidden_dim or (128 if args.clip_model.startswith("hoi-tiny") else ModelConfig.hidden_dim)
    model_config = ModelConfig(hidden_dim=hidden, spatial_dim=min(ModelConfig.spatial_dim, hidden))
    clip_model = load_clip(clip, "cpu")  # random init: clip.pretrained is None
    image_size = clip.image_size or clip_image_size(clip_model)
    mean, std = clip_mean_std(clip_model)
    model = build_model(
        clip=clip, model=model_config, vocabulary=vocabulary, bank_embeddings=None, visual=clip_model.visual
    )
    model = model.to(device).eval()
    del clip_model
    infer = InferConfig(batch_size=args.batch_size, num_workers=args.num_workers, precision=args.precision)
    lookup = torch.from_numpy(vocabulary.hoi_lookup())

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        names = [f"{i:05d}.jpg" for i in range(args.images + args.batch_size)]
        for name in names:
            pixels = rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name, quality=90)
        write_proposals(root / "proposals.h5", [random_proposals(n, rng, args) for n in names], {})

        def dataset(subset: list[str]) -> HOIImageDataset:
            return HOIImageDataset(
                images=root, filenames=subset, proposals=root / "proposals.h5", vocabulary=vocabulary,
                preprocessing=Preprocessing(image_size, mean, std),
            )  # fmt: skip

        warmup, timed = names[: args.batch_size], names[args.batch_size :]
        infer_dataset(model, dataset(warmup), hoi_lookup=lookup, infer=InferConfig(batch_size=args.batch_size,
                      num_workers=0, precision=args.precision), device=device)  # fmt: skip
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        detections = infer_dataset(model, dataset(timed), hoi_lookup=lookup, infer=infer, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    pairs = args.humans * (args.humans + args.objects - 1)
    tuples = sum(len(d) for d in detections) / max(len(detections), 1)
    print(
        f"{len(timed) / seconds:.2f} images/s  ({len(timed)} images {args.width}x{args.height} in {seconds:.1f} s; "
        f"{args.clip_model} random init at {image_size} px, hidden {hidden}, {pairs} pairs/image, "
        f"{tuples:.0f} tuples/image kept, device {device_name}, batch {args.batch_size}, "
        f"precision {args.precision if device.type == 'cuda' else 'fp32'}, workers {args.num_workers}, "
        f"torch threads {torch.get_num_threads()})"
    )


if __name__ == "__main__":
    main()
