"""Training stage: dataset and letterboxing, seeded batches, checkpoints, resume determinism, the CLI.

Reruns (same training or another, SIGTERM, bad state files) are in test_training_state.py.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hoi_pipeline.artifacts import write_proposals
from hoi_pipeline.checkpoints import load_trained_model, vocabulary_from_dict, vocabulary_to_dict
from hoi_pipeline.config import ClipConfig, LossConfig, ModelConfig, TrainConfig, to_dict
from hoi_pipeline.datasets import load_annotations
from hoi_pipeline.datasets.hicodet import save_hicodet_json
from hoi_pipeline.evaluation.relatedness import relatedness_pick_rate
from hoi_pipeline.datasets.hoi_images import (
    HOIImageDataset,
    Preprocessing,
    SeededBatchSampler,
    collate_samples,
)
from hoi_pipeline.datasets.input_pipeline import resized_size
from hoi_pipeline.knowledge_bank_file import load_knowledge_bank, write_knowledge_bank
from hoi_pipeline.stages import train as train_stage
from hoi_pipeline.structures import HOIAnnotations, ImageAnnotation, Proposals, Vocabulary
from hoi_pipeline.training_state import read_saved_state, restore_rng_states, rng_states
from tiny_models import pair_object_labels

VOCAB = Vocabulary(
    verbs=("hold", "ride", "no_interaction"),
    objects=("person", "horse", "cup"),
    hoi_classes=[[0, 2], [1, 1], [2, 1], [0, 1]],
    rare=[0],
    non_rare=[1, 2, 3],
)
CLIP = ClipConfig(model="hoi-tiny-rn", pretrained=None, image_size=64)
MODEL = ModelConfig(input_size=64, hidden_dim=16, spatial_dim=8)
LOSS = LossConfig(relatedness_warmup=1)
PRE = Preprocessing(64, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def make_split(root: Path, num_images: int = 6, seed: int = 0) -> dict[str, Path]:
    """A tiny HICO-DET style split: random images, one labelled pair each, proposals and a bank."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, proposals = [], []
    for i in range(num_images):
        width, height = int(rng.integers(60, 100)), int(rng.integers(60, 100))
        pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"img{i}.png")
        box_h = [2.0, 2.0, width / 2, height - 2.0]
        box_o = [width / 2 - 5, height / 3, width - 2.0, height - 5.0]
        hoi = i % VOCAB.num_classes
        verb, obj = (int(v) for v in VOCAB.hoi_classes[hoi])
        images.append(ImageAnnotation(f"img{i}.png", width, height, [box_h], [box_o], [hoi], [verb], [obj]))
        boxes = np.array([box_h, box_o, [1, 1, 10, 10]], np.float32)
        proposals.append(Proposals(f"img{i}.png", boxes, np.array([0.9, 0.8, 0.5], np.float32), np.array([0, obj, 2])))
    # an image whose detections have no human: skipped by training
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(root / "images" / "nohuman.png")
    images.append(ImageAnnotation("nohuman.png", 40, 40, [[0, 0, 5, 5]], [[5, 5, 9, 9]], [1], [1], [1]))
    proposals.append(Proposals("nohuman.png", [[5, 5, 9, 9]], [0.9], [1]))
    save_hicodet_json(HOIAnnotations(VOCAB, tuple(images), "synthetic"), root / "train.json")
    write_proposals(root / "proposals.h5", proposals, {"split": "train"})
    bank = rng.normal(size=(VOCAB.num_classes, 64)).astype(np.float32)
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    write_knowledge_bank(root / "bank.h5", bank, ["p"] * VOCAB.num_classes, VOCAB.hoi_classes,
                         {"clip_model": "hoi-tiny-rn"})  # fmt: skip
    return {"annotations": root / "train.json", "images": root / "images", "proposals": root / "proposals.h5",
            "bank": root / "bank.h5"}  # fmt: skip


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> dict[str, Path]:
    return make_split(tmp_path_factory.mktemp("split"))


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def run_training(split: dict[str, Path], out_dir: Path, train: TrainConfig, **kwargs) -> None:
    train_stage.run(clip=CLIP, model=MODEL, loss=LOSS, train=train, split="train", out_dir=out_dir, **split, **kwargs)


# --------------------------------------------------------------------------------------------
# dataset


