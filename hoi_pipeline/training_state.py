"""The resumable state of a training run (`checkpoints/last.pt`), and when a rerun may continue it.

One `TrainingState` holds everything an iteration boundary is made of: model, optimizer, lr
scheduler, grad scaler, iteration, loss history and (when saved) the python / numpy / torch RNG
states; `save` and `restore` are its only way to and from disk. Its file also records:

- `TrainingIdentity`, what the run computes. A rerun resumes only when all three parts match:
  settings: the clip, model, loss and train sections without the keys in RUNTIME_KEYS, which
    change how a run executes but not what it computes (num_workers, log_every, checkpoint_every,
    device, and train.gpus: the global batch, its data order and the learning-rate schedule are the
    same for any process count; only the floating-point summation order changes, as with `device`).
    `train.iterations` is the run's target, not its identity: a saved state at or before the target
    continues, since data order, flips, lr milestones and loss warm-up are functions of the
    iteration number, never of the total, so an uninterrupted longer run passes through the same
    state. A state beyond the target starts afresh.
  code: `stage_code_digest("hoi_pipeline.stages.train")`, the code the train stage runs.
  inputs: digests of the annotation file, proposals, knowledge bank and pretrained weights (file
    digest or open_clip tag), and the split name. Image files are named by the annotation file
    and not digested (47K files for HICO-DET): replacing an image in place is not noticed.
  Anything else starts afresh: the old last.pt, losses.csv and model.pt move to
  `checkpoints/superseded/<UTC time>/` (never deleted) and the log names the differing keys or files.
- `RuntimeInfo`, what else decides the exact floating-point result (recorded, logged when it
  differs on resume, never a reason to start afresh).

Bit-identical resume (weights and losses.csv of an interrupted-and-resumed run equal those of an
uninterrupted run) holds on the CPU, busy machine or not, when the resumed run has the same torch
version and the same CPU type (instruction set: oneDNN and MKL pick kernels by it); the intra-op
thread count is restored from the state. On GPUs it holds with `train.deterministic: true` on the
same GPU model, GPU count, torch / CUDA / cuDNN versions. It does not hold across GPU models, GPU
counts, CPU <-> GPU, or on GPUs without `train.deterministic` (atomic adds in RoI-Align and index
backward, cuDNN algorithm choice); such resumes still continue the same training recipe.

Why CPU runs differ without deterministic kernels: the backward of advanced indexing with repeated
indices (`features[image_of_roi]` in `dense_roi_align`) is `index_put_(accumulate=True)`, which
torch runs as parallel float atomic adds when deterministic algorithms are off, the tensor has at
least 32768 elements and there is more than one thread; the order of the adds follows thread
timing, which other processes' load perturbs. `use_deterministic_algorithms` makes it serial.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import random
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, astuple, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hoi_pipeline.artifacts import atomic_path
from hoi_pipeline.checkpoints import load_file, save_file, unwrap
from hoi_pipeline.config import ClipConfig, TrainConfig

log = logging.getLogger(__name__)

STATE_FORMAT = "hoi-pipeline-train-state"
STATE_VERSION = 2  # 1: no identity, code or runtime recorded (superseded on sight)
STATE_FILE = Path("checkpoints") / "last.pt"  # relative to the stage's out_dir
LOSSES_FILE = "losses.csv"
MODEL_FILE = "model.pt"
SUPERSEDED_DIR = Path("checkpoints") / "superseded"
# keys that change how a run executes, not what it computes (see the module docstring)
RUNTIME_KEYS = {"clip": ClipConfig.RUNTIME, "train": TrainConfig.RUNTIME}
TARGET_KEY = "iterations"  # train.iterations: how far to go, not which training
CUBLAS_WORKSPACE = ":4096:8"  # what cuBLAS needs for deterministic results (CUDA >= 10.2)


# --------------------------------------------------------------------------------------------
# the loss history


@dataclass(frozen=True)
class LossRecord:
    """One iteration's losses and learning rates; the fields are the columns of losses.csv."""

    iteration: int
    loss_image: float
    loss_pair: float
    loss_relatedness: float
    loss_total: float
    lr_backbone: float
    lr_head: float

    @classmethod
    def of(cls, iteration: int, losses: Mapping[str, float], learning_rates: Mapping[str, float]) -> LossRecord:
        """From `LossTerms.as_floats()` and the learning rate of each parameter group family."""
        return cls(
            iteration=iteration,
            loss_image=losses["image"],
            loss_pair=losses["pair"],
            loss_relatedness=losses["relatedness"],
            loss_total=losses["total"],
            lr_backbone=learning_rates.get("backbone", 0.0),
            lr_head=learning_rates.get("head", 0.0),
        )


