"""The bi-level model's components on hand-computed inputs, and forward/backward of every ablation."""

from __future__ import annotations

import dataclasses
import importlib
import math
from pathlib import Path

import pytest
import torch
from open_clip.modified_resnet import AttentionPool2d, ModifiedResNet
from torchvision.ops import roi_align

from hoi_pipeline.ablations import ABLATIONS, PRESETS, row_switches
from hoi_pipeline.config import ClipConfig, ModelConfig, RunConfig, with_overrides
from hoi_pipeline.losses import ImageTargets, compute_losses, effective_loss_config
from hoi_pipeline.modeling.backbone import (
    align_rois,
    attention_pool,
    interpolate_positional_embedding,
    load_torchvision_resnet50,
    pool_roi_tokens,
    project_qkv,
    stack_qkv,
)
from hoi_pipeline.modeling.hoi_recognition import HOIRecognitionNetwork
from hoi_pipeline.modeling.knowledge_transfer import KnowledgeTransferNetwork, knowledge_attention
from hoi_pipeline.modeling.model import build_model, content_grids
from hoi_pipeline.modeling.pairing import enumerate_pairs, union_boxes
from hoi_pipeline.modeling.spatial_encoding import encode_box_pairs
from hoi_pipeline.structures import Vocabulary
from tiny_models import pair_object_labels

VOCAB = Vocabulary(
    verbs=("hold", "ride", "no_interaction"),
    objects=("person", "horse", "cup"),
    hoi_classes=[[0, 2], [1, 1], [2, 1], [0, 1], [0, 0]],
    rare=[0],
    non_rare=[1, 2, 3, 4],
)
SIZE = 64
VISUAL_DIM = 32


def tiny_visual(seed: int = 0) -> ModifiedResNet:
    torch.manual_seed(seed)
    return ModifiedResNet(layers=[1, 1, 1, 1], output_dim=VISUAL_DIM, heads=2, image_size=SIZE, width=8)


def tiny_model(model: ModelConfig | None = None, bank_dim: int = VISUAL_DIM, seed: int = 0, **kwargs):
    model = model or ModelConfig()
    model = dataclasses.replace(model, hidden_dim=24, spatial_dim=8)
    torch.manual_seed(seed)
    bank = torch.nn.functional.normalize(torch.randn(VOCAB.num_classes, bank_dim), dim=-1)
    return build_model(
        clip=ClipConfig(model="hoi-tiny-rn", pretrained=None),
        model=model,
        vocabulary=VOCAB,
        bank_embeddings=bank,
        visual=tiny_visual(seed),
        **kwargs,
    )


def tiny_batch():
    torch.manual_seed(1)
    images = torch.randn(3, 3, SIZE, SIZE)
    boxes = [
        torch.tensor([[2.0, 2.0, 30.0, 60.0], [25.0, 20.0, 60.0, 50.0], [5.0, 40.0, 20.0, 62.0]]),
        torch.tensor([[10.0, 4.0, 40.0, 40.0], [0.0, 0.0, 63.0, 63.0]]),
        torch.zeros((0, 4)),  # an image without proposals
    ]
    labels = [torch.tensor([0, 1, 2]), torch.tensor([0, 0]), torch.zeros(0, dtype=torch.int64)]
    scores = [torch.tensor([0.9, 0.8, 0.3]), torch.tensor([0.7, 0.6]), torch.zeros(0)]
    sizes = torch.tensor([[64, 48], [64, 64], [40, 64]])
    targets = ImageTargets(
        hoi=torch.tensor([[0, 1, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], dtype=torch.float32),
        verb=torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=torch.float32),
        object=torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=torch.float32),
    )
    return images, boxes, labels, scores, sizes, targets


# --------------------------------------------------------------------------------------------
# spatial encoding, hand-computed