def test_letterbox_and_box_scaling(tmp_path):
    Image.fromarray(np.full((50, 100, 3), 255, np.uint8)).save(tmp_path / "a.png")  # width 100, height 50
    annotation = ImageAnnotation("a.png", 100, 50, [[0, 0, 50, 50]], [[50, 0, 100, 25]], [3], [0], [1])
    proposals = [Proposals("a.png", [[0, 0, 50, 50], [50, 0, 100, 25]], [0.9, 0.8], [0, 1])]
    dataset = HOIImageDataset(images=tmp_path, filenames=["a.png"], proposals=proposals, vocabulary=VOCAB,
                              preprocessing=PRE, annotations=[annotation])  # fmt: skip
    assert resized_size(100, 50, 64) == (64, 32)
    sample = dataset[0]
    assert sample.image.shape == (3, 32, 64) and sample.content_size == (32, 64) and sample.original_size == (50, 100)
    torch.testing.assert_close(sample.boxes, torch.tensor([[0, 0, 32, 32], [32, 0, 64, 16.0]]))
    assert sample.image.dtype == torch.uint8 and torch.all(sample.image == 255)  # normalised on the model's device
    assert (
        sample.hoi.tolist() == [0, 0, 0, 1]
        and sample.verb.tolist() == [1, 0, 0]
        and sample.object.tolist() == [0, 1, 0]
    )
    flipped = dataset[(0, True)]
    torch.testing.assert_close(flipped.boxes, torch.tensor([[32, 0, 64, 32], [0, 0, 32, 16.0]]))
    batch = dataset.collate([sample, flipped])
    torch.testing.assert_close(batch.original_boxes(1), torch.tensor([[0, 0, 50, 50], [50, 0, 100, 25.0]]))
    assert batch.images.shape == (2, 3, 32, 64)  # two landscape images: no square padding
    model_input = batch.to("cpu").images
    assert model_input.dtype == torch.float32 and torch.allclose(model_input, torch.full((2, 3, 32, 64), 2.0))  # white


def test_batches_are_padded_to_their_largest_image(tmp_path):
    Image.fromarray(np.full((60, 100, 3), 255, np.uint8)).save(tmp_path / "wide.png")
    Image.fromarray(np.full((100, 40, 3), 255, np.uint8)).save(tmp_path / "tall.png")
    proposals = [Proposals(name, [[0, 0, 10, 10]], [0.9], [0]) for name in ("wide.png", "tall.png")]
    dataset = HOIImageDataset(images=tmp_path, filenames=["wide.png", "tall.png"], proposals=proposals,
                              vocabulary=VOCAB, preprocessing=Preprocessing(80, PRE.mean, PRE.std))  # fmt: skip
    wide, tall = dataset[0], dataset[1]
    assert wide.image.shape == (3, 48, 80) and tall.image.shape == (3, 80, 32)  # longer side 80
    assert dataset.collate([wide]).images.shape == (1, 3, 64, 96)  # rounded up to multiples of 32
    batch = dataset.collate([wide, tall]).to("cpu")  # normalised; the padding 0 (the mean colour)
    assert batch.images.shape == (2, 3, 96, 96) and batch.image_sizes.tolist() == [[48, 80], [80, 32]]
    assert torch.all(batch.images[0, :, :48, :80] == 2.0) and torch.all(batch.images[0, :, 48:] == 0)
    assert torch.all(batch.images[1, :, :80, :32] == 2.0) and torch.all(batch.images[1, :, :, 32:] == 0)


def test_pinned_batches_pin_every_tensor_the_device_receives(tmp_path, monkeypatch):
    """The DataLoader's pin_memory reaches each tensor `HOIBatch.to` copies (pinning itself needs CUDA)."""
    Image.fromarray(np.full((60, 100, 3), 255, np.uint8)).save(tmp_path / "a.png")
    proposals = [Proposals("a.png", [[0, 0, 10, 10], [5, 5, 20, 20]], [0.9, 0.8], [0, 1])]
    dataset = HOIImageDataset(images=tmp_path, filenames=["a.png"], proposals=proposals, vocabulary=VOCAB,
                              preprocessing=Preprocessing(80, PRE.mean, PRE.std))  # fmt: skip
    batch = dataset.collate([dataset[0]])
    pinned_ids: set[int] = set()

    def fake_pin(tensor: torch.Tensor) -> torch.Tensor:
        copy = tensor.clone()
        pinned_ids.add(id(copy))
        return copy

    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    pinned = batch.pin_memory()
    moved = [pinned.images, pinned.image_sizes, *pinned.boxes, *pinned.scores, *pinned.labels,
             pinned.targets.hoi, pinned.targets.verb, pinned.targets.object]  # fmt: skip
    assert all(id(t) in pinned_ids for t in moved)
    assert torch.equal(pinned.images, batch.images) and pinned.filenames == batch.filenames


