"""Tiny models the tests build and save through the same writers as real ones."""

from __future__ import annotations

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
