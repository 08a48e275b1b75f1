"""embed-prompts stage: text embeddings of one prompt per HOI class -> the knowledge bank file.

The bank W_T (paper Sec. 3.2) initialises the global classifier and feeds the knowledge transfer
network; it is frozen expensive work, so it is an artifact of its own that training only reads.
The text encoder is CLIP's (`clip` section), or, with `model.bank_source: roberta` (Table 2 Exp 10),
the RoBERTa model in the local folder `model.bank_text_model` (`hoi_pipeline/modeling/text_encoders.py`).
The file's `text_encoder` attribute says which ("clip" or "roberta").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from hoi_pipeline.artifacts import refuse_overwriting_inputs
from hoi_pipeline.config import ClipConfig, ModelConfig, to_dict
from hoi_pipeline.datasets import load_annotations
from hoi_pipeline.devices import resolve_device
from hoi_pipeline.knowledge_bank_file import write_knowledge_bank
from hoi_pipeline.modeling.clip_loading import clip_tokenizer, load_clip, pretrained_identity
from hoi_pipeline.modeling.text_encoders import BATCH_SIZE, encode_in_batches
from hoi_pipeline.prompts import build_prompts
from hoi_pipeline.structures import Vocabulary

log = logging.getLogger(__name__)



def run(*, clip: ClipConfig, annotations: Path, split: str, out: Path, model: ModelConfig | None = None) -> None:
    """Build the prompts of the split's HOI classes, encode them with the bank's text encoder, write `out`.

    `model`: the run's model section; only `bank_source` / `bank_text_model` are read (None: CLIP).
    """
    refuse_overwriting_inputs([out], [annotations])
    vocabulary = load_annotations(annotations, split).vocabulary
    prompts = build_prompts(vocabulary, clip.template, clip.role_templates, clip.verb_templates)
    device = resolve_device(clip.device, "clip.device")
    if model is not None and model.bank_source == "roberta":
        write_roberta_bank(model.bank_text_model, vocabulary, prompts, clip, annotations, split, out, device)
        return
    clip_model = load_clip(clip, device=device)
    embeddings = encode_texts(clip_model, clip_tokenizer(clip.model), prompts, device=device)  # (N, D)
    write_knowledge_bank(
        out,
        embeddings=embeddings,
        prompts=prompts,
        hoi_classes=vocabulary.hoi_classes,
        attrs={
            "text_encoder": "clip",
            "clip_model": clip.model,
            "clip_pretrained": pretrained_identity(clip),
            **prompt_attrs(vocabulary, clip, annotations, split),
            "clip_config": to_dict(clip),
        },
    )
    log.info("wrote %d prompt embeddings of dimension %d to %s", *embeddings.shape, out)


def prompt_attrs(vocabulary: Vocabulary, clip: ClipConfig, annotations: Path, split: str) -> dict:
    """What every bank file records of its prompts, whatever encoded them."""
    return {
        "template": clip.template,
        "annotations": str(annotations),
        "split": split,
        "verbs": list(vocabulary.verbs),
        "objects": list(vocabulary.objects),
        "normalized": True,
    }


def write_roberta_bank(
    folder: str | None,
    vocabulary: Vocabulary,
    prompts: list[str],
    clip: ClipConfig,
    annotations: Path,
    split: str,
    out: Path,
    device: torch.device,
) -> None:
    """The bank from RoBERTa (Table 2 Exp 10): mean-pooled last hidden states of the same prompts."""
    from hoi_pipeline.modeling.text_encoders import encode_texts_mean_pooled, load_roberta, text_model_identity

    encoder, tokenizer = load_roberta(folder, device)
    embeddings = encode_texts_mean_pooled(encoder, tokenizer, prompts, device=device)  # (N, D)
    write_knowledge_bank(
        out,
        embeddings=embeddings,
        prompts=prompts,
        hoi_classes=vocabulary.hoi_classes,
        attrs={
            "text_encoder": "roberta",
            "text_model": str(folder),
            "text_model_identity": text_model_identity(folder),
            "sentence_embedding": "mean of last hidden states over non-padding tokens, L2-normalised",
            **prompt_attrs(vocabulary, clip, annotations, split),
        },
    )
    log.info("wrote %d RoBERTa prompt embeddings of dimension %d to %s", *embeddings.shape, out)


def encode_texts(
    model: torch.nn.Module,
    tokenizer,
    texts: Sequence[str],
    device: str | torch.device = "cpu",
    batch_size: int = BATCH_SIZE,
) -> np.ndarray:
    """(N, D) float32 L2-normalised CLIP text embeddings of `texts`, encoded in batches."""
    return encode_in_batches(texts, lambda batch: model.encode_text(tokenizer(batch).to(device)), batch_size)