def test_image_without_proposals_batches_and_runs(tmp_path):
    Image.fromarray(np.zeros((30, 20, 3), np.uint8)).save(tmp_path / "b.png")
    dataset = HOIImageDataset(images=tmp_path, filenames=["b.png"], proposals=[Proposals("b.png", [], [], [])],
                              vocabulary=VOCAB, preprocessing=PRE)  # fmt: skip
    batch = dataset.collate([dataset[0]]).to("cpu")
    assert batch.boxes[0].shape == (0, 4) and batch.targets.hoi.sum() == 0
    from open_clip.modified_resnet import ModifiedResNet

    from hoi_pipeline.modeling.model import build_model

    visual = ModifiedResNet(layers=[1, 1, 1, 1], output_dim=32, heads=2, image_size=64, width=8)
    model = build_model(clip=CLIP, model=MODEL, vocabulary=VOCAB, bank_embeddings=torch.randn(4, 32), visual=visual)
    out = model(batch.images, batch.boxes, batch.labels, batch.scores, batch.image_sizes)
    assert out.pairs.shape == (0, 2)


def test_dataset_reads_proposals_file_and_counts_skipped(split):
    annotations = load_annotations(split["annotations"], "train")
    dataset = HOIImageDataset.from_split(
        annotations, images=split["images"], proposals=split["proposals"], preprocessing=PRE
    )
    indices, skipped = dataset.training_indices()  # the image without a pair still trains L_g
    assert indices == list(range(7)) and skipped == {"unreadable": 0, "no_hoi_label": 0, "no_human_pair": 1}
    indices, skipped = dataset.training_indices(include_without_pairs=False)
    assert indices == list(range(6)) and skipped == {"unreadable": 0, "no_hoi_label": 0, "no_human_pair": 1}
    assert dataset[6].labels.tolist() == [1]
    with pytest.raises(ValueError, match="no proposals for 1 of"):
        HOIImageDataset(images=split["images"], filenames=["img0.png", "other.png"], proposals=split["proposals"],
                        vocabulary=VOCAB, preprocessing=PRE)  # fmt: skip


def test_seeded_batches_are_a_function_of_seed_and_iteration():
    full = SeededBatchSampler(list(range(10, 17)), batch_size=3, seed=5, start=0, stop=8)
    batches = list(full)
    assert len(batches) == 8 and all(len(b) == 3 for b in batches)
    resumed = list(SeededBatchSampler(list(range(10, 17)), batch_size=3, seed=5, start=4, stop=8))
    assert resumed == batches[4:]
    # each epoch visits every image once
    seen = [index for batch in batches for index, _ in batch][:14]
    assert sorted(seen[:7]) == list(range(10, 17)) and sorted(seen[7:]) == list(range(10, 17))
    other = list(SeededBatchSampler(list(range(10, 17)), batch_size=3, seed=6, start=0, stop=8))
    assert other != batches
    no_flip = list(SeededBatchSampler(list(range(10, 17)), batch_size=3, seed=5, start=0, stop=8, flip=False))
    assert all(not f for b in no_flip for _, f in b) and any(f for b in batches for _, f in b)
    # DDP: the ranks' shares make up the global batch
    shards = [SeededBatchSampler(list(range(10, 17)), batch_size=4, seed=5, start=0, stop=3, rank=r, world_size=2)
              for r in range(2)]  # fmt: skip
    single = SeededBatchSampler(list(range(10, 17)), batch_size=4, seed=5, start=0, stop=3)
    for it in range(3):
        assert sorted(shards[0].batch(it) + shards[1].batch(it)) == sorted(single.batch(it))
    with pytest.raises(ValueError, match="multiple"):
        SeededBatchSampler([1], batch_size=3, seed=0, start=0, stop=1, world_size=2)
    # micro-batches: each iteration's batch in consecutive pieces, the same images in the same order
    micro = SeededBatchSampler(list(range(10, 17)), batch_size=4, seed=5, start=0, stop=3, micro_batch_size=2)
    assert micro.steps_per_iteration == 2 and len(micro) == 6
    pieces = list(micro)
    assert [pieces[2 * i] + pieces[2 * i + 1] for i in range(3)] == list(single)
    with pytest.raises(ValueError, match="micro_batch_size 3 does not divide"):
        SeededBatchSampler([1], batch_size=4, seed=0, start=0, stop=1, micro_batch_size=3)


# --------------------------------------------------------------------------------------------
# gradient accumulation


