"""Weak-supervision losses (paper Sec. 3.3): L = L_g + L_p + L_b (Eq. 4), from image-level labels only.

Per image:
- L_g, image loss: BCE of the image HOI logits s_g (N,) against the image's HOI labels (multi-hot),
  averaged over the N classes ("a standard binary cross-entropy loss for multi-label classification").
- L_p, pair MIL loss: an image has verb a if at least one of its pairs does, so the image's verb
  logit is the maximum of s_p[:, a] over its pairs; BCE of that (A,) against the image's verb labels,
  averaged over the A verbs. An image without pairs contributes 0.
- L_b, self-taught relatedness: pseudo-labels for s_b (P,) made from the detached s_p
  (`relatedness_pseudo_labels`): pairs whose object class is not among the image's labelled objects
  are masked out (b_m = 0); for every labelled verb the top-K remaining pairs by that verb's s_p are
  positives; every other pair of the image is a negative. BCE summed over the image's pairs,
  L_b = sum_m L_BCE(s_b^m, b_m) (`relatedness_reduction: sum`, the paper), or averaged over them
  (`mean`). The term is zero during the first `relatedness_warmup` iterations, while s_p is still
  uninformative.

Batch reduction, accumulation-exact: each term is the sum of its per-image values divided by
`normalizer`, the number of images one optimizer step averages over on this process (the global
batch size divided by the number of processes; DistributedDataParallel averages over processes).
Gradients of k micro-batches, each normalised by the whole step's image count, then add up to the
gradient of the whole batch, whatever the micro-batch split. The terms are weighted 1, 1 and
`relatedness_weight` (1 in the paper). `compute_losses` returns them as `LossTerms`; the training
step sums them (`LossTerms.total`) and logs each. Shape letters: B images, P pairs, A verbs,
N HOI classes, O objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F

from hoi_pipeline.config import LossConfig
from hoi_pipeline.segments import segment_counts, segment_max
from hoi_pipeline.structures import ModelOutput


@dataclass(frozen=True)
class LossTerms:
    """The loss terms of one batch (scalars; a disabled or inactive term is 0)."""

    image: torch.Tensor  # L_g
    pair: torch.Tensor  # L_p
    relatedness: torch.Tensor  # L_b, already multiplied by its weight

    @property
    def total(self) -> torch.Tensor:
        return self.image + self.pair + self.relatedness

    def as_floats(self) -> dict[str, float]:
        """The terms and their total as Python floats (one host-device synchronisation for all)."""
        return LossTerms.read_back([self])[0]

    @staticmethod
    def read_back(steps: Sequence[LossTerms]) -> list[dict[str, float]]:
        """Each step's terms and total as Python floats, with one host-device synchronisation for all steps."""
        names = [f.name for f in fields(LossTerms)]
        values = torch.stack([
            torch.stack([getattr(step, name).detach().float() for name in names] + [step.total.detach().float()])
            for step in steps
        ])  # (steps, terms + 1)
        return [dict(zip([*names, "total"], row)) for row in values.tolist()]

    def detached(self) -> LossTerms:
        """The same values without their graphs (what a training step keeps after backward)."""
        return LossTerms(*(getattr(self, f.name).detach() for f in fields(self)))

    @staticmethod
    def sum(parts: Sequence[LossTerms]) -> LossTerms:
        """Term by term sum (micro-batches normalised by the whole step's image count add up to its losses)."""
        if not parts:
            raise ValueError("no loss terms to sum")
        return LossTerms(*(sum(getattr(p, f.name) for p in parts) for f in fields(LossTerms)))


@dataclass(frozen=True)
class ImageTargets:
    """Image-level labels of a batch (multi-hot, float)."""

    hoi: torch.Tensor  # (B, N)
    verb: torch.Tensor  # (B, A)
    object: torch.Tensor  # (B, O)


def _per_batch(per_image_sum: torch.Tensor, normalizer: float | None, num_images: int) -> torch.Tensor:
    """A sum over images divided by the step's image count (this batch's size when None)."""
    count = num_images if normalizer is None else normalizer
    if count <= 0:
        raise ValueError(f"the loss normalizer must be > 0, got {count}")
    return per_image_sum / count


