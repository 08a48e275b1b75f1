"""Weak-supervision losses on tiny hand-made tensors, and self-taught relatedness pseudo-labels."""

from __future__ import annotations

import math

import pytest
import torch

from hoi_pipeline.config import LossConfig
from hoi_pipeline.losses import (
    ImageTargets,
    compute_losses,
    effective_loss_config,
    image_loss,
    image_verb_logits,
    pair_mil_loss,
    relatedness_loss,
    relatedness_pseudo_labels,
)
from hoi_pipeline.structures import ModelOutput


def bce(logit: float, target: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


# --------------------------------------------------------------------------------------------
# L_g and L_p


def test_image_loss_is_mean_bce_per_image_over_the_normalizer():
    logits = torch.tensor([[2.0, -1.0], [0.0, 3.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    per_image = [(bce(2, 1) + bce(-1, 0)) / 2, (bce(0, 0) + bce(3, 1)) / 2]
    assert image_loss(logits, targets).item() == pytest.approx(sum(per_image) / 2, rel=1e-6)
    # a micro-batch of a step over 8 images: its per-image sum over 8
    assert image_loss(logits, targets, normalizer=8).item() == pytest.approx(sum(per_image) / 8, rel=1e-6)


def test_pair_mil_takes_max_over_each_images_pairs():
    pair_logits = torch.tensor([[1.0, -2.0], [3.0, -1.0], [-4.0, 0.5]], requires_grad=True)  # (P=3, A=2)
    pair_image = torch.tensor([0, 0, 1])
    pooled, has_pairs = image_verb_logits(pair_logits, pair_image, 3)
    assert pooled[:2].tolist() == [[3.0, -1.0], [-4.0, 0.5]]
    assert has_pairs.tolist() == [True, True, False]  # image 2 has no pair
    verbs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    loss = pair_mil_loss(pair_logits, pair_image, verbs)
    expected = ((bce(3, 1) + bce(-1, 0)) / 2 + (bce(-4, 0) + bce(0.5, 1)) / 2) / 3  # image 2 adds 0 over 3 images
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    # only the maximum pair of each image and verb gets a gradient
    assert pair_logits.grad[0].tolist() == [0.0, 0.0]
    assert (pair_logits.grad[1] != 0).all() and (pair_logits.grad[2] != 0).all()


def test_pair_mil_without_pairs_is_zero_and_connected():
    pair_logits = torch.zeros((0, 2), requires_grad=True)
    loss = pair_mil_loss(pair_logits, torch.zeros(0, dtype=torch.int64), torch.ones(2, 2))
    assert loss.item() == 0.0 and loss.requires_grad


# --------------------------------------------------------------------------------------------
# self-taught relatedness pseudo-labels


def test_pseudo_labels_mask_objects_not_in_the_image_labels():
    # one image, verbs (A=2), objects (O=3); pairs' objects: 1, 2, 1
    pair_logits = torch.tensor([[0.1, 0.0], [5.0, 0.0], [0.3, 0.0]])
    pair_objects = torch.tensor([1, 2, 1])
    pair_image = torch.zeros(3, dtype=torch.int64)
    verbs = torch.tensor([[1.0, 0.0]])
    objects = torch.tensor([[0.0, 1.0, 0.0]])  # object 2 is not labelled: pair 1 is masked despite its score
    labels = relatedness_pseudo_labels(pair_logits, pair_objects, pair_image, verbs, objects, top_k=1)
    assert labels.tolist() == [0.0, 0.0, 1.0]


def test_pseudo_labels_top1_per_labelled_verb_over_several_images():
    pair_logits = torch.tensor(
        [
            [2.0, 0.0, 9.0],  # image 0
            [1.0, 3.0, 9.0],
            [0.5, 1.0, 9.0],
            [4.0, 0.0, 0.0],  # image 1
            [1.0, 2.0, 0.0],
        ]
    )
    pair_objects = torch.tensor([1, 1, 1, 1, 1])
    pair_image = torch.tensor([0, 0, 0, 1, 1])
    verbs = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])  # verb 2 is not labelled anywhere
    objects = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    labels = relatedness_pseudo_labels(pair_logits, pair_objects, pair_image, verbs, objects, top_k=1)
    # image 0: verb 0 -> pair 0, verb 1 -> pair 1; image 1: verb 1 -> pair 4
    assert labels.tolist() == [1.0, 1.0, 0.0, 0.0, 1.0]


def test_pseudo_labels_top_k():
    pair_logits = torch.tensor([[0.1], [0.9], [0.5], [0.7]])
    pair_objects = torch.tensor([0, 0, 0, 1])  # the last pair's object is not labelled
    pair_image = torch.zeros(4, dtype=torch.int64)
    verbs, objects = torch.tensor([[1.0]]), torch.tensor([[1.0, 0.0]])
    top2 = relatedness_pseudo_labels(pair_logits, pair_objects, pair_image, verbs, objects, top_k=2)
    assert top2.tolist() == [0.0, 1.0, 1.0, 0.0]
    # K larger than the candidates: every candidate, never a masked pair
    top5 = relatedness_pseudo_labels(pair_logits, pair_objects, pair_image, verbs, objects, top_k=5)
    assert top5.tolist() == [1.0, 1.0, 1.0, 0.0]


def test_pseudo_labels_when_no_pair_qualifies():
    pair_logits = torch.tensor([[3.0], [2.0]])
    pair_image = torch.tensor([0, 1])
    # image 0: its pair's object is unlabelled; image 1: no verb label
    labels = relatedness_pseudo_labels(
        pair_logits,
        torch.tensor([1, 0]),
        pair_image,
        torch.tensor([[1.0], [0.0]]),
        torch.tensor([[1.0, 0.0], [1.0, 0.0]]),
    )
    assert labels.tolist() == [0.0, 0.0]
    empty = relatedness_pseudo_labels(
        torch.zeros((0, 1)), torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64),
        torch.ones(1, 1), torch.ones(1, 1),
    )  # fmt: skip
    assert empty.shape == (0,)


def test_pseudo_labels_ties_keep_the_earlier_pair():
    labels = relatedness_pseudo_labels(
        torch.tensor([[1.0], [1.0]]), torch.tensor([0, 0]), torch.tensor([0, 0]), torch.ones(1, 1), torch.ones(1, 1)
    )
    assert labels.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="top_k"):
        relatedness_pseudo_labels(torch.ones(1, 1), torch.zeros(1, dtype=torch.int64), torch.zeros(1, dtype=torch.int64),
                                  torch.ones(1, 1), torch.ones(1, 1), top_k=0)  # fmt: skip