def accumulation_setup(split: dict[str, Path]):
    """A tiny model, two copies, and four training images whose batches all pad to 64 x 64 (sides 39 to 64 px),
    so that padding is the same in any split (a batch is padded to its largest image)."""
    import copy

    annotations = load_annotations(split["annotations"], "train")
    dataset = HOIImageDataset.from_split(annotations, images=split["images"], proposals=split["proposals"],
                                         preprocessing=PRE)  # fmt: skip
    samples = [dataset[(i, i % 2 == 1)] for i in range(4)]
    assert all(collate_samples([s], PRE).images.shape[-2:] == (64, 64) for s in samples)
    torch.manual_seed(0)
    net, _ = train_stage.prepare_model(clip=CLIP, model=MODEL, vocabulary=annotations.vocabulary, max_pairs=256,
                                       seed=0, bank_embeddings=torch.randn(annotations.vocabulary.num_classes, 64))  # fmt: skip
    net.train()
    return net, copy.deepcopy(net), samples


@pytest.mark.parametrize("grad_clip", [0.0, 0.05])
def test_gradient_accumulation_equals_one_large_batch(split, grad_clip):
    """k micro-batches accumulated give the update of one batch of k times the size (losses per step's images)."""
    whole_net, micro_net, samples = accumulation_setup(split)
    step = {"scaler": torch.amp.GradScaler("cuda", enabled=False), "loss_config": LOSS, "iteration": 5,
            "grad_clip": grad_clip, "device": torch.device("cpu"), "precision": "fp32"}  # fmt: skip
    whole_sgd = torch.optim.SGD(whole_net.parameters(), lr=0.5)  # SGD: an update proportional to the gradient
    micro_sgd = torch.optim.SGD(micro_net.parameters(), lr=0.5)
    whole = train_stage.train_step(whole_net, collate_samples(samples, PRE), optimizer=whole_sgd, **step)
    micro_batches = [collate_samples(samples[:2], PRE), collate_samples(samples[2:], PRE)]
    micro = train_stage.train_step(micro_net, micro_batches, optimizer=micro_sgd, **step)
    assert whole.relatedness.item() > 0  # every term is in play
    for name in ("image", "pair", "relatedness", "total"):
        assert micro.as_floats()[name] == pytest.approx(whole.as_floats()[name], rel=1e-5), name
    moved = 0
    for (name, a), b in zip(whole_net.named_parameters(), micro_net.parameters()):
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-7, msg=name)
            moved += int(a.grad.abs().sum() > 0)
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-7, msg=name)
    assert moved > 10
    # one micro-batch of the two without the step's normalizer would not give the same gradient
    alone_net, _, _ = accumulation_setup(split)
    alone_sgd = torch.optim.SGD(alone_net.parameters(), lr=0.5)
    train_stage.train_step(alone_net, [collate_samples(samples[:2], PRE)], optimizer=alone_sgd, **step)
    assert not torch.allclose(alone_net.pairwise.f_p[2].weight.grad, whole_net.pairwise.f_p[2].weight.grad)


def test_train_step_equals_the_step_that_pairs_on_the_device_and_reports_its_phases(split):
    """The step pairs each batch on the host and hands the pairs to the model: the same losses and update,
    bit for bit, as letting the model pair the images and reading the pairs' object classes per image."""
    from hoi_pipeline.losses import compute_losses
    from hoi_pipeline.timing import PhaseTimer

    net, reference_net, samples = accumulation_setup(split)
    batch = collate_samples(samples, PRE)
    step = {"scaler": torch.amp.GradScaler("cuda", enabled=False), "loss_config": LOSS, "iteration": 5,
            "grad_clip": 0.0, "device": torch.device("cpu"), "precision": "fp32"}  # fmt: skip
    timer = PhaseTimer(torch.device("cpu"))
    timer.start()
    terms = train_stage.train_step(net, batch, optimizer=torch.optim.SGD(net.parameters(), lr=0.5), timer=timer, **step)
    phases = timer.read()
    assert list(phases) == ["data", "backbone", "pair branch", "losses", "optimiser"]
    assert all(seconds >= 0 for seconds in phases.values()) and phases["backbone"] > 0

    optimizer = torch.optim.SGD(reference_net.parameters(), lr=0.5)
    optimizer.zero_grad()
    ready = batch.to("cpu")  # normalised, as train_step's copy
    output = reference_net(ready.images, batch.boxes, batch.labels, batch.scores, batch.image_sizes)
    pair_objects = pair_object_labels(output.pairs, output.pair_image, batch.labels)
    expected = compute_losses(output, batch.targets, pair_objects, LOSS, 5, normalizer=len(batch))
    expected.total.backward()
    optimizer.step()
    assert expected.relatedness.item() > 0 and terms.as_floats() == expected.as_floats()
    for (name, a), b in zip(net.named_parameters(), reference_net.parameters()):
        assert torch.equal(a, b), name
    assert not net.backbone._forward_hooks  # the timing hooks are gone


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host-device synchronisation exists only with a GPU")
def test_train_step_never_waits_for_the_gpu(split):
    """On a GPU, a step over a host batch queues its work without synchronising (the equality tests above
    are the CPU's check that the whole-batch code computes what the per-image loops did)."""
    net, _, samples = accumulation_setup(split)
    device = torch.device("cuda")
    net.to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    step = {"scaler": torch.amp.GradScaler("cuda", enabled=False), "loss_config": LOSS, "iteration": 5,
            "grad_clip": 1.0, "device": device, "precision": "bf16"}  # fmt: skip
    batches = [collate_samples(samples[:2], PRE), collate_samples(samples[2:], PRE)]
    train_stage.train_step(net, batches, optimizer=optimizer, **step)  # first calls may initialise lazily
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        terms = train_stage.train_step(net, batches, optimizer=optimizer, **step)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(terms.total)