def image_loss(global_logits: torch.Tensor, hoi_targets: torch.Tensor, normalizer: float | None = None) -> torch.Tensor:
    """L_g: per image the mean BCE over N classes of s_g (B, N) against multi-hot labels (B, N), summed / normalizer."""
    per_element = F.binary_cross_entropy_with_logits(global_logits.float(), hoi_targets.float(), reduction="none")
    return _per_batch(per_element.mean(dim=1).sum(), normalizer, global_logits.shape[0])


def image_verb_logits(
    pair_logits: torch.Tensor, pair_image: torch.Tensor, num_images: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """MIL pooling: (P, A) pair logits -> ((B, A) max over each image's pairs, (B,) bool image has pairs)."""
    pooled = segment_max(pair_logits, pair_image, num_images)  # (B, A), -inf for an image without pairs
    has_pairs = segment_counts(pair_image, num_images) > 0  # (B,)
    return pooled, has_pairs


def pair_mil_loss(
    pair_logits: torch.Tensor, pair_image: torch.Tensor, verb_targets: torch.Tensor, normalizer: float | None = None
) -> torch.Tensor:
    """L_p: per image the mean BCE over A verbs of the max over its pairs of s_p (P, A) against (B, A) labels.

    Images without pairs add 0 (their pooled logits are replaced by 0 and their terms masked, rather than
    selected: selecting images would wait for the device).
    """
    num_images = verb_targets.shape[0]
    pooled, has_pairs = image_verb_logits(pair_logits.float(), pair_image, num_images)
    pooled = torch.where(has_pairs[:, None], pooled, torch.zeros_like(pooled))  # (B, A) no -inf
    per_element = F.binary_cross_entropy_with_logits(pooled, verb_targets.float(), reduction="none")  # (B, A)
    per_image = torch.where(has_pairs, per_element.mean(dim=1), torch.zeros_like(per_element[:, 0]))  # (B,)
    return _per_batch(per_image.sum(), normalizer, num_images)


@torch.no_grad()
def relatedness_pseudo_labels(
    pair_logits: torch.Tensor,
    pair_objects: torch.Tensor,
    pair_image: torch.Tensor,
    verb_targets: torch.Tensor,
    object_targets: torch.Tensor,
    top_k: int = 1,
) -> torch.Tensor:
    """Self-taught relatedness targets b (P,) in {0, 1} (pure function of the scores and labels).

    pair_logits (P, A) s_p; pair_objects (P,) object class of each pair's object; pair_image (P,);
    verb_targets (B, A) and object_targets (B, O) the images' labels. A pair is positive when, for
    some labelled verb of its image, it is among the top `top_k` pairs by that verb's score among
    the pairs whose object class is labelled in the image (b_m = 1). Ties keep the earlier pair.

    The whole batch at once, without sorting: `top_k` rounds, each adding, for every image and verb, the
    next pair of the stable descending order of that verb's scores (NaN first, as `torch.sort` puts it;
    the other pairs' scores set to -inf, as in the per-image loop this replaced) while fewer than
    k = min(top_k, the image's candidate pairs) are taken. Cost O(top_k * P * A), fixed shapes.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    num_pairs, num_verbs = pair_logits.shape
    num_images = verb_targets.shape[0]
    candidate = object_targets[pair_image, pair_objects] > 0  # (P,) b_m
    scores = pair_logits.float().masked_fill(~candidate[:, None], float("-inf"))  # (P, A)
    candidates = torch.zeros(num_images, dtype=torch.int64, device=pair_image.device)
    candidates.index_add_(0, pair_image, candidate.long())  # (B,) candidate pairs per image
    wanted = candidates.clamp(max=top_k)[pair_image]  # (P,) pairs taken per verb in the pair's image
    image = pair_image[:, None].expand(-1, num_verbs)  # (P, A)
    position = torch.arange(num_pairs, device=scores.device)[:, None].expand(-1, num_verbs)  # (P, A)
    is_nan = scores.isnan()
    taken = torch.zeros_like(scores, dtype=torch.bool)  # (P, A)
    for round_ in range(min(top_k, num_pairs)):  # rounds of top-k (a setting), not images
        left = ~taken
        nan_left = is_nan & left
        number_left = left & ~is_nan
        any_nan = segment_max(nan_left.float(), pair_image, num_images) > 0  # (B, A)
        best = segment_max(scores.masked_fill(~number_left, float("-inf")), pair_image, num_images)  # (B, A) best left
        next_ = torch.where(any_nan[pair_image], nan_left, number_left & (scores == best[pair_image]))  # (P, A)
        first = torch.full((num_images, num_verbs), num_pairs, dtype=torch.int64, device=scores.device)
        first = first.scatter_reduce(0, image, position.masked_fill(~next_, num_pairs), reduce="amin")  # (B, A)
        taken |= (position == first[pair_image]) & (round_ < wanted)[:, None]
    return (taken & (verb_targets[pair_image] > 0)).any(dim=1).float()


def relatedness_loss(
    relatedness_logits: torch.Tensor,
    pseudo_labels: torch.Tensor,
    pair_image: torch.Tensor,
    num_images: int,
    *,
    reduction: str = "sum",
    normalizer: float | None = None,
) -> torch.Tensor:
    """L_b: per image the BCE of s_b (P,) against pseudo-labels (P,), summed (or averaged) over its pairs, / normalizer."""
    if reduction not in ("sum", "mean"):
        raise ValueError(f"unknown relatedness_reduction '{reduction}'; allowed: sum, mean")
    if relatedness_logits.numel() == 0:
        return relatedness_logits.sum() * 0.0
    per_pair = F.binary_cross_entropy_with_logits(
        relatedness_logits.float(), pseudo_labels.float(), reduction="none"
    )  # (P,)
    if reduction == "mean":
        pairs_per_image = segment_counts(pair_image, num_images).float()  # (B,)
        per_pair = per_pair / pairs_per_image[pair_image]
    return _per_batch(per_pair.sum(), normalizer, num_images)


def compute_losses(
    output: ModelOutput,
    targets: ImageTargets,
    pair_objects: torch.Tensor,
    config: LossConfig,
    iteration: int,
    normalizer: float | None = None,
) -> LossTerms:
    """All terms for one (micro-)batch at training iteration `iteration` (0-based; L_b starts at `relatedness_warmup`).

    pair_objects (P,): the object class of each pair's object (the proposal label). `normalizer`: the
    number of images the optimizer step averages over on this process (default: this batch's). A
    model without the HOI recognition branch needs `use_image_loss: false` (see `effective_loss_config`).
    """
    num_images = targets.hoi.shape[0]
    zero = output.pair_logits.sum() * 0.0 + output.relatedness_logits.sum() * 0.0
    l_g = image_loss(output.global_logits, targets.hoi, normalizer) if config.use_image_loss else zero
    l_p = zero
    if config.use_pair_loss:
        l_p = pair_mil_loss(output.pair_logits, output.pair_image, targets.verb, normalizer)
    l_b = zero
    if config.use_relatedness_loss and iteration >= config.relatedness_warmup and config.relatedness_weight > 0:
        pseudo = relatedness_pseudo_labels(
            output.pair_logits.detach(),
            pair_objects,
            output.pair_image,
            targets.verb,
            targets.object,
            config.relatedness_top_k,
        )
        l_b = config.relatedness_weight * relatedness_loss(
            output.relatedness_logits, pseudo, output.pair_image, num_images,
            reduction=config.relatedness_reduction, normalizer=normalizer,
        )  # fmt: skip
    return LossTerms(image=l_g, pair=l_p, relatedness=l_b)


def effective_loss_config(loss: LossConfig, use_hoi_recognition: bool) -> LossConfig:
    """The loss settings a model can use: no L_g without the HOI recognition branch (Table 2, Exp 1)."""
    if use_hoi_recognition or not loss.use_image_loss:
        return loss
    return replace(loss, use_image_loss=False)