HISTORY_COLUMNS = tuple(f.name for f in fields(LossRecord))


def write_loss_csv(path: str | os.PathLike, history: Sequence[LossRecord]) -> None:
    """The loss history as CSV, atomically (rewritten whole, so it always matches the checkpoint)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HISTORY_COLUMNS)
        for record in history:
            writer.writerow([record.iteration, *(f"{v:.6g}" for v in astuple(record)[1:])])


def _history_tensor(history: Sequence[LossRecord]) -> torch.Tensor:
    return torch.tensor([astuple(r) for r in history], dtype=torch.float64).reshape(-1, len(HISTORY_COLUMNS))


def _history_records(table: torch.Tensor) -> list[LossRecord]:
    return [LossRecord(int(row[0]), *row[1:]) for row in table.tolist()]


# --------------------------------------------------------------------------------------------
# what a run computes, and what else decides its floating-point result


@dataclass(frozen=True)
class TrainingIdentity:
    """What a training computes: its settings, code and inputs (the module docstring says which)."""

    settings: dict[str, dict[str, Any]]  # section -> key -> value, without RUNTIME_KEYS and TARGET_KEY
    code: str  # stage_code_digest of the train stage
    inputs: dict[str, str]  # name -> digest (or split name, weights tag)
    files: dict[str, str] = field(default_factory=dict, compare=False)  # name -> path, for messages only

    @classmethod
    def of(cls, sections: Mapping[str, Mapping[str, Any]], *, code: str, inputs: Mapping[str, str],
           files: Mapping[str, str] | None = None) -> TrainingIdentity:  # fmt: skip
        """From the plain config sections (`to_dict`), dropping the keys that do not change the result."""
        settings = {name: dict(values) for name, values in sections.items()}
        for name, keys in RUNTIME_KEYS.items():
            for key in keys:
                settings.get(name, {}).pop(key, None)
        settings.get("train", {}).pop(TARGET_KEY, None)
        return cls(settings=settings, code=code, inputs=dict(inputs), files=dict(files or {}))

    def differences(self, saved: TrainingIdentity) -> list[str]:
        """Why `saved` is another training: which settings keys, code, or input files differ."""
        reasons = []
        ours, theirs = _flatten(self.settings), _flatten(saved.settings)
        keys = sorted(k for k in set(ours) | set(theirs) if ours.get(k, "<unset>") != theirs.get(k, "<unset>"))
        if keys:
            shown = ", ".join(f"{k}: {theirs.get(k, '<unset>')!r} -> {ours.get(k, '<unset>')!r}" for k in keys[:6])
            reasons.append(f"settings differ ({shown}{', ...' if len(keys) > 6 else ''})")
        if self.code != saved.code:
            reasons.append(f"code differs (train stage code digest {saved.code} -> {self.code})")
        names = sorted(n for n in set(self.inputs) | set(saved.inputs) if self.inputs.get(n) != saved.inputs.get(n))
        if names:
            shown = ", ".join(f"{n} {self.files[n]}" if n in self.files else n for n in names)
            reasons.append(f"inputs differ ({shown})")
        return reasons

    def to_dict(self) -> dict:
        return {"settings": self.settings, "code": self.code, "inputs": self.inputs, "files": self.files}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingIdentity:
        return cls(dict(data["settings"]), str(data["code"]), dict(data["inputs"]), dict(data.get("files", {})))


def _flatten(settings: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {f"{section}.{key}": value for section, values in settings.items() for key, value in values.items()}


@dataclass(frozen=True)
class RuntimeInfo:
    """What decides the exact floating-point result besides the identity (recorded, not compared)."""

    threads: int  # intra-op CPU threads (restored on resume)
    world_size: int  # processes (GPUs) under torchrun
    device: str  # "cpu" or "cuda (GPU name)"
    torch: str  # torch version
    deterministic: bool  # deterministic kernels only (always on the CPU; train.deterministic on GPUs)

    def differences(self, saved: RuntimeInfo) -> list[str]:
        """What differs from the run that saved the state (threads excepted: they are restored)."""
        return [
            f"{name} {getattr(saved, name)!r} -> {getattr(self, name)!r}"
            for name in ("world_size", "device", "torch", "deterministic")
            if getattr(self, name) != getattr(saved, name)
        ]


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


@contextlib.contextmanager
def reproducible_kernels(device: torch.device, *, deterministic: bool, threads: int) -> Iterator[bool]:
    """Fixed intra-op threads and deterministic kernels for the block; yields whether they are strict.

    CPU: torch's deterministic algorithms and oneDNN's deterministic mode, always (where torch has
    no deterministic kernel it warns and runs the usual one). CUDA: only with `deterministic`
    (train.deterministic), then strictly (an op without a deterministic kernel is a ValueError
    naming it), with cuBLAS's fixed workspace and no cuDNN autotuning. The previous settings come
    back afterwards (tests and callers run other stages in the same process).
    """
    strict = device.type == "cuda" and deterministic
    previous = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.mkldnn.deterministic,
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )
    torch.set_num_threads(threads)  # also turns MKL's dynamic thread count off
    if device.type == "cpu" or strict:
        torch.use_deterministic_algorithms(True, warn_only=not strict)
    if device.type == "cpu":
        torch.backends.mkldnn.deterministic = True
    if strict:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)  # read when cuBLAS starts
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield strict
    except RuntimeError as error:
        if strict and "does not have a deterministic implementation" in str(error):
            first = str(error).strip().splitlines()[0].split(", but you set")[0]
            raise ValueError(f"train.deterministic: {first} on {device}; set train.deterministic: false") from error
        raise
    finally:
        torch.set_num_threads(previous[0])
        torch.use_deterministic_algorithms(previous[1], warn_only=previous[2])
        torch.backends.mkldnn.deterministic = previous[3]
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous[4], previous[5]
        if previous[6] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


# --------------------------------------------------------------------------------------------
# RNG states


def rng_states() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) RNG states as tensors."""
    version, python_state, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": torch.tensor(python_state, dtype=torch.int64),
        "python_version": version,
        "python_gauss": gauss,
        "numpy": torch.from_numpy(keys.astype(np.int64)),
        "numpy_pos": int(pos),
        "numpy_has_gauss": int(has_gauss),
        "numpy_cached": float(cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = [state.cpu() for state in torch.cuda.get_rng_state_all()]
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(
        (states["python_version"], tuple(int(v) for v in states["python"].tolist()), states["python_gauss"])
    )
    np.random.set_state(
        ("MT19937", states["numpy"].numpy().astype(np.uint32), states["numpy_pos"], states["numpy_has_gauss"],
         states["numpy_cached"])
    )  # fmt: skip
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


# --------------------------------------------------------------------------------------------
# the state on disk


@dataclass(frozen=True)
class SavedState:
    """A last.pt as read from disk; `identity` is None for a file from before identities were recorded."""

    path: Path
    iteration: int
    identity: TrainingIdentity | None
    runtime: RuntimeInfo | None
    payload: dict  # model, optimizer, scheduler, scaler, rng, history: what `TrainingState.restore` reads


def _unreadable(path: Path, reason: str) -> ValueError:
    reason = (reason.strip().splitlines() or ["unknown error"])[0]
    return ValueError(
        f"{path}: cannot resume from this training state ({reason}); to train afresh, delete it or move it "
        f"out of the way (mv '{path}' '{path}.bad')"
    )


def read_saved_state(path: str | os.PathLike) -> SavedState:
    """Read a last.pt; anything unreadable is a one-line ValueError saying which file to delete or move."""
    path = Path(path)
    try:
        payload = load_file(path, STATE_FORMAT, max_version=STATE_VERSION)
    except ValueError as error:
        message = str(error).removeprefix(f"{path}: ")
        raise _unreadable(path, message) from error
    try:
        iteration = int(payload["iteration"])
        for key in ("model", "optimizer", "scheduler", "scaler", "history"):
            payload[key]  # noqa: B018 - presence check
        if payload.get("version", 1) < 2:
            return SavedState(path, iteration, None, None, payload)
        identity = TrainingIdentity.from_dict(payload["identity"])
        runtime = RuntimeInfo(**payload["runtime"])
    except (KeyError, TypeError, ValueError) as error:
        raise _unreadable(path, f"malformed training state: {type(error).__name__} {error}") from error
    return SavedState(path, iteration, identity, runtime, payload)


@dataclass(frozen=True)
class ResumeDecision:
    """Whether a saved state continues this training, and if not, why (one reason per differing part)."""

    resume: bool
    reasons: tuple[str, ...] = ()


def decide_resume(saved: SavedState | None, identity: TrainingIdentity, iterations: int) -> ResumeDecision:
    """Resume only the same training (identity equal) at or before the target iteration count."""
    if saved is None:
        return ResumeDecision(False)
    if saved.identity is None:
        return ResumeDecision(False, ("it was written by an earlier version that did not record its code and inputs",))
    reasons = identity.differences(saved.identity)
    if saved.iteration > iterations:
        reasons.append(f"it is at iteration {saved.iteration}, beyond train.iterations {iterations}")
    return ResumeDecision(not reasons, tuple(reasons))


def move_aside(
    out_dir: str | os.PathLike, names: Sequence[str | Path] = (STATE_FILE, LOSSES_FILE, MODEL_FILE)
) -> tuple[Path, list[str]]:
    """Move a superseded training's files (default last.pt, losses.csv, model.pt) to checkpoints/superseded/<UTC time>/.

    Returns the folder and the names of the files moved there.
    """
    out_dir = Path(out_dir)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = out_dir / SUPERSEDED_DIR / stamp
    suffix = 1
    while target.exists():
        suffix += 1
        target = out_dir / SUPERSEDED_DIR / f"{stamp}-{suffix}"
    target.mkdir(parents=True)
    moved = []
    for name in map(Path, names):
        if (out_dir / name).is_file():
            shutil.move(out_dir / name, target / name.name)
            moved.append(name.name)
    return target, moved


@dataclass
class TrainingState:
    """A run at an iteration boundary: saved to and restored from `out_dir`/checkpoints/last.pt in one place."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    identity: TrainingIdentity
    runtime: RuntimeInfo
    iteration: int = 0
    history: list[LossRecord] = field(default_factory=list)

    def save(self, out_dir: str | os.PathLike) -> None:
        """Write last.pt (with the RNG states of now) and losses.csv, each atomically."""
        save_file(
            Path(out_dir) / STATE_FILE,
            {
                "format": STATE_FORMAT,
                "version": STATE_VERSION,
                "identity": self.identity.to_dict(),
                "runtime": asdict(self.runtime),
                "iteration": self.iteration,
                "model": unwrap(self.model).state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": rng_states(),
                "history": _history_tensor(self.history),
                "history_columns": list(HISTORY_COLUMNS),
            },
        )
        write_loss_csv(Path(out_dir) / LOSSES_FILE, self.history)

    def restore(self, saved: SavedState) -> None:
        """Continue from `saved`: weights, optimizer, scheduler, scaler, iteration, history and RNG states."""
        payload = saved.payload
        try:
            unwrap(self.model).load_state_dict(payload["model"])
            self.optimizer.load_state_dict(payload["optimizer"])
            self.scheduler.load_state_dict(payload["scheduler"])
            self.scaler.load_state_dict(payload["scaler"])
            if list(payload.get("history_columns", HISTORY_COLUMNS)) != list(HISTORY_COLUMNS):
                raise ValueError(f"history columns {payload['history_columns']}, expected {list(HISTORY_COLUMNS)}")
            self.history = _history_records(payload["history"])
            restore_rng_states(payload["rng"])
        except (KeyError, RuntimeError, TypeError, ValueError) as error:
            raise _unreadable(saved.path, f"does not fit this training: {type(error).__name__} {error}") from error
        self.iteration = saved.iteration