def test_training_accumulates_micro_batches(split, tmp_path):
    """The stage with micro-batches of 1 trains the weights a batch of 2 does (same images, same steps)."""
    common = {"iterations": 2, "batch_size": 2, "num_workers": 0, "precision": "fp32", "flip": False}
    run_training(split, tmp_path / "whole", TrainConfig(**common))
    run_training(split, tmp_path / "micro", TrainConfig(**common, micro_batch_size=1))
    a = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "micro" / "model.pt", weights_only=True)["state_dict"]
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-3, atol=1e-5, msg=key)
    assert [r["loss_total"] for r in read_csv(tmp_path / "whole" / "losses.csv")] == pytest.approx(
        [r["loss_total"] for r in read_csv(tmp_path / "micro" / "losses.csv")])  # fmt: skip


def test_the_loop_reads_the_losses_back_once_per_log_line_and_records_every_iteration(split, tmp_path, monkeypatch):
    """Reading losses waits for the device: 7 iterations logged every 3, a checkpoint at 4: reads after 3, 4
    (before the checkpoint saves the history), 6 and 7, each of the iterations since the last; losses.csv and
    the checkpoint still hold every iteration, equal to reading each step alone."""
    from hoi_pipeline.losses import LossTerms

    reads: list[int] = []
    read_back = LossTerms.read_back
    monkeypatch.setattr(LossTerms, "read_back", staticmethod(lambda steps: reads.append(len(steps)) or read_back(steps)))
    train = TrainConfig(iterations=7, batch_size=2, num_workers=0, precision="fp32", log_every=3, checkpoint_every=4)
    run_training(split, tmp_path / "run", train)
    assert reads == [3, 1, 2, 1]
    rows = read_csv(tmp_path / "run" / "losses.csv")
    assert [int(r["iteration"]) for r in rows] == list(range(1, 8))
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["iteration"] == 7
    reads.clear()
    run_training(split, tmp_path / "each", dataclasses.replace(train, log_every=1))  # each step read alone
    assert reads == [1] * 7 and read_csv(tmp_path / "each" / "losses.csv") == rows


def test_compile_compiles_the_backbone_in_place(split, tmp_path, monkeypatch):
    """train.compile: `nn.Module.compile` on the backbone, so checkpoint keys stay those of the plain module.

    (Inductor on this CPU takes minutes per shape, too long for the suite; run once by hand with the real
    torch.compile, 2 iterations: the same keys and weights to 1e-5.)"""
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kwargs: compiled.append((type(self), kwargs)))
    common = {"iterations": 1, "batch_size": 2, "num_workers": 0, "precision": "fp32", "flip": False}
    run_training(split, tmp_path / "compiled", TrainConfig(**common, compile=True))
    assert [(kind.__name__, kwargs) for kind, kwargs in compiled] == [("CLIPResNetBackbone", {"dynamic": True})]
    run_training(split, tmp_path / "plain", TrainConfig(**common))
    assert len(compiled) == 1
    keys = torch.load(tmp_path / "compiled" / "model.pt", weights_only=True)["state_dict"].keys()
    assert all("_orig_mod" not in key for key in keys)


def test_batch_settings_are_checked():
    assert TrainConfig().batch_size == 96 and TrainConfig().micro_batches == (24, 4)  # the paper's 24 x 4
    assert TrainConfig(gpus=4).micro_batches == (24, 1)
    assert TrainConfig(batch_size=8).micro_batches == (8, 1)
    with pytest.raises(ValueError, match="micro_batch_size 5 must divide the 96"):
        TrainConfig(micro_batch_size=5)
    with pytest.raises(ValueError, match="multiple of gpus"):
        TrainConfig(batch_size=10, gpus=4)


