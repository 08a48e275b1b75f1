"""Throughput of the input pipeline alone: JPEG file -> normalised, padded batch on the device.

HICO-DET-sized JPEGs (640 x 480, about 100 KB) read as training and inference read them: the
`HOIImageDataset` (with a few proposal boxes per image) in a DataLoader with W workers, batches made by
its `collate`, finished on the device by `HOIBatch.to` (`hoi_pipeline.datasets.input_pipeline`).
Variants (`--decode`, the `model.decode` setting):

    pil           Pillow decode + resize in the workers, uint8 batches in shared memory, normalised on the device
    torchvision   torchvision decode + uint8 resize kernel in the workers, normalised on the device
    device        the workers read bytes; nvJPEG decodes the batch on the GPU (CUDA only)

Also, per CPU decoder, the cost of each step for one image on one thread (no DataLoader), with the
float32 normalisation the workers no longer do (it runs on the device now).
Prints images/s (wall clock), images/s per CPU core (images over the CPU seconds of the main
process and its workers: what one core sustains, whatever else shares the machine) and the workers'
CPU milliseconds per image (their start included): what sizes `num_workers` for a GPU, whose main
process only launches the normalisation (on the CPU it also normalises).

    python benchmarks/bench_input.py --device cpu --workers 1 2
    python benchmarks/bench_input.py --device cuda --workers 8 16 --decode pil torchvision device
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from bench_common import Measurement, device_name, synchronize, write_jpegs
from hoi_pipeline.datasets.hoi_images import HOIImageDataset, Preprocessing
from hoi_pipeline.datasets.input_pipeline import DECODES, Decode, normalise_batch, read_resized
from hoi_pipeline.devices import resolve_device
from hoi_pipeline.structures import Proposals, Vocabulary

MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)  # CLIP's
VARIANTS = DECODES


def jpeg_dataset(folder: Path, names: list[str], size: int, decode: Decode) -> HOIImageDataset:
    """The files as the training dataset reads them, each with two proposal boxes."""
    vocabulary = Vocabulary(verbs=("hold",), objects=("person", "cup"), hoi_classes=[[0, 1]], rare=[], non_rare=[0])
    boxes = [[10, 20, 200, 400], [150, 60, 500, 300]]
    proposals = [Proposals(name, boxes, [0.9, 0.8], [0, 1]) for name in names]
    return HOIImageDataset(images=folder, filenames=names, proposals=proposals, vocabulary=vocabulary,
                           preprocessing=Preprocessing(size, MEAN, STD, decode), decode=decode)  # fmt: skip


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds of this process, and of its finished children (the DataLoader's workers, once joined)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def measure_input(
    *,
    variant: str,
    workers: int,
    size: int = 640,
    images: int = 256,
    batch_size: int = 32,
    device: str = "cpu",
    root: Path | None = None,
) -> Measurement:
    """Read `images` JPEGs into normalised batches on `device` with `workers` DataLoader workers."""
    torch_device = resolve_device(device)
    settings = f"{variant}, {workers} workers, longer side {size}, batch {batch_size}"
    if variant == "device" and torch_device.type != "cuda":
        return Measurement("input", settings, device_name(torch_device), error="device decode needs CUDA")
    with tempfile.TemporaryDirectory() as tmp:
        folder = root or Path(tmp)
        names = write_jpegs(folder, images)
        dataset = jpeg_dataset(folder, names, size, variant)
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=dataset.collate,
                            pin_memory=torch_device.type == "cuda" and variant != "device")  # fmt: skip
        warm = jpeg_dataset(folder, names[:batch_size], size, variant)  # the first CUDA calls (nvJPEG, kernels)
        warm.collate([warm[i] for i in range(len(warm))]).to(torch_device)
        synchronize(torch_device)
        start_wall, start_cpu = time.perf_counter(), cpu_seconds()
        for batch in loader:
            batch.to(torch_device, non_blocking=True)
        synchronize(torch_device)
        wall = time.perf_counter() - start_wall
        main, workers_cpu = (end - begin for end, begin in zip(cpu_seconds(), start_cpu))
    cpu = main + workers_cpu
    return Measurement(
        "input", settings, device_name(torch_device), images_per_s=images / wall,
        s_per_iteration=wall * batch_size / images,
        details={"images/s per core": round(images / cpu, 1), "CPU s/image": round(cpu / images, 5),
                 "worker CPU ms/image": round(1000 * workers_cpu / images, 2)},
    )  # fmt: skip


def measure_steps(*, variant: str, size: int = 640, repeat: int = 50, root: Path | None = None) -> Measurement:
    """CPU milliseconds of each step for one image, in this process on one thread (no DataLoader):
    decode (+ resize), what a worker does, so images/s per core is 1000 / it; and the float32
    normalisation that now runs on the device (shown for comparison)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = root or Path(tmp)
            names = write_jpegs(folder, 8)
            if variant == "device":
                raise ValueError("device decode has no CPU steps")
            paths = [folder / name for name in names]
            read_ms = _cpu_ms(lambda i: read_resized(paths[i % len(paths)], size, variant), repeat)  # type: ignore
            image = read_resized(paths[0], size, variant).pixels  # type: ignore[arg-type]
            sizes = torch.tensor([image.shape[-2:]])
            norm_ms = _cpu_ms(lambda i: normalise_batch(image[None], sizes, MEAN, STD), repeat)
    finally:
        torch.set_num_threads(threads)
    return Measurement(
        "input", f"{variant}, longer side {size}, one image at a time in one thread (no DataLoader)",
        "cpu (1 thread)",
        images_per_s=1000.0 / read_ms, s_per_iteration=None,
        details={"decode+resize ms": round(read_ms, 2),
                 "float32 normalise ms (on the device now, not in the workers)": round(norm_ms, 2)},
    )  # fmt: skip


def _cpu_ms(step, repeat: int) -> float:
    step(0)
    start = time.process_time()
    for i in range(repeat):
        step(i)
    return (time.process_time() - start) * 1000.0 / repeat


def measure_input_suite(
    *, variants: list[str], workers: list[int], size: int = 640, images: int = 256, batch_size: int = 32,
    device: str = "cpu",
) -> list[Measurement]:
    """Per variant: the one-core step costs (CPU decoders), then the DataLoader with each worker count."""
    rows = []
    for variant in variants:
        if variant != "device":
            rows.append(measure_steps(variant=variant, size=size))
        for count in workers:
            rows.append(measure_input(variant=variant, workers=count, size=size, images=images,
                                      batch_size=batch_size, device=device))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--decode", nargs="+", default=list(VARIANTS[:2]), choices=VARIANTS)
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2], help="DataLoader workers")
    parser.add_argument("--size", nargs="+", type=int, default=[640], help="longer side, pixels")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    for size in args.size:
        for row in measure_input_suite(variants=args.decode, workers=args.workers, size=size, images=args.images,
                                       batch_size=args.batch_size, device=args.device):  # fmt: skip
            print(row.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
