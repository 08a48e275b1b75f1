"""Operations on flat batches split into segments (the proposals or pairs of each image), without loops.

A batch's per-image items are stored flat, with a (P,) `segment` index naming each item's image.
These functions replace "for every image: ..." loops by a few whole-batch tensor operations, with
a fixed number of segments and no data-dependent shapes, so that on a GPU they queue without
waiting for the device (no host-device synchronisation).
"""

from __future__ import annotations

import torch


def segment_counts(segment: torch.Tensor, num_segments: int) -> torch.Tensor:
    """(P,) segment indices in [0, S) -> (S,) int64 items per segment."""
    counts = torch.zeros(num_segments, dtype=torch.int64, device=segment.device)
    return counts.index_add_(0, segment, torch.ones_like(segment, dtype=torch.int64))


def segment_starts(counts: torch.Tensor) -> torch.Tensor:
    """(S,) items per segment -> (S,) position of each segment's first item when stored in order."""
    return torch.cumsum(counts, 0) - counts


def rank_within_segments(values: torch.Tensor, segment: torch.Tensor, num_segments: int) -> torch.Tensor:
    """(P, C) values and (P,) segment indices -> (P, C) int64 rank of each value within its segment and
    column, 0 for the largest; equal values rank by position (the earlier item first).

    Equals, for every segment s and column c, the position of each item in
    `torch.sort(values[segment == s, c], descending=True, stable=True)`; NaN and infinities sort as
    `torch.sort` sorts them. A (P,) `values` gives (P,) ranks.
    """
    column = values.dim() == 1
    values = values[:, None] if column else values
    # stable sorts: by value (descending), then by segment; the second keeps the first's order within a segment
    order = torch.sort(values, dim=0, descending=True, stable=True).indices  # (P, C)
    segment_of = segment[order]  # (P, C) the segment of each sorted item
    by_segment = torch.sort(segment_of, dim=0, stable=True).indices  # (P, C)
    order = order.gather(0, by_segment)
    segment_of = segment_of.gather(0, by_segment)
    starts = segment_starts(segment_counts(segment, num_segments))  # (S,)
    position = torch.arange(values.shape[0], device=values.device)[:, None]  # (P, 1)
    ranks = torch.empty_like(order)
    ranks.scatter_(0, order, position - starts[segment_of])  # (P, C)
    return ranks[:, 0] if column else ranks


def segment_max(values: torch.Tensor, segment: torch.Tensor, num_segments: int) -> torch.Tensor:
    """(P, ...) float values and (P,) segment indices -> (S, ...) maximum over each segment's items.

    -inf for a segment without items; a NaN makes its segment's maximum NaN, as `torch.max` does.
    """
    index = segment.view(-1, *([1] * (values.dim() - 1))).expand_as(values)  # (P, ...)
    lowest = values.new_full((num_segments, *values.shape[1:]), float("-inf"))
    return lowest.scatter_reduce(0, index, values, reduce="amax", include_self=True)


def segment_softmax(values: torch.Tensor, segment: torch.Tensor, num_segments: int) -> torch.Tensor:
    """(P, ...) float values and (P,) segment indices -> (P, ...) softmax over the items of each segment.

    Per segment and column, `torch.softmax(values[segment == s], dim=0)` up to float rounding (the sum
    runs in item order, `index_add_`); the same NaN where a column's maximum is not finite (all -inf,
    +inf or NaN), as `torch.softmax` gives.
    """
    shifted = torch.exp(values - segment_max(values, segment, num_segments)[segment])  # (P, ...) in (0, 1]
    total = torch.zeros((num_segments, *values.shape[1:]), dtype=shifted.dtype, device=shifted.device)
    return shifted / total.index_add_(0, segment, shifted)[segment]
