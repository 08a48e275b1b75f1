"""Throughput of the input pipeline alone: JPEG file -> normalised, padded batch on the device.

HICO-DET-sized JPEGs (640 x 480, about 100 KB) are read by a DataLoader with W workers, resized to
the longer side S, batched and normalised, as training and inference read them
(`hoi_pipeline.datasets.input_pipeline`). Variants (`--decode`):

    pil-worker-normalise  Pillow decode + resize, float32 normalisation in the worker, the batch padded in
                          the worker's own memory (the pipeline of before)
    pil                   Pillow decode + resize, uint8 batches padded in shared memory, normalisation on the device
    torchvision           torchvision decode + uint8 resize kernel, normalisation on the device
    device                the worker reads bytes; nvJPEG decodes the batch on the GPU (CUDA only)

Prints images/s (wall clock) and images/s per CPU core (images over the CPU seconds of the main
process and its workers: what one core sustains, whatever else shares the machine).

    python benchmarks/bench_input.py --device cpu --workers 1 2
    python benchmarks/bench_input.py --device cuda --workers 8 16 --decode pil torchvision device
"""

from __future__ import annotations

import argparse
import functools
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from bench_common import Measurement, device_name, synchronize, write_jpegs
from hoi_pipeline.datasets.input_pipeline import (
    DecodedImage,
    EncodedImage,
    decode_on_device,
    normalise_batch,
    pad_images,
    read_encoded,
    read_resized,
    resized_size,
)
from hoi_pipeline.devices import resolve_device

MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)  # CLIP's
VARIANTS = ("pil-worker-normalise", "pil", "torchvision", "device")


class FileInput(Dataset):
    """Item i: image i read as the variant reads it (decoded + resized, or its bytes)."""

    def __init__(self, root: Path, names: list[str], size: int, variant: str) -> None:
        self.root, self.names, self.size, self.variant = root, names, size, variant

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> DecodedImage | EncodedImage | torch.Tensor:
        path = self.root / self.names[i]
        if self.variant == "device":
            return read_encoded(path)
        if self.variant == "pil-worker-normalise":
            image = read_resized(path, self.size, "pil").pixels
            return normalise_batch(image[None], torch.tensor([image.shape[-2:]]), MEAN, STD)[0]
        return read_resized(path, self.size, self.variant)  # type: ignore[arg-type]


def collate(items: list, size: int) -> tuple[torch.Tensor | list, torch.Tensor]:
    """(padded uint8 / float batch, or the encoded images) and (B, 2) content (height, width)."""
    if isinstance(items[0], EncodedImage):
        return items, torch.tensor([resized_size(w, h, size)[::-1] for h, w in (it.original_size for it in items)])
    pixels = [item.pixels if isinstance(item, DecodedImage) else item for item in items]
    # the pipeline of before also padded in plain memory (copied once more into shared memory)
    shared = not isinstance(items[0], torch.Tensor)
    return pad_images(pixels, shared=shared), torch.tensor([tuple(p.shape[-2:]) for p in pixels])


def cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (the DataLoader's workers, once joined)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


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
        dataset = FileInput(folder, names, size, variant)
        loader = DataLoader(
            dataset, batch_size=batch_size, num_workers=workers, collate_fn=functools.partial(collate, size=size),
            pin_memory=torch_device.type == "cuda" and variant != "device",
        )  # fmt: skip
        warm = DataLoader(FileInput(folder, names[:batch_size], size, variant), batch_size=batch_size,
                          collate_fn=functools.partial(collate, size=size))  # fmt: skip
        for batch, sizes in warm:  # the first CUDA calls (nvJPEG, kernels) before timing
            to_network_input(batch, sizes, torch_device, size)
        synchronize(torch_device)
        start_wall, start_cpu = time.perf_counter(), cpu_seconds()
        for batch, sizes in loader:
            to_network_input(batch, sizes, torch_device, size)
        synchronize(torch_device)
        wall, cpu = time.perf_counter() - start_wall, cpu_seconds() - start_cpu
    return Measurement(
        "input", settings, device_name(torch_device), images_per_s=images / wall,
        s_per_iteration=wall * batch_size / images,
        details={"images/s per core": round(images / cpu, 1), "CPU s/image": round(cpu / images, 5)},
    )  # fmt: skip


def to_network_input(batch: torch.Tensor | list, sizes: torch.Tensor, device: torch.device, size: int) -> torch.Tensor:
    """A loader batch -> the float32 (B, 3, H, W) batch the network reads, on `device`."""
    if isinstance(batch, list):  # device decode
        return normalise_batch(pad_images(decode_on_device(batch, size, device)), sizes, MEAN, STD)
    batch = batch.to(device, non_blocking=True)
    if batch.dtype == torch.uint8:
        return normalise_batch(batch, sizes, MEAN, STD)
    return batch


def measure_steps(*, variant: str, size: int = 640, repeat: int = 50, root: Path | None = None) -> Measurement:
    """CPU milliseconds of each step for one image, in this process on one thread (no DataLoader):
    decode (+ resize), and normalisation; images/s per core is 1000 / their sum."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = root or Path(tmp)
            names = write_jpegs(folder, 8)
            decode = "pil" if variant == "pil-worker-normalise" else variant
            if decode == "device":
                raise ValueError("device decode has no CPU steps")
            paths = [folder / name for name in names]
            read_ms = _cpu_ms(lambda i: read_resized(paths[i % len(paths)], size, decode), repeat)  # type: ignore
            image = read_resized(paths[0], size, decode).pixels  # type: ignore[arg-type]
            sizes = torch.tensor([image.shape[-2:]])
            norm_ms = _cpu_ms(lambda i: normalise_batch(image[None], sizes, MEAN, STD), repeat)
    finally:
        torch.set_num_threads(threads)
    total = read_ms + (norm_ms if variant == "pil-worker-normalise" else 0.0)
    return Measurement(
        "input", f"{variant}, longer side {size}, one image at a time in one thread (no DataLoader)",
        "cpu (1 thread)",
        images_per_s=1000.0 / total, s_per_iteration=None,
        details={"decode+resize ms": round(read_ms, 2), "normalise ms": round(norm_ms, 2),
                 "normalised in": "worker" if variant == "pil-worker-normalise" else "main process / device"},
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
    parser.add_argument("--decode", nargs="+", default=list(VARIANTS[:3]), choices=VARIANTS)
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
