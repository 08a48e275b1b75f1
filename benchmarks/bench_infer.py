"""Throughput of the inference stage (images/s) for a device, model size and batch size.

Runs the stage's own loop (`hoi_pipeline.stages.infer.infer_dataset`): JPEG files and a proposals
HDF5 read by a DataLoader, resizing, the model under autocast, score fusion (Eq. 3) and top-K
selection. The model is randomly initialised (no weights to download): its CLIP is saved by the
init-clip stage and read through `clip.pretrained`, the whole model saved as a model.pt and loaded
by `load_trained_model`, as the stage loads a trained one. `--clip-model hoi-tiny-rn` (default) is
the demo's tiny CLIP, `RN50` / `RN101` the paper's architectures at their real cost. The vocabulary
has HICO-DET's sizes (117 verbs, 80 objects, 600 HOI classes); each image gets `--humans` human and
`--objects` object proposals, so H * (H + O - 1) pairs, all scored (`infer.max_pairs: 0`).

    python benchmarks/bench_infer.py --device cpu
    python benchmarks/bench_infer.py --device cuda --clip-model RN50 --batch-size 16 --images 256
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench_common import (
    HICO_HEIGHT,
    HICO_WIDTH,
    Measurement,
    device_name,
    hico_sized_vocabulary,
    peak_memory_mib,
    reset_peak_memory,
    synchronize,
    write_jpegs,
)
from hoi_pipeline.artifacts import write_proposals
from hoi_pipeline.checkpoints import TrainedModelInfo, load_trained_model, save_trained_model
from hoi_pipeline.config import ClipConfig, InferConfig, LossConfig, ModelConfig, TrainConfig
from hoi_pipeline.datasets.hoi_images import HOIImageDataset
from hoi_pipeline.devices import resolve_device
from hoi_pipeline.stages import init_clip
from hoi_pipeline.stages.infer import infer_dataset
from hoi_pipeline.stages.train import prepare_model
from hoi_pipeline.structures import Proposals


def random_proposals(
    name: str, rng: np.random.Generator, humans: int, objects: int, width: int = HICO_WIDTH, height: int = HICO_HEIGHT
) -> Proposals:
    """`humans` person boxes then `objects` boxes of random object classes, scores in [0.2, 1)."""
    count = humans + objects
    xy = rng.uniform(0, [width * 0.7, height * 0.7], size=(count, 2))
    wh = rng.uniform(20, [width * 0.3, height * 0.3], size=(count, 2))
    labels = np.concatenate([np.zeros(humans), rng.integers(1, 80, objects)])
    return Proposals(name, np.concatenate([xy, xy + wh], 1), rng.uniform(0.2, 1.0, count), labels)


def save_random_model(path: Path, clip_model: str, image_size: int | None, hidden_dim: int | None) -> ModelConfig:
    """A random-init model.pt of the training stage's layout (CLIP from an init-clip file)."""
    weights = path.parent / f"{clip_model}_random.pt"
    init_clip.run(model_name=clip_model, seed=0, out=weights)
    clip = ClipConfig(model=clip_model, pretrained=str(weights))
    hidden = hidden_dim or (128 if clip_model.startswith("hoi-tiny") else ModelConfig.hidden_dim)
    model_config = ModelConfig(input_size=image_size, hidden_dim=hidden,
                               spatial_dim=min(ModelConfig.spatial_dim, hidden))  # fmt: skip
    vocabulary = hico_sized_vocabulary()
    net, preprocessing = prepare_model(clip=clip, model=model_config, vocabulary=vocabulary, bank_embeddings=None,
                                       max_pairs=TrainConfig.max_pairs, seed=0)  # fmt: skip
    info = TrainedModelInfo(
        vocabulary=vocabulary, clip=clip, model=model_config, loss=LossConfig(), train=TrainConfig(),
        preprocessing=preprocessing, bank={}, iterations=0,
    )  # fmt: skip
    save_trained_model(path, net, info)
    return model_config


def measure_infer(
    *,
    clip_model: str = "hoi-tiny-rn",
    device: str = "cpu",
    batch_size: int = 8,
    images: int = 32,
    humans: int = 4,
    objects: int = 8,
    precision: str = "bf16",
    num_workers: int = 2,
    image_size: int | None = None,
    hidden_dim: int | None = None,
) -> Measurement:
    """Infer `images` JPEGs (640 x 480) after one untimed warm-up batch."""
    torch_device = resolve_device(device)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_config = save_random_model(root / "model.pt", clip_model, image_size, hidden_dim)
        model, info = load_trained_model(root / "model.pt", torch_device)
        names = write_jpegs(root / "images", images + batch_size)
        write_proposals(root / "proposals.h5", [random_proposals(n, rng, humans, objects) for n in names], {})
        lookup = torch.from_numpy(info.vocabulary.hoi_lookup())

        def run(subset: list[str], workers: int) -> None:
            dataset = HOIImageDataset(images=root / "images", filenames=subset, proposals=root / "proposals.h5",
                                      vocabulary=info.vocabulary, preprocessing=info.preprocessing)  # fmt: skip
            infer = InferConfig(batch_size=batch_size, num_workers=workers, precision=precision)
            infer_dataset(model, dataset, hoi_lookup=lookup, infer=infer, device=torch_device)

        run(names[:batch_size], 0)  # warm-up
        synchronize(torch_device)
        reset_peak_memory(torch_device)
        start = time.perf_counter()
        run(names[batch_size:], num_workers)
        synchronize(torch_device)
        seconds = time.perf_counter() - start
    pairs = humans * (humans + objects - 1)
    used_precision = precision if torch_device.type == "cuda" else "fp32"
    return Measurement(
        "infer",
        f"{clip_model} at {info.preprocessing.image_size} px, hidden {model_config.hidden_dim}, {pairs} pairs/image, "
        f"batch {batch_size}, {used_precision}, {num_workers} workers",
        device_name(torch_device), images_per_s=images / seconds, s_per_iteration=seconds * batch_size / images,
        peak_mib=peak_memory_mib(torch_device), details={"images timed": images},
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
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
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = measure_infer(
        clip_model=args.clip_model, device=args.device, batch_size=args.batch_size, images=args.images,
        humans=args.humans, objects=args.objects, precision=args.precision, num_workers=args.num_workers,
        image_size=args.image_size, hidden_dim=args.hidden_dim,
    )  # fmt: skip
    print(result.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
