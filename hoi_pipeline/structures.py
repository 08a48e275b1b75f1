"""Typed containers passed between stages.

Everything here is NumPy-based so that the light stages (evaluation, data import) never import torch.
Boxes are always continuous image coordinates (x1, y1, x2, y2), the torchvision convention.
Shape letters: G ground-truth pairs, M proposals / detections, A verbs, O objects, N HOI classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch stays out of the light stages' imports
    import torch


@dataclass(frozen=True)
class Vocabulary:
    """Class lists of a dataset; they always come from its annotation files, never from constants.

    `hoi_classes` (N, 2) holds (verb index, object index) of each HOI class. `rare` and `non_rare`
    are HOI class indices. `verbs_ing` are the -ing forms used in prompts (same order as `verbs`).
    `verb_roles` name the semantic role of each verb's object where the dataset defines one (V-COCO:
    'obj' or 'instr'); prompts pick a template per role (`prompts.py`). Empty: no roles (HICO-DET).
    """

    verbs: tuple[str, ...]
    objects: tuple[str, ...]
    hoi_classes: np.ndarray
    rare: np.ndarray
    non_rare: np.ndarray
    verbs_ing: tuple[str, ...] = ()
    person: int = -1
    verb_roles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        hoi = np.asarray(self.hoi_classes, dtype=np.int64).reshape(-1, 2)
        object.__setattr__(self, "hoi_classes", hoi)
        object.__setattr__(self, "rare", np.asarray(self.rare, dtype=np.int64))
        object.__setattr__(self, "non_rare", np.asarray(self.non_rare, dtype=np.int64))
        if self.person < 0:
            if "person" not in self.objects:
                raise ValueError("the object class list has no 'person' class")
            object.__setattr__(self, "person", self.objects.index("person"))
        if self.verb_roles and len(self.verb_roles) != len(self.verbs):
            raise ValueError(f"verb_roles has {len(self.verb_roles)} entries for {len(self.verbs)} verbs")
        if len(hoi) and (hoi[:, 0].max() >= len(self.verbs) or hoi[:, 1].max() >= len(self.objects)):
            raise ValueError("an HOI class names a verb or object index outside the class lists")

    @property
    def num_verbs(self) -> int:
        return len(self.verbs)

    @property
    def num_objects(self) -> int:
        return len(self.objects)

    @property
    def num_classes(self) -> int:
        return len(self.hoi_classes)

    def hoi_lookup(self) -> np.ndarray:
        """(A, O) table of HOI class indices, -1 where a verb-object combination is not a class."""
        table = np.full((self.num_verbs, self.num_objects), -1, dtype=np.int64)
        table[self.hoi_classes[:, 0], self.hoi_classes[:, 1]] = np.arange(self.num_classes)
        return table

    def class_name(self, hoi: int) -> str:
        verb, obj = self.hoi_classes[hoi]
        return f"{self.verbs[verb]} {self.objects[obj]}"


def _as_boxes(boxes: object) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


@dataclass(frozen=True)
class ImageAnnotation:
    """Ground truth of one image: G annotated human-object pairs."""

    filename: str
    width: int
    height: int
    boxes_h: np.ndarray  # (G, 4)
    boxes_o: np.ndarray  # (G, 4)
    hoi: np.ndarray  # (G,)
    verb: np.ndarray  # (G,)
    object: np.ndarray  # (G,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "boxes_h", _as_boxes(self.boxes_h))
        object.__setattr__(self, "boxes_o", _as_boxes(self.boxes_o))
        for name in ("hoi", "verb", "object"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.int64).reshape(-1))
        sizes = {len(self.boxes_h), len(self.boxes_o), len(self.hoi), len(self.verb), len(self.object)}
        if len(sizes) != 1:
            raise ValueError(f"{self.filename}: boxes_h, boxes_o, hoi, verb and object differ in length")

    @property
    def num_pairs(self) -> int:
        return len(self.hoi)


@dataclass(frozen=True)
class HOIAnnotations:
    """One split of a dataset: its vocabulary and the ground truth of every image.

    `empty` lists images of the split that have no usable annotation (kept for the record,
    they are still test images: detections on them are false positives).
    """

    vocabulary: Vocabulary
    images: tuple[ImageAnnotation, ...]
    source: str = ""
    empty: tuple[str, ...] = ()
    benchmark: str = "hicodet"  # which evaluation protocol applies: "hicodet" (mAP) or "vcoco" (role AP)

    @property
    def filenames(self) -> list[str]:
        return [image.filename for image in self.images]

    def index_of(self) -> dict[str, int]:
        return {image.filename: i for i, image in enumerate(self.images)}


@dataclass(frozen=True)
class Proposals:
    """Detector output of one image: M boxes with scores and labels in the dataset's object order."""

    filename: str
    boxes: np.ndarray  # (M, 4) float32
    scores: np.ndarray  # (M,) float32
    labels: np.ndarray  # (M,) int64, dataset object index (person included)

    def __post_init__(self) -> None:
        object.__setattr__(self, "boxes", _as_boxes(self.boxes))
        object.__setattr__(self, "scores", np.asarray(self.scores, dtype=np.float32).reshape(-1))
        object.__setattr__(self, "labels", np.asarray(self.labels, dtype=np.int64).reshape(-1))
        if not len(self.boxes) == len(self.scores) == len(self.labels):
            raise ValueError(f"{self.filename}: boxes, scores and labels differ in length")

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class HOIDetections:
    """Detected HOI tuples of one image (the inference stage's output, the evaluator's input)."""

    filename: str
    boxes_h: np.ndarray  # (M, 4) float32
    boxes_o: np.ndarray  # (M, 4) float32
    hoi: np.ndarray  # (M,) int64
    verb: np.ndarray  # (M,) int64
    object: np.ndarray  # (M,) int64
    score: np.ndarray  # (M,) float32
    factors: dict[str, np.ndarray] = field(default_factory=dict)  # optional per-tuple score factors

    def __post_init__(self) -> None:
        object.__setattr__(self, "boxes_h", _as_boxes(self.boxes_h))
        object.__setattr__(self, "boxes_o", _as_boxes(self.boxes_o))
        for name in ("hoi", "verb", "object"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.int64).reshape(-1))
        object.__setattr__(self, "score", np.asarray(self.score, dtype=np.float32).reshape(-1))

    def __len__(self) -> int:
        return len(self.score)


@dataclass
class ModelOutput:
    """What the bi-level model predicts for a batch of B images (paper Sec. 4).

    Pairs are flattened over the batch: P = sum of the images' pair counts, and `pair_image[p]`
    says which image pair p belongs to. `pairs[p]` = (human, object) indices into that image's
    proposals. Logits are raw (before sigmoid/softmax); score fusion lives in `scoring.py`.
    """

    global_logits: "torch.Tensor"  # (B, N) s_g = W_T v_g; zeros when the HOI recognition branch is off
    pair_logits: "torch.Tensor"  # (P, A) s_p
    relatedness_logits: "torch.Tensor"  # (P,) s_b
    pairs: "torch.Tensor"  # (P, 2) int64
    pair_image: "torch.Tensor"  # (P,) int64
