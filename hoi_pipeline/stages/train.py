"""Stage `train`: the bi-level model from image-level labels (paper Sec. 3.3 and 4.2).

Inputs: the split's annotations (image-level labels only are used: the HOI classes, verbs and
objects named in an image), its images, the detect stage's proposals HDF5 and the knowledge bank.
Outputs in `out_dir`:

    model.pt              trained weights + what inference needs (`hoi_pipeline.checkpoints`)
    losses.csv            one row per iteration, the fields of `training_state.LossRecord`
    checkpoints/last.pt   the `TrainingState`: every `train.checkpoint_every` iterations, at the end, on SIGTERM
    checkpoints/superseded/<UTC time>/   last.pt, losses.csv and model.pt of an earlier, different training

Optimisation (paper): AdamW, lr 1e-5 for the CLIP visual encoder and 1e-4 for everything else,
x0.1 at 12K and 24K iterations, 60K iterations at a batch of 96 (24 on each of 4 GPUs); gradient norm
clipping; bf16/fp16 autocast on CUDA. One iteration is one optimizer step over `train.batch_size`
images: each process accumulates the gradients of its share in micro-batches of
`train.micro_batch_size` (`train_step`), so one GPU reproduces the paper's batch. `train.iterations: 0` saves the initial model. The data order and flips are a
function of (seed, iteration) (`SeededBatchSampler`) and every RNG state is checkpointed.

Reruns: last.pt is resumed only when it is the same training (settings, code and inputs, see
`hoi_pipeline/training_state.py`, which also says when a resume is bit-identical to an
uninterrupted run); otherwise it is moved aside and training starts afresh. The log says which,
and why. SIGTERM (SLURM preemption or time limit, Snakemake, torchrun) or Ctrl-C during training:
the iteration in progress finishes, rank 0 saves the state when it is newer than the saved one, and
the process exits with 128 + the signal number (143, 130); a rerun resumes there. A second Ctrl-C
stops at once. Under torchrun (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel,
each process takes its share of the global batch, and rank 0 writes. Images with no HOI label are
skipped; images whose proposals make no human-object pair train the global branch (L_g) unless
`loss.images_without_pairs: skip` or the model has no HOI recognition (counted in the log).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn
from torch.utils.data import DataLoader

from hoi_pipeline import devices
from hoi_pipeline.artifacts import file_digest
from hoi_pipeline.checkpoints import TrainedModelInfo, save_trained_model
from hoi_pipeline.code_version import stage_code_digest
from hoi_pipeline.config import ClipConfig, LossConfig, ModelConfig, TrainConfig, to_dict
from hoi_pipeline.datasets import load_annotations
from hoi_pipeline.datasets.hoi_images import (
    HOIBatch,
    HOIImageDataset,
    Preprocessing,
    SeededBatchSampler,
)
from hoi_pipeline.datasets.input_pipeline import Decode, worker_decode
from hoi_pipeline.devices import autocast
from hoi_pipeline.knowledge_bank_file import load_knowledge_bank
from hoi_pipeline.losses import LossTerms, compute_losses, effective_loss_config
from hoi_pipeline.modeling.model import BiLevelHOIModel, build_model
from hoi_pipeline.structures import HOIAnnotations, Vocabulary
from hoi_pipeline.timing import NoTimer, PhaseTimer
from hoi_pipeline.training_state import (
    LOSSES_FILE,
    MODEL_FILE,
    STATE_FILE,
    LossRecord,
    ResumeDecision,
    RuntimeInfo,
    SavedState,
    TrainingIdentity,
    TrainingState,
    decide_resume,
    device_description,
    move_aside,
    read_saved_state,
    reproducible_kernels,
    write_loss_csv,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

STAGE_MODULE = "hoi_pipeline.stages.train"  # whose code digest identifies a training
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_NON_CLIP_SIZE = 224


# --------------------------------------------------------------------------------------------
# devices and processes


@dataclass(frozen=True)
class Processes:
    """This process's place under torchrun (rank 0 of 1 without it)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_processes() -> Processes:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on GPUs, gloo on CPUs)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Processes()
    if not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    processes = Processes(torch_dist.get_rank(), torch_dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if not processes.is_main:  # one copy of the progress log: rank 0's
        logging.getLogger("hoi_pipeline").setLevel(logging.WARNING)
    return processes


def resolve_device(name: str, processes: Processes = Processes()) -> torch.device:
    """`auto` = CUDA when available (cuda:LOCAL_RANK under torchrun), else the CPU."""
    device = devices.resolve_device(name, "train.device")
    if device.type == "cuda":
        if processes.distributed:
            device = torch.device("cuda", processes.local_rank)
        torch.cuda.set_device(device)
    return device




def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------------------------
# building


def prepare_model(
    *,
    clip: ClipConfig,
    model: ModelConfig,
    vocabulary: Vocabulary,
    bank_embeddings: torch.Tensor | None,
    max_pairs: int,
    seed: int,
) -> tuple[BiLevelHOIModel, Preprocessing]:
    """The model of a config with its pretrained weights, and the image preprocessing it expects."""
    if model.backbone_source == "clip":
        from hoi_pipeline.modeling.clip_loading import clip_image_size, clip_mean_std, load_clip

        clip_model = load_clip(clip, "cpu")
        size = model.input_size or clip.image_size or clip_image_size(clip_model)
        mean, std = clip_mean_std(clip_model)
        net = build_model(
            clip=clip, model=model, vocabulary=vocabulary, bank_embeddings=bank_embeddings,
            max_pairs=max_pairs, seed=seed, visual=clip_model.visual,
        )  # fmt: skip
        del clip_model  # the text tower is not needed
    else:
        size, mean, std = model.input_size or clip.image_size or DEFAULT_NON_CLIP_SIZE, IMAGENET_MEAN, IMAGENET_STD
        net = build_model(
            clip=clip, model=model, vocabulary=vocabulary, bank_embeddings=bank_embeddings,
            max_pairs=max_pairs, seed=seed,
        )  # fmt: skip
    return net, Preprocessing(int(size), tuple(mean), tuple(std), model.decode)


def build_optimizer(model: BiLevelHOIModel, train: TrainConfig) -> torch.optim.AdamW:
    """AdamW with the backbone and head learning rates; no weight decay on biases, norms and scalars; fused
    CUDA kernels for a model on a GPU when `train.fused_optimizer` (one kernel launch per step)."""
    backbone, rest = model.parameter_groups()
    groups = []
    for name, params, lr in (("backbone", backbone, train.lr_backbone), ("head", rest, train.lr_head)):
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        groups.append({"name": name, "params": decay, "lr": lr, "weight_decay": train.weight_decay})
        groups.append({"name": f"{name}_no_decay", "params": no_decay, "lr": lr, "weight_decay": 0.0})
    on_gpu = next(model.parameters()).device.type == "cuda"
    return torch.optim.AdamW([g for g in groups if g["params"]], fused=train.fused_optimizer and on_gpu or None)


def parameter_counts(model: BiLevelHOIModel) -> dict[str, int]:
    backbone, rest = model.parameter_groups()
    return {
        "backbone": sum(p.numel() for p in backbone),
        "head": sum(p.numel() for p in rest),
        "total": sum(p.numel() for p in model.parameters()),
    }


# --------------------------------------------------------------------------------------------
# one step


def train_step(
    model: nn.Module,
    batches: HOIBatch | Sequence[HOIBatch],
    *,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loss_config: LossConfig,
    iteration: int,
    grad_clip: float,
    device: torch.device,
    precision: str,
    timer: PhaseTimer | None = None,
) -> LossTerms:
    """One optimizer step over the micro-batches of an iteration (or one batch): forward, losses and
    backward per micro-batch, gradients accumulated, then clipping and the step.

    Every micro-batch's losses are divided by the step's image count (`compute_losses(normalizer=)`),
    so the accumulated gradient and the returned terms (summed over the micro-batches) are those of
    one batch of all the images. Under DistributedDataParallel the gradients are reduced once, with
    the last micro-batch. Batches move to `device` one at a time.

    No host-device synchronisation when the batches come on the host (as the data loader gives them):
    the pairs and their object classes are made there (`BiLevelHOIModel.pair_batch`), before the
    batch moves, and everything after works on the whole batch with fixed-size segment operations.
    `timer` (`hoi_pipeline.timing`) receives the phases "data" (host pairing and the copy to the device),
    "backbone" and "pair branch" (forward and backward; the pair branch includes the small global head),
    "losses" (forward) and "optimiser" (clipping and the step).
    """
    timer = timer or NoTimer()
    net = getattr(model, "module", model)  # under DistributedDataParallel
    parts = [batches] if isinstance(batches, HOIBatch) else list(batches)
    images = sum(len(part) for part in parts)
    hooks = _mark_backbone_phases(net, timer) if not isinstance(timer, NoTimer) else []
    optimizer.zero_grad(set_to_none=True)
    totals: list[LossTerms] = []
    try:
        for number, host in enumerate(parts):
            pairs = net.pair_batch(host.labels, host.scores)  # made where the batch is (the host, from the loader)
            flat_labels = torch.cat(list(host.labels)) if len(host) else torch.zeros(0, dtype=torch.int64)
            pair_objects = flat_labels[pairs.flat[:, 1]].long().to(device, non_blocking=True)  # (P,)
            pairs = pairs.to(device, non_blocking=True)
            part = host.to(device, non_blocking=True)
            timer.mark("data")
            last = number == len(parts) - 1
            sync = contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
            with sync:
                with autocast(device, precision):
                    output = model(part.images, part.boxes, part.labels, part.scores, host.image_sizes, pairs=pairs)
                timer.mark("pair branch")
                terms = compute_losses(output, part.targets, pair_objects, loss_config, iteration, normalizer=images)
                timer.mark("losses")
                if terms.total.requires_grad:
                    scaler.scale(terms.total).backward()
                timer.mark("backbone")  # from the backward pass reaching the backbone's outputs
            totals.append(terms.detached())
        if any(p.grad is not None for group in optimizer.param_groups for p in group["params"]):
            if grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], grad_clip)
            scaler.step(optimizer)
            scaler.update()
        timer.mark("optimiser")
    finally:
        for hook in hooks:
            hook.remove()
    return LossTerms.sum(totals)