# --------------------------------------------------------------------------------------------
# checkpoints


def test_vocabulary_and_rng_round_trip():
    again = vocabulary_from_dict(json.loads(json.dumps(vocabulary_to_dict(VOCAB))))
    assert again.verbs == VOCAB.verbs and np.array_equal(again.hoi_classes, VOCAB.hoi_classes)
    assert again.person == VOCAB.person
    import random

    states = rng_states()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_states(states)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_training_writes_outputs_and_resumes_identically(split, tmp_path):
    train = TrainConfig(iterations=4, batch_size=2, num_workers=0, checkpoint_every=2, log_every=1, precision="fp32")
    straight = tmp_path / "straight"
    run_training(split, straight, train)
    interrupted = tmp_path / "interrupted"
    run_training(split, interrupted, train, max_steps=2)
    assert not (interrupted / "model.pt").exists()
    assert read_saved_state(interrupted / "checkpoints" / "last.pt").iteration == 2
    run_training(split, interrupted, train)  # resumes at iteration 2

    a = torch.load(straight / "model.pt", weights_only=True)
    b = torch.load(interrupted / "model.pt", weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    rows = read_csv(straight / "losses.csv")
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    assert float(rows[0]["loss_relatedness"]) == 0.0 and float(rows[1]["loss_relatedness"]) > 0  # warm-up of 1
    assert all(np.isfinite(float(r["loss_total"])) for r in rows)
    assert (straight / "losses.csv").read_text() == (interrupted / "losses.csv").read_text()
    # the weights moved away from the initial model (iterations 0)
    run_training(split, tmp_path / "zero", TrainConfig(iterations=0, batch_size=2, num_workers=0))
    c = torch.load(tmp_path / "zero" / "model.pt", weights_only=True)
    assert not torch.equal(a["state_dict"]["pairwise.f_p.2.weight"], c["state_dict"]["pairwise.f_p.2.weight"])


def test_trained_model_loads_for_inference(split, tmp_path):
    out = tmp_path / "run"
    run_training(split, out, TrainConfig(iterations=1, batch_size=2, num_workers=0, precision="fp32"))
    model, info = load_trained_model(out / "model.pt", "cpu")
    assert not model.training
    assert info.vocabulary.verbs == VOCAB.verbs and info.model == MODEL and info.clip == CLIP
    assert info.preprocessing.image_size == 64 and info.iterations == 1 and info.max_pairs == 256
    assert len(info.bank["sha256"]) == 16
    annotations = load_annotations(split["annotations"], "train")
    dataset = HOIImageDataset.from_split(annotations, images=split["images"], proposals=split["proposals"],
                                         preprocessing=info.preprocessing)  # fmt: skip
    batch = dataset.collate([dataset[0], dataset[1]]).to("cpu")
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)["model"]
    reference, _ = load_trained_model(out / "model.pt", "cpu")
    reference.load_state_dict(state)
    with torch.no_grad():
        first = model(batch.images, batch.boxes, batch.labels, batch.scores, batch.image_sizes)
        second = reference(batch.images, batch.boxes, batch.labels, batch.scores, batch.image_sizes)
    torch.testing.assert_close(first.pair_logits, second.pair_logits)
    assert first.pairs.tolist() == [[0, 1], [0, 2], [0, 1], [0, 2]]

    with pytest.raises(ValueError, match="hoi-pipeline-model"):
        load_trained_model(out / "checkpoints" / "last.pt")
    with pytest.raises(FileNotFoundError):
        load_trained_model(tmp_path / "missing.pt")


def test_bank_from_another_model_is_refused(split, tmp_path):
    with pytest.raises(ValueError, match="embedded with CLIP 'hoi-tiny-rn'"):
        train_stage.run(clip=CLIP, model=ModelConfig(bank_clip_model="ViT-B-32"), loss=LOSS,
                        train=TrainConfig(iterations=1, batch_size=2, num_workers=0), split="train",
                        out_dir=tmp_path, **split)  # fmt: skip


def test_cli_train(split, tmp_path):
    from hoi_pipeline.cli import main

    sections = {"clip": to_dict(CLIP), "model": to_dict(MODEL), "loss": to_dict(LOSS),
                "train": to_dict(TrainConfig(iterations=1, batch_size=2, num_workers=1, precision="fp32"))}  # fmt: skip
    code = main(["train", "--config-json", json.dumps(sections), "--annotations", str(split["annotations"]),
                 "--images", str(split["images"]), "--proposals", str(split["proposals"]), "--bank", str(split["bank"]),
                 "--out-dir", str(tmp_path / "cli")])  # fmt: skip
    assert code == 0 and (tmp_path / "cli" / "model.pt").is_file()
    assert main(["train", "--config-json", json.dumps(sections), "--annotations", str(tmp_path / "nope.json"),
                 "--images", "x", "--proposals", "x", "--bank", "x", "--out-dir", str(tmp_path / "bad")]) == 2  # fmt: skip


