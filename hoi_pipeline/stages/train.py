"""Stage `train`: the bi-level model from image-level labels (paper Sec. 4.3 and 5.1).

Inputs: the split's annotations (image-level labels only are used: the HOI classes, verbs and
objects named in an image), its images, the detect stage's proposals HDF5 and the knowledge bank.
Outputs in `out_dir`:

    checkpoints/last.pt   resume state every `train.checkpoint_every` iterations and at the end
    model.pt              trained weights + what inference needs (`hoi_pipeline.checkpoints`)
    losses.csv            iteration, loss_image, loss_pair, loss_relatedness, loss_total, lr_backbone, lr_head

Optimisation (paper): AdamW, lr 1e-5 for the CLIP visual encoder and 1e-4 for everything else,
x0.1 at 12K and 24K iterations, 60K iterations at batch 24; gradient norm clipping; bf16/fp16
autocast on CUDA. The data order and flips are a function of (seed, iteration) (`SeededBatchSampler`)
and every RNG state is checkpointed, so a rerun after an interruption resumes from last.pt and ends
with the weights of an uninterrupted run. Under torchrun (WORLD_SIZE > 1) the model is wrapped in
DistributedDataParallel, each process takes its share of the global batch, and rank 0 writes.
Images with no HOI label or no human-object pair are skipped (counted in the log).
"""

from __future__ import annotations

import csv
import logging
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn
from torch.utils.data import DataLoader

from hoi_pipeline.artifacts import atomic_path, file_digest
from hoi_pipeline.checkpoints import (
    TrainedModelInfo,
    load_training_state,
    restore_rng_states,
    rng_states,
    save_trained_model,
    save_training_state,
)
from hoi_pipeline import devices
from hoi_pipeline.config import ClipConfig, LossConfig, ModelConfig, TrainConfig, to_dict
from hoi_pipeline.devices import autocast
from hoi_pipeline.datasets import load_annotations
from hoi_pipeline.datasets.hoi_images import (
    HOIBatch,
    HOIImageDataset,
    Preprocessing,
    SeededBatchSampler,
    collate_samples,
)
from hoi_pipeline.knowledge_bank_file import load_knowledge_bank
from hoi_pipeline.losses import LossTerms, compute_losses, effective_loss_config
from hoi_pipeline.modeling.model import BiLevelHOIModel, build_model
from hoi_pipeline.modeling.pairing import pair_object_labels
from hoi_pipeline.structures import Vocabulary

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ("iteration", "loss_image", "loss_pair", "loss_relatedness", "loss_total", "lr_backbone", "lr_head")
# settings that change how a run executes, not what it computes: a resume ignores them
RUNTIME_TRAIN_KEYS = ("num_workers", "log_every", "checkpoint_every", "device")
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
        size = clip.image_size or clip_image_size(clip_model)
        mean, std = clip_mean_std(clip_model)
        net = build_model(
            clip=clip, model=model, vocabulary=vocabulary, bank_embeddings=bank_embeddings,
            max_pairs=max_pairs, seed=seed, visual=clip_model.visual,
        )  # fmt: skip
        del clip_model  # the text tower is not needed
    else:
        size, mean, std = clip.image_size or DEFAULT_NON_CLIP_SIZE, IMAGENET_MEAN, IMAGENET_STD
        net = build_model(
            clip=clip, model=model, vocabulary=vocabulary, bank_embeddings=bank_embeddings,
            max_pairs=max_pairs, seed=seed,
        )  # fmt: skip
    return net, Preprocessing(int(size), tuple(mean), tuple(std))