def _mark_backbone_phases(net: nn.Module, timer: PhaseTimer) -> list[torch.utils.hooks.RemovableHandle]:
    """Hooks that mark "backbone" when its forward ends and "pair branch" when the backward pass first
    reaches one of its outputs (the heads' backward is then done, up to a layer3 path's last steps)."""
    if not hasattr(net, "backbone"):
        return []

    def after_forward(module: nn.Module, inputs: object, outputs: dict[str, torch.Tensor]) -> None:
        timer.mark("backbone")
        reached: list[bool] = []

        def on_gradient(grad: torch.Tensor) -> None:
            if not reached:
                reached.append(True)
                timer.mark("pair branch")

        for tensor in outputs.values():
            if tensor.requires_grad:
                tensor.register_hook(on_gradient)

    return [net.backbone.register_forward_hook(after_forward)]


# --------------------------------------------------------------------------------------------
# the stage


def run(
    *,
    clip: ClipConfig,
    model: ModelConfig,
    loss: LossConfig,
    train: TrainConfig,
    annotations: Path,
    split: str,
    images: Path,
    proposals: Path,
    bank: Path,
    out_dir: Path,
    max_steps: int | None = None,
) -> None:
    """Train (or resume the same training) and write `out_dir`/model.pt, checkpoints/last.pt and losses.csv.

    `max_steps`: stop after this many iterations in this call, leaving only the resume state (for
    time-limited jobs and the resume test); the next call continues.
    """
    out_dir = Path(out_dir)
    processes = init_processes()
    device = resolve_device(train.device, processes)
    split_annotations = load_annotations(annotations, split)
    bank_file = load_knowledge_bank(bank)
    bank_file.check_vocabulary(split_annotations.vocabulary, str(bank))
    _check_bank_model(bank_file.attrs, clip, model, bank)
    identity = training_identity(clip=clip, model=model, loss=loss, train=train, annotations=annotations,
                                 split=split, proposals=proposals, bank=bank)  # fmt: skip
    saved = read_saved_state(out_dir / STATE_FILE) if (out_dir / STATE_FILE).is_file() else None
    decision = decide_resume(saved, identity, train.iterations)
    threads = saved.runtime.threads if decision.resume and saved.runtime else torch.get_num_threads()

    with reproducible_kernels(device, deterministic=train.deterministic, threads=threads):
        # build
        seed_everything(train.seed)
        net, preprocessing = prepare_model(
            clip=clip, model=model, vocabulary=split_annotations.vocabulary, max_pairs=train.max_pairs,
            bank_embeddings=torch.from_numpy(bank_file.embeddings), seed=train.seed,
        )  # fmt: skip
        runtime = RuntimeInfo(
            threads=threads, world_size=processes.world_size, device=device_description(device),
            torch=str(torch.__version__), deterministic=torch.are_deterministic_algorithms_enabled(),
        )  # fmt: skip
        state = new_training_state(net.to(device).train(), train, identity, runtime)
        if train.compile:  # in place: parameter names and checkpoints stay those of the plain module
            state.model.backbone.compile(dynamic=True)
        # resume (or move another training's state aside)
        start_or_resume(state, saved, decision, out_dir=out_dir, processes=processes, iterations=train.iterations)
        saved_at = state.iteration if decision.resume else None
        include = loss.images_without_pairs == "train_global" and model.use_hoi_recognition  # L_g needs no pair
        dataset, indices = training_dataset(split_annotations, annotations, images, proposals, preprocessing, include,
                                            decode=worker_decode(preprocessing.decode, device))  # fmt: skip
        stop = train.iterations if max_steps is None else min(train.iterations, state.iteration + max_steps)
        loss_config = effective_loss_config(loss, model.use_hoi_recognition)

        with TerminationRequests() as termination:
            if state.iteration < stop:
                loader = training_loader(dataset, indices, train, start=state.iteration, stop=stop,
                                         processes=processes, device=device)  # fmt: skip
                trainer = wrap_distributed(state.model, processes, device)
                progress = ProgressLog(state.iteration, stop, train, processes=processes, device=device)
                # each iteration's micro-batches, the time spent waiting for them told to the log
                steps = timed_waits(grouped(loader, loader.batch_sampler.steps_per_iteration), progress.waited)
                unread = UnreadLosses()  # read back from the device once per log line, not once per iteration
                for iteration, batches in zip(range(state.iteration, stop), steps):
                    # step
                    terms = train_step(
                        trainer, batches, optimizer=state.optimizer, scaler=state.scaler,
                        loss_config=loss_config, iteration=iteration, grad_clip=train.grad_clip, device=device,
                        precision=train.precision,
                    )  # fmt: skip
                    unread.add(iteration + 1, terms, learning_rates(state.optimizer))
                    state.scheduler.step()
                    state.iteration = iteration + 1
                    checkpoint = state.iteration % train.checkpoint_every == 0 and processes.is_main
                    stopping = termination.agreed(processes, device)
                    # log (and record the losses before a checkpoint saves them)
                    if checkpoint or stopping or state.iteration % train.log_every == 0 or state.iteration == stop:
                        for record in unread.read():
                            state.history.append(record)
                            progress.update(record)
                    # checkpoint
                    if checkpoint:
                        state.save(out_dir)
                        saved_at = state.iteration
                    if stopping:
                        break
                progress.close()
            if processes.is_main and state.iteration != saved_at:
                state.save(out_dir)
            if termination.signum is not None:
                stop_on_signal(termination.signum, state, out_dir, processes)

    if state.iteration < train.iterations:
        log.info("stopped after iteration %d of %d (max_steps); rerun to continue", state.iteration, train.iterations)
        return
    if processes.is_main:
        info = TrainedModelInfo(
            vocabulary=split_annotations.vocabulary, clip=clip, model=model, loss=loss, train=train,
            preprocessing=preprocessing, iterations=train.iterations,
            bank={"path": str(bank), "sha256": identity.inputs["bank"],
                  "clip_model": str(bank_file.attrs.get("clip_model", "")),
                  "clip_pretrained": str(bank_file.attrs.get("clip_pretrained", ""))},
        )  # fmt: skip
        save_trained_model(out_dir / MODEL_FILE, state.model, info)
        write_loss_csv(out_dir / LOSSES_FILE, state.history)
        log.info("wrote %s", out_dir / MODEL_FILE)
    if processes.distributed:
        torch_dist.barrier()