@pytest.mark.slow
def test_distributed_training_on_two_cpu_processes(split, tmp_path):
    """torchrun with 2 gloo processes: DDP, sharded batches, rank 0 writes."""
    import subprocess
    import sys

    sections = {"clip": to_dict(CLIP), "model": to_dict(MODEL), "loss": to_dict(LOSS),
                "train": to_dict(TrainConfig(iterations=2, batch_size=4, num_workers=0, precision="fp32"))}  # fmt: skip
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "hoi_pipeline", "train", "--config-json", json.dumps(sections),
               "--annotations", str(split["annotations"]), "--images", str(split["images"]),
               "--proposals", str(split["proposals"]), "--bank", str(split["bank"]), "--out-dir", str(tmp_path / "ddp")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "over 2 process(es)" in result.stderr
    _, info = load_trained_model(tmp_path / "ddp" / "model.pt")
    assert info.iterations == 2
    rows = read_csv(tmp_path / "ddp" / "losses.csv")
    assert len(rows) == 2 and all(np.isfinite(float(r["loss_total"])) for r in rows)


def test_every_paper_literal_switch_trains_on_demo_scenes(tmp_path):
    """The demo run with every switch of "Deviations from the paper" at the paper's reading trains a few steps."""
    import dataclasses

    from hoi_pipeline.ablations import PAPER_LITERAL
    from hoi_pipeline.config import SyntheticConfig, load_project_config, with_overrides
    from hoi_pipeline.stages import detect, embed_prompts, generate_demo, init_clip

    project = load_project_config(Path(__file__).parents[1] / "config.yaml")
    data = tmp_path / "data"
    generate_demo.run(settings=SyntheticConfig(num_train=12, num_test=2, image_size=96, detector_miss_rate=0.3),
                      out_dir=data)  # fmt: skip
    detector = project.detectors[project.run("demo").detector]  # default post-processing: at most 100, unfiltered
    detect.run(detector=detector, annotations=data / "train.json", split="train", images=data / "images" / "train",
               detections=data / "detections_train.json", out=data / "proposals.h5")  # fmt: skip
    init_clip.run(model_name="hoi-tiny-rn", seed=0, out=tmp_path / "clip.pt")
    clip = ClipConfig(model="hoi-tiny-rn", pretrained=str(tmp_path / "clip.pt"))
    embed_prompts.run(clip=clip, annotations=data / "train.json", split="train", out=data / "bank.h5")
    steps = {"train": {"iterations": 3, "batch_size": 4, "num_workers": 0, "log_every": 1, "checkpoint_every": 3},
             "model": {"input_size": 96}, "loss": {"relatedness_warmup": 1}}  # fmt: skip
    run = with_overrides(with_overrides(project.run("demo"), PAPER_LITERAL), steps)
    assert not run.model.freeze_batchnorm and run.loss.relatedness_reduction == "sum" and run.train.grad_clip == 0
    assert run.model.global_logits == run.model.ktn_logits == "inner_product"
    train_stage.run(clip=dataclasses.replace(run.clip, pretrained=clip.pretrained), model=run.model, loss=run.loss,
                    train=run.train, annotations=data / "train.json", split="train", images=data / "images" / "train",
                    proposals=data / "proposals.h5", bank=data / "bank.h5", out_dir=tmp_path / "run")  # fmt: skip
    rows = read_csv(tmp_path / "run" / "losses.csv")
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3]
    assert all(np.isfinite(float(r["loss_total"])) for r in rows) and float(rows[-1]["loss_relatedness"]) > 0
    model, info = load_trained_model(tmp_path / "run" / "model.pt")
    assert info.model == run.model and model.knowledge_transfer.f_k is not None


# --------------------------------------------------------------------------------------------
# learning is real (the demo run's settings on the synthetic demo scenes)


def demo_map(model, dataset, annotations, infer) -> float:
    from hoi_pipeline.evaluation.detections import from_hoi_detections
    from hoi_pipeline.evaluation.hicodet import evaluate_hicodet
    from hoi_pipeline.stages.infer import infer_dataset

    detections = infer_dataset(model, dataset, hoi_lookup=torch.from_numpy(annotations.vocabulary.hoi_lookup()),
                               infer=infer, device=torch.device("cpu"))  # fmt: skip
    result = evaluate_hicodet(annotations, from_hoi_detections(annotations, detections), settings=("default",))
    return result.summary()[0].full