def test_relatedness_loss_sums_over_each_images_pairs():
    logits, labels = torch.tensor([2.0, -1.0, 0.0]), torch.tensor([1.0, 0.0, 1.0])
    pair_image = torch.tensor([0, 0, 1])  # image 0 has two pairs, image 1 one, image 2 none
    terms = [bce(2, 1), bce(-1, 0), bce(0, 1)]
    summed = relatedness_loss(logits, labels, pair_image, 3)  # the paper: sum over pairs, per image
    assert summed.item() == pytest.approx(sum(terms) / 3, rel=1e-6)
    averaged = relatedness_loss(logits, labels, pair_image, 3, reduction="mean")
    assert averaged.item() == pytest.approx(((terms[0] + terms[1]) / 2 + terms[2]) / 3, rel=1e-6)
    assert relatedness_loss(logits, labels, pair_image, 3, normalizer=6).item() == pytest.approx(sum(terms) / 6)
    with pytest.raises(ValueError, match="relatedness_reduction"):
        relatedness_loss(logits, labels, pair_image, 3, reduction="max")


# --------------------------------------------------------------------------------------------
# all terms


def make_output(requires_grad: bool = True) -> tuple[ModelOutput, ImageTargets, torch.Tensor]:
    output = ModelOutput(
        global_logits=torch.tensor([[1.0, -1.0]], requires_grad=requires_grad),
        pair_logits=torch.tensor([[2.0, -1.0], [0.0, 1.0]], requires_grad=requires_grad),
        relatedness_logits=torch.tensor([0.5, -0.5], requires_grad=requires_grad),
        pairs=torch.tensor([[0, 1], [0, 2]]),
        pair_image=torch.tensor([0, 0]),
    )
    targets = ImageTargets(
        hoi=torch.tensor([[1.0, 0.0]]), verb=torch.tensor([[1.0, 0.0]]), object=torch.tensor([[0.0, 1.0, 1.0]])
    )
    return output, targets, torch.tensor([1, 2])