# --------------------------------------------------------------------------------------------
# the parts of run()


def training_identity(
    *,
    clip: ClipConfig,
    model: ModelConfig,
    loss: LossConfig,
    train: TrainConfig,
    annotations: Path,
    split: str,
    proposals: Path,
    bank: Path,
) -> TrainingIdentity:
    """What this run computes: its settings, the train stage's code, and digests of its inputs."""
    sections = {"clip": to_dict(clip), "model": to_dict(model), "loss": to_dict(loss), "train": to_dict(train)}
    inputs = {
        "annotations": file_digest(annotations),
        "split": split,
        "proposals": file_digest(proposals),
        "bank": file_digest(bank),
        "weights": weights_identity(clip, model),
    }
    weights = clip.pretrained if model.backbone_source == "clip" else model.backbone_weights
    files = {"annotations": str(annotations), "split": split, "proposals": str(proposals), "bank": str(bank),
             "weights": str(weights)}  # fmt: skip
    return TrainingIdentity.of(sections, code=stage_code_digest(STAGE_MODULE), inputs=inputs, files=files)


def weights_identity(clip: ClipConfig, model: ModelConfig) -> str:
    """The pretrained backbone weights: a file's name and digest, or the tag that names them."""
    if model.backbone_source == "clip":
        from hoi_pipeline.modeling.clip_loading import pretrained_identity

        return pretrained_identity(clip)
    if model.backbone_weights is not None and Path(model.backbone_weights).is_file():
        return f"file:{Path(model.backbone_weights).name}:sha256:{file_digest(model.backbone_weights)}"
    return f"torchvision:{model.backbone_source}:{model.backbone_weights}"


