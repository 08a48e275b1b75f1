"""Inference score fusion (paper Sec. 4.4, Eq. 3) and the selection of detection tuples.

For one image with P human-object pairs, verb a and the object's class c_o:

    e_p[p, a] = sigmoid(max_p' s_p[p', a]) * softmax_p(s_p[:, a])     (pair score, per image and verb)
    s[p, a]   = sigmoid(s_g[hoi(a, c_o)]) * e_p[p, a] * sigmoid(s_b[p])
    R[p, a]   = (s_h[p] * s_o[p]) ** gamma * s[p, a]

Each factor can be switched off for the ablations (`InferConfig.use_*`); a switched-off factor is 1.
With `infer.pair_normalization: sigmoid`, e_p[p, a] = sigmoid(s_p[p, a]) instead: each pair scored alone,
for models whose s_p are already per-pair scores (the CLIP zero-shot model, Table 3 Abl 1).
Only (pair, verb) combinations whose (verb, object class) is an HOI class of the dataset become
tuples. Everything here is a pure tensor function; the stages feed it one image at a time
(`batch_pair_scores` gives e_p of a whole batch, for models that fold e_p into their output).
Shape letters: P pairs, A verbs, O objects, N HOI classes, T tuples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hoi_pipeline.config import InferConfig
from hoi_pipeline.segments import segment_max, segment_softmax

FACTOR_NAMES = ("score_global", "score_pair", "score_relatedness", "score_detection")


@dataclass(frozen=True)
class FusedScores:
    """Scored tuples of one image: tuple t is pair `pair[t]` with verb `verb[t]`, HOI class `hoi[t]`.

    `score` = score_global * score_pair * score_relatedness * score_detection, each factor (T,)
    already raised / switched as configured.
    """

    pair: torch.Tensor  # (T,) int64, index into the image's pairs
    verb: torch.Tensor  # (T,) int64
    hoi: torch.Tensor  # (T,) int64
    score: torch.Tensor  # (T,) float32
    score_global: torch.Tensor  # (T,)
    score_pair: torch.Tensor  # (T,)
    score_relatedness: torch.Tensor  # (T,)
    score_detection: torch.Tensor  # (T,)

    def __len__(self) -> int:
        return len(self.score)

    def take(self, index: torch.Tensor) -> FusedScores:
        """The tuples at `index` (T',), in that order."""
        return FusedScores(**{name: getattr(self, name)[index] for name in self.__dataclass_fields__})

    def factors(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in FACTOR_NAMES}


def batch_pair_scores(
    pair_logits: torch.Tensor, pair_image: torch.Tensor, num_images: int, normalization: str = "softmax"
) -> torch.Tensor:
    """e_p (P, A) of a batch's pairs, each image's pairs (`pair_image` (P,) in [0, B)) among themselves.

    Per image and verb: sigmoid of the best pair's logit times the softmax over the image's pairs. The
    softmax ranks the pairs of an image against each other for a verb; the sigmoid of the maximum keeps
    the image-level confidence of that verb (MIL over pairs, paper Eq. 3). Whole-batch segment
    operations, no loop over images and no wait for the device.
    `normalization="sigmoid"`: sigmoid(s_p) of each pair alone (`InferConfig.pair_normalization`).
    """
    if pair_logits.ndim != 2:
        raise ValueError(f"pair_logits must be (P, A), got shape {tuple(pair_logits.shape)}")
    if pair_image.shape != pair_logits.shape[:1]:
        raise ValueError(f"pair_image must be (P,) = ({pair_logits.shape[0]},), got shape {tuple(pair_image.shape)}")
    if normalization not in ("softmax", "sigmoid"):
        raise ValueError(f"unknown pair normalization '{normalization}'; allowed: softmax, sigmoid")
    logits = pair_logits.float()
    if normalization == "sigmoid":
        return torch.sigmoid(logits)
    best = segment_max(logits, pair_image, num_images)[pair_image]  # (P, A) the best logit of the pair's image
    return torch.sigmoid(best) * segment_softmax(logits, pair_image, num_images)


def pair_scores(pair_logits: torch.Tensor, normalization: str = "softmax") -> torch.Tensor:
    """e_p (P, A) of one image's P pairs: `batch_pair_scores` with a single image."""
    one_image = torch.zeros(pair_logits.shape[:1], dtype=torch.int64, device=pair_logits.device)  # (P,)
    return batch_pair_scores(pair_logits, one_image, 1, normalization)


def fuse_scores(
    global_logits: torch.Tensor,
    pair_logits: torch.Tensor,
    relatedness_logits: torch.Tensor,
    det_scores_h: torch.Tensor,
    det_scores_o: torch.Tensor,
    object_labels: torch.Tensor,
    hoi_lookup: torch.Tensor,
    settings: InferConfig | None = None,
) -> FusedScores:
    """Scores of every valid (pair, verb) tuple of one image, in pair-major, verb-minor order.

    global_logits (N,) s_g of the image; pair_logits (P, A) s_p; relatedness_logits (P,) s_b;
    det_scores_h / det_scores_o (P,) detector scores of each pair's human and object;
    object_labels (P,) dataset object class of each pair's object; hoi_lookup (A, O) HOI class
    index of (verb, object), -1 where the combination is not a class of the dataset. `settings`
    switches factors and sets gamma (default: the paper's, every factor on, gamma 2.8).
    """
    settings = settings or InferConfig()
    num_pairs, num_verbs = pair_logits.shape if pair_logits.ndim == 2 else (-1, -1)
    for name, tensor in (
        ("relatedness_logits", relatedness_logits),
        ("det_scores_h", det_scores_h),
        ("det_scores_o", det_scores_o),
        ("object_labels", object_labels),
    ):
        if tensor.shape != (num_pairs,):
            raise ValueError(f"{name} must be (P,) = ({num_pairs},), got shape {tuple(tensor.shape)}")
    if hoi_lookup.ndim != 2 or hoi_lookup.shape[0] != num_verbs:
        raise ValueError(f"hoi_lookup must be (A, O) with A = {num_verbs}, got shape {tuple(hoi_lookup.shape)}")
    num_classes = int(hoi_lookup.max()) + 1 if hoi_lookup.numel() else 0
    if global_logits.ndim != 1 or global_logits.shape[0] < num_classes:
        raise ValueError(f"global_logits must be (N,) with N >= {num_classes}, got shape {tuple(global_logits.shape)}")

    device = pair_logits.device
    hoi_lookup = hoi_lookup.to(device=device, dtype=torch.int64)
    hoi_of_pair = hoi_lookup[:, object_labels.to(device=device, dtype=torch.int64)].T  # (P, A)
    pair, verb = torch.nonzero(hoi_of_pair >= 0, as_tuple=True)  # (T,), (T,) row-major order
    hoi = hoi_of_pair[pair, verb]  # (T,)

    ones = torch.ones(len(pair), dtype=torch.float32, device=device)
    if settings.use_global_score:
        score_global = torch.sigmoid(global_logits.float().to(device)[hoi])
    else:
        score_global = ones
    if settings.use_pair_score:
        score_pair = pair_scores(pair_logits, settings.pair_normalization)[pair, verb]
    else:
        score_pair = ones
    if settings.use_relatedness_score:
        score_relatedness = torch.sigmoid(relatedness_logits.float().to(device))[pair]
    else:
        score_relatedness = ones
    if settings.use_detection_score:
        det = det_scores_h.float().to(device) * det_scores_o.float().to(device)  # (P,)
        score_detection = det.pow(settings.gamma)[pair]
    else:
        score_detection = ones
    score = score_global * score_pair * score_relatedness * score_detection
    return FusedScores(
        pair=pair,
        verb=verb,
        hoi=hoi,
        score=score,
        score_global=score_global,
        score_pair=score_pair,
        score_relatedness=score_relatedness,
        score_detection=score_detection,
    )


def select_top_k(scores: FusedScores, top_k: int) -> FusedScores:
    """The `top_k` best tuples, best first (ties keep fusion order); top_k <= 0 keeps all, sorted."""
    order = torch.sort(scores.score, descending=True, stable=True).indices
    if top_k > 0:
        order = order[:top_k]
    return scores.take(order)
