"""Stage `enhance-with-clip` (Table 3 Abl 3): a trained model.pt + CLIP zero-shot scores -> a new model.pt.

Abl 3 "directly enhance[s] baseline scores in Abl 2 with the CLIP similarity scores in Abl 1 on the
inference stage" (paper appendix B). Nothing is trained: the trained model (Abl 2 = Table 2 Exp 8, or
any other) is wrapped with the CLIP scorer of `hoi_pipeline/modeling/zero_shot.py` into a
`CLIPEnhancedModel` whose pair score is e_p * q (see there), and saved as a model.pt that the unchanged
infer stage reads (with `infer.pair_normalization: sigmoid` and the trained run's other switches).

The CLIP model is the trained run's `clip` section (for an RN50-FPN(COCO) run: the default CLIP RN50,
whose weights are loaded here); the prompts are the knowledge bank file's, which must be CLIP text
embeddings of that same model.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch

from hoi_pipeline.artifacts import file_digest
from hoi_pipeline.checkpoints import load_trained_model, save_trained_model
from hoi_pipeline.knowledge_bank_file import check_text_encoder, load_knowledge_bank
from hoi_pipeline.modeling.clip_loading import clip_mean_std, load_clip
from hoi_pipeline.modeling.zero_shot import CLIPEnhancedModel, build_zero_shot_model

log = logging.getLogger(__name__)


def run(*, checkpoint: Path, bank: Path, out: Path) -> None:
    """Wrap the trained model of `checkpoint` with CLIP scores of the prompts in `bank`; write `out`."""
    base, info = load_trained_model(checkpoint)
    if info.model.kind != "bilevel":
        raise ValueError(f"{checkpoint}: a '{info.model.kind}' model; enhance-with-clip needs a trained bilevel model")
    bank_file = load_knowledge_bank(bank)
    bank_file.check_vocabulary(info.vocabulary, str(bank))
    check_text_encoder(bank_file, "clip", str(bank))
    found = bank_file.attrs.get("clip_model")
    if found is not None and found != info.clip.model:
        raise ValueError(f"{bank}: embedded with CLIP '{found}' but {checkpoint} names CLIP '{info.clip.model}'")
    clip_model = load_clip(info.clip)
    scorer = build_zero_shot_model(
        clip=info.clip, vocabulary=info.vocabulary, bank_embeddings=torch.from_numpy(bank_file.embeddings),
        max_pairs=info.max_pairs, visual=clip_model.visual,
    )  # fmt: skip
    clip_mean, clip_std = clip_mean_std(clip_model)
    model = CLIPEnhancedModel(base=base, scorer=scorer, input_mean=info.preprocessing.mean,
                              input_std=info.preprocessing.std, clip_mean=clip_mean, clip_std=clip_std)  # fmt: skip
    enhanced = dataclasses.replace(
        info,
        model=dataclasses.replace(info.model, kind="clip_enhanced"),
        bank={**info.bank, "clip_scores": {"path": str(bank), "sha256": file_digest(bank)},
              "enhanced_checkpoint": {"path": str(checkpoint), "sha256": file_digest(checkpoint)}},
    )  # fmt: skip
    save_trained_model(out, model, enhanced)
    log.info("wrote %s: %s with CLIP %s scores of the prompts in %s", out, checkpoint, info.clip.model, bank)
