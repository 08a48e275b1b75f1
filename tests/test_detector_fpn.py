"""RN50-FPN(COCO) (Table 2 Exp 8-10): random-init torchvision detectors saved to disk and loaded like real weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.models.detection import fasterrcnn_resnet50_fpn, fasterrcnn_resnet50_fpn_v2
from torchvision.ops import roi_align

from hoi_pipeline.checkpoints import load_trained_model
from hoi_pipeline.config import ClipConfig, LossConfig, ModelConfig, TrainConfig
from hoi_pipeline.modeling.backbone import FPN_LEVELS, DetectorFPNBackbone, attention_pool, build_detector_fpn_backbone
from hoi_pipeline.modeling.model import build_model
from hoi_pipeline.stages import train as train_stage
from test_train import VOCAB, make_split

CLIP = ClipConfig(model="hoi-tiny-rn", pretrained=None, image_size=64)  # a torchvision backbone: 64 px input


def save_random_detector(builder, path: Path) -> torch.nn.Module:
    """A random-init torchvision Faster R-CNN with non-trivial BatchNorm statistics, saved as a state dict.

    v1 emulates torchvision's COCO_V1 weights, whose body BatchNorm runs with eps 0.
    """
    torch.manual_seed(0)
    detector = builder(weights=None, weights_backbone=None).eval()
    body = set(detector.backbone.body.modules())
    for module in detector.backbone.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0.0, 0.1)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0.0, 0.1)
            if builder is fasterrcnn_resnet50_fpn and module in body:
                module.eps = 0.0
    torch.save(detector.state_dict(), path)
    return detector


@pytest.fixture(scope="module")
def v2_weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fpn") / "fasterrcnn_resnet50_fpn_v2.pth"
    save_random_detector(fasterrcnn_resnet50_fpn_v2, path)
    return path


@pytest.mark.parametrize("builder", [fasterrcnn_resnet50_fpn, fasterrcnn_resnet50_fpn_v2], ids=["v1", "v2"])
def test_pyramid_equals_the_detectors(builder, tmp_path):
    torch.set_num_threads(1)
    detector = save_random_detector(builder, tmp_path / "detector.pth")
    backbone = build_detector_fpn_backbone(embed_dim=32, weights=str(tmp_path / "detector.pth")).eval()
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        expected, ours = detector.backbone(images), backbone(images)
    for level, name in enumerate(("p2", "p3", "p4", "p5")):
        torch.testing.assert_close(ours[name], expected[str(level)], rtol=1e-4, atol=1e-3)
    assert ours["layer4"] is ours["p5"] and ours["p2"].shape[-2:] == (16, 24)
    backbone_ids = {id(p) for p in backbone.pretrained_parameters()}
    assert id(backbone.fpn.inner_blocks[0][0].weight) in backbone_ids
    assert id(backbone.attnpool.q_proj.weight) not in backbone_ids  # the new attention pool: head lr


def test_rois_come_from_the_level_the_fpn_mapper_picks(v2_weights):
    torch.set_num_threads(1)
    backbone = build_detector_fpn_backbone(embed_dim=16, weights=str(v2_weights)).eval()
    images = torch.randn(2, 3, 256, 256)
    small = torch.tensor([[10.0, 10.0, 30.0, 40.0]])  # sqrt(area) 24 < 112: level 2 (P2)
    large = torch.tensor([[0.0, 0.0, 256.0, 256.0]])  # sqrt(area) 256: floor(4 + log2(256 / 224)) = level 4
    boxes = torch.cat([large, small, small])  # images 1, 0, 1: not grouped by image
    box_image = torch.tensor([1, 0, 1])
    with torch.no_grad():
        features = backbone(images)
        pooled = backbone.pool_rois(features, boxes, box_image)  # (3, 16)

        def expected(level: str, stride: int, box: torch.Tensor, image: int) -> torch.Tensor:
            rois = torch.cat([torch.tensor([[float(image)]]), box], dim=1)
            grid = roi_align(features[level], rois, (7, 7), 1.0 / stride, 2, aligned=False)  # the detector's call
            return attention_pool(backbone.attnpool, grid)[0]

    torch.testing.assert_close(pooled[0], expected("p4", 16, large, 1), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(pooled[1], expected("p2", 4, small, 0), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(pooled[2], expected("p2", 4, small, 1), rtol=1e-4, atol=1e-4)


def test_pool_rois_equals_the_per_image_mask_construction():
    """The one-split grouping gives MultiScaleRoIAlign the per-image boxes the one-mask-per-image loop gave."""
    torch.manual_seed(0)
    backbone = DetectorFPNBackbone(torchvision.models.resnet50(weights=None), embed_dim=16).eval()
    images = torch.randn(4, 3, 256, 256)
    sides = torch.tensor([16.0, 40.0, 120.0, 250.0, 200.0, 60.0, 130.0, 20.0, 240.0])[:, None]  # levels P2-P4
    corners = torch.rand(9, 2) * (256 - sides)
    boxes = torch.cat([corners, corners + sides], dim=1)  # (9, 4) squares
    box_image = torch.tensor([3, 0, 2, 0, 3, 3, 2, 0, 3])  # not grouped; image 1 without boxes
    with torch.no_grad():
        features = backbone(images)
        pooled = backbone.pool_rois(features, boxes, box_image)  # (9, 16)
        # the construction pool_rois had before: one boolean mask per image
        order = torch.argsort(box_image, stable=True)
        sorted_image = box_image[order]
        per_image = [boxes[order][sorted_image == b] for b in range(4)]
        assert per_image[1].shape == (0, 4)
        grids = backbone.roi_align({level: features[level] for level in FPN_LEVELS}, per_image, [(256, 256)] * 4)
        expected = attention_pool(backbone.attnpool, grids)[torch.argsort(order)]
    assert torch.equal(pooled, expected)
    levels = backbone.roi_align.map_levels(per_image)
    assert levels.unique().tolist() == [0, 1, 2]  # the boxes spread over P2, P3 and P4
    no_boxes = backbone.pool_rois(features, boxes[:0], box_image[:0])
    assert no_boxes.shape == (0, 16)


def test_bad_weights_files_are_one_line_errors(tmp_path):
    torch.save({"backbone.body.conv1.weight": torch.zeros(1)}, tmp_path / "body_only.pt")
    with pytest.raises(ValueError, match="backbone.fpn"):
        build_detector_fpn_backbone(embed_dim=8, weights=str(tmp_path / "body_only.pt"))
    with pytest.raises(FileNotFoundError, match="backbone_weights"):
        build_detector_fpn_backbone(embed_dim=8, weights=str(tmp_path / "missing.pt"))
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="text.pt"):
        build_detector_fpn_backbone(embed_dim=8, weights=str(tmp_path / "text.pt"))
    with pytest.raises(ValueError, match="feature_layers"):
        config = ModelConfig(backbone_source="coco_detector_fpn", feature_layers=("layer3", "layer4"))
        build_model(clip=CLIP, model=config, vocabulary=VOCAB, bank_embeddings=torch.randn(VOCAB.num_classes, 8))


def test_exp8_baseline_trains_and_reloads(v2_weights, tmp_path):
    """Exp 8: the Table 2 baseline on RN50-FPN(COCO), through the training stage and model.pt."""
    torch.set_num_threads(1)
    split = make_split(tmp_path / "split", num_images=4)
    model = ModelConfig(backbone_source="coco_detector_fpn", backbone_weights=str(v2_weights), hidden_dim=16,
                        spatial_dim=8, use_hoi_recognition=False, use_knowledge_transfer=False, input_size=64)  # fmt: skip
    train = TrainConfig(iterations=2, batch_size=2, num_workers=0, precision="fp32", lr_backbone=1e-3, lr_head=1e-3)
    train_stage.run(clip=CLIP, model=model, loss=LossConfig(use_relatedness_loss=False), train=train,
                    split="train", out_dir=tmp_path / "run", **split)  # fmt: skip
    net, info = load_trained_model(tmp_path / "run" / "model.pt")
    assert isinstance(net.backbone, DetectorFPNBackbone) and info.model.backbone_source == "coco_detector_fpn"
    assert info.preprocessing.mean == train_stage.IMAGENET_MEAN  # the detector's normalisation
    loaded = build_detector_fpn_backbone(embed_dim=64, weights=str(v2_weights))
    moved = (net.backbone.body["layer4"][0].conv1.weight - loaded.body["layer4"][0].conv1.weight).abs().max()
    assert moved > 0  # the pretrained backbone was fine-tuned, not frozen
    images = torch.randn(1, 3, 64, 64)
    boxes = [torch.tensor([[2.0, 2.0, 30.0, 60.0], [25.0, 20.0, 60.0, 50.0]])]
    with torch.no_grad():
        out = net(images, boxes, [torch.tensor([0, 1])])
    assert out.pair_logits.shape == (1, VOCAB.num_verbs) and torch.isfinite(out.pair_logits).all()
