"""`predict` on the user's own images: two generated images, a tiny random-init model, JSON + PNG per image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from hoi_pipeline import cli
from hoi_pipeline.config import ConfigError
from hoi_pipeline.stages import predict
from hoi_pipeline.structures import Proposals, Vocabulary
from tiny_models import write_tiny_checkpoint

# object names are COCO's, so the torchvision detector's classes map onto them by name
VOCABULARY = Vocabulary(
    verbs=("hold", "ride"),
    objects=("person", "bicycle", "cup"),
    hoi_classes=np.array([[0, 2], [1, 1], [0, 1]]),  # hold cup, ride bicycle, hold bicycle
    rare=np.array([2]),
    non_rare=np.array([0, 1]),
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """Two images, a tiny checkpoint, a random-init detector on disk and a config naming them."""
    root = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(0)
    (root / "photos").mkdir()
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(root / "photos" / "street.jpg")
    Image.fromarray(rng.integers(0, 255, (90, 70, 3), dtype=np.uint8)).save(root / "photos" / "kitchen.png")
    (root / "photos" / "notes.txt").write_text("not an image")
    write_tiny_checkpoint(root / "model.pt", VOCABULARY)

    import torchvision

    torch.manual_seed(0)
    detector = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None)
    torch.save(detector.state_dict(), root / "detector.pt")
    config = {
        "datasets": {"mine": {"splits": {"train": {"annotations": "a.json", "images": "i"},
                                         "test": {"annotations": "a.json", "images": "i"}}}},
        "detectors": {
            "imported": {"backend": "precomputed"},
            "tiny": {"backend": "torchvision", "model": "fasterrcnn_mobilenet_v3_large_320_fpn",
                     "weights": str(root / "detector.pt"), "detector_score_threshold": 0.0, "device": "cpu"},
        },
        "runs": {
            "tiny": {"dataset": "mine", "detector": "tiny", "infer": {"batch_size": 2, "device": "cpu"}},
            "imported": {"dataset": "mine", "detector": "imported", "infer": {"device": "cpu"}},
        },
    }  # fmt: skip
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return root


class StubExtractor:
    """Known proposals: the street image has a human, a bicycle and a cup; the kitchen image only a cup."""

    def __init__(self) -> None:
        self.identity = {"backend": "stub"}
        self.calls: list[list[str]] = []

    def extract(self, images: list[Image.Image], filenames: list[str]) -> list[Proposals]:
        self.calls.append([Path(f).name for f in filenames])
        out = []
        for image, name in zip(images, filenames):
            if Path(name).name == "street.jpg":
                assert image.size == (160, 120)
                boxes = [[10.5, 20.0, 60.0, 110.0], [50.0, 60.0, 150.0, 118.0], [70.0, 30.0, 90.0, 55.5]]
                out.append(Proposals(name, boxes, [0.95, 0.7, 0.5], [0, 1, 2]))
            else:
                out.append(Proposals(name, [[5.0, 5.0, 30.0, 30.0]], [0.8], [2]))
        return out


def test_predict_json_and_png(workspace, tmp_path):
    stub = StubExtractor()
    out = tmp_path / "out"
    predict.run(
        config_file=workspace / "config.yaml", run_name="tiny", checkpoint=workspace / "model.pt",
        inputs=[workspace / "photos"], out_dir=out, top=2, extractor=stub,
    )  # fmt: skip
    assert stub.calls == [["kitchen.png", "street.jpg"]]  # a folder's images, sorted; the .txt is not one
    assert sorted(p.name for p in out.iterdir()) == ["kitchen.json", "kitchen.png", "street.json", "street.png"]

    street = json.loads((out / "street.json").read_text())
    assert street["image"] == str(workspace / "photos" / "street.jpg")
    assert (street["width"], street["height"]) == (160, 120)
    assert street["proposals"] == {"humans": 1, "objects": 2}
    assert street["detector"]["backend"] == "stub"
    interactions = street["interactions"]
    # human 0 with the bicycle (ride, hold) and with the cup (hold): three tuples
    assert sorted((i["verb"], i["object"]) for i in interactions) == [
        ("hold", "bicycle"), ("hold", "cup"), ("ride", "bicycle")
    ]  # fmt: skip
    scores = [i["score"] for i in interactions]
    assert scores == sorted(scores, reverse=True)
    for item in interactions:
        assert item["box_human"] == [10.5, 20.0, 60.0, 110.0]  # original image coordinates
        expected_box = [50.0, 60.0, 150.0, 118.0] if item["object"] == "bicycle" else [70.0, 30.0, 90.0, 55.5]
        assert item["box_object"] == expected_box
        assert VOCABULARY.class_name(item["hoi"]) == f"{item['verb']} {item['object']}"
        factors = [item[name] for name in ("score_global", "score_pair", "score_relatedness", "score_detection")]
        assert item["score"] == pytest.approx(float(np.prod(factors)), rel=1e-5)
        object_score = 0.7 if item["object"] == "bicycle" else 0.5
        assert item["score_detection"] == pytest.approx((0.95 * object_score) ** 2.8, rel=1e-5)

    kitchen = json.loads((out / "kitchen.json").read_text())
    assert kitchen["interactions"] == [] and kitchen["proposals"] == {"humans": 0, "objects": 1}

    with Image.open(out / "street.png") as png:
        assert png.format == "PNG" and png.size == (160, 120)
        drawn = np.asarray(png.convert("RGB"))
    with Image.open(workspace / "photos" / "street.jpg") as original:
        changed = np.any(drawn != np.asarray(original.convert("RGB")), axis=2)
    assert changed[20:110, 10].mean() > 0.9  # the human box's left edge is drawn
    with Image.open(out / "kitchen.png") as png:
        assert png.size == (70, 90)


def test_default_checkpoint_and_ablation_runs(workspace, tmp_path, monkeypatch):
    """No --checkpoint: results/{run}/train/model.pt, where the workflow shows a run's training; an ablation run
    applies its infer switches."""
    monkeypatch.chdir(tmp_path)
    train_dir = tmp_path / "results" / "tiny" / "ablations" / "exp7" / "train"
    train_dir.mkdir(parents=True)
    (train_dir / "model.pt").write_bytes((workspace / "model.pt").read_bytes())
    predict.run(
        config_file=workspace / "config.yaml", run_name="tiny/ablations/exp7", checkpoint=None,
        inputs=[workspace / "photos" / "street.jpg"], out_dir=Path("out"), extractor=StubExtractor(),
    )  # fmt: skip
    record = json.loads((tmp_path / "out" / "street.json").read_text())
    assert record["checkpoint"] == str(Path("results/tiny/ablations/exp7/train/model.pt"))
    assert len(record["interactions"]) == 3
    assert all(item["score_global"] == 1.0 for item in record["interactions"])  # Eq. 3 without sigmoid(s_g) (Exp 7: the full model without score fusion)


def test_predict_through_the_real_detector(workspace, tmp_path):
    """The CLI with the config's torchvision detector (random weights: any number of detections)."""
    out = tmp_path / "out"
    code = cli.main([
        "predict", "--config", str(workspace / "config.yaml"), "--run", "tiny",
        "--checkpoint", str(workspace / "model.pt"), str(workspace / "photos" / "street.jpg"),
        str(workspace / "photos" / "kitchen.png"), "--out", str(out), "--device", "cpu",
    ])  # fmt: skip
    assert code == 0
    for stem, size in (("street", (160, 120)), ("kitchen", (70, 90))):
        record = json.loads((out / f"{stem}.json").read_text())
        assert record["detector"]["name"] == "tiny" and record["detector"]["backend"] == "torchvision"
        assert all(i["object"] in VOCABULARY.objects for i in record["interactions"])
        with Image.open(out / f"{stem}.png") as png:
            assert png.size == size


