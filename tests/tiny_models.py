"""Tiny models the tests build and save through the same writers as real ones, and per-image reference helpers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from hoi_pipeline.config import ClipConfig, LossConfig, ModelConfig, TrainConfig
from hoi_pipeline.structures import Vocabulary


def write_tiny_checkpoint(path: Path, vocabulary: Vocabulary, image_size: int = 64) -> None:
    """A random-init model.pt through the training stage's checkpoint writer (tiny CLIP, 64 px input)."""
    from hoi_pipeline.checkpoints import TrainedModelInfo, save_trained_model
    from hoi_pipeline.datasets.hoi_images import Preprocessing
    from hoi_pipeline.modeling.clip_loading import clip_mean_std
    from hoi_pipeline.modeling.model import build_model

    torch.manual_seed(0)
    clip = ClipConfig(model="hoi-tiny-rn", pretrained=None)
    model_config = ModelConfig(hidden_dim=32, spatial_dim=16)
    model = build_model(
        clip=clip, model=model_config, vocabulary=vocabulary, bank_embeddings=torch.randn(vocabulary.num_classes, 64)
    )
    mean, std = clip_mean_std()
    info = TrainedModelInfo(
        vocabulary=vocabulary, clip=clip, model=model_config, loss=LossConfig(), train=TrainConfig(),
        preprocessing=Preprocessing(image_size, mean, std), bank={}, iterations=0,
    )  # fmt: skip
    save_trained_model(path, model, info)


def pair_object_labels(pairs: torch.Tensor, pair_image: torch.Tensor, labels: Sequence[torch.Tensor]) -> torch.Tensor:
    """(P,) object class of each pair's object, from (P, 2) per-image pairs, (P,) image index and per-image labels.

    The reference the training step's flat lookup (`labels[pairs.flat[:, 1]]`) is checked against.
    """
    if pairs.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64, device=pairs.device)
    counts = torch.tensor([len(lab) for lab in labels], device=pairs.device)
    offsets = torch.cumsum(counts, 0) - counts  # (B,)
    flat = torch.cat([lab.to(pairs.device) for lab in labels]).long()  # (M,)
    return flat[offsets[pair_image] + pairs[:, 1]]