def test_compute_losses_terms_warmup_and_switches():
    output, targets, pair_objects = make_output()
    config = LossConfig(relatedness_warmup=10, relatedness_weight=2.0, relatedness_reduction="mean")
    early = compute_losses(output, targets, pair_objects, config, iteration=9)
    assert early.image.item() == pytest.approx((bce(1, 1) + bce(-1, 0)) / 2, rel=1e-6)
    assert early.pair.item() == pytest.approx((bce(2, 1) + bce(1, 0)) / 2, rel=1e-6)
    assert early.relatedness.item() == 0.0
    late = compute_losses(output, targets, pair_objects, config, iteration=10)
    # verb 0 labelled, both objects labelled: pair 0 (score 2.0) is the positive
    assert late.relatedness.item() == pytest.approx(2.0 * (bce(0.5, 1) + bce(-0.5, 0)) / 2, rel=1e-6)
    assert late.total.item() == pytest.approx(late.image.item() + late.pair.item() + late.relatedness.item())
    assert set(late.as_floats()) == {"image", "pair", "relatedness", "total"}
    late.total.backward()
    assert output.relatedness_logits.grad is not None
    summed = compute_losses(output, targets, pair_objects, LossConfig(relatedness_warmup=10), iteration=10)
    assert summed.relatedness.item() == pytest.approx(bce(0.5, 1) + bce(-0.5, 0), rel=1e-6)  # the paper's sum

    off = compute_losses(output, targets, pair_objects,
                         LossConfig(use_image_loss=False, use_pair_loss=False, use_relatedness_loss=False), 100)  # fmt: skip
    assert off.total.item() == 0.0


def test_micro_batch_losses_add_up_to_the_whole_batch():
    """Per-image sums over the step's image count: k micro-batches' losses sum to the batch's loss."""
    torch.manual_seed(0)
    pair_image = torch.tensor([0, 0, 0, 1, 2, 2, 3, 3, 3, 3])  # image 4 has no pair
    num_images = 5
    output = ModelOutput(
        global_logits=torch.randn(num_images, 6),
        pair_logits=torch.randn(len(pair_image), 3),
        relatedness_logits=torch.randn(len(pair_image)),
        pairs=torch.zeros(len(pair_image), 2, dtype=torch.int64),
        pair_image=pair_image,
    )
    targets = ImageTargets(hoi=(torch.rand(num_images, 6) > 0.5).float(), verb=(torch.rand(num_images, 3) > 0.5).float(),
                           object=torch.ones(num_images, 2))  # fmt: skip
    pair_objects = torch.zeros(len(pair_image), dtype=torch.int64)
    for reduction in ("sum", "mean"):
        config = LossConfig(relatedness_warmup=0, relatedness_reduction=reduction)
        whole = compute_losses(output, targets, pair_objects, config, iteration=0)
        parts = []
        for images in ([0, 1], [2, 3, 4]):
            rows = torch.nonzero(torch.isin(pair_image, torch.tensor(images)), as_tuple=True)[0]
            remap = {old: new for new, old in enumerate(images)}
            part = ModelOutput(output.global_logits[images], output.pair_logits[rows], output.relatedness_logits[rows],
                               output.pairs[rows], torch.tensor([remap[int(i)] for i in pair_image[rows]]))  # fmt: skip
            part_targets = ImageTargets(targets.hoi[images], targets.verb[images], targets.object[images])
            parts.append(compute_losses(part, part_targets, pair_objects[rows], config, 0, normalizer=num_images))
        for name in ("image", "pair", "relatedness"):
            together = sum(getattr(p, name).item() for p in parts)
            assert together == pytest.approx(getattr(whole, name).item(), rel=1e-6), (reduction, name)


def test_effective_loss_config_drops_image_loss_without_hoi_recognition():
    assert not effective_loss_config(LossConfig(), use_hoi_recognition=False).use_image_loss
    assert effective_loss_config(LossConfig(), use_hoi_recognition=True) == LossConfig()


# --------------------------------------------------------------------------------------------
# whole-batch losses equal the per-image loops they replace


