"""Human-object pairs of an image's proposals (pure functions).

As in SCG / UPT: every detected human is paired with every other detection, humans included
(a person can be the object of "hug person"), never with itself. When an image has more pairs than
`max_pairs`, those with the highest detection-score product s_h * s_o are kept (stable order, so the
choice is deterministic).

`enumerate_pairs` pairs one image's proposals; `enumerate_batch_pairs` a whole batch's at once, with
the same pairs in the same order, from the flat proposal list (no loop over images); `pair_images`
takes the batch as per-image lists, as the models get it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from hoi_pipeline.segments import rank_within_segments, segment_counts, segment_starts


def enumerate_pairs(
    labels: torch.Tensor, person: int, scores: torch.Tensor | None = None, max_pairs: int | None = None
) -> torch.Tensor:
    """(M,) proposal labels [and (M,) scores] -> (P, 2) int64 (human, object) proposal indices.

    Pairs come human-major in proposal order; after capping, they stay in that order.
    """
    device = labels.device
    humans = torch.nonzero(labels == person, as_tuple=True)[0]  # (H,)
    num = labels.shape[0]
    if humans.numel() == 0 or num < 2:
        return torch.zeros((0, 2), dtype=torch.int64, device=device)
    h = humans[:, None].expand(-1, num).reshape(-1)  # (H * M,)
    o = torch.arange(num, device=device)[None, :].expand(humans.numel(), -1).reshape(-1)
    keep = h != o
    pairs = torch.stack([h[keep], o[keep]], dim=1)  # (P, 2)
    if max_pairs is not None and pairs.shape[0] > max_pairs:
        if scores is None:
            chosen = torch.arange(max_pairs, device=device)
        else:
            product = scores[pairs[:, 0]] * scores[pairs[:, 1]]  # (P,)
            chosen = torch.argsort(product, descending=True, stable=True)[:max_pairs]
        pairs = pairs[torch.sort(chosen).values]
    return pairs


@dataclass(frozen=True)
class BatchPairs:
    """The human-object pairs of a batch, image after image (what `enumerate_pairs` gives each image)."""

    pairs: torch.Tensor  # (P, 2) int64 (human, object) proposal indices within the pair's image
    pair_image: torch.Tensor  # (P,) int64 image of each pair
    flat: torch.Tensor  # (P, 2) int64 the same proposals as indices into the batch's flat proposal list
    proposal_image: torch.Tensor  # (M,) int64 image of each proposal of the flat list

    def __len__(self) -> int:
        return self.pairs.shape[0]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> BatchPairs:
        return BatchPairs(*(t.to(device, non_blocking=non_blocking) for t in self._tensors()))

    def pin_memory(self) -> BatchPairs:
        return BatchPairs(*(t.pin_memory() for t in self._tensors()))

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return self.pairs, self.pair_image, self.flat, self.proposal_image


def enumerate_batch_pairs(
    labels: torch.Tensor,
    counts: torch.Tensor,
    person: int,
    scores: torch.Tensor | None = None,
    max_pairs: int | None = None,
) -> BatchPairs:
    """The pairs of B images from their flat (M,) proposal labels [and (M,) scores], `counts` (B,)
    proposals per image stored image after image; equal to `enumerate_pairs` on each image, concatenated.

    Built with data-dependent shapes (the number of pairs), so on a GPU it waits for the device: the
    training loop runs it on the CPU copy of a batch.
    """
    device = labels.device
    counts = counts.to(device=device, dtype=torch.int64)
    image = torch.repeat_interleave(torch.arange(counts.shape[0], device=device), counts)  # (M,)
    starts = segment_starts(counts)  # (B,) first proposal of each image
    humans = torch.nonzero(labels == person, as_tuple=True)[0]  # (H,) flat, image after image
    per_human = counts[image[humans]]  # (H,) proposals of the human's image: its candidate objects
    human = torch.repeat_interleave(humans, per_human)  # (H * M_b summed,) human-major, like enumerate_pairs
    first = torch.repeat_interleave(segment_starts(per_human), per_human)
    obj = starts[image[human]] + torch.arange(human.shape[0], device=device) - first  # every proposal of the image
    keep = human != obj
    human, obj = human[keep], obj[keep]  # (P,)
    pair_image = image[human]
    if max_pairs is not None and human.shape[0] > 0:
        if scores is None:  # the first max_pairs of each image
            first_pair = segment_starts(segment_counts(pair_image, counts.shape[0]))  # (B,)
            rank = torch.arange(human.shape[0], device=device) - first_pair[pair_image]
        else:  # the highest s_h * s_o, ties to the earlier pair; kept in their order
            rank = rank_within_segments(scores[human] * scores[obj], pair_image, counts.shape[0])
        chosen = rank < max_pairs
        human, obj, pair_image = human[chosen], obj[chosen], pair_image[chosen]
    flat = torch.stack([human, obj], dim=1)  # (P, 2)
    return BatchPairs(flat - starts[pair_image][:, None], pair_image, flat, image)


def pair_images(
    labels: Sequence[torch.Tensor],
    person: int,
    scores: Sequence[torch.Tensor] | None = None,
    max_pairs: int | None = None,
) -> BatchPairs:
    """The pairs of B images given per image ((M_b,) labels [and scores]), on the proposals' device.

    What every model's `pair_batch` does; on the host copy of a batch it never waits for a GPU.
    """
    counts = torch.tensor([len(lab) for lab in labels], dtype=torch.int64)  # (B,)
    flat_labels = torch.cat(list(labels)) if labels else torch.zeros(0, dtype=torch.int64)  # (M,)
    flat_scores = None if scores is None else torch.cat(list(scores)) if scores else torch.zeros(0)
    return enumerate_batch_pairs(flat_labels, counts.to(flat_labels.device), person, flat_scores, max_pairs)


def union_boxes(boxes_h: torch.Tensor, boxes_o: torch.Tensor) -> torch.Tensor:
    """(P, 4), (P, 4) -> (P, 4) smallest boxes enclosing each pair."""
    return torch.cat(
        [torch.minimum(boxes_h[:, :2], boxes_o[:, :2]), torch.maximum(boxes_h[:, 2:], boxes_o[:, 2:])], dim=1
    )

