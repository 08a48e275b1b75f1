"""Text encoders other than CLIP's for the knowledge bank W_T (paper Table 2, Exp 10: "RoBERTa").

Exp 10 builds W_T from "embeddings of HOI labels from RoBERTa model" (Sec. 4.4) instead of the CLIP text
tower. The paper does not say which RoBERTa or how a sentence becomes one vector; here:

- the model is a Hugging Face RoBERTa folder on this machine (`model.bank_text_model`), e.g. `roberta-base`
  (768-d), loaded with `transformers` (an optional dependency: `pip install -e ".[roberta]"`); nothing is
  downloaded at run time;
- the prompts are the same sentences as the CLIP bank's ("a person riding a horse");
- a prompt's embedding is the mean of RoBERTa's last hidden states over its tokens, <s> and </s>
  included, padding excluded, then L2-normalised like the CLIP bank. Mean pooling, not the <s> token:
  RoBERTa has no next-sentence objective, so <s> is not trained as a sentence summary, while the mean of
  the token states is the usual sentence embedding of an MLM encoder (Sentence-BERT).

The bank's width (768) differs from the visual width; the model projects where widths differ (the
torchvision backbones' attention pools output the bank width directly).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

log = logging.getLogger(__name__)

BATCH_SIZE = 256
DOWNLOAD_HINT = (
    "download roberta-base from the Hugging Face hub into that folder, e.g. "
    "`hf download FacebookAI/roberta-base --local-dir FOLDER`"
)


def load_roberta(folder: str | Path | None, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, object]:
    """(model in eval mode on `device`, its tokenizer) of a local RoBERTa folder (`model.bank_text_model`).

    Raises ImportError when transformers is missing and FileNotFoundError when the folder does not hold
    a model, each with one line saying what to install or download.
    """
    if folder is None:
        raise FileNotFoundError(f"model.bank_text_model is not set: bank_source 'roberta' needs a local folder; "
                                f"{DOWNLOAD_HINT}")  # fmt: skip
    path = Path(folder).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"model.bank_text_model: '{path}' holds no RoBERTa model (no config.json); "
                                f"{DOWNLOAD_HINT.replace('FOLDER', str(path))}")  # fmt: skip
    try:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging
    except ImportError as error:
        raise ImportError(
            "bank_source 'roberta' needs the transformers package: pip install -e \".[roberta]\""
        ) from error
    transformers_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as error:
        message = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise FileNotFoundError(f"model.bank_text_model: '{path}' is not a complete model folder ({message}); "
                                f"{DOWNLOAD_HINT.replace('FOLDER', str(path))}") from error  # fmt: skip
    if model.config.model_type != "roberta":
        log.warning("model.bank_text_model: %s is a '%s' model, not RoBERTa", path, model.config.model_type)
    return model.float().to(device).eval(), tokenizer


def text_model_identity(folder: str | Path) -> str:
    """What the folder's model is, to record in the bank file: its name and its weights' digest."""
    from hoi_pipeline.artifacts import file_digest

    path = Path(folder).expanduser()
    weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    digest = ",".join(f"{w.name}:sha256:{file_digest(w)}" for w in weights) or "no weights file"
    return f"hf:{path.name}:{digest}"


@torch.no_grad()
def encode_in_batches(
    texts: Sequence[str], encode: Callable[[list[str]], torch.Tensor], batch_size: int = BATCH_SIZE
) -> np.ndarray:
    """(N, D) float32 L2-normalised embeddings of `texts`, `encode` taking `batch_size` texts at a time."""
    if not texts:
        raise ValueError("no prompts to encode (the vocabulary has no HOI classes)")
    parts = []
    for start in tqdm(
        range(0, len(texts), batch_size), desc="encode prompts", unit="batch", disable=not sys.stderr.isatty()
    ):
        features = encode(list(texts[start : start + batch_size]))  # (b, D)
        parts.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu())
    embeddings = torch.cat(parts).numpy()
    if not np.isfinite(embeddings).all():
        raise ValueError("text embeddings contain NaN or inf")
    return embeddings


def encode_texts_mean_pooled(
    model: torch.nn.Module,
    tokenizer,
    texts: Sequence[str],
    device: str | torch.device = "cpu",
    batch_size: int = BATCH_SIZE,
) -> np.ndarray:
    """(N, D) float32 L2-normalised sentence embeddings: mean of the last hidden states over real tokens."""

    def encode(batch: list[str]) -> torch.Tensor:
        tokens = tokenizer(batch, padding=True, return_tensors="pt").to(device)
        hidden = model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (b, T, 1)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)  # (b, D)

    return encode_in_batches(texts, encode, batch_size)