def loop_pseudo_labels(pair_logits, pair_objects, pair_image, verb_targets, object_targets, top_k):
    """The per-image loop the whole-batch `relatedness_pseudo_labels` replaced (the oracle)."""
    labels = torch.zeros(pair_logits.shape[0])
    for b in range(verb_targets.shape[0]):
        index = torch.nonzero(pair_image == b, as_tuple=True)[0]
        verbs = torch.nonzero(verb_targets[b] > 0, as_tuple=True)[0]
        if index.numel() == 0 or verbs.numel() == 0:
            continue
        candidate = object_targets[b, pair_objects[index]] > 0
        if not bool(candidate.any()):
            continue
        scores = pair_logits[index][:, verbs].float().masked_fill(~candidate[:, None], float("-inf"))
        k = min(top_k, int(candidate.sum()))
        order = torch.sort(scores, dim=0, descending=True, stable=True).indices[:k]
        labels[index[order.reshape(-1)]] = 1.0
    return labels


def selecting_pair_mil_loss(pair_logits, pair_image, verb_targets, normalizer=None):
    """L_p as it was computed before: selecting the images with pairs (a host-device sync; the oracle)."""
    pooled, has_pairs = image_verb_logits(pair_logits.float(), pair_image, verb_targets.shape[0])
    if not bool(has_pairs.any()):
        return pair_logits.sum() * 0.0
    per_element = torch.nn.functional.binary_cross_entropy_with_logits(
        pooled[has_pairs], verb_targets[has_pairs].float(), reduction="none"
    )
    return per_element.mean(dim=1).sum() / (normalizer or verb_targets.shape[0])


def random_pair_batch(generator: torch.Generator):
    """1-5 images with 0-6 pairs each (empty images included), few distinct scores (ties), -inf, NaN and
    sparse labels (images without labelled verbs or without a labelled object among their pairs)."""
    batch = int(torch.randint(1, 6, (1,), generator=generator))
    counts = torch.randint(0, 7, (batch,), generator=generator)
    pair_image = torch.repeat_interleave(torch.arange(batch), counts)
    pairs, verbs, objects = int(counts.sum()), 4, 3
    pair_logits = torch.randint(-2, 3, (pairs, verbs), generator=generator).float()
    pair_logits[torch.rand(pairs, verbs, generator=generator) < 0.05] = float("-inf")
    pair_logits[torch.rand(pairs, verbs, generator=generator) < 0.03] = float("nan")  # sorts first, as torch.sort does
    pair_objects = torch.randint(0, objects, (pairs,), generator=generator)
    verb_targets = (torch.rand(batch, verbs, generator=generator) < 0.4).float()
    object_targets = (torch.rand(batch, objects, generator=generator) < 0.5).float()
    return pair_logits, pair_objects, pair_image, verb_targets, object_targets


@pytest.mark.parametrize("top_k", [1, 2, 3, 10])
def test_pseudo_labels_equal_the_per_image_loop(top_k):
    generator = torch.Generator().manual_seed(top_k)
    positives = 0
    for _ in range(200):
        inputs = random_pair_batch(generator)
        expected = loop_pseudo_labels(*inputs, top_k)
        found = relatedness_pseudo_labels(*inputs, top_k=top_k)
        assert found.dtype == torch.float32 and torch.equal(found, expected)
        positives += int(expected.sum())
    assert positives > 50  # the batches did exercise positives


def test_pair_mil_loss_equals_selecting_the_images_with_pairs():
    generator = torch.Generator().manual_seed(0)
    for _ in range(100):
        pair_logits, _, pair_image, verb_targets, _ = random_pair_batch(generator)
        # finite logits without ties, as a network gives (a tied max splits its gradient in scatter_reduce)
        pair_logits = (pair_logits.nan_to_num(0.0).clamp(min=-5.0) + torch.rand(pair_logits.shape, generator=generator)).requires_grad_()
        expected = selecting_pair_mil_loss(pair_logits, pair_image, verb_targets, normalizer=8)
        found = pair_mil_loss(pair_logits, pair_image, verb_targets, normalizer=8)
        every_image_has_pairs = bool((torch.bincount(pair_image, minlength=verb_targets.shape[0]) > 0).all())
        if every_image_has_pairs:  # the same sums in the same order
            assert torch.equal(found, expected)
        else:  # zeros added for the images without pairs: the sum may round differently
            torch.testing.assert_close(found, expected, rtol=1e-6, atol=1e-7)
        (grad,) = torch.autograd.grad(found, pair_logits, allow_unused=True) if pair_logits.shape[0] else (None,)
        if grad is not None:
            (expected_grad,) = torch.autograd.grad(expected, pair_logits)
            torch.testing.assert_close(grad, expected_grad)