def new_training_state(
    net: BiLevelHOIModel, train: TrainConfig, identity: TrainingIdentity, runtime: RuntimeInfo
) -> TrainingState:
    """Iteration 0 of a training: fresh optimizer, lr schedule and grad scaler for `net` (already on its device)."""
    optimizer = build_optimizer(net, train)
    device_type = next(net.parameters()).device.type
    return TrainingState(
        model=net,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.MultiStepLR(optimizer, list(train.lr_milestones), train.lr_gamma),
        scaler=torch.amp.GradScaler("cuda", enabled=device_type == "cuda" and train.precision == "fp16"),
        identity=identity,
        runtime=runtime,
    )


def start_or_resume(
    state: TrainingState,
    saved: SavedState | None,
    decision: ResumeDecision,
    *,
    out_dir: Path,
    processes: Processes,
    iterations: int,
) -> None:
    """Restore `saved` into `state` when it is the same training, else move it aside; log which, and why."""
    path = out_dir / STATE_FILE
    if saved is not None and decision.resume:
        state.restore(saved)
        if state.iteration == iterations:
            log.info("%s is complete (iteration %d of %d, same settings, code and inputs): writing the model from it",
                     path, state.iteration, iterations)  # fmt: skip
        else:
            log.info("resuming from %s at iteration %d of %d: same settings, code and inputs",
                     path, state.iteration, iterations)  # fmt: skip
        if state.iteration < iterations and (out_dir / MODEL_FILE).is_file() and processes.is_main:
            aside, _ = move_aside(out_dir, [MODEL_FILE])  # the finished model of a shorter target
            log.info("moved %s (the model at iteration %d) to %s", out_dir / MODEL_FILE, state.iteration, aside)
        changes = state.runtime.differences(saved.runtime) if saved.runtime else []
        if changes:
            log.warning(
                "this run differs from the one that saved %s (%s): it continues the same training, but the weights "
                "will not be bit-identical to an uninterrupted run", path, "; ".join(changes),
            )  # fmt: skip
        return
    if saved is None:
        log.info("training from scratch (no saved state in %s)", path)
        return
    if processes.distributed:
        torch_dist.barrier()  # every process has read last.pt before rank 0 moves it
    if processes.is_main:
        aside, moved = move_aside(out_dir)
        log.warning("starting afresh: %s is another training (%s); moved %s to %s",
                    path, "; ".join(decision.reasons), ", ".join(moved), aside)  # fmt: skip


