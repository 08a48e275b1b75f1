"""The official V-COCO layout: writer and reader round trip, the ground truth against a literal port of
vsrl_eval.py's `_get_vcocodb`, split specs (trainval = train + val), missing files, and the evaluate CLI."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from hoi_pipeline.artifacts import write_detections
from hoi_pipeline.cli import main
from hoi_pipeline.datasets import load_annotations
from hoi_pipeline.datasets.vcoco import VCOCOAnnotations
from hoi_pipeline.datasets.vcoco_official import (
    COCO_FILE,
    COCOInstance,
    OfficialImage,
    PersonActions,
    VCOCOAction,
    official_files,
    write_vcoco_official,
)
from hoi_pipeline.evaluation import evaluate_vcoco, vcoco_ground_truth
from hoi_pipeline.structures import HOIDetections

CATEGORIES = ("person", "sports ball", "tennis racket", "cake", "knife", "chair")
ACTIONS = (
    VCOCOAction("hold", ("obj",)),  # any category
    VCOCOAction("stand"),  # agent-only
    VCOCOAction("hit", ("instr", "obj"), (("tennis racket",), ("sports ball",))),
    VCOCOAction("eat", ("obj", "instr"), (("cake",), ("knife",))),
    VCOCOAction("sit", ("instr",), (("chair",),)),
)


def person(*box: float, crowd: bool = False) -> COCOInstance:
    return COCOInstance("person", box, iscrowd=crowd)


PARTS = {
    "train": [
        OfficialImage(
            "COCO_train2014_000000000001.jpg", 100, 80,
            (person(10, 10, 40, 70), person(50, 10, 80, 70), COCOInstance("tennis racket", (40, 20, 55, 35)),
             COCOInstance("sports ball", (60, 5, 66, 11))),
            (PersonActions(0, {"hit": {"instr": 2, "obj": 3}, "hold": {"obj": 2}}), PersonActions(1, {"stand": {}})),
        ),
    ],
    "val": [
        OfficialImage(
            "COCO_train2014_000000000002.jpg", 64, 48,
            (person(0, 0, 20, 40), COCOInstance("cake", (20, 20, 40, 35)), COCOInstance("knife", (15, 15, 25, 20)),
             person(40, 0, 60, 40)),  # the second person is not labelled
            (PersonActions(0, {"eat": {"obj": 1, "instr": 2}}),),
        ),
    ],
    "test": [
        OfficialImage(
            "COCO_val2014_000000000003.jpg", 100, 100,
            (person(10, 10, 50, 90), COCOInstance("tennis racket", (50, 20, 70, 40)), person(60, 10, 90, 95),
             person(0, 0, 100, 100, crowd=True), COCOInstance("chair", (-5, 50, 30, 105)), person(20, 60, 45, 100)),
            # A hits with the racket, the ball has no box, and stands; C sits on a chair that leaves the image
            (PersonActions(0, {"hit": {"instr": 1, "obj": None}, "stand": {}}),
             PersonActions(5, {"sit": {"instr": 4}})),
        ),
        OfficialImage(
            "COCO_val2014_000000000004.jpg", 50, 50,
            (person(5, 5, 25, 45), person(30, 5, 30.5, 45)),  # the second is under a pixel wide: no person at all
            (PersonActions(0), PersonActions(1, {"stand": {}})),
        ),
    ],
}  # fmt: skip


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """A written official-layout dataset; returns its `data` folder."""
    root = tmp_path / "v-coco" / "data"
    write_vcoco_official(root, actions=ACTIONS, categories=CATEGORIES, parts=PARTS)
    return root


def test_writer_writes_the_official_files_and_keys(release: Path) -> None:
    assert sorted(p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file()) == [
        COCO_FILE, "splits/vcoco_all.ids", "splits/vcoco_test.ids", "splits/vcoco_train.ids", "splits/vcoco_val.ids",
        "vcoco/vcoco_test.json", "vcoco/vcoco_train.json", "vcoco/vcoco_val.json",
    ]  # fmt: skip
    entries = json.loads((release / "vcoco" / "vcoco_test.json").read_text())
    assert [e["action_name"] for e in entries] == ["hold", "stand", "hit", "eat", "sit"]
    hit = entries[2]
    assert sorted(hit) == ["action_name", "ann_id", "image_id", "include", "label", "role_name", "role_object_id"]
    assert hit["role_name"] == ["agent", "instr", "obj"] and hit["include"] == [[], ["tennis racket"], ["sports ball"]]
    # test rows: A (ann 9), C (ann 14), D (ann 15), E (ann 16); role-major role_object_id, 0 = no object
    assert hit["ann_id"] == [9, 14, 15, 16] and hit["image_id"] == [3, 3, 4, 4] and hit["label"] == [1, 0, 0, 0]
    assert hit["role_object_id"] == [9, 14, 15, 16, 10, 0, 0, 0, 0, 0, 0, 0]
    assert entries[1]["role_name"] == ["agent"] and entries[1]["label"] == [1, 0, 0, 1]
    assert (release / "splits" / "vcoco_test.ids").read_text() == "3\n4\n"
    coco = json.loads((release / COCO_FILE).read_text())
    assert [c["name"] for c in coco["categories"]] == list(CATEGORIES) and coco["categories"][0]["id"] == 1
    assert coco["annotations"][0]["bbox"] == [10.0, 10.0, 30.0, 60.0] and coco["annotations"][0]["area"] == 1800.0


def test_reader_round_trip(release: Path) -> None:
    data = load_annotations(release / "vcoco" / "vcoco_test.json")
    assert isinstance(data, VCOCOAnnotations) and data.benchmark == "vcoco"
    vocab = data.vocabulary
    assert vocab.verbs == ("hold obj", "hit instr", "hit obj", "eat obj", "eat instr", "sit instr")
    assert vocab.verb_roles == ("obj", "instr", "obj", "obj", "instr", "instr")
    assert vocab.objects == CATEGORIES and vocab.person == 0
    # 'hold obj' takes any category (empty include), the others their include lists
    assert [vocab.class_name(c) for c in range(vocab.num_classes)] == [
        "hold obj person", "hold obj sports ball", "hold obj tennis racket", "hold obj cake", "hold obj knife",
        "hold obj chair", "hit instr tennis racket", "hit obj sports ball", "eat obj cake", "eat instr knife",
        "sit instr chair",
    ]  # fmt: skip
    first, second = data.images
    assert (first.filename, first.width, first.height) == ("COCO_val2014_000000000003.jpg", 100, 100)
    # pairs: A with the racket ('hit instr'), C on the chair; the missing ball makes no pair; boxes as written
    assert [vocab.verbs[v] for v in first.verb] == ["hit instr", "sit instr"]
    np.testing.assert_array_equal(first.boxes_h, [[10, 10, 50, 90], [20, 60, 45, 100]])
    np.testing.assert_array_equal(first.boxes_o, [[50, 20, 70, 40], [-5, 50, 30, 105]])
    assert second.num_pairs == 0 and data.empty == ("COCO_val2014_000000000004.jpg",)

    gt = vcoco_ground_truth(data)
    assert gt.complete and gt.action_names == ("hold", "stand", "hit", "eat", "sit") and gt.agent_only == ("stand",)
    t3, t4 = gt.images
    # persons A, B, the crowd and C, in file order; inclusive boxes clipped to the image
    np.testing.assert_array_equal(t3.boxes, [[10, 10, 49, 89], [60, 10, 89, 94], [0, 0, 99, 99], [20, 60, 44, 99]])
    assert t3.ignore.tolist() == [False, True, True, False]
    assert t3.actions.tolist() == [[0, 1, 1, 0, 0], [0] * 5, [0] * 5, [0, 0, 0, 0, 1]]
    np.testing.assert_array_equal(t3.role_boxes[0, 1], [50, 20, 69, 39])  # A's racket
    assert np.isnan(t3.role_boxes[0, 2]).all()  # A's ball: a missing role
    np.testing.assert_array_equal(t3.role_boxes[3, 5], [0, 50, 29, 99])  # the chair, clipped
    # image 4: E is under a pixel wide, so it is no person; D is labelled with no action
    np.testing.assert_array_equal(t4.boxes, [[5, 5, 24, 44]])
    assert t4.ignore.tolist() == [False] and not t4.actions.any()


def test_trainval_combines_train_and_val(release: Path) -> None:
    trainval = load_annotations(release, "trainval")
    assert trainval.filenames == ["COCO_train2014_000000000001.jpg", "COCO_train2014_000000000002.jpg"]
    spec = load_annotations(release, "train+val")
    assert spec.filenames == trainval.filenames and "train+val" in spec.source
    assert [image.verb.tolist() for image in trainval.images] == [[0, 1, 2], [3, 4]]  # hold, hit instr/obj; eat
    # every part shares one vocabulary, so a bank built on trainval serves the test split
    test = load_annotations(release / "vcoco" / "vcoco_test.json")
    assert trainval.vocabulary.verbs == test.vocabulary.verbs
    np.testing.assert_array_equal(trainval.vocabulary.hoi_classes, test.vocabulary.hoi_classes)
    val_gt = vcoco_ground_truth(trainval).images[1]
    assert val_gt.ignore.tolist() == [False, True]  # the unlabelled person of the val image
    train_only = load_annotations(release / "vcoco" / "vcoco_train.json")
    assert train_only.filenames == trainval.filenames[:1]


@pytest.mark.parametrize(
    ("remove", "what"),
    [
        (COCO_FILE, "COCO 2014 instances of the V-COCO images not found"),
        ("splits/vcoco_val.ids", "V-COCO split ids file not found"),
        ("vcoco/vcoco_val.json", "V-COCO annotation file not found"),
    ],
)
def test_a_missing_file_is_one_line_naming_it_and_where_to_get_it(release: Path, remove: str, what: str) -> None:
    (release / remove).unlink()
    with pytest.raises(FileNotFoundError) as error:
        load_annotations(release, "trainval")
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{release / remove}: {what}")
    assert "https://github.com/s-gupta/v-coco" in message and "script_pick_annotations.py" in message
    assert "COCO 2014" in message and "datasets.<name>.splits.<split>.annotations" in message


def test_official_files_of_a_split(tmp_path: Path) -> None:
    files = official_files(tmp_path / "data" / "vcoco" / "vcoco_test.json", "ignored")
    assert files.root == tmp_path / "data" and files.parts == ("test",) and files.coco == tmp_path / "data" / COCO_FILE
    assert official_files(tmp_path, "trainval").parts == ("train", "val")
    assert official_files(tmp_path, "train+val+test").ids[-1] == tmp_path / "splits" / "vcoco_test.ids"
    with pytest.raises(ValueError, match="bad V-COCO split spec"):
        official_files(tmp_path, "train+")
    with pytest.raises(ValueError, match="named vcoco_<part>.json"):
        official_files(tmp_path / "other.json", "test")


def test_inconsistent_files_are_errors_naming_them(release: Path) -> None:
    (release / "splits" / "vcoco_test.ids").write_text("3\n4\n5\n")
    with pytest.raises(ValueError, match=r"vcoco_test.json: its image ids differ from .*vcoco_test.ids"):
        load_annotations(release / "vcoco" / "vcoco_test.json")
    (release / "splits" / "vcoco_test.ids").write_text("3\n4\n")
    coco = json.loads((release / COCO_FILE).read_text())
    coco["annotations"][9]["area"] = 0  # the racket of A's 'hit instr' role: vsrl_eval.py would assert
    (release / COCO_FILE).write_text(json.dumps(coco))
    with pytest.raises(ValueError, match=r"instances_vcoco_all_2014.json: role object 10 of person 9 \(hit\)"):
        load_annotations(release / "vcoco" / "vcoco_test.json")


def test_writer_refuses_what_the_release_cannot_hold(tmp_path: Path) -> None:
    racket_as_ball = OfficialImage("x.jpg", 10, 10, (person(0, 0, 5, 5), COCOInstance("tennis racket", (5, 5, 9, 9))),
                                   (PersonActions(0, {"hit": {"obj": 1}}),))  # fmt: skip
    with pytest.raises(ValueError, match=r"x.jpg: 'hit obj' takes \['sports ball'\], not 'tennis racket'"):
        write_vcoco_official(tmp_path, actions=ACTIONS, categories=CATEGORIES, parts={"test": [racket_as_ball]})
    unlabelled = OfficialImage("y.jpg", 10, 10, (person(0, 0, 5, 5),))
    with pytest.raises(ValueError, match="y.jpg: every image needs a labelled person"):
        write_vcoco_official(tmp_path, actions=ACTIONS, categories=CATEGORIES, parts={"test": [unlabelled]})
    assert not list(tmp_path.rglob("*.json"))  # nothing half-written


# --------------------------------------------------------------------------------------------
# a literal port of vsrl_eval.py's ground truth (`_load_vcoco`, `_get_vcocodb`) as reference


def reference_vcocodb(vsrl_file: Path, coco_file: Path, split_file: Path) -> list[dict]:
    vcoco = json.loads(vsrl_file.read_text())
    for x in vcoco:
        x["role_object_id"] = np.array(x["role_object_id"]).reshape((len(x["role_name"]), -1)).T
        for key in ("ann_id", "label", "image_id"):
            x[key] = np.array(x[key]).reshape((-1, 1))
    coco = json.loads(coco_file.read_text())
    image_ids = np.loadtxt(open(split_file))
    assert np.all(np.equal(np.sort(np.unique(vcoco[0]["image_id"])), image_ids))
    cat_ids = sorted(c["id"] for c in coco["categories"])
    contiguous = {v: i + 1 for i, v in enumerate(cat_ids)}
    images = {im["id"]: im for im in coco["images"]}
    anns = defaultdict(list)
    for ann in coco["annotations"]:
        anns[ann["image_id"]].append(ann)
    num_actions = len(vcoco)
    db = []
    for image_id in np.atleast_1d(image_ids).tolist():  # pycocotools takes a lone id too
        entry = dict(images[image_id])
        objs = anns[image_id]
        valid_objs, valid_ann_ids = [], []
        for obj in objs:
            if "ignore" in obj and obj["ignore"] == 1:
                continue
            x1, y1 = obj["bbox"][0], obj["bbox"][1]
            x2 = x1 + np.maximum(0.0, obj["bbox"][2] - 1.0)
            y2 = y1 + np.maximum(0.0, obj["bbox"][3] - 1.0)
            w, h = entry["width"], entry["height"]
            x1, y1 = np.minimum(w - 1.0, np.maximum(0.0, x1)), np.minimum(h - 1.0, np.maximum(0.0, y1))
            x2, y2 = np.minimum(w - 1.0, np.maximum(0.0, x2)), np.minimum(h - 1.0, np.maximum(0.0, y2))
            if obj["area"] > 0 and x2 > x1 and y2 > y1:
                obj = dict(obj, clean_bbox=[x1, y1, x2, y2])
                valid_objs.append(obj)
                valid_ann_ids.append(obj["id"])
        boxes = np.zeros((len(valid_objs), 4), dtype=np.float32)
        gt_classes = np.zeros(len(valid_objs), dtype=np.int32)
        gt_actions = -np.ones((len(valid_objs), num_actions), dtype=np.int32)
        gt_role_id = -np.ones((len(valid_objs), num_actions, 2), dtype=np.int32)
        for ix, obj in enumerate(valid_objs):
            boxes[ix] = obj["clean_bbox"]
            gt_classes[ix] = contiguous[obj["category_id"]]
            if np.where(vcoco[0]["ann_id"] == obj["id"])[0].size == 0:
                continue
            gt_actions[ix] = 0
            for i, x in enumerate(vcoco):
                has_label = np.where(np.logical_and(x["ann_id"] == obj["id"], x["label"] == 1))[0]
                if has_label.size > 0:
                    gt_actions[ix, i] = 1
                    rids = x["role_object_id"][has_label]
                    for j in range(1, rids.shape[1]):
                        if rids[0, j] == 0:
                            continue
                        aid = np.where(np.array(valid_ann_ids) == rids[0, j])[0]
                        assert aid.size > 0
                        gt_role_id[ix, i, j - 1] = aid[0]
        db.append({"boxes": boxes, "gt_classes": gt_classes, "gt_actions": gt_actions, "gt_role_id": gt_role_id})
    return db


def test_ground_truth_equals_vsrl_evals(release: Path) -> None:
    coco = json.loads((release / COCO_FILE).read_text())
    coco["annotations"][11]["ignore"] = 1  # the crowd person of image 3 is dropped entirely
    (release / COCO_FILE).write_text(json.dumps(coco))
    for part in ("train", "val", "test"):
        data = load_annotations(release / "vcoco" / f"vcoco_{part}.json")
        gt = vcoco_ground_truth(data)
        db = reference_vcocodb(release / "vcoco" / f"vcoco_{part}.json", release / COCO_FILE,
                               release / "splits" / f"vcoco_{part}.ids")  # fmt: skip
        slots = [(a, j) for a, action in enumerate(ACTIONS) for j in range(len(action.roles))]
        assert len(db) == len(gt.images)
        for entry, truth in zip(db, gt.images):
            persons = np.flatnonzero(entry["gt_classes"] == 1)
            np.testing.assert_array_equal(truth.boxes, entry["boxes"][persons])
            np.testing.assert_array_equal(truth.ignore, np.any(entry["gt_actions"][persons] == -1, axis=1))
            np.testing.assert_array_equal(truth.actions, entry["gt_actions"][persons] == 1)
            for c, (a, j) in enumerate(slots):
                role = entry["gt_role_id"][persons, a, j]
                expected = np.where((role > -1)[:, None], entry["boxes"][np.maximum(role, 0)], np.nan)
                np.testing.assert_array_equal(truth.role_boxes[:, c], expected)
    assert vcoco_ground_truth(load_annotations(release / "vcoco" / "vcoco_test.json")).images[0].boxes.shape == (3, 4)


# --------------------------------------------------------------------------------------------
# evaluation end to end on the official layout


def test_evaluate_cli_on_the_official_layout(release: Path, tmp_path: Path) -> None:
    data = load_annotations(release / "vcoco" / "vcoco_test.json")
    gt = vcoco_ground_truth(data)
    detections = []
    for image, truth in zip(data.images, gt.images):
        rows = [
            (truth.boxes[h] + [0, 0, 1, 1], np.nan_to_num(truth.role_boxes[h, r] + [0, 0, 1, 1]), r)
            for h, r in zip(*np.nonzero(truth.actions[:, gt.role_action]))
        ]  # the ground truth as continuous boxes; a missing role as an all-zero box
        detections.append(
            HOIDetections(
                filename=image.filename,
                boxes_h=[row[0] for row in rows], boxes_o=[row[1] for row in rows],
                hoi=[0] * len(rows), verb=[row[2] for row in rows], object=[0] * len(rows), score=[1.0] * len(rows),
            )
        )  # fmt: skip
    write_detections(tmp_path / "det.h5", detections, attrs={})
    out = tmp_path / "results"
    args = ["evaluate", "--annotations", str(release / "vcoco" / "vcoco_test.json"), "--detections"]
    assert main([*args, str(tmp_path / "det.h5"), "--out", str(out)]) == 0
    with open(out / "metrics.csv", newline="") as handle:
        metrics = {m["setting"]: m for m in csv.DictReader(handle)}
    assert float(metrics["scenario_1"]["ap_role"]) == pytest.approx(100.0) and metrics["scenario_1"]["note"] == ""
    assert float(metrics["scenario_2"]["ap_role"]) == pytest.approx(100.0)
    assert metrics["scenario_1"]["num_classes"] == "3"  # hit instr, hit obj (A does hit), sit instr
    assert float(metrics["agent"]["ap_agent"]) == pytest.approx(100.0) and metrics["agent"]["num_classes"] == "2"
    assert "agent-only actions (stand)" in metrics["agent"]["note"]
    # an object box predicted for A's missing ball: wrong in scenario 1 only
    wrong = [d if d.filename != data.images[0].filename else HOIDetections(
        filename=d.filename, boxes_h=d.boxes_h, boxes_o=np.where(d.verb[:, None] == 2, 5.0, d.boxes_o), hoi=d.hoi,
        verb=d.verb, object=d.object, score=d.score) for d in detections]  # fmt: skip
    result = evaluate_vcoco(gt, _flat(data, wrong))
    assert result.scenario("scenario_1").ap[2] == 0.0 and result.scenario("scenario_2").ap[2] == pytest.approx(1.0)


def _flat(data, detections):
    from hoi_pipeline.evaluation import from_hoi_detections

    return from_hoi_detections(data, detections)


def test_annotation_files_lists_what_a_split_reads(release: Path, tmp_path: Path) -> None:
    from hoi_pipeline.datasets import annotation_files

    assert annotation_files(release, "trainval") == [
        release / "vcoco" / "vcoco_train.json", release / "vcoco" / "vcoco_val.json",
        release / "splits" / "vcoco_train.ids", release / "splits" / "vcoco_val.ids", release / COCO_FILE,
    ]  # fmt: skip
    test = release / "vcoco" / "vcoco_test.json"
    assert annotation_files(test) == [test, release / "splits" / "vcoco_test.ids", release / COCO_FILE]
    (tmp_path / "hico.json").write_text("{}")
    assert annotation_files(tmp_path / "hico.json", "train") == [tmp_path / "hico.json"]
    assert annotation_files(tmp_path / "absent.json") == [tmp_path / "absent.json"]
