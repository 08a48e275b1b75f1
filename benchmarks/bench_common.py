"""What the benchmark scripts share: the result row, HICO-DET-sized data, devices and memory.

Every `bench_*.py` exposes a `measure_*` function returning `Measurement`s (what `run_all.py`
collects into one table) and a command line printing them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import resource
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hoi_pipeline.structures import HOIAnnotations, ImageAnnotation, Vocabulary

HICO_WIDTH, HICO_HEIGHT = 640, 480  # most HICO-DET images are 640 x 480 (or 480 x 640)
HICO_TEST_IMAGES = 9658
DEFAULT_HICODET_TEST = Path(__file__).resolve().parents[2] / "shared" / "hicodet" / "instances_test2015.json"


@dataclass
class Measurement:
    """One row of the benchmark table; a figure that does not apply is None."""

    stage: str
    settings: str
    device: str = ""
    images_per_s: float | None = None  # (or prompts / s for embed; see `unit`)
    s_per_iteration: float | None = None  # one batch (train: one optimiser step)
    peak_mib: float | None = None  # CUDA: max allocated; CPU: peak resident set, unless its benchmark says otherwise
    unit: str = "images/s"
    details: dict = field(default_factory=dict)  # further figures, printed after the table
    error: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def line(self) -> str:
        """One human-readable line (what the single-benchmark scripts print)."""
        parts = [f"{self.stage}: {self.settings}", f"device {self.device}"]
        if self.images_per_s is not None:
            parts.append(f"{self.images_per_s:.3g} {self.unit}")
        if self.s_per_iteration is not None:
            parts.append(f"{self.s_per_iteration:.3g} s/iteration")
        if self.peak_mib is not None:
            parts.append(f"peak {self.peak_mib:.0f} MiB")
        parts += [f"{key} {value}" for key, value in self.details.items()]
        if self.error:
            parts.append(f"ERROR {self.error}")
        return "; ".join(parts)


def device_name(device: torch.device) -> str:
    """'NVIDIA H200' for a GPU, 'cpu (N threads)' for the CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device) -> float:
    """CUDA: the most memory tensors held since the last reset; CPU: this process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def current_memory_mib(device: torch.device) -> float:
    """CUDA: memory tensors hold now; CPU: this process's resident set now (Linux /proc)."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


@dataclass
class SavedBytes:
    """What autograd saved for backward inside a `saved_activation_bytes()` block, in bytes."""

    activations: int = 0  # storages the block made: what a training step holds from forward to backward
    existing: int = 0  # storages that existed before the block: parameters and inputs


@contextlib.contextmanager
def saved_activation_bytes(existing: Iterable[torch.Tensor] = ()) -> Iterator[SavedBytes]:
    """Count the bytes of the tensors autograd saves for backward while the block runs (a forward pass).

    Each storage counts once and whole: views share their base's storage (`x`, `x.T` and `x[0]`
    saved by three operations cost the storage of `x`, once), and a saved slice keeps all of its
    storage alive. A storage is `existing`, not an activation, when it belongs to a leaf tensor that
    requires grad (parameters, inputs being differentiated; a view's base counts) or to a tensor in
    `existing` (inputs without grad, such as RoIs); everything else was made by the forward pass. The
    figure holds on every device (what is saved does not depend on the allocator); tensors an
    operation keeps outside autograd's saved tensors (a Python `ctx.attribute = tensor`) are not seen.
    Autograd must keep the graph until the backward pass, as a training step does: a saved storage
    freed inside the block could be counted twice if its address were reused.
    """
    known = {_storage_key(tensor) for tensor in existing}
    seen: dict[tuple[torch.device, int], int] = {}
    made: set[tuple[torch.device, int]] = set()
    saved = SavedBytes()

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        key = _storage_key(tensor)
        if key not in seen:
            seen[key] = tensor.untyped_storage().nbytes()
            base = tensor if tensor._base is None else tensor._base
            if not (key in known or (base.is_leaf and base.requires_grad)):
                made.add(key)
        return tensor.detach()  # not the tensor itself: a saved output would hold its own grad_fn (a cycle)

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        yield saved
    saved.activations = sum(nbytes for key, nbytes in seen.items() if key in made)
    saved.existing = sum(nbytes for key, nbytes in seen.items() if key not in made)


def _storage_key(tensor: torch.Tensor) -> tuple[torch.device, int]:
    storage = tensor.untyped_storage()
    return storage.device, storage.data_ptr()


@dataclass
class PeakBytes:
    """The most memory tensors made inside a `cpu_tensor_peak()` block held at once, in bytes."""

    peak: int = 0


