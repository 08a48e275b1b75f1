"""Score fusion (paper Eq. 3) on hand-made scores: every switch, HOI-class filtering, top-K."""

from __future__ import annotations

import math

import pytest
import torch

from hoi_pipeline.config import InferConfig
from hoi_pipeline.scoring import FACTOR_NAMES, batch_pair_scores, fuse_scores, pair_scores, select_top_k

# Vocabulary of the hand-made case: verbs 0, 1; objects 0 person, 1 cup, 2 bike.
# HOI classes: 0 = (verb 0, cup), 1 = (verb 1, cup), 2 = (verb 1, bike).
HOI_LOOKUP = torch.tensor([[-1, 0, -1], [-1, 1, 2]])  # (A, O)

# Two pairs: pair 0 holds a cup, pair 1 a bike -> tuples (p0, v0, hoi 0), (p0, v1, hoi 1), (p1, v1, hoi 2).
GLOBAL = torch.tensor([0.0, math.log(3), math.log(1 / 3)])  # sigmoid: 1/2, 3/4, 1/4
PAIR = torch.tensor([[0.0, math.log(4)], [math.log(3), 0.0]])  # (P, A)
RELATEDNESS = torch.tensor([math.log(4), 0.0])  # sigmoid: 4/5, 1/2
DET_H = torch.tensor([0.5, 1.0])
DET_O = torch.tensor([0.8, 0.25])  # s_h * s_o = 0.4, 0.25
LABELS = torch.tensor([1, 2])

# e_p, by hand. Verb 0: softmax(0, ln3) = (1/4, 3/4), sigmoid(max = ln3) = 3/4 -> (3/16, 9/16).
# Verb 1: softmax(ln4, 0) = (4/5, 1/5), sigmoid(ln4) = 4/5 -> (16/25, 4/25).
EXPECTED_PAIR_SCORES = torch.tensor([[3 / 16, 16 / 25], [9 / 16, 4 / 25]])
EXPECTED = {  # per tuple, in pair-major verb-minor order
    "score_global": [1 / 2, 3 / 4, 1 / 4],
    "score_pair": [3 / 16, 16 / 25, 4 / 25],
    "score_relatedness": [4 / 5, 4 / 5, 1 / 2],
    "score_detection": [0.4**2.8, 0.4**2.8, 0.25**2.8],
}


def fuse(settings: InferConfig):
    return fuse_scores(GLOBAL, PAIR, RELATEDNESS, DET_H, DET_O, LABELS, HOI_LOOKUP, settings)


def test_pair_scores_by_hand():
    assert torch.allclose(pair_scores(PAIR), EXPECTED_PAIR_SCORES)
    # the softmax runs over the pairs: per verb, e_p sums to sigmoid(max_p s_p)
    assert torch.allclose(pair_scores(PAIR).sum(0), torch.tensor([3 / 4, 4 / 5]))