def test_spatial_encoding_hand_computed():
    boxes_h = torch.tensor([[0.0, 0.0, 10.0, 20.0], [0.0, 0.0, 10.0, 10.0]])
    boxes_o = torch.tensor([[10.0, 10.0, 30.0, 20.0], [5.0, 5.0, 15.0, 15.0]])
    sizes = torch.tensor([[40, 50], [20, 20]])  # (height, width)
    enc = encode_box_pairs(boxes_h, boxes_o, sizes)
    assert enc.shape == (2, 36)
    # pair 0: centres (5, 10) and (20, 15); sizes 10x20 and 20x10; no overlap; object right of and below
    expected0 = [0.1, 0.25, 0.4, 0.375, 0.2, 0.5, 0.4, 0.25, 0.1, 0.1, 1.0, 0.5, 2.0, 0.0, 1.5, 0.0, 0.25, 0.0]
    # pair 1: centres (5, 5) and (10, 10); 10x10 each; IoU 25 / 175; dx = dy = 5 / 10
    expected1 = [0.25, 0.25, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 1.0, 1.0, 1.0, 1 / 7, 0.5, 0.0, 0.5, 0.0]
    torch.testing.assert_close(enc[:, :18], torch.tensor([expected0, expected1]), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(enc[:, 18:], torch.log(enc[:, :18] + 1e-10))


def test_spatial_encoding_directions():
    human = torch.tensor([[10.0, 10.0, 20.0, 20.0]] * 2)
    objects = torch.tensor([[0.0, 0.0, 4.0, 4.0], [30.0, 30.0, 34.0, 34.0]])  # above-left, below-right
    enc = encode_box_pairs(human, objects, torch.tensor([[100, 100]] * 2))
    assert enc[0, 14] == 0 and enc[0, 15] > 0 and enc[0, 16] == 0 and enc[0, 17] > 0
    assert enc[1, 14] > 0 and enc[1, 15] == 0 and enc[1, 16] > 0 and enc[1, 17] == 0


# --------------------------------------------------------------------------------------------
# pairing


def test_enumerate_pairs_every_human_with_every_other_detection():
    labels = torch.tensor([0, 2, 0, 1])  # person, cup, person, horse
    pairs = enumerate_pairs(labels, person=0)
    assert pairs.tolist() == [[0, 1], [0, 2], [0, 3], [2, 0], [2, 1], [2, 3]]


def test_enumerate_pairs_cap_keeps_best_detection_products_in_order():
    labels = torch.tensor([0, 2, 0, 1])
    scores = torch.tensor([0.9, 0.1, 0.5, 0.8])
    # products: (0,1) .09 (0,2) .45 (0,3) .72 (2,0) .45 (2,1) .05 (2,3) .40
    pairs = enumerate_pairs(labels, person=0, scores=scores, max_pairs=3)
    assert pairs.tolist() == [[0, 2], [0, 3], [2, 0]]


def test_enumerate_pairs_without_humans_or_alone():
    assert enumerate_pairs(torch.tensor([1, 2]), person=0).shape == (0, 2)
    assert enumerate_pairs(torch.tensor([0]), person=0).shape == (0, 2)
    assert enumerate_pairs(torch.zeros(0, dtype=torch.int64), person=0).shape == (0, 2)


def test_union_boxes_and_pair_object_labels():
    union = union_boxes(torch.tensor([[0.0, 5.0, 10.0, 20.0]]), torch.tensor([[5.0, 0.0, 30.0, 10.0]]))
    assert union.tolist() == [[0.0, 0.0, 30.0, 20.0]]
    pairs = torch.tensor([[0, 1], [0, 2], [1, 0]])
    pair_image = torch.tensor([0, 0, 1])
    labels = [torch.tensor([0, 2, 1]), torch.tensor([1, 0])]
    assert pair_object_labels(pairs, pair_image, labels).tolist() == [2, 1, 1]


# --------------------------------------------------------------------------------------------
# attention pooling


def test_attention_pool_matches_clip_at_native_grid_and_resizes():
    torch.manual_seed(0)
    pool = AttentionPool2d(7, 64, 4, 16)
    grid = torch.randn(2, 64, 7, 7)
    torch.testing.assert_close(attention_pool(pool, grid), pool(grid), atol=1e-5, rtol=1e-4)
    assert attention_pool(pool, torch.randn(2, 64, 5, 9)).shape == (2, 16)
    resized = interpolate_positional_embedding(pool.positional_embedding, 3, 4)
    assert resized.shape == (1 + 12, 64)
    torch.testing.assert_close(resized[0], pool.positional_embedding[0])


def test_attention_pool_ignores_padded_cells():
    torch.manual_seed(0)
    pool = AttentionPool2d(4, 32, 2, 8)
    features = torch.randn(1, 32, 4, 4)
    valid = torch.zeros(1, 4, 4, dtype=torch.bool)
    valid[:, :3, :2] = True
    changed = features.clone()
    changed[:, :, 3:, :] = 100.0
    changed[:, :, :, 2:] = -50.0
    torch.testing.assert_close(attention_pool(pool, features, valid), attention_pool(pool, changed, valid))
    assert not torch.allclose(attention_pool(pool, features), attention_pool(pool, changed))


def test_roi_pooling_on_projected_maps_equals_pooling_each_roi():
    torch.manual_seed(0)
    pool = AttentionPool2d(7, 64, 4, 32)
    features = torch.randn(2, 64, 9, 11)
    rois = torch.tensor([[0, 0, 0, 100, 200.0], [1, 30, 40, 300, 280], [1, -10, -5, 400, 400]])
    naive = attention_pool(pool, roi_align(features, rois, (7, 7), 1 / 32, 2, aligned=True))
    fast = pool_roi_tokens(pool, roi_align(project_qkv(pool, features), rois, (7, 7), 1 / 32, 2, aligned=True))
    torch.testing.assert_close(fast, naive, atol=1e-5, rtol=1e-4)


@pytest.fixture
def bench_common(monkeypatch):
    """benchmarks/bench_common.py, imported by name as the benchmark scripts import it."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    return importlib.import_module("bench_common")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_projected_roi_pooling_with_one_stacked_qkv_weight_saves_one_weight_less(bench_common, dtype):
    """project_qkv and pool_roi_tokens sharing one stack_qkv: the same results and gradients, bit for bit,
    and autograd keeps one (3C, C) weight for backward instead of two (bf16: under autocast, as training)."""
    torch.manual_seed(0)
    pool = AttentionPool2d(7, 64, 4, 32)
    features = torch.randn(2, 64, 9, 11).to(dtype).requires_grad_(True)
    rois = torch.tensor([[0, 0, 0, 100, 200.0], [1, 30, 40, 300, 280], [1, -10, -5, 400, 400]])

    def pool_rois(shared: bool):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            with bench_common.saved_activation_bytes(existing=[rois]) as saved:
                projection = stack_qkv(pool, features.dtype) if shared else None
                qkv = align_rois(project_qkv(pool, features, projection), rois, 7, 1 / 32)
                pooled = pool_roi_tokens(pool, qkv, projection)  # (K, D)
        grads = torch.autograd.grad(pooled.float().square().sum(), [features, *pool.parameters()])
        return pooled, grads, saved.activations

    own, own_grads, own_bytes = pool_rois(shared=False)
    one, one_grads, one_bytes = pool_rois(shared=True)
    assert one.dtype == dtype and torch.equal(one, own)
    assert all(torch.equal(a, b) for a, b in zip(one_grads, own_grads, strict=True))
    assert own_bytes - one_bytes == 3 * 64 * 64 * dtype.itemsize  # one (3C, C) weight in the features' dtype


def test_knowledge_attention_variants():
    query = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    # Eq. 1: softmax of the inner products W_T q
    soft = knowledge_attention(query, bank, "softmax")
    torch.testing.assert_close(soft[0], torch.softmax(torch.tensor([1.0, 0.0, -1.0]), 0))
    torch.testing.assert_close(soft[1], torch.softmax(torch.tensor([0.0, 2.0, 0.0]), 0))
    # scaled cosine: the norm of the query no longer matters
    cosine = knowledge_attention(query, bank, "softmax", temperature=torch.tensor(10.0))
    torch.testing.assert_close(cosine[1], torch.softmax(torch.tensor([0.0, 10.0, 0.0]), 0))
    torch.testing.assert_close(knowledge_attention(query, bank, "uniform"), torch.full((2, 3), 1 / 3))
    sig = knowledge_attention(query, bank, "sigmoid")
    torch.testing.assert_close(sig[0], torch.sigmoid(torch.tensor([1.0, 0.0, -1.0])) / 3)


def test_global_logits_inner_product_and_scaled_cosine():
    v_g = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    bank = torch.tensor([[1.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    paper = HOIRecognitionNetwork(visual_dim=2, bank_dim=2)  # s_g = W_T v_g (Sec. 3.2.2)
    torch.testing.assert_close(paper(v_g, bank), torch.tensor([[2.0, 0.0, 2.0], [1.0, 3.0, 2.0]]))
    assert list(paper.parameters()) == []  # the plain inner product has no parameters of its own
    scaled = HOIRecognitionNetwork(visual_dim=2, bank_dim=2, logits="scaled_cosine", scale_init=10.0, bias_init=-10.0)
    s = 2**-0.5
    torch.testing.assert_close(scaled(v_g, bank), 10.0 * torch.tensor([[1.0, 0.0, s], [s, s, 1.0]]) - 10.0)
    assert isinstance(HOIRecognitionNetwork(visual_dim=3, bank_dim=2).projection, torch.nn.Linear)


def test_ktn_projects_v_meta_only_where_widths_differ():
    same = KnowledgeTransferNetwork(hidden_dim=4, visual_dim=4, bank_dim=4)
    assert isinstance(same.meta_projection, torch.nn.Identity) and isinstance(same.query_projection, torch.nn.Identity)
    assert not hasattr(same, "log_temperature")  # Eq. 1: plain inner products
    wide = KnowledgeTransferNetwork(hidden_dim=6, visual_dim=4, bank_dim=4)
    assert isinstance(wide.meta_projection, torch.nn.Linear) and wide.meta_projection.in_features == 4
    always = KnowledgeTransferNetwork(hidden_dim=4, visual_dim=4, bank_dim=4, meta_projection="always")
    assert isinstance(always.meta_projection, torch.nn.Linear)
    cosine = KnowledgeTransferNetwork(hidden_dim=4, visual_dim=4, bank_dim=4, logits="scaled_cosine")
    assert cosine.log_temperature.item() == pytest.approx(math.log(1 / 0.07))


def test_ktn_computes_eq1_and_its_variants_by_hand():
    torch.manual_seed(0)
    bank = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    v_p, v_u = torch.rand(2, 3), torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    ktn = KnowledgeTransferNetwork(hidden_dim=3, visual_dim=3, bank_dim=3)
    alpha = torch.softmax(v_u @ bank.T, dim=1)  # (P, N)
    torch.testing.assert_close(ktn(v_p, v_u, bank), ktn.f_k(v_p + alpha @ bank))
    union = KnowledgeTransferNetwork(hidden_dim=3, visual_dim=3, bank_dim=3, knowledge="union")  # Table 4, Exp 11
    torch.testing.assert_close(union(v_p, v_u, bank), union.f_k(v_p + v_u))
    assert union.needs_union_features
    # without KTN the paper predicts from v_p itself; fk_without_ktn keeps the MLP F_K
    plain = KnowledgeTransferNetwork(hidden_dim=3, visual_dim=3, bank_dim=3, enabled=False)
    assert plain.f_k is None and torch.equal(plain(v_p, None, bank), v_p) and not plain.needs_union_features
    kept = KnowledgeTransferNetwork(hidden_dim=3, visual_dim=3, bank_dim=3, enabled=False, fk_without_ktn=True)
    torch.testing.assert_close(kept(v_p, None, bank), kept.f_k(v_p))


def test_content_grids_count_the_cells_an_image_covers():
    sizes = torch.tensor([[480, 640], [427, 640], [640, 480], [20, 33]])
    assert content_grids(sizes, (20, 20), 32).tolist() == [[15, 20], [14, 20], [20, 15], [1, 2]]
    assert content_grids(sizes, (14, 20), 32).tolist()[2] == [14, 15]  # never beyond the map


def test_global_pooling_reads_each_images_own_cells_with_its_own_positions():
    model = tiny_model()
    layer4 = torch.randn(2, 256, 3, 4)
    sizes = torch.tensor([[96, 128], [64, 96]])  # image 1 covers 2 x 3 of the 3 x 4 cells
    pooled = model._pool_images(layer4, sizes)
    torch.testing.assert_close(pooled[0], model.backbone.pool(layer4[:1])[0])
    torch.testing.assert_close(pooled[1], model.backbone.pool(layer4[1:, :, :2, :3])[0])
    changed = layer4.clone()
    changed[1, :, 2:, :] = 50.0  # the padding of image 1
    changed[1, :, :, 3:] = -50.0
    torch.testing.assert_close(model._pool_images(changed, sizes), pooled)


# --------------------------------------------------------------------------------------------
# the whole model


def check_forward_backward(model, *, expect_global: bool):
    images, boxes, labels, scores, sizes, targets = tiny_batch()
    model.train()
    out = model(images, boxes, labels, scores, sizes)
    # pairs: image 0 has one human with 2 others; image 1 has two humans (each with the other); image 2 none
    assert out.pairs.tolist() == [[0, 1], [0, 2], [0, 1], [1, 0]]
    assert out.pair_image.tolist() == [0, 0, 1, 1]
    assert out.global_logits.shape == (3, VOCAB.num_classes)
    assert out.pair_logits.shape == (4, VOCAB.num_verbs)
    assert out.relatedness_logits.shape == (4,)
    for tensor in (out.global_logits, out.pair_logits, out.relatedness_logits):
        assert torch.isfinite(tensor).all()
    assert out.global_logits.requires_grad == expect_global
    return out, labels, targets


# presets on a CLIP backbone (the torchvision backbone: test_detector_backbone_loads_and_trains)
CLIP_PRESETS = sorted(
    name for name, o in ABLATIONS.items() if o["model"].get("backbone_source", "clip") == "clip" and "kind" not in o["model"]
)  # the zero-shot model (Abl 1): tests/test_zero_shot.py


@pytest.mark.parametrize("name", CLIP_PRESETS)
def test_every_ablation_forward_backward(name):
    run = with_overrides(RunConfig(dataset="d", detector="x"), ABLATIONS[name])
    bank_dim = 24 if run.model.bank_clip_model else VISUAL_DIM  # another text model: another width
    model = tiny_model(run.model, bank_dim=bank_dim)
    out, labels, targets = check_forward_backward(model, expect_global=run.model.use_hoi_recognition)
    loss_config = effective_loss_config(
        dataclasses.replace(run.loss, relatedness_warmup=0), run.model.use_hoi_recognition
    )
    pair_objects = pair_object_labels(out.pairs, out.pair_image, labels)
    terms = compute_losses(out, targets, pair_objects, loss_config, iteration=0)
    assert torch.isfinite(terms.total)
    terms.total.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert grads["backbone.visual.conv1.weight"] is not None and grads["backbone.visual.conv1.weight"].abs().sum() > 0
    assert grads["pairwise.f_p.2.weight"].abs().sum() > 0
    if run.loss.use_relatedness_loss:
        assert grads["pairwise.f_b.2.weight"].abs().sum() > 0
    else:
        assert grads["pairwise.f_b.2.weight"] is None or grads["pairwise.f_b.2.weight"].abs().sum() == 0
    bank_grad = model.bank.weight.grad
    if run.model.use_hoi_recognition and run.model.bank_trainable:
        assert bank_grad is not None and bank_grad.abs().sum() > 0
    else:
        assert bank_grad is None or bank_grad.abs().sum() == 0
    if run.model.use_knowledge_transfer:
        assert grads["knowledge_transfer.f_k.0.weight"].abs().sum() > 0
        if "knowledge_transfer.meta_projection.weight" in grads:  # P_m exists where the widths differ
            assert grads["knowledge_transfer.meta_projection.weight"].abs().sum() > 0
    else:
        assert model.knowledge_transfer.f_k is None  # the paper predicts from v_p


def test_local_branch_never_moves_the_bank():
    model = tiny_model()
    out, _, _ = check_forward_backward(model, expect_global=True)
    (out.pair_logits.sum() + out.relatedness_logits.sum()).backward()
    assert model.bank.weight.grad is None  # the knowledge transfer network reads W_T detached
    assert model.knowledge_transfer.meta_projection.weight.grad is not None
    out = model(*tiny_batch()[:5])
    out.global_logits.sum().backward()
    assert model.bank.weight.grad.abs().sum() > 0


def test_frozen_bank_has_no_gradient_and_random_bank_is_seeded():
    frozen = tiny_model(ModelConfig(bank_trainable=False))
    assert not frozen.bank.weight.requires_grad
    assert all(p is not frozen.bank.weight for group in frozen.parameter_groups() for p in group)
    first = build_model(
        clip=ClipConfig(),
        model=ModelConfig(bank_source="random", hidden_dim=8, spatial_dim=8),
        vocabulary=VOCAB,
        bank_embeddings=torch.ones(5, VISUAL_DIM),
        visual=tiny_visual(),
        seed=3,
    )
    second = build_model(
        clip=ClipConfig(),
        model=ModelConfig(bank_source="random", hidden_dim=8, spatial_dim=8),
        vocabulary=VOCAB,
        bank_embeddings=torch.zeros(5, VISUAL_DIM),
        visual=tiny_visual(),
        seed=3,
    )
    torch.testing.assert_close(first.bank.weight, second.bank.weight)
    torch.testing.assert_close(first.bank.weight.norm(dim=1), torch.ones(5))
    assert not torch.allclose(first.bank.weight, torch.ones(5, VISUAL_DIM))


def test_layer3_features_start_as_layer4_only():
    base = tiny_model(ModelConfig())
    both = tiny_model(ModelConfig(feature_layers=("layer3", "layer4")))
    both.load_state_dict(base.state_dict(), strict=False)  # the zero-initialised P3 adds nothing yet
    base.eval(), both.eval()
    images, boxes, labels, scores, sizes, _ = tiny_batch()
    torch.testing.assert_close(both(images, boxes, labels, scores, sizes).pair_logits,
                               base(images, boxes, labels, scores, sizes).pair_logits)  # fmt: skip
    assert both.layer3_projection.weight.shape[:2] == (256, 128)


def test_frozen_batchnorm_statistics_stay_fixed():
    model = tiny_model()
    model.train()
    before = model.backbone.visual.bn1.running_mean.clone()
    model(*tiny_batch()[:5])
    torch.testing.assert_close(model.backbone.visual.bn1.running_mean, before)
    assert not model.backbone.visual.bn1.training and model.pairwise.training


def test_image_without_pairs_gives_empty_outputs():
    model = tiny_model()
    out = model(torch.randn(1, 3, SIZE, SIZE), [torch.zeros((0, 4))], [torch.zeros(0, dtype=torch.int64)])
    assert out.pairs.shape == (0, 2) and out.pair_logits.shape == (0, 3) and out.relatedness_logits.shape == (0,)
    assert out.global_logits.shape == (1, VOCAB.num_classes)


def loop_forward(model, images, boxes, labels, scores, image_sizes, max_pairs):
    """The model's forward as it was, with a loop over images for the pairs and for the global pooling
    (the oracle of the whole-batch forward)."""
    from hoi_pipeline.modeling.backbone import FEATURE_STRIDES

    batch = images.shape[0]
    features = model.backbone(images.contiguous(memory_format=torch.channels_last))
    layer4 = features["layer4"]
    grids = content_grids(image_sizes, layer4.shape[-2:], FEATURE_STRIDES["layer4"]).tolist()
    pooled = [None] * batch
    for rows, cols in sorted(set(map(tuple, grids))):
        members = [b for b, grid in enumerate(grids) if tuple(grid) == (rows, cols)]
        vectors = model.backbone.pool(layer4[members, :, :rows, :cols])
        for i, b in enumerate(members):
            pooled[b] = vectors[i]
    global_logits = model.hoi_recognition(torch.stack(pooled), model.bank.for_global())
    pair_list = [enumerate_pairs(labels[b], model.person, scores[b], max_pairs) for b in range(batch)]
    counts = torch.tensor([len(b) for b in boxes])
    offsets = torch.cumsum(counts, 0) - counts
    pairs = torch.cat(pair_list)
    pair_image = torch.cat([torch.full((len(p),), b, dtype=torch.int64) for b, p in enumerate(pair_list)])
    flat_boxes = torch.cat(boxes)
    box_image = torch.repeat_interleave(torch.arange(batch), counts)
    qkv_maps = model._qkv_maps(features)
    v_box = model._pool_rois(qkv_maps, flat_boxes, box_image)
    human, obj = offsets[pair_image] + pairs[:, 0], offsets[pair_image] + pairs[:, 1]
    boxes_h, boxes_o = flat_boxes[human], flat_boxes[obj]
    v_sp = model.spatial_encoder(encode_box_pairs(boxes_h, boxes_o, image_sizes[pair_image]))
    v_p = model.pair_encoder(v_box[human], v_box[obj], v_sp)
    v_u = model._pool_rois(qkv_maps, union_boxes(boxes_h, boxes_o), pair_image)
    refined = model.knowledge_transfer(v_p, v_u, model.bank.for_local())
    pair_logits, relatedness_logits = model.pairwise(refined)
    return global_logits, pair_logits, relatedness_logits, pairs, pair_image


@pytest.mark.parametrize("feature_layers", [("layer4",), ("layer3", "layer4")])
def test_whole_batch_forward_equals_the_per_image_loops(feature_layers):
    model = tiny_model(dataclasses.replace(ModelConfig(), feature_layers=feature_layers)).eval()
    for layer in model.modules():  # a non-zero layer3 projection, so that its RoI grids count
        if isinstance(layer, torch.nn.Conv2d) and layer.weight.abs().sum() == 0:
            torch.nn.init.normal_(layer.weight, std=0.1)
    generator = torch.Generator().manual_seed(3)
    mixed = torch.tensor([[96, 128], [64, 128], [96, 96], [64, 128], [40, 50]])  # four content grids
    same = torch.tensor([[96, 128]] * 5)  # one content grid
    for max_pairs, sizes in ((256, mixed), (3, mixed), (3, same)):  # the cap binds for some images at 3
        batch = 5
        images = torch.randn(batch, 3, 96, 128, generator=generator)
        counts = [4, 0, 5, 3, 6]  # an image without proposals
        boxes, labels, scores = [], [], []
        for b, count in enumerate(counts):
            corner = torch.rand(count, 2, generator=generator) * 30
            boxes.append(torch.cat([corner, corner + 8 + torch.rand(count, 2, generator=generator) * 30], dim=1))
            image_labels = torch.randint(0, 3, (count,), generator=generator)
            labels.append(image_labels if b != 3 else image_labels.clamp(min=1))  # image 3: no human
            scores.append(torch.randint(1, 4, (count,), generator=generator).float() / 4)  # ties
        with torch.no_grad():
            expected = loop_forward(model, images, boxes, labels, scores, sizes, max_pairs)
            out = model(images, boxes, labels, scores, sizes, max_pairs=max_pairs)
            host_pairs = model.pair_batch(labels, scores, max_pairs)  # what the training step passes
            given = model(images, boxes, labels, scores, sizes, max_pairs=max_pairs, pairs=host_pairs)
        assert 0 < expected[3].shape[0] and not {1, 3} & set(expected[4].tolist())  # images 1, 3: no pairs
        if max_pairs == 3:  # the cap did bind
            assert len(model.pair_batch(labels, scores, 1000)) > len(expected[3])
        for found in (out, given):
            assert torch.equal(found.global_logits, expected[0])  # bit-identical
            assert torch.equal(found.pair_logits, expected[1])
            assert torch.equal(found.relatedness_logits, expected[2])
            assert torch.equal(found.pairs, expected[3]) and torch.equal(found.pair_image, expected[4])


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
@pytest.mark.parametrize("size", [(64, 96), (96, 128)])  # part of the 3 x 4 cells, all of them
def test_global_pooling_of_one_grid_equals_the_grouped_pooling(layout, size):
    model = tiny_model()
    layer4 = torch.randn(3, 256, 3, 4).contiguous(memory_format=layout)
    sizes = torch.tensor([size] * 3)  # one content grid: pooled without indexing
    rows, cols = size[0] // 32, size[1] // 32
    expected = model.backbone.pool(layer4[[0, 1, 2], :, :rows, :cols])  # what the grouped loop did
    assert torch.equal(model._pool_images(layer4, sizes), expected)


def test_bank_size_must_match_vocabulary():
    with pytest.raises(ValueError, match="5 HOI classes"):
        build_model(clip=ClipConfig(), model=ModelConfig(), vocabulary=VOCAB, bank_embeddings=torch.zeros(4, 8),
                    visual=tiny_visual())  # fmt: skip


def test_each_preset_builds_its_paper_row():
    """The overrides of every preset give the switches its row states, on a run that changed them all."""
    from hoi_pipeline.ablations import FULL_MODEL, TABLE_LAYOUT

    assert [name for name, _ in TABLE_LAYOUT["Table 2"]] == [
        "baseline", "exp1", "exp2", "exp3", "exp4", "exp5", "exp6", "exp7", "full_model", "exp8", "exp9", "exp10",
    ]  # fmt: skip
    assert [name for name, _ in TABLE_LAYOUT["Table 4"]] == ["exp11", "exp12", "exp13", "exp7"]
    assert [name for name, _ in TABLE_LAYOUT["Table 5"]] == ["top5", "top2", "full_model"]
    assert PRESETS["exp1"].paper.full == 20.31  # Table 2's number, not the text's 20.41
    assert (FULL_MODEL.paper.full, FULL_MODEL.paper.rare, FULL_MODEL.paper.non_rare) == (22.89, 22.41, 23.03)
    twisted = with_overrides(RunConfig(dataset="d", detector="x"), {
        "model": {"use_knowledge_transfer": False, "ktn_attention": "sigmoid", "bank_trainable": False},
        "loss": {"use_relatedness_loss": False, "relatedness_top_k": 3},
        "infer": {"use_global_score": False},
    })  # fmt: skip
    for name, preset in {**PRESETS, FULL_MODEL.name: FULL_MODEL}.items():
        assert preset.in_paper == (preset.table != "not in the paper"), name
        if not preset.implemented:  # Table 3 Abl 4: the paper's numbers only
            continue
        run = with_overrides(twisted, dict(preset.overrides))
        assert row_switches(run) == preset.switches, name
    assert row_switches(RunConfig(dataset="d", detector="x")) == FULL_MODEL.switches  # the defaults: the full model


def test_exp1_is_hoi_recognition_without_ktn_src_and_fusion():
    run = with_overrides(RunConfig(dataset="d", detector="x"), dict(ABLATIONS["exp1"]))
    model = tiny_model(run.model)
    assert model.hoi_recognition is not None and model.bank.weight.requires_grad
    assert not model.knowledge_transfer.enabled and model.knowledge_transfer.f_k is None
    assert run.loss.use_image_loss and run.loss.use_pair_loss and not run.loss.use_relatedness_loss
    assert not run.infer.use_global_score and not run.infer.use_relatedness_score and run.infer.use_pair_score
    baseline = with_overrides(RunConfig(dataset="d", detector="x"), dict(ABLATIONS["baseline"]))
    assert tiny_model(baseline.model).hoi_recognition is None and not baseline.loss.use_image_loss
    exp11 = with_overrides(RunConfig(dataset="d", detector="x"), dict(ABLATIONS["exp11"]))
    assert tiny_model(exp11.model).knowledge_transfer.knowledge == "union" and not exp11.infer.use_global_score
    assert {name for name in ABLATIONS if name.startswith("exp") and int(name[3:]) >= 11} == {"exp11", "exp12", "exp13"}
    for name in ("exp11", "exp12", "exp13"):  # Table 4 has no score fusion
        assert not with_overrides(RunConfig(dataset="d", detector="x"), dict(ABLATIONS[name])).infer.use_global_score


def test_detector_backbone_loads_and_trains(tmp_path):
    import torchvision

    torch.manual_seed(0)
    body = torchvision.models.resnet50(weights=None).state_dict()
    state = {f"backbone.body.{k}": v for k, v in body.items() if not k.startswith("fc.")}
    state["backbone.fpn.inner_blocks.0.0.weight"] = torch.zeros(1)  # detector parts are ignored
    weights = tmp_path / "frcnn.pt"
    torch.save(state, weights)
    resnet = load_torchvision_resnet50("coco_detector", str(weights))
    torch.testing.assert_close(resnet.layer1[0].conv1.weight, body["layer1.0.conv1.weight"])

    config = ModelConfig(backbone_source="coco_detector", backbone_weights=str(weights), hidden_dim=16, spatial_dim=8)
    model = build_model(clip=ClipConfig(), model=config, vocabulary=VOCAB, bank_embeddings=torch.randn(5, 32))
    _, rest = model.parameter_groups()
    assert any(p is model.backbone.attnpool.q_proj.weight for p in rest)  # the new attention pool: head lr
    assert model.backbone.embed_dim == 32
    out, _, _ = check_forward_backward(model, expect_global=True)
    (out.global_logits.sum() + out.pair_logits.sum()).backward()
    assert model.backbone.body["layer4"][0].conv1.weight.grad.abs().sum() > 0

    bad = tmp_path / "bad.pt"
    torch.save({"something": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="backbone.body"):
        load_torchvision_resnet50("coco_detector", str(bad))
    with pytest.raises(FileNotFoundError, match="backbone_weights"):
        load_torchvision_resnet50("coco_detector", str(tmp_path / "missing.pt"))


def test_scaled_cosine_hoi_recognition_starts_at_low_prior():
    model = tiny_model(ModelConfig(global_logits="scaled_cosine"))
    model.eval()
    with torch.no_grad():
        out = model(*tiny_batch()[:5])
    probabilities = torch.sigmoid(out.global_logits)
    assert probabilities.max() < math.exp(-10 + 10) / (1 + math.exp(0)) + 1e-6  # t * cos + b <= 10 - 10


def test_dense_roi_align_equals_torchvision():
    from hoi_pipeline.modeling.backbone import align_rois, dense_roi_align

    torch.manual_seed(0)
    features = torch.randn(3, 5, 6, 7, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor(
        [[0, 3.0, 5.0, 100.0, 150.0], [2, -40.0, -20.0, 60.0, 260.0], [1, 180.0, 150.0, 260.0, 230.0],
         [1, 10.0, 10.0, 11.0, 12.0], [0, 0.0, 0.0, 224.0, 192.0]], dtype=torch.float64,
    )  # fmt: skip
    for size, ratio in ((7, 2), (3, 1), (4, 3)):
        expected = roi_align(features, rois, (size, size), 1 / 32, ratio, aligned=True)
        torch.testing.assert_close(dense_roi_align(features, rois, size, 1 / 32, ratio), expected)
    grad = torch.randn(5, 5, 7, 7, dtype=torch.float64)
    expected_grad = torch.autograd.grad(
        (roi_align(features, rois, (7, 7), 1 / 32, 2, aligned=True) * grad).sum(), features
    )
    dense_grad = torch.autograd.grad((align_rois(features, rois, 7, 1 / 32) * grad).sum(), features)
    torch.testing.assert_close(dense_grad, expected_grad)
