"""Whole-batch pairing and segment operations equal the per-image loops, ties and empty images included."""

from __future__ import annotations

import pytest
import torch

from hoi_pipeline.modeling.pairing import enumerate_batch_pairs, enumerate_pairs
from hoi_pipeline.segments import rank_within_segments, segment_counts, segment_max, segment_softmax


def random_proposals(generator: torch.Generator):
    """A batch of 1-5 images with 0-6 proposals each; labels 0 (person), 1, 2; scores with many ties."""
    batch = int(torch.randint(1, 6, (1,), generator=generator))
    counts = torch.randint(0, 7, (batch,), generator=generator)
    total = int(counts.sum())
    labels = torch.randint(0, 3, (total,), generator=generator)
    scores = torch.randint(0, 4, (total,), generator=generator).float() / 4
    return counts, labels, scores


def loop_pairs(counts, labels, scores, max_pairs):
    pairs, images, start = [], [], 0
    for b, count in enumerate(counts.tolist()):
        image_scores = None if scores is None else scores[start : start + count]
        found = enumerate_pairs(labels[start : start + count], 0, image_scores, max_pairs)
        pairs.append(found)
        images.append(torch.full((len(found),), b, dtype=torch.int64))
        start += count
    return torch.cat(pairs), torch.cat(images)


@pytest.mark.parametrize("max_pairs", [None, 1, 3, 5])
@pytest.mark.parametrize("use_scores", [True, False])
def test_batch_pairs_equal_the_per_image_pairs(max_pairs, use_scores):
    generator = torch.Generator().manual_seed(max_pairs or 0)
    for _ in range(60):
        counts, labels, scores = random_proposals(generator)
        scores = scores if use_scores else None
        expected_pairs, expected_image = loop_pairs(counts, labels, scores, max_pairs)
        found = enumerate_batch_pairs(labels, counts, 0, scores, max_pairs)
        assert torch.equal(found.pairs, expected_pairs) and torch.equal(found.pair_image, expected_image)
        starts = torch.cumsum(counts, 0) - counts
        assert torch.equal(found.flat, found.pairs + starts[found.pair_image][:, None])


def test_batch_pairs_of_images_without_humans_or_proposals_are_empty():
    found = enumerate_batch_pairs(torch.tensor([1, 2, 0]), torch.tensor([2, 0, 1]), 0, torch.ones(3), 2)
    assert found.pairs.shape == (0, 2) and found.pair_image.shape == (0,) and len(found) == 0
    none = enumerate_batch_pairs(torch.zeros(0, dtype=torch.int64), torch.tensor([0, 0]), 0)
    assert none.pairs.shape == (0, 2)


def test_rank_within_segments_is_the_stable_descending_sort_of_each_segment():
    generator = torch.Generator().manual_seed(0)
    values = torch.randint(0, 3, (40, 3), generator=generator).float()
    values[0, 0], values[5, 1], values[7, 2] = float("-inf"), float("inf"), float("-inf")
    segment = torch.randint(0, 4, (40,), generator=generator)  # not sorted, segment 4 of 5 empty
    ranks = rank_within_segments(values, segment, 5)
    for s in range(5):
        members = torch.nonzero(segment == s, as_tuple=True)[0]
        for c in range(3):
            order = torch.sort(values[members, c], descending=True, stable=True).indices
            expected = torch.empty_like(order)
            expected[order] = torch.arange(len(order))
            assert torch.equal(ranks[members, c], expected)
    assert torch.equal(rank_within_segments(values[:, 0], segment, 5), ranks[:, 0])
    assert segment_counts(segment, 5).tolist() == [int((segment == s).sum()) for s in range(5)]


def test_segment_max_and_softmax_equal_torch_on_each_segment():
    """Max exactly; softmax to float rounding (its sum runs in another order); non-finite columns alike."""
    generator = torch.Generator().manual_seed(1)
    values = torch.randint(-2, 3, (30, 6), generator=generator).float() * 40  # ties; exp(-160) underflows
    segment = torch.randint(0, 4, (30,), generator=generator)  # not sorted; segment 4 of 5 empty
    values[segment == 0, 0] = float("-inf")  # a column of -inf: NaN, as torch.softmax gives
    values[3, 1], values[4, 2], values[5, 3] = float("-inf"), float("inf"), float("nan")
    values[:, 4] += 1e4  # large logits
    maxima, soft = segment_max(values, segment, 5), segment_softmax(values, segment, 5)
    assert maxima.shape == (5, 6) and torch.all(maxima[4] == float("-inf"))
    for s in range(4):
        members = torch.nonzero(segment == s, as_tuple=True)[0]
        assert len(members) > 1
        torch.testing.assert_close(maxima[s], values[members].max(dim=0).values, rtol=0, atol=0, equal_nan=True)
        expected = torch.softmax(values[members], dim=0)
        torch.testing.assert_close(soft[members], expected, rtol=1e-6, atol=1e-30, equal_nan=True)
    assert soft[segment == 0, 0].isnan().all() and not soft[:, 5].isnan().any()
