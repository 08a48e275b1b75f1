"""init-clip stage: save a seeded randomly initialised open_clip model as a weights file.

The demo has no pretrained CLIP for its tiny config (`hoi-tiny-rn`), so it gets a fixed random init
instead; `clip.pretrained` then points at this file and `load_clip` reads it through the same
local-file path as real weights. `clip.pretrained: random` gives the same weights (seed 0) for any
model name without a file (`hoi_pipeline.modeling.clip_loading.random_init_clip`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import open_clip
import torch

from hoi_pipeline.artifacts import atomic_path
from hoi_pipeline.modeling.clip_loading import random_init_clip, register_model_configs

log = logging.getLogger(__name__)


def run(*, model_name: str, seed: int, out: Path) -> None:
    """Build `model_name` with torch seeded by `seed` and save its state dict (a plain dict of tensors) to `out`."""
    register_model_configs()
    if open_clip.get_model_config(model_name) is None:
        raise ValueError(f"--model: '{model_name}' is not an open_clip model name (see open_clip.list_models())")
    model = random_init_clip(model_name, seed)
    state = {key: value.detach().cpu().contiguous().clone() for key, value in model.state_dict().items()}
    with atomic_path(out) as tmp:
        torch.save(state, tmp)
    count = sum(value.numel() for value in model.parameters())
    log.info("saved a random init of %s (seed %d, %.2fM parameters) to %s", model_name, seed, count / 1e6, out)