def random_pair_batch(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(P, A) logits of B images with 0-4 pairs each (ties, -inf, large logits), (P,) image of each pair."""
    counts = torch.randint(0, 5, (int(torch.randint(1, 6, (1,), generator=generator)),), generator=generator)
    pair_image = torch.repeat_interleave(torch.arange(len(counts)), counts)  # (P,)
    logits = torch.randint(-3, 4, (len(pair_image), 3), generator=generator).float() * 30  # ties
    special = torch.tensor([float("-inf"), 1e4, -1e4, 89.0])  # exp(89) overflows without the max shift
    chosen = torch.rand(logits.shape, generator=generator) < 0.2
    logits[chosen] = special[torch.randint(0, 4, (int(chosen.sum()),), generator=generator)]
    return logits, pair_image, len(counts)


def reference_pair_scores(logits: torch.Tensor) -> torch.Tensor:
    """Eq. 3's e_p of one image, written with torch.softmax (the formula before the segment version)."""
    return torch.sigmoid(logits.max(dim=0).values) * torch.softmax(logits, dim=0)


def test_batch_pair_scores_equal_the_per_image_loop():
    """Exactly `pair_scores` image by image (one definition); the torch.softmax formula to float rounding."""
    generator = torch.Generator().manual_seed(0)
    sizes = set()
    for _ in range(100):
        logits, pair_image, num_images = random_pair_batch(generator)
        found = batch_pair_scores(logits, pair_image, num_images)
        assert found.shape == logits.shape and found.dtype == torch.float32
        for b in range(num_images):
            rows = pair_image == b
            sizes.add(min(int(rows.sum()), 2))
            torch.testing.assert_close(found[rows], pair_scores(logits[rows]), rtol=0, atol=0, equal_nan=True)
            if rows.any():
                expected = reference_pair_scores(logits[rows])
                torch.testing.assert_close(found[rows], expected, rtol=1e-6, atol=1e-30, equal_nan=True)
        sigmoid = batch_pair_scores(logits, pair_image, num_images, "sigmoid")
        torch.testing.assert_close(sigmoid, torch.sigmoid(logits), rtol=0, atol=0)
    assert sizes == {0, 1, 2}  # images without pairs, with one and with several were drawn


def test_pair_scores_edge_cases():
    # one pair: the softmax is 1, e_p = sigmoid(s_p)
    one = torch.tensor([[0.0, math.log(3), -1e4]])
    torch.testing.assert_close(pair_scores(one), torch.sigmoid(one))
    # tied pairs share the verb's image-level confidence equally; large logits stay finite
    tied = torch.tensor([[1e4, 2.0], [1e4, 2.0]])
    torch.testing.assert_close(pair_scores(tied), torch.tensor([[0.5, 0.5], [0.5, 0.5]]) * torch.sigmoid(tied[0]))
    # a -inf pair gets 0; a verb whose pairs are all -inf has no defined softmax (NaN, as torch.softmax)
    masked = torch.tensor([[float("-inf"), float("-inf")], [0.0, float("-inf")]])
    scores = pair_scores(masked)
    assert scores[:, 0].tolist() == [0.0, 0.5] and scores[:, 1].isnan().all()
    assert pair_scores(torch.zeros(0, 2)).shape == (0, 2)
    assert batch_pair_scores(torch.zeros(0, 2), torch.zeros(0, dtype=torch.int64), 3).shape == (0, 2)
    with pytest.raises(ValueError, match=r"pair_image must be \(P,\)"):
        batch_pair_scores(one, torch.zeros(2, dtype=torch.int64), 1)
    with pytest.raises(ValueError, match="pair_logits must be"):
        pair_scores(torch.zeros(3))


def test_fusion_all_factors():
    fused = fuse(InferConfig())
    assert fused.pair.tolist() == [0, 0, 1]
    assert fused.verb.tolist() == [0, 1, 1]
    assert fused.hoi.tolist() == [0, 1, 2]
    for name, values in EXPECTED.items():
        assert torch.allclose(getattr(fused, name), torch.tensor(values)), name
    product = [math.prod(EXPECTED[name][t] for name in FACTOR_NAMES) for t in range(3)]
    assert torch.allclose(fused.score, torch.tensor(product))
    # tuple 0 by hand: 1/2 * 3/16 * 4/5 * 0.4**2.8
    assert fused.score[0].item() == pytest.approx(0.5 * 3 / 16 * 0.8 * 0.4**2.8, rel=1e-6)


@pytest.mark.parametrize(
    ("switch", "factor"),
    [
        ("use_global_score", "score_global"),
        ("use_pair_score", "score_pair"),
        ("use_relatedness_score", "score_relatedness"),
        ("use_detection_score", "score_detection"),
    ],
)
def test_each_switch_sets_its_factor_to_one(switch, factor):
    fused = fuse(InferConfig(**{switch: False}))
    assert torch.equal(getattr(fused, factor), torch.ones(3))
    others = [name for name in FACTOR_NAMES if name != factor]
    for name in others:
        assert torch.allclose(getattr(fused, name), torch.tensor(EXPECTED[name])), name
    product = [math.prod(EXPECTED[name][t] for name in others) for t in range(3)]
    assert torch.allclose(fused.score, torch.tensor(product))


def test_all_switches_off_gives_ones():
    settings = InferConfig(
        use_global_score=False, use_pair_score=False, use_relatedness_score=False, use_detection_score=False
    )
    assert torch.equal(fuse(settings).score, torch.ones(3))


def test_gamma():
    fused = fuse(InferConfig(gamma=2.0))
    assert torch.allclose(fused.score_detection, torch.tensor([0.16, 0.16, 0.0625]))
    assert torch.equal(fuse(InferConfig(gamma=0.0)).score_detection, torch.ones(3))


def test_only_hoi_classes_of_the_dataset_are_emitted():
    # a third pair whose object is a person: no HOI class (verb, person) exists -> no tuple,
    # but the pair still takes part in the softmax over the image's pairs
    pair = torch.cat([PAIR, torch.tensor([[0.0, 0.0]])])
    fused = fuse_scores(
        GLOBAL,
        pair,
        torch.cat([RELATEDNESS, torch.tensor([0.0])]),
        torch.cat([DET_H, torch.tensor([1.0])]),
        torch.cat([DET_O, torch.tensor([1.0])]),
        torch.tensor([1, 2, 0]),
        HOI_LOOKUP,
    )
    assert fused.pair.tolist() == [0, 0, 1]
    assert fused.verb.tolist() == [0, 1, 1]
    # verb 0 over the three pairs: softmax(0, ln3, 0) = (1/5, 3/5, 1/5), sigmoid(ln3) = 3/4
    assert fused.score_pair[0].item() == pytest.approx(3 / 4 * 1 / 5)
    # verb 1 of a cup and of a bike are classes 1 and 2; verb 0 of a bike is not a class
    assert (fused.hoi == HOI_LOOKUP[fused.verb, torch.tensor([1, 2, 0])[fused.pair]]).all()


def test_no_pairs_gives_no_tuples():
    empty = torch.zeros(0)
    fused = fuse_scores(GLOBAL, torch.zeros(0, 2), empty, empty, empty, torch.zeros(0, dtype=torch.int64), HOI_LOOKUP)
    assert len(fused) == 0
    assert all(len(value) == 0 for value in fused.factors().values())


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="relatedness_logits"):
        fuse_scores(GLOBAL, PAIR, RELATEDNESS[:1], DET_H, DET_O, LABELS, HOI_LOOKUP)
    with pytest.raises(ValueError, match="hoi_lookup"):
        fuse_scores(GLOBAL, PAIR, RELATEDNESS, DET_H, DET_O, LABELS, HOI_LOOKUP.T)
    with pytest.raises(ValueError, match="global_logits"):
        fuse_scores(GLOBAL[:2], PAIR, RELATEDNESS, DET_H, DET_O, LABELS, HOI_LOOKUP)


def test_top_k_keeps_the_best_in_order():
    fused = fuse(InferConfig())
    scores = fused.score.tolist()
    best = sorted(range(3), key=lambda t: -scores[t])
    top = select_top_k(fused, 2)
    assert len(top) == 2
    assert top.score.tolist() == [scores[best[0]], scores[best[1]]]
    assert top.hoi.tolist() == [fused.hoi[best[0]].item(), fused.hoi[best[1]].item()]
    assert torch.equal(top.score_pair, fused.score_pair[best[:2]])
    assert len(select_top_k(fused, 0)) == 3  # 0 keeps all, sorted
    assert select_top_k(fused, 0).score.tolist() == sorted(scores, reverse=True)
    assert len(select_top_k(fused, 10)) == 3


def test_top_k_ties_keep_fusion_order():
    settings = InferConfig(
        use_global_score=False, use_pair_score=False, use_relatedness_score=False, use_detection_score=False
    )
    top = select_top_k(fuse(settings), 2)
    assert top.hoi.tolist() == [0, 1]


def test_infer_config_rejects_bad_values():
    with pytest.raises(ValueError, match="top_k"):
        InferConfig(top_k=-1)
    with pytest.raises(ValueError, match="gamma"):
        InferConfig(gamma=-0.5)