def training_dataset(
    split_annotations: HOIAnnotations,
    annotations: Path,
    images: Path,
    proposals: Path,
    preprocessing: Preprocessing,
    include_without_pairs: bool = True,
    decode: Decode | None = None,
) -> tuple[HOIImageDataset, list[int]]:
    """The split's images and the indices of those that train: an HOI label, and a human-object pair
    unless `include_without_pairs` (such images still train L_g). `decode`: the workers' part
    (`worker_decode`), the preprocessing's own by default."""
    dataset = HOIImageDataset.from_split(
        split_annotations, images=images, proposals=proposals, preprocessing=preprocessing, decode=decode
    )
    indices, counts = dataset.training_indices(include_without_pairs)
    log.info(
        "%d of %d training images used; skipped %d without an HOI label; %d without a human-object pair %s",
        len(indices), len(dataset), counts["no_hoi_label"], counts["no_human_pair"],
        "train the global branch only" if include_without_pairs else "skipped",
    )  # fmt: skip
    if not indices:
        raise ValueError(f"{annotations}: no training image has an HOI label (and a human-object proposal pair)")
    return dataset, indices


def training_loader(
    dataset: HOIImageDataset,
    indices: list[int],
    train: TrainConfig,
    *,
    start: int,
    stop: int,
    processes: Processes,
    device: torch.device,
) -> DataLoader:
    """Micro-batches of iterations [start, stop) (`steps_per_iteration` of its sampler each), this process's
    share; workers leave SIGTERM to the main process."""
    sampler = SeededBatchSampler(
        indices, batch_size=train.batch_size, seed=train.seed, start=start, stop=stop, flip=train.flip,
        rank=processes.rank, world_size=processes.world_size, micro_batch_size=train.micro_batch_size,
    )  # fmt: skip
    return DataLoader(
        dataset, batch_sampler=sampler, collate_fn=dataset.collate, num_workers=train.num_workers,
        pin_memory=device.type == "cuda", worker_init_fn=_ignore_termination,
        generator=torch.Generator().manual_seed(train.seed),  # worker seeds never draw from the global RNG
    )  # fmt: skip


