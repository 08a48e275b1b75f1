"""Inference stage: tuples from a model output, the detections HDF5 round trip, and the stage end to end."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from hoi_pipeline import cli
from hoi_pipeline.artifacts import DETECTION_FACTORS, DetectionsFile, write_detections, write_proposals
from hoi_pipeline.config import InferConfig
from hoi_pipeline.stages import infer
from hoi_pipeline.stages.infer import check_vocabulary, detections_from_output, empty_detections
from hoi_pipeline.structures import HOIAnnotations, ImageAnnotation, ModelOutput, Proposals, Vocabulary
from tiny_models import write_tiny_checkpoint

# verbs 0 hold, 1 ride; objects 0 person, 1 cup, 2 bike; HOI classes (hold cup), (ride bike), (hold bike)
VOCABULARY = Vocabulary(
    verbs=("hold", "ride"),
    objects=("person", "cup", "bike"),
    hoi_classes=np.array([[0, 1], [1, 2], [0, 2]]),
    rare=np.array([2]),
    non_rare=np.array([0, 1]),
)
LOOKUP = torch.from_numpy(VOCABULARY.hoi_lookup())


def two_images() -> tuple[ModelOutput, list[Proposals]]:
    """Image a: one human, a cup and a bike (2 pairs); image b: only a cup (no human, no pairs)."""
    image_a = Proposals(
        "a.jpg",
        boxes=[[10.0, 20.0, 110.0, 220.0], [100.0, 100.0, 130.0, 140.0], [0.0, 150.0, 200.0, 300.0]],
        scores=[0.9, 0.5, 0.8],
        labels=[0, 1, 2],
    )
    image_b = Proposals("b.jpg", boxes=[[1.0, 2.0, 3.0, 4.0]], scores=[0.7], labels=[1])
    output = ModelOutput(
        global_logits=torch.tensor([[0.0, math.log(3), 0.0], [5.0, 5.0, 5.0]]),  # (B, N)
        pair_logits=torch.tensor([[math.log(2), 0.0], [0.0, math.log(5)]]),  # (P, A)
        relatedness_logits=torch.tensor([0.0, math.log(4)]),  # (P,)
        pairs=torch.tensor([[0, 1], [0, 2]]),
        pair_image=torch.tensor([0, 0]),
    )
    return output, [image_a, image_b]


def test_tuples_by_hand():
    output, proposals = two_images()
    settings = InferConfig(gamma=1.0)
    det_a, det_b = detections_from_output(output, proposals, LOOKUP, settings)
    # verb 0 (hold): pairs' logits (ln2, 0) -> softmax (2/3, 1/3), sigmoid(ln2) = 2/3
    # verb 1 (ride): pairs' logits (0, ln5) -> softmax (1/6, 5/6), sigmoid(ln5) = 5/6
    # tuples: pair 0 (cup): hold cup (class 0); pair 1 (bike): ride bike (class 1), hold bike (class 2)
    hold_cup = 0.5 * (2 / 3 * 2 / 3) * 0.5 * (0.9 * 0.5)
    ride_bike = 0.75 * (5 / 6 * 5 / 6) * 0.8 * (0.9 * 0.8)
    hold_bike = 0.5 * (2 / 3 * 1 / 3) * 0.8 * (0.9 * 0.8)
    assert det_a.score == pytest.approx(sorted([hold_cup, ride_bike, hold_bike], reverse=True), rel=1e-5)
    assert det_a.hoi.tolist() == [1, 2, 0]  # ride bike > hold bike > hold cup
    assert det_a.verb.tolist() == [1, 0, 0]
    assert det_a.object.tolist() == [2, 2, 1]
    np.testing.assert_array_equal(det_a.boxes_h, np.repeat(proposals[0].boxes[:1], 3, axis=0))
    np.testing.assert_array_equal(det_a.boxes_o, proposals[0].boxes[[2, 2, 1]])
    assert det_a.factors["score_detection"] == pytest.approx([0.72, 0.72, 0.45])
    assert det_a.factors["score_relatedness"] == pytest.approx([0.8, 0.8, 0.5])
    assert len(det_b) == 0 and det_b.filename == "b.jpg"  # no human: no tuples, no error
    assert set(det_b.factors) == set(DETECTION_FACTORS)


def test_top_k_per_image():
    output, proposals = two_images()
    det_a, _ = detections_from_output(output, proposals, LOOKUP, InferConfig(top_k=2))
    assert det_a.hoi.tolist() == [1, 2]
    det_a, _ = detections_from_output(output, proposals, LOOKUP, InferConfig(top_k=0))
    assert len(det_a) == 3


def test_pairs_outside_the_proposals_are_an_error():
    output, proposals = two_images()
    output.pairs = torch.tensor([[0, 1], [0, 7]])
    with pytest.raises(ValueError, match="a.jpg"):
        detections_from_output(output, proposals, LOOKUP, InferConfig())


def test_layout_round_trip(tmp_path):
    output, proposals = two_images()
    detections = detections_from_output(output, proposals, LOOKUP, InferConfig())
    detections.append(empty_detections("c.jpg"))
    path = tmp_path / "detections_test.h5"
    write_detections(path, detections, {"split": "test", "infer": {"top_k": 100}, "checkpoint_digest": "abc"})
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left

    reader = DetectionsFile(path)
    assert reader.filenames == ["a.jpg", "b.jpg", "c.jpg"]
    assert reader.offsets.tolist() == [0, 3, 3, 3]
    assert reader.factors == DETECTION_FACTORS
    assert reader.attrs["schema_version"] == 1 and reader.attrs["infer"] == {"top_k": 100}
    for original in detections:
        back = reader.get(original.filename)
        for name in ("boxes_h", "boxes_o", "hoi", "verb", "object", "score"):
            np.testing.assert_array_equal(getattr(back, name), getattr(original, name))
        for name in DETECTION_FACTORS:
            np.testing.assert_array_equal(back.factors[name], original.factors[name])
    reader.close()

    with h5py.File(path) as h5:  # the documented on-disk types
        assert h5["offsets"].dtype == np.int64
        assert h5["boxes_h"].dtype == np.float32 and h5["boxes_h"].shape == (3, 4)
        assert h5["hoi"].dtype == np.int16 and h5["score"].dtype == np.float32
    # the README's pandas example, run as written but for the path
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (example,) = [block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "detections_test.h5" in block]
    namespace: dict = {}
    exec(example.replace('"results/demo/detections_test.h5"', repr(str(path))), namespace)
    df = namespace["df"]
    np.testing.assert_array_equal(df[["ox1", "oy1", "ox2", "oy2"]].to_numpy(), detections[0].boxes_o)
    assert df.filename.tolist() == ["a.jpg"] * 3
    assert df.hoi.tolist() == detections[0].hoi.tolist()


def test_vocabulary_must_match_the_checkpoint(tmp_path):
    check_vocabulary(VOCABULARY, VOCABULARY, tmp_path / "a.json", tmp_path / "m.pt")
    other = Vocabulary(
        verbs=("hold", "ride"),
        objects=("person", "cup", "bike"),
        hoi_classes=np.array([[0, 1], [1, 2]]),
        rare=np.array([], dtype=np.int64),
        non_rare=np.array([0, 1]),
    )
    with pytest.raises(ValueError, match="HOI classes differ"):
        check_vocabulary(other, VOCABULARY, tmp_path / "a.json", tmp_path / "m.pt")
    renamed = Vocabulary(
        verbs=("carry", "ride"), objects=VOCABULARY.objects, hoi_classes=VOCABULARY.hoi_classes, rare=[], non_rare=[]
    )
    with pytest.raises(ValueError, match="verbs"):
        check_vocabulary(renamed, VOCABULARY, tmp_path / "a.json", tmp_path / "m.pt")


# --------------------------------------------------------------------------------------------
# the stage end to end, with a tiny random-init model


def write_tiny_split(root: Path) -> tuple[Path, Path, Path, list[Proposals]]:
    """Three random images (the last has no human proposal), their annotation json and proposals HDF5."""
    from hoi_pipeline.datasets.hicodet import save_hicodet_json

    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    images, proposals = [], []
    for i, (w, h) in enumerate([(80, 60), (50, 90), (64, 64)]):
        name = f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "images" / name)
        images.append(ImageAnnotation(name, w, h, [[0, 0, 10, 10]], [[5, 5, 20, 20]], [0], [0], [1]))
        if i == 2:
            proposals.append(Proposals(name, [[1.0, 1.0, 20.0, 20.0]], [0.9], [1]))
        else:  # humans 0 and 3, a cup, a bike (boxes in original pixels, not in the model's 64 px input)
            boxes = [[0.0, 0.0, 30.5, 40.25], [10.0, 10.0, 40.0, 50.0], [5.0, 5.0, w, h], [2.0, 2.0, 20.0, 20.0]]
            proposals.append(Proposals(name, boxes, [0.9, 0.8, 0.6, 0.7], [0, 1, 2, 0]))
    save_hicodet_json(HOIAnnotations(VOCABULARY, tuple(images)), root / "test.json")
    write_proposals(root / "proposals.h5", proposals, {})
    return root / "test.json", root / "images", root / "proposals.h5", proposals


def test_stage_end_to_end(tmp_path):
    annotations, images, proposals_path, proposals = write_tiny_split(tmp_path)
    write_tiny_checkpoint(tmp_path / "model.pt", VOCABULARY)
    out = tmp_path / "results" / "detections_test.h5"
    settings = {"infer": {"batch_size": 2, "num_workers": 1, "top_k": 5}}
    code = cli.main([
        "infer", "--config-json", json.dumps(settings), "--annotations", str(annotations), "--split", "test",
        "--images", str(images), "--proposals", str(proposals_path), "--checkpoint", str(tmp_path / "model.pt"),
        "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    reader = DetectionsFile(out)
    assert reader.filenames == ["img0.png", "img1.png", "img2.png"]
    assert reader.attrs["infer"]["top_k"] == 5 and reader.attrs["split"] == "test"
    assert len(reader.attrs["checkpoint_digest"]) == 16
    lookup = VOCABULARY.hoi_lookup()
    for i in range(2):
        det = reader[i]
        # 2 humans x 3 other proposals; valid classes: human-cup (hold), human-bike (ride, hold) -> 6, top 5
        assert len(det) == 5
        assert np.all(np.diff(det.score) <= 0) and np.all(det.score > 0)
        assert np.array_equal(det.hoi, lookup[det.verb, det.object])
        original = proposals[i].boxes
        humans, objects = original[[0, 3]], original[[1, 2]]
        assert all((box == humans).all(1).any() for box in det.boxes_h)  # original coordinates, exactly
        assert all((box == objects).all(1).any() for box in det.boxes_o)
        product = np.prod([det.factors[name] for name in DETECTION_FACTORS], axis=0)
        np.testing.assert_allclose(det.score, product, rtol=1e-5)
    assert len(reader[2]) == 0  # no human among its proposals: no tuples, no error
    reader.close()
    assert not list(out.parent.glob(".*.tmp"))


def test_stage_rejects_another_vocabulary(tmp_path):
    annotations, images, proposals_path, _ = write_tiny_split(tmp_path)
    other = Vocabulary(
        verbs=("hold", "ride"), objects=VOCABULARY.objects, hoi_classes=np.array([[0, 1], [1, 2]]),
        rare=np.array([], dtype=np.int64), non_rare=np.array([0, 1]),
    )  # fmt: skip
    write_tiny_checkpoint(tmp_path / "model.pt", other)
    with pytest.raises(ValueError, match="HOI classes differ"):
        infer.run(
            infer=InferConfig(num_workers=0), annotations=annotations, split="test", images=images,
            proposals=proposals_path, checkpoint=tmp_path / "model.pt", out=tmp_path / "d.h5",
        )  # fmt: skip
    assert not (tmp_path / "d.h5").exists()


@pytest.mark.parametrize("damage", ["random_bytes", "truncated"])
def test_unreadable_checkpoint_is_a_one_line_error(tmp_path, caplog, damage):
    """A corrupt --checkpoint: exit 2, one log line naming the file and the problem, no output or temp file."""
    annotations, images, proposals_path, _ = write_tiny_split(tmp_path)
    checkpoint = tmp_path / "model.pt"
    if damage == "random_bytes":
        checkpoint.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    else:
        write_tiny_checkpoint(checkpoint, VOCABULARY)
        checkpoint.write_bytes(checkpoint.read_bytes()[:20000])
    out = tmp_path / "results" / "d.h5"
    code = cli.main([
        "infer", "--config-json", json.dumps({"infer": {"num_workers": 0}}), "--annotations", str(annotations),
        "--images", str(images), "--proposals", str(proposals_path), "--checkpoint", str(checkpoint),
        "--out", str(out),
    ])  # fmt: skip
    assert code == 2
    errors = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].startswith(f"{checkpoint}: not a readable checkpoint (")
    assert "\n" not in errors[0] and "weights_only" not in errors[0]
    assert ("truncated or corrupt" in errors[0]) == (damage == "truncated")
    assert not out.exists() and not (out.parent.exists() and list(out.parent.iterdir()))


def test_host_made_pairs_give_the_detections_of_device_pairing(tmp_path):
    """predict_batch hands the model pairs made on the host; the detections equal the model pairing itself."""
    from hoi_pipeline.checkpoints import load_trained_model
    from hoi_pipeline.datasets.hoi_images import HOIImageDataset
    from hoi_pipeline.stages.infer import NO_PAIR_CAP, predict_batch

    annotations, images, proposals_path, proposals = write_tiny_split(tmp_path)
    write_tiny_checkpoint(tmp_path / "model.pt", VOCABULARY)
    model, info = load_trained_model(tmp_path / "model.pt")
    dataset = HOIImageDataset(images=images, filenames=[p.filename for p in proposals], proposals=proposals,
                              vocabulary=VOCABULARY, preprocessing=info.preprocessing)  # fmt: skip
    batch = dataset.collate([dataset[i] for i in range(len(dataset))])
    infer_config = InferConfig(top_k=0)
    found = predict_batch(model.eval(), batch, proposals, LOOKUP, infer_config, torch.device("cpu"))
    with torch.inference_mode():
        output = model(batch.to("cpu").images, batch.boxes, batch.labels, batch.scores, batch.image_sizes,
                       max_pairs=NO_PAIR_CAP)  # fmt: skip
    expected = detections_from_output(output, proposals, LOOKUP, infer_config)
    assert sum(len(d) for d in found) > 0
    for got, want in zip(found, expected):
        for name in ("boxes_h", "boxes_o", "hoi", "score"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
