"""Human-object pairs of an image's proposals (pure functions).

As in SCG / UPT: every detected human is paired with every other detection, humans included
(a person can be the object of "hug person"), never with itself. When an image has more pairs than
`max_pairs`, those with the highest detection-score product s_h * s_o are kept (stable order, so the
choice is deterministic).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


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


def union_boxes(boxes_h: torch.Tensor, boxes_o: torch.Tensor) -> torch.Tensor:
    """(P, 4), (P, 4) -> (P, 4) smallest boxes enclosing each pair."""
    return torch.cat(
        [torch.minimum(boxes_h[:, :2], boxes_o[:, :2]), torch.maximum(boxes_h[:, 2:], boxes_o[:, 2:])], dim=1
    )


def pair_object_labels(pairs: torch.Tensor, pair_image: torch.Tensor, labels: Sequence[torch.Tensor]) -> torch.Tensor:
    """(P,) object class of each pair's object, from (P, 2) pairs, (P,) image index and per-image labels."""
    if pairs.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64, device=pairs.device)
    counts = torch.tensor([len(lab) for lab in labels], device=pairs.device)
    offsets = torch.cumsum(counts, 0) - counts  # (B,)
    flat = torch.cat([lab.to(pairs.device) for lab in labels]).long()  # (M,)
    return flat[offsets[pair_image] + pairs[:, 1]]
