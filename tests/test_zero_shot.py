"""Training-free CLIP scores of each pair's union crop (Table 3 Abl 1), through model.pt and the infer stage."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from open_clip.modified_resnet import ModifiedResNet

from hoi_pipeline.ablations import ABLATIONS, PRESETS, TABLE_LAYOUT, PaperResult
from hoi_pipeline.artifacts import DetectionsFile
from hoi_pipeline.checkpoints import TrainedModelInfo, load_trained_model, save_trained_model
from hoi_pipeline.config import ClipConfig, InferConfig, LossConfig, ModelConfig, RunConfig, TrainConfig, with_overrides
from hoi_pipeline.datasets import load_annotations
from hoi_pipeline.datasets.hoi_images import HOIImageDataset, Preprocessing
from hoi_pipeline.modeling.backbone import CLIPResNetBackbone
from hoi_pipeline.modeling.clip_loading import CLIP_MEAN, CLIP_STD
from hoi_pipeline.modeling.knowledge_bank import KnowledgeBank
from hoi_pipeline.modeling.model import build_model
from hoi_pipeline.modeling.zero_shot import CLIPZeroShotModel, probability_logit, square_boxes, zero_shot_pair_logits
from hoi_pipeline.scoring import fuse_scores, pair_scores
from hoi_pipeline.stages import infer
from hoi_pipeline.stages import train as train_stage
from hoi_pipeline.structures import Vocabulary
from test_train import make_split

# verbs hold, ride, no_interaction; objects person, horse, cup
VOCAB = Vocabulary(
    verbs=("hold", "ride", "no_interaction"),
    objects=("person", "horse", "cup"),
    hoi_classes=[[0, 2], [1, 1], [2, 1], [0, 1], [0, 0]],
    rare=[0],
    non_rare=[1, 2, 3, 4],
)
ZERO_SHOT = ModelConfig(kind="clip_zero_shot", input_size=64)
ABL1_INFER = InferConfig(num_workers=0, top_k=0, **PRESETS["abl1"].overrides["infer"])


def test_square_boxes_by_hand():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 4.0], [2.0, 2.0, 4.0, 8.0]])
    expected = torch.tensor([[0.0, -3.0, 10.0, 7.0], [0.0, 2.0, 6.0, 8.0]])
    torch.testing.assert_close(square_boxes(boxes), expected)


def test_pair_logits_are_clip_probabilities_of_each_verbs_class():
    lookup = torch.from_numpy(VOCAB.hoi_lookup())
    similarities = torch.tensor([[0.10, 0.30, 0.20, 0.25, 0.00], [0.0, 0.0, 0.0, 0.0, 0.01]])  # (P, N)
    objects = torch.tensor([1, 2])  # a horse, a cup
    q = torch.softmax(10.0 * similarities, dim=1)
    scores = torch.sigmoid(zero_shot_pair_logits(similarities, objects, lookup, logit_scale=10.0))
    # horse: hold -> class 3, ride -> 1, no_interaction -> 2; cup: hold -> class 0, the others are no classes
    torch.testing.assert_close(scores[0], q[0, [3, 1, 2]], rtol=1e-4, atol=1e-6)
    assert math.isclose(float(scores[1, 0]), float(q[1, 0]), rel_tol=1e-4) and float(scores[1, 1:].max()) < 1e-5


def test_sigmoid_pair_normalization_scores_each_pair_alone():
    logits = torch.tensor([[0.0, math.log(3)], [math.log(4), 0.0]])  # (P, A)
    torch.testing.assert_close(pair_scores(logits, "sigmoid"), torch.tensor([[0.5, 0.75], [0.8, 0.5]]))
    torch.testing.assert_close(pair_scores(logits[:1], "sigmoid"), pair_scores(logits, "sigmoid")[:1])
    with pytest.raises(ValueError, match="pair normalization"):
        pair_scores(logits, "max")
    lookup = torch.from_numpy(VOCAB.hoi_lookup())
    fused = fuse_scores(torch.zeros(5), torch.tensor([[0.0, math.log(3), 0.0]]), torch.zeros(1), torch.tensor([0.5]),
                        torch.tensor([1.0]), torch.tensor([1]), lookup, ABL1_INFER)  # fmt: skip
    # ride horse: q = 0.75, no s_g, no s_b, detection 0.5 ** 2.8
    ride = int(torch.nonzero(fused.verb == 1)[0])
    assert math.isclose(float(fused.score[ride]), 0.75 * 0.5**2.8, rel_tol=1e-5)
    assert float(fused.score_global.min()) == 1.0 and float(fused.score_relatedness.min()) == 1.0


def test_synthetic_pair_is_scored_from_its_union_crop():
    torch.manual_seed(0)
    visual = ModifiedResNet(layers=[1, 1, 1, 1], output_dim=16, heads=2, image_size=32, width=8).eval()
    bank = torch.nn.functional.normalize(torch.randn(VOCAB.num_classes, 16), dim=-1)
    model = CLIPZeroShotModel(backbone=CLIPResNetBackbone(visual), bank=KnowledgeBank(bank, trainable=False),
                              vocabulary=VOCAB, crop_size=32, logit_scale=5.0)  # fmt: skip
    images = torch.randn(1, 3, 64, 64)
    boxes = [torch.tensor([[8.0, 8.0, 24.0, 40.0], [16.0, 20.0, 40.0, 30.0]])]  # union [8, 8, 40, 40]: a square
    out = model(images, boxes, [torch.tensor([0, 1])], [torch.tensor([0.9, 0.8])])
    assert out.pairs.tolist() == [[0, 1]] and out.pair_image.tolist() == [0]
    assert not out.pair_logits.requires_grad and out.global_logits.abs().sum() == 0
    # by hand: a 32 x 32 crop at 32 px is the pixels themselves; open_clip's own forward encodes it
    with torch.no_grad():
        v_u = torch.nn.functional.normalize(visual(images[:, :, 8:40, 8:40]), dim=-1)  # (1, 16)
    q = torch.softmax(5.0 * v_u @ bank.T, dim=1)[0]  # (N,)
    assert float(q[[3, 1, 2]].min()) > 0.01  # a scale at which every class counts
    torch.testing.assert_close(torch.sigmoid(out.pair_logits[0]), q[[3, 1, 2]], rtol=1e-4, atol=1e-6)
    empty = model(images, [torch.zeros((0, 4))], [torch.zeros(0, dtype=torch.int64)])
    assert empty.pair_logits.shape == (0, 3) and empty.global_logits.shape == (1, 5)


def test_model_pt_round_trip_and_infer_stage(tmp_path):
    """build_model(kind clip_zero_shot) -> model.pt -> load_trained_model -> the unchanged infer stage."""
    split = make_split(tmp_path / "split", num_images=3)
    vocabulary = load_annotations(split["annotations"], "train").vocabulary
    clip = ClipConfig(model="hoi-tiny-rn", pretrained=None)
    torch.manual_seed(0)
    model = build_model(clip=clip, model=ZERO_SHOT, vocabulary=vocabulary,
                        bank_embeddings=torch.randn(vocabulary.num_classes, 64))  # fmt: skip
    assert isinstance(model, CLIPZeroShotModel) and model.crop_size == 192  # hoi-tiny-rn's own input size
    preprocessing = Preprocessing(64, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    info = TrainedModelInfo(vocabulary=vocabulary, clip=clip, model=ZERO_SHOT, loss=LossConfig(), train=TrainConfig(),
                            preprocessing=preprocessing, bank={}, iterations=0)  # fmt: skip
    save_trained_model(tmp_path / "model.pt", model, info)
    loaded, loaded_info = load_trained_model(tmp_path / "model.pt")
    assert isinstance(loaded, CLIPZeroShotModel) and loaded_info.model.kind == "clip_zero_shot"
    dataset = HOIImageDataset.from_split(load_annotations(split["annotations"], "train"), images=split["images"],
                                         proposals=split["proposals"], preprocessing=preprocessing)  # fmt: skip
    batch = dataset.collate([dataset[0], dataset[1]]).to("cpu")
    with torch.no_grad():
        first = model.eval()(batch.images, batch.boxes, batch.labels, batch.scores, batch.image_sizes)
        second = loaded(batch.images, batch.boxes, batch.labels, batch.scores, batch.image_sizes)
    torch.testing.assert_close(first.pair_logits, second.pair_logits)

    out = tmp_path / "detections.h5"
    infer.run(infer=ABL1_INFER, annotations=split["annotations"], split="train", images=split["images"],
              proposals=split["proposals"], checkpoint=tmp_path / "model.pt", out=out)  # fmt: skip
    reader = DetectionsFile(out)
    det = reader[0]
    assert len(det) > 0 and np.all(det.factors["score_global"] == 1) and np.all(det.factors["score_relatedness"] == 1)
    np.testing.assert_allclose(det.score, det.factors["score_pair"] * det.factors["score_detection"], rtol=1e-5)
    # q is a softmax over all N classes: a pair's scores over its object's verbs sum to at most 1
    for box in np.unique(det.boxes_o, axis=0):
        assert det.factors["score_pair"][(det.boxes_o == box).all(1)].sum() <= 1 + 1e-5
    reader.close()


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # no step is the point
def test_training_stage_changes_nothing_and_saves_the_model(tmp_path):
    """The training stage builds the zero-shot model; its steps move no weight and model.pt infers."""
    split = make_split(tmp_path / "split", num_images=3)
    clip = ClipConfig(model="hoi-tiny-rn", pretrained=None, image_size=64)
    loss = LossConfig(relatedness_warmup=0)
    train = TrainConfig(iterations=1, batch_size=2, num_workers=0, precision="fp32")
    net, preprocessing = train_stage.prepare_model(
        clip=clip, model=ZERO_SHOT, vocabulary=load_annotations(split["annotations"], "train").vocabulary,
        bank_embeddings=torch.randn(4, 64), max_pairs=256, seed=0,
    )  # fmt: skip
    net.train()
    assert not net.backbone.visual.bn1.training  # never in training mode: BatchNorm statistics stay
    optimizer = train_stage.build_optimizer(net, TrainConfig(lr_backbone=1.0, lr_head=1.0))
    dataset = HOIImageDataset.from_split(load_annotations(split["annotations"], "train"), images=split["images"],
                                         proposals=split["proposals"], preprocessing=preprocessing)  # fmt: skip
    before = {key: value.clone() for key, value in net.state_dict().items()}
    terms = train_stage.train_step(
        net, dataset.collate([dataset[0], dataset[1]]), optimizer=optimizer,
        scaler=torch.amp.GradScaler("cuda", enabled=False), loss_config=loss, iteration=3, grad_clip=1.0,
        device=torch.device("cpu"), precision="fp32",
    )  # fmt: skip
    assert not terms.total.requires_grad
    assert all(torch.equal(before[key], value) for key, value in net.state_dict().items())

    train_stage.run(clip=clip, model=ZERO_SHOT, loss=loss, train=train, split="train", out_dir=tmp_path / "run",
                    **split)  # fmt: skip
    loaded, info = load_trained_model(tmp_path / "run" / "model.pt")
    assert isinstance(loaded, CLIPZeroShotModel) and info.preprocessing.image_size == 64
    infer.run(infer=ABL1_INFER, annotations=split["annotations"], split="train", images=split["images"],
              proposals=split["proposals"], checkpoint=tmp_path / "run" / "model.pt", out=tmp_path / "d.h5")  # fmt: skip
    assert len(DetectionsFile(tmp_path / "d.h5")[0]) > 0


def test_table3_presets_and_paper_numbers():
    assert [name for name, _ in TABLE_LAYOUT["Table 3"]] == ["abl1", "exp8", "abl3", "abl4", "full_model"]
    assert PRESETS["abl1"].paper == PaperResult(11.84, 13.72, 11.27)
    assert PRESETS["abl4"].paper == PaperResult(19.39, 15.12, 20.66) and not PRESETS["abl4"].implemented
    assert {"abl1", "abl3"} <= set(ABLATIONS) and "abl4" not in ABLATIONS  # Abl 4: the paper's numbers only
    base = RunConfig(dataset="d", detector="x")
    abl1 = PRESETS["abl1"].overrides
    assert abl1["train"] == {"iterations": 0}  # nothing to train: the stage saves the model as built
    run = with_overrides(base, dict(abl1))
    assert run.train.iterations == 0
    assert run.model.kind == "clip_zero_shot" and run.infer.pair_normalization == "sigmoid"
    assert not run.infer.use_global_score and not run.infer.use_relatedness_score and run.infer.use_detection_score
    abl2 = with_overrides(base, dict(ABLATIONS["exp8"]))  # Abl 2 = Table 2 Exp 8: the baseline on RN50-FPN(COCO)
    assert abl2.model.backbone_source == "coco_detector_fpn" and abl2.model.kind == "bilevel"
    assert not abl2.model.use_hoi_recognition and not abl2.model.use_knowledge_transfer
    assert not abl2.loss.use_relatedness_loss and not abl2.infer.use_global_score


def test_abl3_enhances_a_trained_models_pair_scores_with_clip(tmp_path):
    """Abl 3: model.pt of a trained baseline + the CLIP bank -> enhance-with-clip -> model.pt -> infer."""
    from hoi_pipeline.modeling.zero_shot import CLIPEnhancedModel
    from hoi_pipeline.scoring import pair_scores
    from hoi_pipeline.stages import enhance_with_clip

    split = make_split(tmp_path / "split", num_images=3)  # its bank: 64-d "hoi-tiny-rn" CLIP text embeddings
    vocabulary = load_annotations(split["annotations"], "train").vocabulary
    clip = ClipConfig(model="hoi-tiny-rn", pretrained=None)
    # Abl 2's switches on a tiny CLIP backbone (the backbone does not matter here)
    abl2 = dict(ABLATIONS["exp8"])
    abl2_model = {**abl2["model"], "backbone_source": "clip", "hidden_dim": 16, "spatial_dim": 8}
    baseline = with_overrides(RunConfig(dataset="d", detector="x"), {**abl2, "model": abl2_model})
    torch.manual_seed(0)
    base = build_model(clip=clip, model=baseline.model, vocabulary=vocabulary,
                       bank_embeddings=torch.randn(vocabulary.num_classes, 64))  # fmt: skip
    preprocessing = Preprocessing(64, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    info = TrainedModelInfo(vocabulary=vocabulary, clip=clip, model=baseline.model, loss=baseline.loss,
                            train=TrainConfig(), preprocessing=preprocessing, bank={}, iterations=5)  # fmt: skip
    save_trained_model(tmp_path / "baseline.pt", base, info)
    enhance_with_clip.run(checkpoint=tmp_path / "baseline.pt", bank=split["bank"], out=tmp_path / "abl3.pt")

    enhanced, enhanced_info = load_trained_model(tmp_path / "abl3.pt")
    assert isinstance(enhanced, CLIPEnhancedModel) and enhanced_info.model.kind == "clip_enhanced"
    assert enhanced_info.iterations == 5 and enhanced_info.preprocessing == preprocessing
    reference, _ = load_trained_model(tmp_path / "baseline.pt")
    dataset = HOIImageDataset.from_split(load_annotations(split["annotations"], "train"), images=split["images"],
                                         proposals=split["proposals"], preprocessing=preprocessing)  # fmt: skip
    batch = dataset.collate([dataset[0], dataset[1], dataset[2]]).to("cpu")
    # the middle image without proposals (no pairs): e_p is per image, whatever the batch holds
    boxes, labels, scores = (tuple(t[:0] if b == 1 else t for b, t in enumerate(ts))
                             for ts in (batch.boxes, batch.labels, batch.scores))  # fmt: skip
    inputs = (batch.images, boxes, labels, scores, batch.image_sizes)
    with torch.no_grad():
        out, base_out = enhanced(*inputs), reference(*inputs)
        # the CLIP scorer sees the pixels normalised with CLIP's mean and std, not the baseline's
        mean, std = torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1), torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
        clip_mean, clip_std = (torch.tensor(v).view(1, 3, 1, 1) for v in (CLIP_MEAN, CLIP_STD))
        clip_out = enhanced.scorer(((batch.images * std + mean) - clip_mean) / clip_std, *inputs[1:])
        # the enhanced model's own two parts, on its own renormalised input
        own_base = enhanced.base(*inputs)
        own_clip = enhanced.scorer(batch.images * enhanced.renormalize_scale + enhanced.renormalize_shift, *inputs[1:])
    assert out.pairs.tolist() == base_out.pairs.tolist()
    assert out.pair_image.unique().tolist() == [0, 2]
    for b in range(3):  # the per-image loop the model's whole-batch e_p replaced
        rows = base_out.pair_image == b
        expected = pair_scores(base_out.pair_logits[rows]) * torch.sigmoid(clip_out.pair_logits[rows])
        torch.testing.assert_close(torch.sigmoid(out.pair_logits[rows]), expected, rtol=1e-4, atol=1e-7)
        # from the model's own parts: exactly the loop's numbers
        own = pair_scores(own_base.pair_logits[rows]) * torch.sigmoid(own_clip.pair_logits[rows])
        torch.testing.assert_close(out.pair_logits[rows], probability_logit(own), rtol=0, atol=0)

    abl3 = with_overrides(RunConfig(dataset="d", detector="x"), dict(PRESETS["abl3"].overrides))
    infer.run(infer=dataclasses.replace(abl3.infer, num_workers=0, top_k=0), annotations=split["annotations"],
              split="train", images=split["images"], proposals=split["proposals"], checkpoint=tmp_path / "abl3.pt",
              out=tmp_path / "d.h5")  # fmt: skip
    det = DetectionsFile(tmp_path / "d.h5")[0]
    assert len(det) > 0 and np.all(det.factors["score_global"] == 1) and np.all(det.factors["score_pair"] <= 1)
    with pytest.raises(ValueError, match="enhance-with-clip stage"):
        build_model(clip=clip, model=abl3.model, vocabulary=vocabulary, bank_embeddings=torch.zeros(4, 64))