class UnreadLosses:
    """The loss terms of the iterations since the last read, still on the device: reading them back
    waits for the GPU to finish its queued work, so the loop does it once per log line (one
    synchronisation for all of them) and lets the host queue the next iterations meanwhile."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, LossTerms, dict[str, float]]] = []

    def add(self, iteration: int, terms: LossTerms, learning_rates: dict[str, float]) -> None:
        self.steps.append((iteration, terms, learning_rates))

    def read(self) -> list[LossRecord]:
        """The records of the iterations added since the last read, in order."""
        if not self.steps:
            return []
        values = LossTerms.read_back([terms for _, terms, _ in self.steps])
        records = [LossRecord.of(i, losses, lrs) for (i, _, lrs), losses in zip(self.steps, values)]
        self.steps = []
        return records


def timed_waits(items: Iterable[T], report: Callable[[float], None]) -> Iterator[T]:
    """The items, calling `report` with the seconds each one took to arrive (for a DataLoader: how long
    training waited for its input)."""
    iterator = iter(items)
    while True:
        start = time.perf_counter()
        try:
            item = next(iterator)
        except StopIteration:
            return
        report(time.perf_counter() - start)
        yield item


def grouped(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last may be shorter)."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _ignore_termination(worker_id: int) -> None:
    """SLURM signals every process of a job: a worker killed mid-iteration would abort the main process's step."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def wrap_distributed(net: nn.Module, processes: Processes, device: torch.device) -> nn.Module:
    if not processes.distributed:
        return net
    return nn.parallel.DistributedDataParallel(
        net, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
    )


