"""Proposal extraction: post-processing on hand-made boxes, label mapping, the torchvision backend end to
end with a random-init detector loaded through `detector.weights`, the precomputed import, detectron2's
output conversion, the reader, bad images and the atomic write."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import get_model_builder
from torchvision.models.detection import FasterRCNN_ResNet50_FPN_V2_Weights

from hoi_pipeline.artifacts import ProposalsFile, file_digest
from hoi_pipeline.cli import main as cli_main
from hoi_pipeline.config import ConfigError, DetectorConfig, from_dict, to_dict
from hoi_pipeline.datasets.detections_json import write_detections_json
from hoi_pipeline.datasets.hicodet import save_hicodet_json
from hoi_pipeline.detection import build_proposal_extractor
from hoi_pipeline.detection.detectron2_backend import proposals_from_detectron2
from hoi_pipeline.detection.extractor import RawDetections, to_proposals
from hoi_pipeline.detection.label_map import (
    apply_label_table,
    load_label_map,
    map_labels_by_name,
    normalise_class_name,
)
from hoi_pipeline.detection.postprocess import PostprocessSettings, select_proposals
from hoi_pipeline.shards import recorded_config
from hoi_pipeline.stages import detect
from hoi_pipeline.structures import HOIAnnotations, ImageAnnotation, Proposals, Vocabulary

SHARED = Path(__file__).parents[2] / "shared"
COCO91 = FasterRCNN_ResNet50_FPN_V2_Weights.DEFAULT.meta["categories"]
# the dataset's objects: COCO's 80 classes spelled as HICO-DET spells them, in alphabetical order
OBJECTS = tuple(sorted(normalise_class_name(c) for c in COCO91 if c not in ("__background__", "N/A")))
PERSON = OBJECTS.index("person")
TINY_MODEL = "fasterrcnn_mobilenet_v3_large_320_fpn"


def box_row(x: float, w: float = 10.0) -> list[float]:
    """A box of width w starting at x, far enough from the others not to overlap."""
    return [x, 0.0, x + w, 10.0]


# --------------------------------------------------------------------------------------------
# post-processing on hand-made boxes


def test_per_class_nms_suppresses_overlaps_of_one_class_only():
    # [0,0,10,10] vs [1,0,11,10]: intersection 90, union 110, IoU 0.82 > 0.5 -> suppressed in one class
    # [0,0,10,10] vs [5,0,15,10]: intersection 50, union 150, IoU 0.33 -> kept
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [5, 0, 15, 10], [1, 0, 11, 10]], dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], dtype=np.float32)
    labels = np.array([4, 4, 4, 5])  # the last box overlaps box 0 but is another class
    keep = select_proposals(boxes, scores, labels, person=0, settings=PostprocessSettings(min_objects=0))
    assert keep.tolist() == [0, 2, 3]


def test_thresholds_and_limits_per_group():
    h_scores = [0.9, 0.5, 0.3, 0.25, 0.1, 0.05]  # 4 at or above 0.2
    o_scores = [0.15, 0.1]  # none above 0.2
    scores = np.array(h_scores + o_scores, dtype=np.float32)
    boxes = np.array([box_row(20.0 * i) for i in range(len(scores))], dtype=np.float32)
    labels = np.array([0] * 6 + [7, 3])

    keep = select_proposals(boxes, scores, labels, person=0, settings=PostprocessSettings())
    # humans: 4 pass (between min 3 and max 15); objects: none pass, the top min(3, 2) are kept anyway
    assert keep.tolist() == [0, 1, 2, 3, 6, 7]

    keep = select_proposals(boxes, scores, labels, person=0, settings=PostprocessSettings(min_humans=5))
    assert keep.tolist() == [0, 1, 2, 3, 4, 6, 7]  # the 5th human kept below the threshold

    keep = select_proposals(boxes, scores, labels, person=0, settings=PostprocessSettings(min_humans=1, max_humans=2))
    assert keep.tolist() == [0, 1, 6, 7]

    settings = PostprocessSettings(human_score_threshold=0.4, object_score_threshold=0.12, min_humans=0, min_objects=0)
    keep = select_proposals(boxes, scores, labels, person=0, settings=settings)
    assert keep.tolist() == [0, 1, 6]


def test_max_detections_cuts_before_group_limits_and_order_is_humans_first():
    scores = np.array([0.3, 0.95, 0.6, 0.9, 0.5], dtype=np.float32)
    labels = np.array([1, 2, 1, 1, 2])  # person = 1
    boxes = np.array([box_row(20.0 * i) for i in range(5)], dtype=np.float32)
    keep = select_proposals(boxes, scores, labels, person=1, settings=PostprocessSettings(max_detections=3))
    # top 3 by score: 1 (0.95, object), 3 (0.9, human), 2 (0.6, human); humans first, each by score
    assert keep.tolist() == [3, 2, 1]


def test_invalid_boxes_are_dropped_and_tensors_are_accepted():
    boxes = torch.tensor([[0, 0, 10, 10], [5, 5, 5, 9], [0, 0, float("nan"), 3], [30, 0, 40, 10]])
    scores = torch.tensor([0.5, 0.9, 0.9, float("nan")])
    labels = torch.tensor([0, 0, 0, 0])
    keep = select_proposals(boxes, scores, labels, person=0, settings=PostprocessSettings())
    assert keep.tolist() == [0]
    empty = select_proposals(np.zeros((0, 4)), np.zeros(0), np.zeros(0), person=0, settings=PostprocessSettings())
    assert empty.shape == (0,)
    with pytest.raises(ValueError, match="differ in length"):
        select_proposals(np.zeros((2, 4)), np.zeros(1), np.zeros(2), person=0, settings=PostprocessSettings())


def test_settings_are_validated():
    with pytest.raises(ValueError, match="min_humans"):
        PostprocessSettings(min_humans=5, max_humans=2)
    with pytest.raises(ValueError, match="nms_threshold"):
        PostprocessSettings(nms_threshold=1.5)
    with pytest.raises(ConfigError, match=r"detectors\.x: min_objects \(9\) exceeds max_objects"):
        from_dict(dict[str, DetectorConfig], {"x": {"min_objects": 9, "max_objects": 3}}, "detectors")
    defaults = PostprocessSettings.from_config(DetectorConfig())
    assert defaults == PostprocessSettings()  # the config's defaults are the documented UPT/SCG values
    assert (defaults.human_score_threshold, defaults.nms_threshold, defaults.max_detections) == (0.2, 0.5, 100)
    assert (defaults.min_humans, defaults.max_humans, defaults.min_objects, defaults.max_objects) == (3, 15, 3, 15)


# --------------------------------------------------------------------------------------------
# label mapping


def test_class_names_are_matched_after_normalisation():
    assert normalise_class_name("sports ball") == "sports_ball"
    assert normalise_class_name("Hair Dryer") == "hair_drier"
    table = map_labels_by_name(["__background__", "person", "N/A", "dining table", "hair drier", "zebra"],
                               ["dining_table", "hair_drier", "person"])  # fmt: skip
    assert table.tolist() == [-1, 2, -1, 0, 1, -1]
    labels, keep = apply_label_table(np.array([1, 5, 3, 99, 0]), table)
    assert keep.tolist() == [True, False, True, False, False]
    assert labels[keep].tolist() == [2, 0]


def test_label_map_file_overrides_and_errors_name_the_file(tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"1": 2, "3": 0}))
    assert load_label_map(path, 4, 3).tolist() == [-1, 2, -1, 0]
    path.write_text(json.dumps({"1": 7}))
    with pytest.raises(ValueError, match=r"map\.json.*not an object index"):
        load_label_map(path, 4, 3)
    path.write_text(json.dumps({"x": 1}))
    with pytest.raises(ValueError, match="not an integer"):
        load_label_map(path, 4, 3)
    with pytest.raises(FileNotFoundError, match="nothere.json"):
        load_label_map(tmp_path / "nothere.json", 4, 3)


@pytest.mark.skipif(not (SHARED / "hicodet" / "coco91tohico80.json").is_file(), reason="shared data absent")
def test_name_mapping_reproduces_hicodet_coco91_table():
    objects = json.loads((SHARED / "hicodet" / "instances_test2015.json").read_text())["objects"]
    table = map_labels_by_name(COCO91, objects)
    reference = json.loads((SHARED / "hicodet" / "coco91tohico80.json").read_text())
    assert {str(k): int(v) for k, v in enumerate(table) if v >= 0} == reference


@pytest.mark.skipif(not (SHARED / "vcoco" / "instances_vcoco_test.json").is_file(), reason="shared data absent")
def test_name_mapping_covers_vcoco_objects():
    objects = json.loads((SHARED / "vcoco" / "instances_vcoco_test.json").read_text())["objects"]
    table = map_labels_by_name(COCO91, objects)
    assert (table >= 0).sum() == 80
    assert objects[table[COCO91.index("sports ball")]] == "sports ball"


# --------------------------------------------------------------------------------------------
# a tiny split and a random-init detector saved to disk


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = get_model_builder(TINY_MODEL)(weights=None, weights_backbone=None)
    path = tmp_path_factory.mktemp("weights") / "frcnn_random.pt"
    torch.save(model.state_dict(), path)
    return path


def make_split(root: Path, sizes: list[tuple[int, int]]) -> tuple[Path, Path, list[str]]:
    """Images of the given (w, h) and a HICO-DET json listing them; returns (annotations, images, names)."""
    rng = np.random.default_rng(0)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    names = []
    entries = []
    for i, (w, h) in enumerate(sizes):
        name = f"img_{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(images / name)
        names.append(name)
        box = [[1.0, 1.0, w / 2, h / 2]]
        entries.append(ImageAnnotation(name, w, h, box, box, [0], [0], [PERSON]))
    vocabulary = Vocabulary(verbs=("hold",), objects=OBJECTS, hoi_classes=[[0, PERSON]], rare=[], non_rare=[0])
    annotations = root / "split.json"
    save_hicodet_json(HOIAnnotations(vocabulary, tuple(entries)), annotations)
    return annotations, images, names


def tiny_config(weights: Path, **overrides) -> DetectorConfig:
    # score pre-filter 0: a random detector scores ~1/91 per class, so this gives it detections to keep
    settings = {
        "model": TINY_MODEL,
        "weights": str(weights),
        "detector_score_threshold": 0.0,
        "min_size": 64,
        "max_size": 96,
        "batch_size": 2,
        "num_workers": 0,
        "device": "cpu",
    }
    return DetectorConfig(**{**settings, **overrides})


def check_proposals(p: Proposals, width: int, height: int, settings: PostprocessSettings) -> None:
    human = p.labels == PERSON
    n_h = int(human.sum())
    assert human.tolist() == [True] * n_h + [False] * (len(p) - n_h)  # humans first
    for group in (p.scores[human], p.scores[~human]):
        assert np.all(np.diff(group) <= 0)  # each by descending score
    assert n_h <= settings.max_humans and len(p) - n_h <= settings.max_objects
    assert np.all((p.labels >= 0) & (p.labels < len(OBJECTS)))
    assert np.all(p.boxes[:, 2] > p.boxes[:, 0]) and np.all(p.boxes[:, 3] > p.boxes[:, 1])
    assert np.all(p.boxes >= 0) and np.all(p.boxes[:, [0, 2]] <= width) and np.all(p.boxes[:, [1, 3]] <= height)


def test_torchvision_end_to_end_through_weights_path(tmp_path, random_weights):
    sizes = [(64, 48), (40, 56), (72, 40)]
    annotations, images, names = make_split(tmp_path, sizes)
    config = tiny_config(random_weights)
    out = tmp_path / "proposals.h5"
    detect.run(detector=config, annotations=annotations, split="test", images=images, detections=None, out=out)

    file = ProposalsFile(out)
    assert file.filenames == names
    assert file.attrs["backend"] == "torchvision" and file.attrs["model"] == TINY_MODEL
    assert file.attrs["weights"].endswith(f"sha256:{file_digest(random_weights)}")
    assert file.attrs["config"] == recorded_config(config)  # all but `shards`
    assert file.attrs["objects"] == list(OBJECTS) and file.attrs["schema_version"] == 1
    assert file.skipped_images == [] and file.attrs["skipped_count"] == 0
    assert file.read_all(["labels"])["labels"].dtype == np.int16
    settings = PostprocessSettings.from_config(config)
    total = 0
    for name, (w, h) in zip(names, sizes):
        p = file.get(name)
        check_proposals(p, w, h, settings)
        total += len(p)
    assert total > 0

    # the predict path (PIL images, no DataLoader) gives the same proposals as the stage for the same
    # batches (a batch is padded to its largest image, so its composition changes the features)
    extractor = build_proposal_extractor(config, OBJECTS, "cpu")
    direct = [
        p
        for batch in (names[:2], names[2:])
        for p in extractor.extract([Image.open(images / n) for n in batch], list(batch))
    ]
    for p, name in zip(direct, names):
        stored = file.get(name)
        assert p.filename == name
        np.testing.assert_allclose(p.boxes, stored.boxes, rtol=1e-5, atol=1e-3)
        np.testing.assert_array_equal(p.labels, stored.labels)


def test_cli_detect_with_workers_and_empty_entries(tmp_path, random_weights):
    annotations, images, names = make_split(tmp_path, [(48, 48), (56, 40)])
    section = to_dict(tiny_config(random_weights, detector_score_threshold=0.05, num_workers=1))
    out = tmp_path / "p.h5"
    argv = ["detect", "--config-json", json.dumps({"detector": section}), "--annotations", str(annotations),
            "--images", str(images), "--out", str(out)]  # fmt: skip
    assert cli_main(argv) == 0
    file = ProposalsFile(out)
    # a random detector scores every class ~1/91 < 0.05: no detections, empty entries rather than a crash
    assert file.filenames == names and list(file.offsets) == [0, 0, 0]
    assert file[1].boxes.shape == (0, 4) and file[1].labels.shape == (0,)


def test_weights_errors_name_the_file(tmp_path, random_weights):
    bad = tmp_path / "bad.pt"
    bad.write_text("not weights")
    with pytest.raises(ValueError, match="bad.pt: not a loadable weights file"):
        build_proposal_extractor(tiny_config(bad), OBJECTS, "cpu")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        build_proposal_extractor(tiny_config(tmp_path / "missing.pt"), OBJECTS, "cpu")
    with pytest.raises(ValueError, match="does not fit detector.model 'fasterrcnn_resnet50_fpn'"):
        build_proposal_extractor(tiny_config(random_weights, model="fasterrcnn_resnet50_fpn"), OBJECTS, "cpu")
    with pytest.raises(ValueError, match="not one of torchvision's Faster R-CNN builders"):
        build_proposal_extractor(tiny_config(random_weights, model="retinanet_resnet50_fpn"), OBJECTS, "cpu")


def test_non_coco_detector_needs_and_uses_a_label_map(tmp_path):
    torch.manual_seed(0)
    model = get_model_builder(TINY_MODEL)(weights=None, weights_backbone=None, num_classes=3)
    weights = tmp_path / "three.pt"
    torch.save({"model": model.state_dict()}, weights)  # a training checkpoint wrapping the state_dict
    with pytest.raises(ValueError, match="3 classes, not COCO's 91; give detector.label_map"):
        build_proposal_extractor(tiny_config(weights), OBJECTS, "cpu")
    label_map = tmp_path / "map.json"
    label_map.write_text(json.dumps({"1": PERSON}))  # class 2 has no dataset counterpart: dropped
    extractor = build_proposal_extractor(tiny_config(weights, label_map=str(label_map)), OBJECTS, "cpu")
    assert extractor.label_table.tolist() == [-1, PERSON, -1]
    image = Image.fromarray(np.full((40, 40, 3), 128, dtype=np.uint8))
    (p,) = extractor.extract([image], ["grey.png"])
    assert np.all(p.labels == PERSON) and 0 < len(p) <= 15


# --------------------------------------------------------------------------------------------
# bad images and the atomic write


def test_bad_image_is_an_error_naming_it_and_nothing_is_written(tmp_path, random_weights):
    annotations, images, names = make_split(tmp_path, [(48, 48), (48, 48), (48, 48)])
    (images / names[1]).write_bytes(b"this is not a png")
    out = tmp_path / "p.h5"
    out.write_bytes(b"previous run")
    with pytest.raises(ValueError, match=r"img_1\.png: cannot read image"):
        detect.run(detector=tiny_config(random_weights), annotations=annotations, split="test", images=images,
                   detections=None, out=out)  # fmt: skip
    assert out.read_bytes() == b"previous run"  # untouched
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith(".")] == []  # no temporary left behind


def test_bad_and_missing_images_are_skipped_when_configured(tmp_path, random_weights, caplog):
    annotations, images, names = make_split(tmp_path, [(48, 48), (48, 48), (48, 48)])
    (images / names[0]).write_bytes(b"\x89PNG broken")
    (images / names[2]).unlink()
    out = tmp_path / "p.h5"
    config = tiny_config(random_weights, on_bad_image="skip")
    detect.run(detector=config, annotations=annotations, split="test", images=images, detections=None, out=out)
    file = ProposalsFile(out)
    assert file.filenames == names
    assert file.skipped_images == [names[0], names[2]] and file.attrs["skipped_count"] == 2
    assert len(file[0]) == 0 and len(file[2]) == 0 and len(file[1]) > 0
    assert "img_0.png" in caplog.text and "img_2.png" in caplog.text


def test_interrupted_write_leaves_no_file(tmp_path, random_weights, monkeypatch):
    annotations, images, _ = make_split(tmp_path, [(48, 48)])
    out = tmp_path / "p.h5"
    original = h5py.Group.create_dataset
    calls = []

    def fail_on_third_dataset(self, *args, **kwargs):  # filenames and offsets are written, then the disk fills
        calls.append(args[0] if args else kwargs.get("name"))
        if len(calls) == 3:
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", fail_on_third_dataset)
    with pytest.raises(OSError, match="disk full"):
        detect.run(detector=tiny_config(random_weights), annotations=annotations, split="test", images=images,
                   detections=None, out=out)  # fmt: skip
    assert calls[:2] == ["filenames", "offsets"]
    assert not out.exists() and list(tmp_path.glob(".p.h5*")) == []


# --------------------------------------------------------------------------------------------
# precomputed import, detectron2 conversion, devices


def test_precomputed_import_maps_labels_and_postprocesses(tmp_path):
    annotations, images, names = make_split(tmp_path, [(64, 64), (64, 64), (64, 64)])
    file_objects = ["sports_ball", "person"]  # the json's own class order
    first = Proposals(
        names[0],
        boxes=[[0, 0, 10, 10], [1, 0, 11, 10], [30, 30, 40, 40], [20, 0, 30, 10], [40, 0, 50, 5]],
        scores=[0.9, 0.8, 0.7, 0.1, 0.6],
        labels=[1, 1, 0, 0, 0],
    )
    second = Proposals(names[1], boxes=np.zeros((0, 4)), scores=[], labels=[])
    other = Proposals("not_in_split.png", boxes=[[0, 0, 5, 5]], scores=[0.5], labels=[1])
    detections = tmp_path / "detections.json"
    write_detections_json(detections, [first, second, other], file_objects)
    out = tmp_path / "p.h5"
    config = DetectorConfig(backend="precomputed", min_objects=1, allow_missing_images=True)  # names[2] is absent
    detect.run(detector=config, annotations=annotations, split="test", images=images, detections=detections, out=out)

    file = ProposalsFile(out)
    assert file.filenames == names
    assert file.attrs["backend"] == "precomputed"
    assert file.attrs["weights"] == f"file:detections.json:sha256:{file_digest(detections)}"
    p = file.get(names[0])
    ball = OBJECTS.index("sports_ball")
    # the second person box overlaps the first (IoU 0.82) and is suppressed; the 0.1 ball is under the
    # 0.2 threshold and more than min_objects=1 pass, so it is dropped
    assert p.labels.tolist() == [PERSON, ball, ball]
    np.testing.assert_allclose(p.scores, [0.9, 0.7, 0.6])
    np.testing.assert_allclose(p.boxes[1], [30, 30, 40, 40])
    assert len(file.get(names[1])) == 0 and len(file.get(names[2])) == 0  # empty in json / absent from it
    with pytest.raises(KeyError, match="not_in_split.png"):
        file.get("not_in_split.png")


def test_precomputed_needs_a_detections_file_and_has_no_extractor(tmp_path):
    annotations, images, _ = make_split(tmp_path, [(32, 32)])
    with pytest.raises(ValueError, match="--detections"):
        detect.run(detector=DetectorConfig(backend="precomputed"), annotations=annotations, split="test",
                   images=images, detections=None, out=tmp_path / "p.h5")  # fmt: skip
    with pytest.raises(ValueError, match="cannot run on new images"):
        build_proposal_extractor(DetectorConfig(backend="precomputed"), OBJECTS, "cpu")


def test_detectron2_outputs_become_proposals():
    thing_classes = [c for c in COCO91 if c not in ("__background__", "N/A")]  # detectron2's contiguous ids
    table = map_labels_by_name(thing_classes, OBJECTS)
    instances = SimpleNamespace(
        pred_boxes=SimpleNamespace(tensor=torch.tensor([[0.0, 0, 10, 10], [20, 0, 30, 10], [0, 0, 10, 10]])),
        scores=torch.tensor([0.9, 0.5, 0.3]),
        pred_classes=torch.tensor([0, thing_classes.index("dining table"), thing_classes.index("tv")]),
    )
    p = proposals_from_detectron2({"instances": instances}, "x.jpg", label_table=table, person=PERSON,
                                  settings=PostprocessSettings())  # fmt: skip
    assert p.filename == "x.jpg"
    assert p.labels.tolist() == [PERSON, OBJECTS.index("dining_table"), OBJECTS.index("tv")]
    np.testing.assert_allclose(p.boxes[1], [20, 0, 30, 10])
    with pytest.raises(ValueError, match="instances"):
        proposals_from_detectron2({}, "x.jpg", label_table=table, person=PERSON, settings=PostprocessSettings())


def test_detectron2_backend_without_detectron2_says_how_to_install():
    try:
        import detectron2  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("detectron2 is installed here")
    config = DetectorConfig(backend="detectron2", detectron2_config="COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml")
    with pytest.raises(ValueError, match="pip install"):
        build_proposal_extractor(config, OBJECTS, "cpu")


def test_unmapped_detector_classes_are_dropped_before_limits():
    table = np.array([-1, PERSON, -1])  # label 2 has no dataset counterpart
    raw = RawDetections(
        boxes=np.array([box_row(0), box_row(20), box_row(40)], dtype=np.float32),
        scores=np.array([0.9, 0.95, 0.4], dtype=np.float32),
        labels=np.array([1, 2, 1]),
    )
    p = to_proposals("a.png", raw, label_table=table, person=PERSON, settings=PostprocessSettings())
    assert p.labels.tolist() == [PERSON, PERSON] and p.scores.tolist() == pytest.approx([0.9, 0.4])

