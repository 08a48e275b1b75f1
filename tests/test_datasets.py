"""Dataset readers: HICO-DET json, the official anno_bbox.mat, `load_annotations`, the detections json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from hoi_pipeline.datasets import load_annotations
from hoi_pipeline.datasets.detections_json import read_detections_json, write_detections_json
from hoi_pipeline.datasets.hicodet import hicodet_json_payload, load_hicodet_json, save_hicodet_json
from hoi_pipeline.datasets.hicodet_mat import load_hicodet_mat
from hoi_pipeline.structures import Proposals

SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL_HICO_TEST = SHARED / "hicodet" / "instances_test2015.json"


# --------------------------------------------------------------------------------------------
# HICO-DET json


def tiny_hicodet_payload() -> dict:
    return {
        "annotation": [
            {"boxes_h": [[1, 1, 10, 20], [5, 5, 6, 6]], "boxes_o": [[11, 2, 30, 12], [1, 1, 50, 40]],
             "hoi": [1, 0], "object": [0, 1], "verb": [1, 0]},
            {"boxes_h": [], "boxes_o": [], "hoi": [], "object": [], "verb": []},
        ],
        "filenames": ["a.jpg", "b.jpg"],
        "size": [[64, 48], [32, 32]],
        "objects": ["bicycle", "person"],
        "verbs": ["hug", "ride"],
        "correspondence": [[0, 1, 0], [1, 0, 1]],  # [hoi, object, verb]: 0 = hug person, 1 = ride bicycle
        "rare": [0],
        "non_rare": [1],
        "empty": [1],
    }


def test_hicodet_json_boxes_become_continuous_and_classes_come_from_the_file(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(tiny_hicodet_payload()))
    data = load_hicodet_json(path)
    vocab = data.vocabulary
    assert vocab.objects == ("bicycle", "person") and vocab.person == 1
    assert vocab.class_name(0) == "hug person" and vocab.class_name(1) == "ride bicycle"
    assert vocab.rare.tolist() == [0] and vocab.non_rare.tolist() == [1]
    first = data.images[0]
    # 1-based inclusive (1, 1, 10, 20) covers pixels 0..9 x 0..19 -> continuous (0, 0, 10, 20)
    np.testing.assert_array_equal(first.boxes_h[0], [0, 0, 10, 20])
    np.testing.assert_array_equal(first.boxes_o[1], [0, 0, 50, 40])
    assert (first.width, first.height) == (64, 48)
    assert data.empty == ("b.jpg",) and data.images[1].num_pairs == 0


def test_hicodet_json_save_load_round_trip_is_exact(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(tiny_hicodet_payload()))
    data = load_hicodet_json(path)
    save_hicodet_json(data, tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text()) == tiny_hicodet_payload()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("correspondence"), "missing keys \\['correspondence'\\]"),
        (lambda d: d["filenames"].pop(), "differ in length"),
        (lambda d: d.update(correspondence=[[0, 1, 0], [2, 0, 1]]), "must number the HOI classes"),
    ],
)
def test_malformed_hicodet_json_is_an_error_naming_the_file(tmp_path, edit, message):
    payload = tiny_hicodet_payload()
    edit(payload)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match=message) as error:
        load_hicodet_json(path)
    assert "bad.json" in str(error.value)


@pytest.mark.skipif(not REAL_HICO_TEST.is_file(), reason="real HICO-DET annotations not on this machine")
def test_real_hicodet_test_json_loads_and_round_trips(tmp_path):
    original = json.loads(REAL_HICO_TEST.read_text())
    data = load_annotations(REAL_HICO_TEST)
    vocab = data.vocabulary
    assert len(data.images) == 9658 and vocab.num_classes == 600
    assert vocab.num_objects == 80 and vocab.num_verbs == 117 and len(vocab.rare) == 138
    assert vocab.objects[vocab.person] == "person"
    assert vocab.class_name(0) == "board airplane"
    payload = hicodet_json_payload(data)
    for key in ("filenames", "size", "objects", "verbs", "correspondence", "rare", "non_rare", "empty"):
        assert payload[key] == original[key], key
    for mine, theirs in zip(payload["annotation"], original["annotation"]):
        for key in ("boxes_h", "boxes_o", "hoi", "object", "verb"):
            np.testing.assert_array_equal(np.asarray(mine[key]).reshape(-1), np.asarray(theirs[key]).reshape(-1))
    save_hicodet_json(data, tmp_path / "copy.json")
    again = load_annotations(tmp_path / "copy.json")
    for a, b in zip(again.images[:200], data.images[:200]):
        np.testing.assert_array_equal(a.boxes_h, b.boxes_h)
        np.testing.assert_array_equal(a.hoi, b.hoi)


# --------------------------------------------------------------------------------------------
# anno_bbox.mat


def struct_array(records: list[dict], fields: tuple[str, ...]) -> np.ndarray:
    """A MATLAB 1 x K struct array for scipy.io.savemat."""
    array = np.zeros((1, len(records)), dtype=[(name, object) for name in fields])
    for i, record in enumerate(records):
        for name in fields:
            array[0, i][name] = record[name]
    return array


BOX_FIELDS = ("x1", "y1", "x2", "y2")
HOI_FIELDS = ("id", "bboxhuman", "bboxobject", "connection", "invis")


def boxes(*rows: tuple[int, int, int, int]) -> np.ndarray:
    return struct_array([dict(zip(BOX_FIELDS, row)) for row in rows], BOX_FIELDS)


def visible(class_id: int, humans: np.ndarray, objects: np.ndarray, connection: list[list[int]]) -> dict:
    return {"id": class_id, "bboxhuman": humans, "bboxobject": objects,
            "connection": np.asarray(connection, dtype=np.float64), "invis": 0}


def invisible(class_id: int) -> dict:
    empty = np.zeros((0, 0))
    return {"id": class_id, "bboxhuman": empty, "bboxobject": empty, "connection": empty, "invis": 1}


def image(filename: str, hois: list[dict], width: int = 640, height: int = 480) -> dict:
    size = struct_array([{"width": width, "height": height, "depth": 3}], ("width", "height", "depth"))
    return {"filename": filename, "size": size, "hoi": struct_array(hois, HOI_FIELDS)}


def write_tiny_mat(path: Path, test_images: list[dict] | None = None) -> None:
    """3 HOI classes: 1 = ride bicycle, 2 = hold sports ball, 3 = no_interaction person."""
    list_action = struct_array(
        [
            {"nname": "bicycle", "vname": "ride", "vname_ing": "riding"},
            {"nname": "sports ball", "vname": "hold", "vname_ing": "holding"},
            {"nname": "person", "vname": "no_interaction", "vname_ing": "no_interaction"},
        ],
        ("nname", "vname", "vname_ing"),
    ).T  # 3 x 1 as in the official file
    ten_objects = boxes(*[(10 * k + 1, 1, 10 * k + 5, 5) for k in range(5)])
    train = [
        # class 1: 10 visible training pairs (2 humans x 5 objects) -> exactly not rare
        image("train_1.jpg", [
            visible(1, boxes((1, 1, 100, 200), (101, 1, 200, 200)), ten_objects,
                    [[h, o] for h in (1, 2) for o in range(1, 6)]),
            invisible(2),
        ]),
        # a single hoi entry with one human, one object, one connection row: loadmat squeezes all of it
        image("train_2.jpg", [visible(2, boxes((5, 6, 50, 60)), boxes((40, 45, 70, 80)), [[1, 1]])]),
        image("train_3.jpg", [invisible(3)]),  # nothing visible -> an empty image
    ]
    test = test_images if test_images is not None else [
        image("test_1.jpg", [
            invisible(1),
            visible(3, boxes((1, 1, 10, 10), (20, 20, 30, 30)), boxes((11, 11, 19, 19)), [[1, 1], [2, 1]]),
        ], width=320, height=240),
    ]
    fields = ("filename", "size", "hoi")
    scipy.io.savemat(path, {
        "list_action": list_action,
        "bbox_train": struct_array(train, fields),
        "bbox_test": struct_array(test, fields),
    })


def test_mat_loader_builds_the_json_layout_vocabulary(tmp_path):
    path = tmp_path / "anno_bbox.mat"
    write_tiny_mat(path)
    data = load_hicodet_mat(path, "train")
    vocab = data.vocabulary
    assert vocab.objects == ("bicycle", "person", "sports_ball")  # alphabetical, underscores
    assert vocab.verbs == ("hold", "no_interaction", "ride")
    assert vocab.verbs_ing == ("holding", "no_interaction", "riding")
    assert [vocab.class_name(i) for i in range(3)] == ["ride bicycle", "hold sports_ball", "no_interaction person"]
    # class 0 has exactly 10 visible training pairs -> non-rare; class 1 has 1 (its invisible entry does not count)
    assert vocab.non_rare.tolist() == [0] and vocab.rare.tolist() == [1, 2]


def test_mat_loader_pairs_boxes_and_empty_images(tmp_path):
    path = tmp_path / "anno_bbox.mat"
    write_tiny_mat(path)
    train = load_hicodet_mat(path, "train")
    assert train.filenames == ["train_1.jpg", "train_2.jpg", "train_3.jpg"]
    first, second, third = train.images
    assert first.num_pairs == 10 and (first.hoi == 0).all()
    np.testing.assert_array_equal(first.boxes_h[5], [100, 0, 200, 200])  # human 2, 1-based -> continuous
    np.testing.assert_array_equal(first.boxes_o[6], [10, 0, 15, 5])  # object 2
    assert second.num_pairs == 1 and second.hoi.tolist() == [1]
    np.testing.assert_array_equal(second.boxes_h, [[4, 5, 50, 60]])
    np.testing.assert_array_equal(second.boxes_o, [[39, 44, 70, 80]])
    assert second.verb.tolist() == [0] and second.object.tolist() == [2]  # hold, sports_ball
    assert third.num_pairs == 0 and train.empty == ("train_3.jpg",)

    test = load_annotations(path, "test")  # dispatch by suffix
    (only,) = test.images
    assert (only.width, only.height) == (320, 240)
    assert only.hoi.tolist() == [2, 2]
    np.testing.assert_array_equal(only.boxes_h, [[0, 0, 10, 10], [19, 19, 30, 30]])
    np.testing.assert_array_equal(only.boxes_o, [[10, 10, 19, 19], [10, 10, 19, 19]])
    assert test.vocabulary.rare.tolist() == [1, 2]  # counted from bbox_train even when loading test
    assert test.empty == ()


def test_mat_loader_errors_name_the_file_and_image(tmp_path):
    path = tmp_path / "anno_bbox.mat"
    bad = image("bad.jpg", [visible(1, boxes((1, 1, 5, 5)), boxes((2, 2, 6, 6)), [[1, 2]])])
    write_tiny_mat(path, test_images=[bad])
    with pytest.raises(ValueError, match="anno_bbox.mat: image 'bad.jpg'.*connection indexes outside"):
        load_hicodet_mat(path, "test")
    with pytest.raises(ValueError, match="split must be one of"):
        load_hicodet_mat(path, "val")
    scipy.io.savemat(tmp_path / "other.mat", {"x": np.ones(3)})
    with pytest.raises(ValueError, match="other.mat: not HICO-DET's anno_bbox.mat"):
        load_annotations(tmp_path / "other.mat", "train")


# --------------------------------------------------------------------------------------------
# load_annotations dispatch


def test_load_annotations_dispatch_and_errors(tmp_path):
    good = tmp_path / "hico.json"
    good.write_text(json.dumps(tiny_hicodet_payload()))
    assert load_annotations(good).vocabulary.num_classes == 2
    with pytest.raises(FileNotFoundError, match="nowhere.json: annotation file not found"):
        load_annotations(tmp_path / "nowhere.json")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="notes.txt: unknown annotation format"):
        load_annotations(tmp_path / "notes.txt")
    (tmp_path / "other.json").write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="other.json: neither a HICO-DET json"):
        load_annotations(tmp_path / "other.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        load_annotations(tmp_path / "broken.json")


# --------------------------------------------------------------------------------------------
# detections json


def test_detections_json_round_trip_maps_labels_by_name(tmp_path):
    path = tmp_path / "detections.json"
    file_objects = ["sports_ball", "person", "bicycle"]
    proposals = [
        Proposals("a.png", [[0, 0, 10.5, 20], [3, 4, 5, 6]], [0.9, 0.25], [1, 0]),
        Proposals("b.png", np.zeros((0, 4)), [], []),
    ]
    write_detections_json(path, proposals, file_objects)
    payload = json.loads(path.read_text())
    assert payload["format"] == "hoi-pipeline-detections" and payload["box_format"] == "xyxy"
    dataset_objects = ["bicycle", "person", "sports_ball"]
    read = read_detections_json(path, dataset_objects)
    assert set(read) == {"a.png", "b.png"}
    np.testing.assert_allclose(read["a.png"].boxes, [[0, 0, 10.5, 20], [3, 4, 5, 6]])
    np.testing.assert_allclose(read["a.png"].scores, [0.9, 0.25])
    assert read["a.png"].labels.tolist() == [1, 2]  # person -> 1, sports_ball -> 2 in the dataset's order
    assert len(read["b.png"]) == 0 and read["b.png"].boxes.shape == (0, 4)


def valid_detections() -> dict:
    return {"format": "hoi-pipeline-detections", "version": 1, "box_format": "xyxy", "objects": ["person", "kite"],
            "images": {"x.png": {"boxes": [[0, 0, 4, 4]], "scores": [0.5], "labels": [1]}}}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(objects=["person", "dragon"]), "\\['dragon'\\] are not classes of the dataset"),
        (lambda d: d["images"]["x.png"].update(scores=[1.5]), "image 'x.png': scores must lie in \\[0, 1\\]"),
        (lambda d: d["images"]["x.png"].update(boxes=[[0, 0, 4]]), "image 'x.png': boxes must have shape"),
        (lambda d: d["images"]["x.png"].update(boxes=[[5, 0, 4, 4]]), "image 'x.png': boxes must be finite"),
        (lambda d: d["images"]["x.png"].pop("labels"), "image 'x.png': expected an object with"),
        (lambda d: d["images"]["x.png"].update(labels=[2]), "image 'x.png': labels must be integers"),
        (lambda d: d["images"]["x.png"].update(labels=[0.5]), "image 'x.png': labels must be integers"),
        (lambda d: d["images"]["x.png"].update(scores=[0.5, 0.4]), "image 'x.png': 1 boxes, 2 scores"),
        (lambda d: d.update(format="coco"), "not a detections file"),
        (lambda d: d.update(box_format="xywh"), "box_format 'xywh' is not supported"),
    ],
)
def test_malformed_detections_json_is_an_error_naming_file_and_image(tmp_path, edit, message):
    payload = valid_detections()
    edit(payload)
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match=message) as error:
        read_detections_json(path, ["kite", "person"])
    assert "dets.json" in str(error.value)


def test_valid_detections_json_reads(tmp_path):
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(valid_detections()))
    read = read_detections_json(path, ["kite", "person"])
    assert read["x.png"].labels.tolist() == [0]