def learning_rates(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """The learning rate of each parameter group family (backbone, head)."""
    return {group["name"].removesuffix("_no_decay"): group["lr"] for group in optimizer.param_groups}


class TerminationRequests:
    """SIGTERM or SIGINT during the loop: finish the iteration in progress, then stop.

    A second Ctrl-C (SIGINT) stops at once; repeated SIGTERMs do not (under SLURM + torchrun each
    process gets one from SLURM and one forwarded by torchrun, and SIGKILL follows anyway).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> TerminationRequests:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            self._previous = {signum: signal.signal(signum, self._request) for signum in self.SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _request(self, signum: int, frame: object) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise SystemExit(128 + signum)
        self.signum = self.signum or signum

    def agreed(self, processes: Processes, device: torch.device) -> bool:
        """Whether any process was asked to stop; under DDP all stop after the same iteration."""
        if not processes.distributed:
            return self.signum is not None
        flag = torch.tensor([self.signum or 0], device=device)
        torch_dist.all_reduce(flag, op=torch_dist.ReduceOp.MAX)
        self.signum = self.signum or int(flag.item()) or None
        return self.signum is not None


def stop_on_signal(signum: int, state: TrainingState, out_dir: Path, processes: Processes) -> None:
    """After the state is saved: say where, and exit like the signal would (128 + its number)."""
    if processes.is_main:
        log.warning("%s: stopped after iteration %d of the training; its state is in %s, rerun to resume",
                    signal.Signals(signum).name, state.iteration, out_dir / STATE_FILE)  # fmt: skip
    if processes.distributed:
        torch_dist.barrier()  # no process exits (and makes torchrun kill the others) before rank 0 has saved
    raise SystemExit(128 + signum)


class ProgressLog:
    """A log line every `train.log_every` iterations (means since the last line) and a tqdm bar on a TTY.

    The line also says which share of the time since the last line went to waiting for the data loader
    (`waited`): well above a few percent, the GPU waits for its input (more `train.num_workers`, or
    `model.decode: device`; README "Performance")."""

    def __init__(
        self, start: int, stop: int, train: TrainConfig, *, processes: Processes, device: torch.device
    ) -> None:
        from tqdm import tqdm

        self.start, self.stop, self.total, self.every = start, stop, train.iterations, train.log_every
        self.quiet = quiet = not processes.is_main
        self.window: list[LossRecord] = []
        self.started = self.window_started = time.perf_counter()
        self.window_wait = 0.0  # seconds spent waiting for data since the last line
        self.bar = tqdm(total=stop - start, unit="it", desc="train", disable=quiet or not sys.stderr.isatty())
        if not quiet:
            log.info("training iterations %d-%d of %d on %s (batch %d over %d process(es), %s, %d CPU threads)",
                     start + 1, stop, train.iterations, device, train.batch_size, processes.world_size,
                     train.precision, torch.get_num_threads())  # fmt: skip

    def update(self, record: LossRecord) -> None:
        if not np.isfinite(record.loss_total):
            raise FloatingPointError(f"the loss is {record.loss_total} at iteration {record.iteration}: {record}")
        self.window.append(record)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{record.loss_total:.4f}")
        if record.iteration % self.every and record.iteration != self.stop:
            return
        mean = {name: float(np.mean([getattr(r, name) for r in self.window]))
                for name in ("loss_total", "loss_image", "loss_pair", "loss_relatedness")}  # fmt: skip
        now = time.perf_counter()
        rate = (record.iteration - self.start) / (now - self.started)
        waiting = self.window_wait / max(now - self.window_started, 1e-9)
        if not self.quiet:
            log.info(
                "iter %d/%d loss %.4f (image %.4f pair %.4f relatedness %.4f) lr %.2e/%.2e %.2f it/s, "
                "%.0f%% of the time waiting for data",
                record.iteration, self.total, mean["loss_total"], mean["loss_image"], mean["loss_pair"],
                mean["loss_relatedness"], record.lr_backbone, record.lr_head, rate, 100 * waiting,
            )  # fmt: skip
        self.window, self.window_started, self.window_wait = [], now, 0.0

    def waited(self, seconds: float) -> None:
        """Time spent waiting for the next iteration's batches."""
        self.window_wait += seconds

    def close(self) -> None:
        self.bar.close()


def _check_bank_model(attrs: dict, clip: ClipConfig, model: ModelConfig, bank: Path) -> None:
    """The bank must come from the text model the config names (clip.model, or model.bank_clip_model)."""
    expected = model.bank_clip_model or clip.model
    found = attrs.get("clip_model")
    if model.bank_source == "clip" and found is not None and found != expected:
        raise ValueError(
            f"{bank}: embedded with CLIP '{found}' but the config expects '{expected}' "
            "(clip.model, or model.bank_clip_model for a bank from another text model)"
        )
