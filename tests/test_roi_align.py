"""RoI-Align of low-precision (autocast) features: float32 sampling and boxes, grids kept in bf16, chunked."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import roi_align

from hoi_pipeline.modeling import backbone
from hoi_pipeline.modeling.backbone import align_rois


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 2 RoIs, and torchvision's kernel rather than the dense CPU path."""
    monkeypatch.setattr(backbone, "DENSE_ROI_ALIGN_MAX_ELEMENTS", 0)
    monkeypatch.setattr(backbone, "ROI_ALIGN_CHUNK_ELEMENTS", 2 * 4 * 7 * 7)


def test_bf16_features_are_sampled_in_float32_with_float32_boxes_in_chunks(small_chunks):
    torch.manual_seed(0)
    features = torch.randn(2, 4, 20, 15).to(torch.bfloat16).requires_grad_(True)
    # corners far from bf16's grid (spacing 4 at 512-1024): a bf16 box would move them by up to 2 pixels
    rois = torch.tensor([[0, 601.3, 10.7, 637.9, 470.1], [1, 3.0, 5.0, 300.0, 150.0], [1, 530.5, 2.2, 639.0, 479.0],
                         [0, 0.0, 0.0, 640.0, 480.0], [1, 250.25, 99.5, 251.0, 101.0]])  # fmt: skip
    grids = align_rois(features, rois, 7, 1 / 32)
    assert grids.dtype == torch.bfloat16 and grids.shape == (5, 4, 7, 7)
    reference_input = features.detach().float().requires_grad_(True)
    reference = roi_align(reference_input, rois, (7, 7), 1 / 32, 2, aligned=True)
    assert torch.equal(grids.float(), reference.to(torch.bfloat16).float())  # float32 result, rounded once
    coarse = roi_align(reference_input, rois.to(torch.bfloat16).float(), (7, 7), 1 / 32, 2, aligned=True)
    assert not torch.equal(coarse.to(torch.bfloat16), grids)  # what bf16 boxes would have given

    grad = torch.randn(5, 4, 7, 7).to(torch.bfloat16)
    (features_grad,) = torch.autograd.grad((grids * grad).sum(), features)
    (expected,) = torch.autograd.grad((reference * grad.float()).sum(), reference_input)
    assert features_grad.dtype == torch.bfloat16
    torch.testing.assert_close(features_grad.float(), expected.to(torch.bfloat16).float(), rtol=1e-2, atol=1e-2)


def test_float32_features_keep_torchvision_roi_align(small_chunks):
    features = torch.randn(1, 3, 8, 8, requires_grad=True)
    rois = torch.tensor([[0, 1.0, 2.0, 100.0, 120.0]])
    expected = roi_align(features, rois, (7, 7), 1 / 32, 2, aligned=True)
    assert torch.equal(align_rois(features, rois, 7, 1 / 32), expected)