def test_precomputed_detector_is_a_clear_error(workspace, tmp_path):
    with pytest.raises(ConfigError, match="precomputed.*--detector"):
        predict.run(
            config_file=workspace / "config.yaml", run_name="imported", checkpoint=workspace / "model.pt",
            inputs=[workspace / "photos"], out_dir=tmp_path / "out",
        )  # fmt: skip
    with pytest.raises(ConfigError, match="'nope' is not in"):
        predict.run(
            config_file=workspace / "config.yaml", run_name="imported", checkpoint=workspace / "model.pt",
            inputs=[workspace / "photos"], out_dir=tmp_path / "out", detector="nope",
        )  # fmt: skip


def test_bad_inputs_are_named(workspace, tmp_path):
    def call(inputs, checkpoint=workspace / "model.pt"):
        predict.run(
            config_file=workspace / "config.yaml", run_name="tiny", checkpoint=checkpoint, inputs=inputs,
            out_dir=tmp_path / "out", extractor=StubExtractor(),
        )  # fmt: skip

    missing = workspace / "photos" / "missing.jpg"
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        call([missing])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        call([broken])
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        call([workspace / "photos"], checkpoint=tmp_path / "nothing.pt")
    assert not (tmp_path / "out").exists()  # nothing written before the inputs are known good


def test_repeated_stems_get_distinct_outputs(tmp_path):
    paths = [tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.png", tmp_path / "y.jpg"]
    assert predict.output_stems(paths) == ["x", "x-2", "y"]
