"""Training throughput and peak memory of the bi-level model at several input sizes, on a given device.

Runs the training stage's own `train_step` (forward, losses, backward, AdamW step) on random
images with random proposals, for randomly initialised CLIP backbones (no downloads), with
HICO-DET's class counts (117 verbs, 80 objects, 600 HOI classes). Images have HICO-DET's usual
shape, 4:3 landscape, with the longer side at each `--input-size` (`model.input_size`), and are
padded as the data loader pads them: to the batch's largest image, a multiple of 32 (`--padding
batch`, 640 x 480 at 640), or to a square (`--padding square`, 640 x 640, the letterbox of before).

    python benchmarks/bench_train.py --model RN50 --input-size 224 448 640 --batch-size 24 --device cuda
    python benchmarks/bench_train.py --model RN50 --input-size 224 448 640 --batch-size 2 --iterations 3 \
        --device cpu

Prints one line per model and size: parameters, iterations/s, seconds/iteration (wall clock, and
the CPU time of all threads, which a machine shared with other jobs does not inflate), pairs per image,
peak memory (CUDA: torch.cuda.max_memory_allocated; CPU: the peak resident set size of a fresh
process per measurement), and the step's time split (`split_s`, seconds per iteration, `train_step`'s
phases via `hoi_pipeline.timing.PhaseTimer`): data (host pairing and the copy to the device; the
benchmark's batches are ready, so no loader wait), backbone and pair branch (forward + backward each;
the pair branch includes the small global head), losses (forward) and optimiser (clipping + AdamW).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench_common import Measurement, device_name, hico_sized_vocabulary, peak_memory_mib
from hoi_pipeline.config import ClipConfig, LossConfig, ModelConfig, TrainConfig
from hoi_pipeline.datasets.hoi_images import HOIBatch, Preprocessing
from hoi_pipeline.datasets.input_pipeline import pad_images
from hoi_pipeline.losses import ImageTargets
from hoi_pipeline.stages import init_clip
from hoi_pipeline.stages.train import build_optimizer, parameter_counts, prepare_model, resolve_device, train_step
from hoi_pipeline.structures import Vocabulary
from hoi_pipeline.timing import PhaseTimer

log = logging.getLogger("bench_train")


def random_batch(
    vocabulary: Vocabulary,
    batch_size: int,
    input_size: int,
    humans: int,
    objects: int,
    generator: torch.Generator,
    square: bool = False,
) -> HOIBatch:
    """B random 4:3 landscape images (longer side `input_size`), each with `humans` person boxes and
    `objects` object boxes, and random labels; padded to the batch's largest image or to a square.
    uint8 pixels, as the loader gives them (normalised on the device by `HOIBatch.to`, as in training)."""
    height, width = round(input_size * 3 / 4), input_size
    boxes, labels, scores = [], [], []
    count = humans + objects
    for _ in range(batch_size):
        corner = torch.rand(count, 2, generator=generator) * torch.tensor([width, height]) * 0.7
        size = torch.rand(count, 2, generator=generator) * torch.tensor([width, height]) * 0.3 + 8
        boxes.append(torch.cat([corner, torch.minimum(corner + size, torch.tensor([width, height]))], dim=1))
        object_labels = torch.randint(1, vocabulary.num_objects, (objects,), generator=generator)
        labels.append(torch.cat([torch.full((humans,), vocabulary.person), object_labels]))
        scores.append(torch.rand(count, generator=generator) * 0.5 + 0.5)

    def multi_hot(n: int, k: int) -> torch.Tensor:
        out = torch.zeros(batch_size, n)
        out[torch.arange(batch_size)[:, None], torch.randint(0, n, (batch_size, k), generator=generator)] = 1.0
        return out

    images = pad_images([torch.randint(0, 256, (3, height, width), generator=generator, dtype=torch.uint8)
                         for _ in range(batch_size)])  # fmt: skip
    if square:
        images = torch.nn.functional.pad(images, (0, input_size - images.shape[-1], 0, input_size - images.shape[-2]))
    return HOIBatch(
        indices=torch.arange(batch_size),
        filenames=tuple(f"random{i}" for i in range(batch_size)),
        images=images,
        image_sizes=torch.tensor([[height, width]] * batch_size),
        original_sizes=torch.tensor([[height, width]] * batch_size),
        scales=torch.ones(batch_size, 2),
        flipped=torch.zeros(batch_size, dtype=torch.bool),
        boxes=tuple(boxes),
        scores=tuple(scores),
        labels=tuple(labels),
        targets=ImageTargets(
            multi_hot(vocabulary.num_classes, 2),
            multi_hot(vocabulary.num_verbs, 2),
            multi_hot(vocabulary.num_objects, 2),
        ),
        preprocessing=Preprocessing(input_size, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
    )


def benchmark(model_name: str, input_size: int, args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    vocabulary = hico_sized_vocabulary()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model_config = ModelConfig(input_size=input_size, hidden_dim=args.hidden_dim, spatial_dim=args.spatial_dim,
                               feature_layers=tuple(args.feature_layers))  # fmt: skip
    train = TrainConfig(batch_size=args.batch_size, precision=args.precision)
    with tempfile.TemporaryDirectory() as tmp:  # random-init CLIP read through clip.pretrained like real weights
        weights = Path(tmp) / f"{model_name}_random.pt"
        init_clip.run(model_name=model_name, seed=0, out=weights)
        clip = ClipConfig(model=model_name, pretrained=str(weights))
        net, _ = prepare_model(clip=clip, model=model_config, vocabulary=vocabulary, bank_embeddings=None,
                               max_pairs=train.max_pairs, seed=0)  # fmt: skip
    net.to(device).train()
    optimizer = build_optimizer(net, train)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and args.precision == "fp16")
    generator = torch.Generator().manual_seed(0)
    batches = [random_batch(vocabulary, args.batch_size, input_size, args.humans, args.objects, generator,
                            square=args.padding == "square") for _ in range(2)]  # fmt: skip
    loss = LossConfig(relatedness_warmup=0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step(i: int, timer: PhaseTimer | None = None) -> None:
        if timer is not None:
            timer.start()
        # the host batch, as the data loader gives it: the step pairs it there and moves it to the device
        train_step(net, batches[i % 2], optimizer=optimizer, scaler=scaler, loss_config=loss, iteration=i,
                   grad_clip=train.grad_clip, device=device, precision=args.precision, timer=timer)  # fmt: skip

    for i in range(args.warmup):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    timers = [PhaseTimer(device) for _ in range(args.iterations)]  # read after the last step: no extra sync
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(args.iterations):
        step(args.warmup + i, timers[i])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - start) / args.iterations
    cpu_seconds = (time.process_time() - cpu_start) / args.iterations
    phases: dict[str, float] = {}
    for timer in timers:
        for name, value in timer.read().items():
            phases[name] = phases.get(name, 0.0) + value / args.iterations
    return {
        "model": model_name,
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                 f" ({torch.get_num_threads()} threads)"),
        "batch": args.batch_size,
        "input": "x".join(str(v) for v in batches[0].images.shape[-2:]),
        "precision": args.precision if device.type == "cuda" else "fp32",
        "params_M": round(parameter_counts(net)["total"] / 1e6, 2),
        "pairs_per_image": args.humans * (args.humans + args.objects - 1),
        "it_per_s": round(1.0 / seconds, 3),
        "s_per_it": round(seconds, 3),
        "cpu_s_per_it": round(cpu_seconds, 3),  # all threads: the work, whatever else shares the CPU
        "peak_MiB": round(peak_memory_mib(device)),
        "split_s": ",".join(f"{name.replace(' ', '_')}:{value:.3g}" for name, value in phases.items()),
    }  # fmt: skip


def measure_train(**options) -> Measurement:
    """One `benchmark` row as a `Measurement`; `options` are the command line's, by their dest names
    (`input_size` one longer side), measured in this process."""
    args = build_parser().parse_args([])
    for key, value in options.items():
        if not hasattr(args, key):
            raise TypeError(f"measure_train: unknown option '{key}'")
        setattr(args, key, value)
    size = args.input_size if isinstance(args.input_size, int) else args.input_size[0]
    result = benchmark(args.model[0], size, args)
    device = resolve_device(args.device)
    pairs = min(result["pairs_per_image"], TrainConfig.max_pairs)
    return Measurement(
        "train", f"{result['model']} at {result['input']} px, batch {result['batch']}, {result['precision']}, "
        f"{args.humans}+{args.objects} proposals, {pairs} pairs/image (cap {TrainConfig.max_pairs})",
        device_name(device), images_per_s=args.batch_size / result["s_per_it"], s_per_iteration=result["s_per_it"],
        peak_mib=result["peak_MiB"], details={"parameters (M)": result["params_M"], "CPU s/iteration": result["cpu_s_per_it"],
                                              "step split (s)": result["split_s"]},
    )  # fmt: skip


def measure_train_fitting(*, batch_sizes: list[int], **options) -> Measurement:
    """`measure_train` at the first of `batch_sizes` that fits in the GPU's memory (e.g. 96, 48, 24)."""
    too_large = []
    for batch_size in batch_sizes:
        try:
            result = measure_train(batch_size=batch_size, **options)
        except torch.cuda.OutOfMemoryError:
            too_large.append(batch_size)
            torch.cuda.empty_cache()
            continue
        if too_large:
            result.details["out of memory at batch"] = ", ".join(map(str, too_large))
        return result
    raise RuntimeError(f"out of memory at every batch size {batch_sizes}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", nargs="+", default=["RN50"], help="open_clip ResNet model names")
    parser.add_argument("--input-size", nargs="+", type=int, default=[224, 448, 640], help="longer sides, pixels")
    parser.add_argument("--padding", default="batch", choices=["batch", "square"])
    parser.add_argument("--batch-size", type=int, default=24)
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "fp16", "bf16"], help="autocast dtype on CUDA")
    parser.add_argument("--hidden-dim", type=int, default=ModelConfig.hidden_dim)
    parser.add_argument("--spatial-dim", type=int, default=ModelConfig.spatial_dim)
    parser.add_argument("--feature-layers", nargs="+", default=["layer4"])
    parser.add_argument("--humans", type=int, default=4, help="human proposals per image")
    parser.add_argument("--objects", type=int, default=8, help="object proposals per image")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # a fresh process per measurement, so that the CPU peak memory is this measurement's own
    context = multiprocessing.get_context("spawn")
    for name in args.model:
        for size in args.input_size:
            with context.Pool(1) as pool:
                result = pool.apply(benchmark, (name, size, args))
            print(" ".join(f"{key}={value}" for key, value in result.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