@pytest.mark.slow
def test_learning_on_demo_scenes(tmp_path):
    """Trained full model > Table 2 baseline and > untrained on mAP; s_b picks annotated pairs above chance."""
    import dataclasses

    from hoi_pipeline.ablations import ABLATIONS
    from hoi_pipeline.config import load_project_config, with_overrides
    from hoi_pipeline.stages import detect, embed_prompts, generate_demo, init_clip

    project = load_project_config(Path(__file__).parents[1] / "config.yaml")
    run = project.run("demo")
    dataset_config = project.datasets[run.dataset]
    data = tmp_path / "data"
    generate_demo.run(settings=dataset_config.synthetic, out_dir=data)
    for split in ("train", "test"):
        detect.run(detector=project.detectors[run.detector], annotations=data / f"{split}.json", split=split,
                   images=data / "images" / split, detections=data / f"detections_{split}.json",
                   out=data / f"proposals_{split}.h5")  # fmt: skip
    init_clip.run(model_name=run.clip.model, seed=0, out=tmp_path / "clip.pt")
    clip = dataclasses.replace(run.clip, pretrained=str(tmp_path / "clip.pt"))
    embed_prompts.run(clip=clip, annotations=data / "train.json", split="train", out=data / "bank.h5")

    test = load_annotations(data / "test.json", "test")
    scores = {}
    for name in ("full", "baseline"):
        variant = run if name == "full" else with_overrides(run, ABLATIONS["baseline"])
        train_stage.run(clip=clip, model=variant.model, loss=variant.loss, train=variant.train,
                        annotations=data / "train.json", split="train", images=data / "images" / "train",
                        proposals=data / "proposals_train.h5", bank=data / "bank.h5", out_dir=tmp_path / name)  # fmt: skip
        model, info = load_trained_model(tmp_path / name / "model.pt")
        dataset = HOIImageDataset.from_split(test, images=data / "images" / "test", proposals=data / "proposals_test.h5",
                                             preprocessing=info.preprocessing)  # fmt: skip
        scores[name] = demo_map(model, dataset, test, variant.infer)
        if name == "full":
            trained_pick, chance = relatedness_pick_rate(model, dataset, test)
            torch.manual_seed(1)
            untrained, _ = train_stage.prepare_model(
                clip=clip,
                model=run.model,
                vocabulary=test.vocabulary,
                max_pairs=run.train.max_pairs,
                seed=0,
                bank_embeddings=torch.from_numpy(load_knowledge_bank(data / "bank.h5").embeddings),
            )
            scores["untrained"] = demo_map(untrained.eval(), dataset, test, run.infer)
    summary = f"mAP {scores}, relatedness pick rate {trained_pick:.2f} vs chance {chance:.2f}"
    assert scores["full"] > scores["untrained"] + 5.0, summary
    assert scores["full"] > scores["baseline"], summary
    assert trained_pick > chance + 0.2, summary


def test_the_training_log_says_how_long_training_waited_for_its_data(caplog):
    """`timed_waits` times each batch's arrival; the log line gives the share of the time spent waiting."""
    import logging
    import time

    from hoi_pipeline.stages.train import ProgressLog, Processes, timed_waits
    from hoi_pipeline.training_state import LossRecord

    def slow_loader():
        for i in range(4):
            time.sleep(0.05 if i % 2 else 0.0)  # two of four batches arrive after 50 ms
            yield i

    waits: list[float] = []
    assert list(timed_waits(slow_loader(), waits.append)) == [0, 1, 2, 3]
    assert len(waits) == 4 and waits[1] >= 0.05 and waits[3] >= 0.05 and waits[0] < 0.05

    train = TrainConfig(iterations=2, log_every=2)
    with caplog.at_level(logging.INFO, logger="hoi_pipeline.stages.train"):
        progress = ProgressLog(0, 2, train, processes=Processes(), device=torch.device("cpu"))
        for iteration in (1, 2):
            start = time.perf_counter()
            time.sleep(0.1)  # waiting for data, then a step that takes no time
            progress.waited(time.perf_counter() - start)
            losses = {"image": 0.1, "pair": 0.2, "relatedness": 0.3, "total": 0.6}
            progress.update(LossRecord.of(iteration, losses, {"backbone": 1e-5, "head": 1e-4}))
    line = caplog.records[-1].getMessage()
    share = int(line.split("% of the time waiting for data")[0].rsplit(" ", 1)[-1])
    assert line.startswith("iter 2/2 loss 0.6000") and 90 <= share <= 100  # almost all of it was waiting
