"""The knowledge bank artifact: text embeddings of the HOI class prompts (paper Sec. 3.2, W_T).

Written once by the embed-prompts stage, read by training (frozen expensive work is an artifact).
HDF5 layout: `embeddings` (N, D) float32, L2-normalised rows; `prompts` (N,) strings; `hoi_classes`
(N, 2) int64 (verb, object) in the vocabulary's class order. Attributes: schema_version, text_encoder
("clip", or "roberta" for Table 2 Exp 10; absent in older files = clip), for CLIP banks clip_model and
clip_pretrained (tag, or weights file name and digest), for RoBERTa banks text_model (folder) and
text_model_identity (weights digest), template, annotations (source file), verbs and objects (JSON
lists, to check the bank against a training vocabulary). No torch here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from hoi_pipeline.artifacts import SCHEMA_VERSION, _decode_attr, write_h5
from hoi_pipeline.structures import Vocabulary

REQUIRED_DATASETS = ("embeddings", "prompts", "hoi_classes")


@dataclass(frozen=True)
class KnowledgeBankArtifact:
    """Contents of a knowledge bank file."""

    embeddings: np.ndarray  # (N, D) float32
    prompts: tuple[str, ...]  # (N,)
    hoi_classes: np.ndarray  # (N, 2) int64 verb, object
    attrs: dict

    @property
    def num_classes(self) -> int:
        return len(self.prompts)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def check_vocabulary(self, vocabulary: Vocabulary, source: str = "knowledge bank") -> None:
        """Raise ValueError unless the bank's classes are the vocabulary's, in the same order."""
        if not np.array_equal(self.hoi_classes, vocabulary.hoi_classes):
            raise ValueError(
                f"{source}: its {self.num_classes} HOI classes differ from the annotations' "
                f"{vocabulary.num_classes} (rebuild it with embed-prompts on the same annotation file)"
            )
        for key, names in (("verbs", vocabulary.verbs), ("objects", vocabulary.objects)):
            if key in self.attrs and list(self.attrs[key]) != list(names):
                raise ValueError(f"{source}: its {key} list differs from the annotations'")


def write_knowledge_bank(
    path: str | os.PathLike,
    embeddings: np.ndarray,
    prompts: Sequence[str],
    hoi_classes: np.ndarray,
    attrs: Mapping[str, object],
) -> None:
    """Write the bank atomically; dict, list or tuple attrs are stored as JSON strings."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    hoi_classes = np.asarray(hoi_classes, dtype=np.int64).reshape(-1, 2)
    if embeddings.ndim != 2 or not len(embeddings) == len(prompts) == len(hoi_classes):
        raise ValueError(
            f"{path}: embeddings {embeddings.shape}, {len(prompts)} prompts and {len(hoi_classes)} classes disagree"
        )
    if not np.isfinite(embeddings).all():
        raise ValueError(f"{path}: embeddings contain NaN or inf")

    def fill(h5: h5py.File) -> None:
        h5.create_dataset("embeddings", data=embeddings)
        h5.create_dataset("prompts", data=np.array(list(prompts), dtype=object), dtype=h5py.string_dtype())
        h5.create_dataset("hoi_classes", data=hoi_classes)
        h5.attrs["schema_version"] = SCHEMA_VERSION
        for key, value in attrs.items():
            h5.attrs[key] = json.dumps(value) if isinstance(value, (dict, list, tuple)) else value

    write_h5(path, fill)


def load_knowledge_bank(path: str | os.PathLike) -> KnowledgeBankArtifact:
    """Read a bank written by `write_knowledge_bank`; errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: knowledge bank file not found (made by `hoi_pipeline embed-prompts`)")
    try:
        with h5py.File(path, "r") as h5:
            missing = [name for name in REQUIRED_DATASETS if name not in h5]
            if missing:
                raise ValueError(f"{path}: not a knowledge bank file, missing datasets {missing}")
            embeddings = h5["embeddings"][()]
            prompts = tuple(p.decode() if isinstance(p, bytes) else str(p) for p in h5["prompts"][()])
            hoi_classes = h5["hoi_classes"][()]
            attrs = {key: _decode_attr(value) for key, value in h5.attrs.items()}
    except OSError as error:
        raise ValueError(f"{path}: not a readable HDF5 file ({error})") from error
    version = attrs.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {version}, this code reads {SCHEMA_VERSION}")
    if embeddings.ndim != 2 or hoi_classes.shape != (len(embeddings), 2) or len(prompts) != len(embeddings):
        raise ValueError(
            f"{path}: inconsistent shapes: embeddings {embeddings.shape}, hoi_classes {hoi_classes.shape}, "
            f"{len(prompts)} prompts"
        )
    return KnowledgeBankArtifact(
        embeddings=embeddings.astype(np.float32, copy=False),
        prompts=prompts,
        hoi_classes=hoi_classes.astype(np.int64, copy=False),
        attrs=attrs,
    )



def check_text_encoder(bank: KnowledgeBankArtifact, bank_source: str, source: str = "knowledge bank") -> None:
    """Raise ValueError unless the bank was embedded by the text encoder `model.bank_source` names.

    A `roberta` run needs a RoBERTa bank; `clip` and `random` runs need a CLIP bank (the random bank
    only takes its shape from it). Banks written before the `text_encoder` attribute are CLIP banks.
    """
    found = str(bank.attrs.get("text_encoder", "clip"))
    expected = "roberta" if bank_source == "roberta" else "clip"
    if found != expected:
        raise ValueError(
            f"{source}: embedded with the {found} text encoder but model.bank_source is '{bank_source}' "
            f"(rebuild it with embed-prompts for this run's model section)"
        )