def build_optimizer(model: BiLevelHOIModel, train: TrainConfig) -> torch.optim.AdamW:
    """AdamW with the backbone and head learning rates; no weight decay on biases, norms and scalars."""
    backbone, rest = model.parameter_groups()
    groups = []
    for name, params, lr in (("backbone", backbone, train.lr_backbone), ("head", rest, train.lr_head)):
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        groups.append({"name": name, "params": decay, "lr": lr, "weight_decay": train.weight_decay})
        groups.append({"name": f"{name}_no_decay", "params": no_decay, "lr": lr, "weight_decay": 0.0})
    return torch.optim.AdamW([g for g in groups if g["params"]])


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
    batch: HOIBatch,
    *,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loss_config: LossConfig,
    iteration: int,
    grad_clip: float,
    device: torch.device,
    precision: str,
) -> LossTerms:
    """Forward, losses, backward and an optimizer step on one batch (already on `device`)."""
    with autocast(device, precision):
        output = model(batch.images, batch.boxes, batch.labels, batch.scores, batch.image_sizes)
    pair_objects = pair_object_labels(output.pairs, output.pair_image, batch.labels)
    terms = compute_losses(output, batch.targets, pair_objects, loss_config, iteration)
    optimizer.zero_grad(set_to_none=True)
    if terms.total.requires_grad:
        scaler.scale(terms.total).backward()
        if grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], grad_clip)
        scaler.step(optimizer)
        scaler.update()
    return terms


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
    """Train (or resume) and write `out_dir`/model.pt, checkpoints/last.pt and losses.csv.

    `max_steps`: stop after this many iterations in this call, leaving only the resume state (for
    time-limited jobs and the resume test); the next call continues.
    """
    out_dir = Path(out_dir)
    processes = init_processes()
    device = resolve_device(train.device, processes)
    seed_everything(train.seed)

    split_annotations = load_annotations(annotations, split)
    vocabulary = split_annotations.vocabulary
    bank_file = load_knowledge_bank(bank)
    bank_file.check_vocabulary(vocabulary, str(bank))
    _check_bank_model(bank_file.attrs, clip, model, bank)
    net, preprocessing = prepare_model(
        clip=clip,
        model=model,
        vocabulary=vocabulary,
        bank_embeddings=torch.from_numpy(bank_file.embeddings),
        max_pairs=train.max_pairs,
        seed=train.seed,
    )
    counts = parameter_counts(net)
    log.info("model: %s parameters (backbone %s, heads %s)", f"{counts['total']:,}", f"{counts['backbone']:,}",
             f"{counts['head']:,}")  # fmt: skip

    dataset = HOIImageDataset.from_split(
        split_annotations, images=images, proposals=proposals, preprocessing=preprocessing
    )
    indices, skipped = dataset.training_indices()
    log.info(
        "%d of %d training images used; skipped %d without an HOI label and %d without a human-object pair",
        len(indices), len(dataset), skipped["no_hoi_label"], skipped["no_human_pair"],
    )  # fmt: skip
    if not indices:
        raise ValueError(f"{annotations}: no training image has both an HOI label and a human-object proposal pair")

    resolved = {
        "clip": to_dict(clip), "model": to_dict(model), "loss": to_dict(loss), "train": to_dict(train),
        "inputs": {"annotations": file_digest(annotations), "split": split, "proposals": file_digest(proposals),
                   "bank": file_digest(bank)},
    }  # fmt: skip
    net.to(device).train()
    optimizer = build_optimizer(net, train)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(train.lr_milestones), train.lr_gamma)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and train.precision == "fp16")
    history: list[list[float]] = []
    start = 0
    state_path = out_dir / "checkpoints" / "last.pt"
    if state_path.is_file():
        state = load_training_state(state_path)
        if _resume_key(state["config"]) == _resume_key(resolved):
            net.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            history = state["history"].tolist()
            start = int(state["iteration"])
            restore_rng_states(state["rng"])
            log.info("resumed from %s at iteration %d", state_path, start)
        else:
            log.warning("%s was made with another config or other inputs; training from scratch", state_path)

    trainer: nn.Module = net
    if processes.distributed:
        trainer = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    loss_config = effective_loss_config(loss, model.use_hoi_recognition)
    stop = train.iterations if max_steps is None else min(train.iterations, start + max_steps)
    sampler = SeededBatchSampler(
        indices, batch_size=train.batch_size, seed=train.seed, start=start, stop=stop, flip=train.flip,
        rank=processes.rank, world_size=processes.world_size,
    )  # fmt: skip
    loader = DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collate_samples, num_workers=train.num_workers,
        pin_memory=device.type == "cuda",
    )  # fmt: skip

    def checkpoint(iteration: int) -> None:
        if not processes.is_main:
            return
        save_training_state(
            state_path,
            iteration=iteration,
            model=net.state_dict(),
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            scaler=scaler.state_dict(),
            rng=rng_states(),
            history=torch.tensor(history, dtype=torch.float64).reshape(-1, len(HISTORY_COLUMNS)),
            history_columns=list(HISTORY_COLUMNS),
            config=resolved,
        )
        write_loss_csv(out_dir / "losses.csv", history)

    if start < stop:
        log.info(
            "training iterations %d-%d of %d on %s (batch %d over %d process(es), %s)",
            start + 1, stop, train.iterations, device, train.batch_size, processes.world_size, train.precision,
        )  # fmt: skip
        _train_loop(
            trainer, loader, range(start, stop), optimizer=optimizer, scheduler=scheduler, scaler=scaler,
            loss_config=loss_config, train=train, device=device, history=history, checkpoint=checkpoint,
            quiet=not processes.is_main,
        )  # fmt: skip
    if stop < train.iterations:
        log.info("stopped after iteration %d of %d (max_steps); rerun to continue", stop, train.iterations)
        return
    if processes.is_main:
        info = TrainedModelInfo(
            vocabulary=vocabulary,
            clip=clip,
            model=model,
            loss=loss,
            train=train,
            preprocessing=preprocessing,
            bank={"path": str(bank), "sha256": file_digest(bank), "clip_model": str(bank_file.attrs.get("clip_model", "")),
                  "clip_pretrained": str(bank_file.attrs.get("clip_pretrained", ""))},
            iterations=train.iterations,
        )  # fmt: skip
        save_trained_model(out_dir / "model.pt", net, info)
        write_loss_csv(out_dir / "losses.csv", history)
        log.info("wrote %s", out_dir / "model.pt")
    if processes.distributed:
        torch_dist.barrier()


