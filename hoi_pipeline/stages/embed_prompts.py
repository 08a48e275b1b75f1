"""embed-prompts stage: CLIP text embeddings of one prompt per HOI class -> the knowledge bank file.

The bank W_T (paper Sec. 4.1) initialises the global classifier and feeds the knowledge transfer
network; it is frozen expensive work, so it is an artifact of its own that training only reads.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from hoi_pipeline.artifacts import refuse_overwriting_inputs
from hoi_pipeline.config import ClipConfig, to_dict
from hoi_pipeline.datasets import load_annotations
from hoi_pipeline.devices import resolve_device
from hoi_pipeline.knowledge_bank_file import write_knowledge_bank
from hoi_pipeline.modeling.clip_loading import clip_tokenizer, load_clip, pretrained_identity
from hoi_pipeline.prompts import build_prompts

log = logging.getLogger(__name__)

BATCH_SIZE = 256


def run(*, clip: ClipConfig, annotations: Path, split: str, out: Path) -> None:
    """Build the prompts of the split's HOI classes, encode them with CLIP's text tower, write `out`."""
    refuse_overwriting_inputs([out], [annotations])
    vocabulary = load_annotations(annotations, split).vocabulary
    prompts = build_prompts(vocabulary, clip.template)
    device = resolve_device(clip.device, "clip.device")
    model = load_clip(clip, device=device)
    embeddings = encode_texts(model, clip_tokenizer(clip.model), prompts, device=device)  # (N, D)
    write_knowledge_bank(
        out,
        embeddings=embeddings,
        prompts=prompts,
        hoi_classes=vocabulary.hoi_classes,
        attrs={
            "clip_model": clip.model,
            "clip_pretrained": pretrained_identity(clip),
            "template": clip.template,
            "annotations": str(annotations),
            "split": split,
            "verbs": list(vocabulary.verbs),
            "objects": list(vocabulary.objects),
            "normalized": True,
            "clip_config": to_dict(clip),
        },
    )
    log.info("wrote %d prompt embeddings of dimension %d to %s", *embeddings.shape, out)


@torch.no_grad()
def encode_texts(
    model: torch.nn.Module,
    tokenizer,
    texts: Sequence[str],
    device: str | torch.device = "cpu",
    batch_size: int = BATCH_SIZE,
) -> np.ndarray:
    """(N, D) float32 L2-normalised CLIP text embeddings of `texts`, encoded in batches."""
    parts = []
    for start in tqdm(
        range(0, len(texts), batch_size), desc="encode prompts", unit="batch", disable=not sys.stderr.isatty()
    ):
        tokens = tokenizer(list(texts[start : start + batch_size])).to(device)
        features = model.encode_text(tokens).float()  # (b, D)
        parts.append(torch.nn.functional.normalize(features, dim=-1).cpu())
    if not parts:
        raise ValueError("no prompts to encode (the vocabulary has no HOI classes)")
    embeddings = torch.cat(parts).numpy()
    if not np.isfinite(embeddings).all():
        raise ValueError("CLIP text embeddings contain NaN or inf")
    return embeddings