@contextlib.contextmanager
def cpu_tensor_peak() -> Iterator[PeakBytes]:
    """The CPU analogue of CUDA's max allocated: the profiler's allocation events (`profile_memory`)
    summed in time order, the most bytes of CPU tensors allocated inside the block and live at once.

    Memory allocated before the block is not counted, nor its release inside the block (the
    profiler does not know its size); allocations outside PyTorch's CPU allocator (a BLAS or oneDNN
    workspace) are not seen. The profiler slows the block down: do not time it.
    """
    from torch.profiler import ProfilerActivity, profile

    result = PeakBytes()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        yield result
    events = [
        event for event in profiler.profiler.kineto_results.events()
        if event.name() == "[memory]" and event.device_type() == torch.autograd.DeviceType.CPU
    ]  # fmt: skip
    live = 0
    for event in sorted(events, key=lambda event: event.start_ns()):
        live += event.nbytes()  # an allocation; negative: a release
        result.peak = max(result.peak, live)


def hico_sized_vocabulary(
    num_verbs: int = 117, num_objects: int = 80, num_classes: int = 600, seed: int = 0
) -> Vocabulary:
    """A vocabulary with HICO-DET's sizes (class names are placeholders; object 0 is the person)."""
    rng = np.random.default_rng(seed)
    combos = rng.choice(num_verbs * num_objects, size=num_classes, replace=False)
    hoi = np.stack([combos // num_objects, combos % num_objects], axis=1)
    return Vocabulary(
        verbs=tuple(f"verb{i}" for i in range(num_verbs)),
        objects=("person", *(f"object{i}" for i in range(1, num_objects))),
        hoi_classes=hoi,
        rare=np.arange(0, num_classes, 4),
        non_rare=np.setdiff1d(np.arange(num_classes), np.arange(0, num_classes, 4)),
    )


def photo_like(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """An RGB image with a photo's mix of smooth regions and texture (its JPEG is about 100 KB at
    640 x 480, quality 90, like HICO-DET's; pure noise would compress far worse and decode slower)."""
    coarse = Image.fromarray(rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8))
    pixels = np.asarray(coarse.resize((width, height), Image.BICUBIC), dtype=np.int16)
    pixels = pixels + rng.integers(-12, 13, (height, width, 3), dtype=np.int16)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def write_jpegs(
    folder: Path, count: int, width: int = HICO_WIDTH, height: int = HICO_HEIGHT, seed: int = 0
) -> list[str]:
    """`count` photo-like JPEGs (quality 90) in `folder`; returns their file names."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{i:05d}.jpg" for i in range(count)]
    template = [photo_like(width, height, rng) for _ in range(min(count, 8))]  # 8 distinct images, reused
    for i, name in enumerate(names):
        template[i % len(template)].save(folder / name, quality=90)
    return names


def hico_sized_annotations(num_images: int, seed: int = 0, vocabulary: Vocabulary | None = None) -> HOIAnnotations:
    """A HICO-DET-sized split with random ground truth: 640 x 480 images with 1-6 pairs each
    (HICO-DET's test set has 3.1 on average), classes drawn from a long-tailed (Zipf) distribution."""
    vocabulary = vocabulary or hico_sized_vocabulary(seed=seed)
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, vocabulary.num_classes + 1)
    weights = rng.permutation(weights / weights.sum())
    images = []
    for i in range(num_images):
        count = int(rng.integers(1, 7))
        hoi = rng.choice(vocabulary.num_classes, size=count, p=weights)
        corner = rng.uniform(0, [HICO_WIDTH * 0.7, HICO_HEIGHT * 0.7], size=(2 * count, 2))
        size = rng.uniform(16, [HICO_WIDTH * 0.3, HICO_HEIGHT * 0.3], size=(2 * count, 2))
        boxes = np.concatenate([corner, corner + size], axis=1).round()
        images.append(
            ImageAnnotation(
                filename=f"HICO_synthetic_{i:08d}.jpg", width=HICO_WIDTH, height=HICO_HEIGHT,
                boxes_h=boxes[:count], boxes_o=boxes[count:], hoi=hoi, verb=vocabulary.hoi_classes[hoi, 0],
                object=vocabulary.hoi_classes[hoi, 1],
            )  # fmt: skip
        )
    return HOIAnnotations(vocabulary=vocabulary, images=tuple(images), source="synthetic (HICO-DET-sized)")


def hicodet_test_annotations(path: Path | None, work: Path, num_images: int | None = None) -> tuple[Path, str]:
    """The HICO-DET test annotation file to use, and what it is: `path` (default the shared copy) when it
    exists, else a HICO-DET-sized synthetic split written under `work` (9,658 images, or `num_images`).
    With `num_images` the real file is cut to its first `num_images` images."""
    from hoi_pipeline.datasets import load_annotations
    from hoi_pipeline.datasets.hicodet import save_hicodet_json

    path = path or DEFAULT_HICODET_TEST
    if path.is_file():
        if num_images is None:
            return path, f"HICO-DET test ({path.name})"
        annotations = load_annotations(path, "test")
        kept = annotations.images[:num_images]
        names = {image.filename for image in kept}
        subset = dataclasses.replace(annotations, images=kept, empty=tuple(n for n in annotations.empty if n in names))
        label = f"first {len(kept)} images of HICO-DET test"
    else:
        subset = hico_sized_annotations(num_images or HICO_TEST_IMAGES)
        label = f"{len(subset.images)} synthetic HICO-DET-sized images"
    out = work / "annotations.json"
    save_hicodet_json(subset, out)
    return out, label