def _train_loop(
    model: nn.Module,
    loader: DataLoader,
    iterations: range,
    *,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    loss_config: LossConfig,
    train: TrainConfig,
    device: torch.device,
    history: list[list[float]],
    checkpoint,
    quiet: bool,
) -> None:
    from tqdm import tqdm

    window: list[LossTerms] = []
    started = time.perf_counter()
    bar = tqdm(total=len(iterations), unit="it", desc="train", disable=quiet or not sys.stderr.isatty())
    for iteration, batch in zip(iterations, loader):
        batch = batch.to(device, non_blocking=True)
        terms = train_step(
            model, batch, optimizer=optimizer, scaler=scaler, loss_config=loss_config, iteration=iteration,
            grad_clip=train.grad_clip, device=device, precision=train.precision,
        )  # fmt: skip
        values = terms.as_floats()
        lrs = {g["name"].removesuffix("_no_decay"): g["lr"] for g in optimizer.param_groups}
        scheduler.step()
        done = iteration + 1
        history.append([done, values["image"], values["pair"], values["relatedness"], values["total"],
                        lrs.get("backbone", 0.0), lrs.get("head", 0.0)])  # fmt: skip
        if not np.isfinite(values["total"]):
            raise FloatingPointError(f"the loss is {values['total']} at iteration {done}: {values}")
        window.append(terms)
        bar.update(1)
        bar.set_postfix(loss=f"{values['total']:.4f}")
        if done % train.log_every == 0 or done == iterations.stop:
            means = {
                k: float(np.mean([t.as_floats()[k] for t in window])) for k in ("image", "pair", "relatedness", "total")
            }
            rate = (done - iterations.start) / (time.perf_counter() - started)
            if not quiet:
                log.info(
                    "iter %d/%d loss %.4f (image %.4f pair %.4f relatedness %.4f) lr %.2e/%.2e %.2f it/s",
                    done, train.iterations, means["total"], means["image"], means["pair"], means["relatedness"],
                    lrs.get("backbone", 0.0), lrs.get("head", 0.0), rate,
                )  # fmt: skip
            window = []
        if done % train.checkpoint_every == 0 or done == iterations.stop:
            checkpoint(done)
    bar.close()


def write_loss_csv(path: Path, history: Sequence[Sequence[float]]) -> None:
    """The loss history as CSV, atomically (rewritten whole, so it always matches the checkpoint)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HISTORY_COLUMNS)
        for row in history:
            writer.writerow([int(row[0]), *(f"{v:.6g}" for v in row[1:])])


def _resume_key(config: dict) -> dict:
    key = {name: dict(value) for name, value in config.items()}
    for name in RUNTIME_TRAIN_KEYS:
        key["train"].pop(name, None)
    key["clip"].pop("device", None)
    return key


def _check_bank_model(attrs: dict, clip: ClipConfig, model: ModelConfig, bank: Path) -> None:
    """The bank must come from the text model the config names (clip.model, or model.bank_clip_model)."""
    expected = model.bank_clip_model or clip.model
    found = attrs.get("clip_model")
    if model.bank_source == "clip" and found is not None and found != expected:
        raise ValueError(
            f"{bank}: embedded with CLIP '{found}' but the config expects '{expected}' "
            "(clip.model, or model.bank_clip_model for a bank from another text model)"
        )
