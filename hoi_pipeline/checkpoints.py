"""Checkpoint files of the training stage, all written atomically and read with `weights_only=True`.

- `model.pt` (the stage's output, the inference stage's input): the trained weights plus everything
  needed to rebuild and feed the model - the resolved config sections (clip, model, loss, train), the
  vocabulary as plain lists, the image preprocessing, and the identity of the knowledge bank used.
  `load_trained_model(path, device)` returns the ready model (eval mode) and a `TrainedModelInfo`.
- `checkpoints/last.pt` (resume state): written and read by `hoi_pipeline.training_state`, with
  `save_file` / `load_file` below.

Only tensors, dicts, lists, strings and numbers are stored, so no file can run code when loaded.
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hoi_pipeline.artifacts import atomic_path
from hoi_pipeline.config import ClipConfig, LossConfig, ModelConfig, TrainConfig, from_dict, to_dict
from hoi_pipeline.datasets.hoi_images import Preprocessing
from hoi_pipeline.structures import Vocabulary

log = logging.getLogger(__name__)

MODEL_FORMAT = "hoi-pipeline-model"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------------
# plain-data conversions


def vocabulary_to_dict(vocabulary: Vocabulary) -> dict:
    return {
        "verbs": list(vocabulary.verbs),
        "objects": list(vocabulary.objects),
        "hoi_classes": vocabulary.hoi_classes.tolist(),
        "rare": vocabulary.rare.tolist(),
        "non_rare": vocabulary.non_rare.tolist(),
        "verbs_ing": list(vocabulary.verbs_ing),
        "person": int(vocabulary.person),
    }


def vocabulary_from_dict(data: dict) -> Vocabulary:
    return Vocabulary(
        verbs=tuple(data["verbs"]),
        objects=tuple(data["objects"]),
        hoi_classes=np.asarray(data["hoi_classes"], dtype=np.int64).reshape(-1, 2),
        rare=np.asarray(data["rare"], dtype=np.int64),
        non_rare=np.asarray(data["non_rare"], dtype=np.int64),
        verbs_ing=tuple(data.get("verbs_ing", ())),
        person=int(data["person"]),
    )


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model


def save_file(path: str | os.PathLike, payload: dict) -> None:
    """torch.save atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_file(path: str | os.PathLike, expected_format: str, max_version: int = FORMAT_VERSION) -> dict:
    """A checkpoint of `expected_format` (format version <= `max_version`); one-line ValueErrors otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling and zip errors: the file is not one of ours
        # torch's weights_only message is a page of advice about torch.load; the user needs one line
        reason = "not a torch checkpoint, or one holding objects other than tensors and plain data"
        if isinstance(error, OSError):  # a truncated zip archive seeks past its end
            reason = f"truncated or corrupt file: {error}"
        elif not isinstance(error, pickle.UnpicklingError):
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"{path}: not a readable checkpoint ({reason})") from error
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path}: expected a '{expected_format}' file, found '{found}'")
    version = payload.get("version", 0)
    if not isinstance(version, int) or version > max_version:
        raise ValueError(f"{path}: format version {version!r} is not one this code reads (1 to {max_version})")
    return payload


# --------------------------------------------------------------------------------------------
# the trained model (model.pt)


@dataclass(frozen=True)
class TrainedModelInfo:
    """What inference needs besides the weights."""

    vocabulary: Vocabulary
    clip: ClipConfig
    model: ModelConfig
    loss: LossConfig
    train: TrainConfig
    preprocessing: Preprocessing
    bank: dict  # identity of the knowledge bank file: path, sha256, its attributes
    iterations: int  # training iterations done

    @property
    def max_pairs(self) -> int:
        return self.train.max_pairs

    def to_dict(self) -> dict:
        return {
            "vocabulary": vocabulary_to_dict(self.vocabulary),
            "config": {name: to_dict(getattr(self, name)) for name in ("clip", "model", "loss", "train")},
            "preprocessing": self.preprocessing.to_dict(),
            "bank": self.bank,
            "iterations": self.iterations,
        }

    @classmethod
    def from_dict(cls, data: dict) -> TrainedModelInfo:
        config = data["config"]
        return cls(
            vocabulary=vocabulary_from_dict(data["vocabulary"]),
            clip=from_dict(ClipConfig, config["clip"], "clip"),
            model=from_dict(ModelConfig, config["model"], "model"),
            loss=from_dict(LossConfig, config["loss"], "loss"),
            train=from_dict(TrainConfig, config["train"], "train"),
            preprocessing=Preprocessing.from_dict(data["preprocessing"]),
            bank=dict(data["bank"]),
            iterations=int(data["iterations"]),
        )


def save_trained_model(path: str | os.PathLike, model: nn.Module, info: TrainedModelInfo) -> None:
    state = {key: value.detach().cpu() for key, value in unwrap(model).state_dict().items()}
    save_file(path, {"format": MODEL_FORMAT, "version": FORMAT_VERSION, "state_dict": state, "info": info.to_dict()})


def load_trained_model(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[nn.Module, TrainedModelInfo]:
    """Rebuild the trained model of `model.pt` on `device`, in eval mode, with its info.

    No pretrained weights are read: the architecture is built from the stored config and the
    stored state dict fills every parameter (strictly).
    """
    from hoi_pipeline.modeling.model import build_model

    payload = load_file(path, MODEL_FORMAT)
    try:
        info = TrainedModelInfo.from_dict(payload["info"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: malformed model info ({error})") from error
    state = payload["state_dict"]
    if "bank.weight" not in state:
        raise ValueError(f"{path}: the state dict has no knowledge bank ('bank.weight')")
    model = build_model(
        clip=info.clip,
        model=info.model,
        vocabulary=info.vocabulary,
        bank_embeddings=torch.zeros_like(state["bank.weight"]),
        max_pairs=info.max_pairs,
        seed=info.train.seed,
        pretrained=False,
    )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{path}: weights do not fit the stored model config ({str(error)[:1000]})") from error
    return model.to(device).eval(), info
