"""The V-COCO-style synthetic family: the official release layout, read back by the official-layout reader."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from hoi_pipeline.config import ConfigError, SyntheticConfig, from_dict
from hoi_pipeline.datasets import load_annotations
from hoi_pipeline.datasets.detections_json import read_detections_json
from hoi_pipeline.datasets.synthetic import vcoco_scenes
from hoi_pipeline.datasets.vcoco import VCOCOAnnotations
from hoi_pipeline.stages import generate_demo

SETTINGS = SyntheticConfig(family="vcoco", seed=2, num_train=24, num_test=12, image_size=96)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("vcoco_demo")
    return out, generate_demo.run(settings=SETTINGS, out_dir=out)


def digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix != ".png"}


def test_stage_writes_the_official_layout_and_returns_its_files(written):
    out, paths = written
    expected = [
        "images", "detections_train.json", "detections_test.json", "instances_vcoco_all_2014.json",
        "splits/vcoco_train.ids", "splits/vcoco_test.ids", "splits/vcoco_all.ids",
        "vcoco/vcoco_train.json", "vcoco/vcoco_test.json",
    ]
    assert generate_demo.demo_outputs(SETTINGS) == expected
    assert paths == [out / name for name in expected] and all(p.exists() for p in paths)
    assert sorted(p.name for p in out.iterdir()) == sorted({name.split("/")[0] for name in expected})  # no staging
    for part, count in (("train", 24), ("test", 12)):
        assert len(list((out / "images" / part).glob("*.png"))) == count


def test_files_parse_as_the_official_structures(written):
    """What vsrl_eval.py's VCOCOeval reads: the action list, the ids file and the COCO instances."""
    out, _ = written
    coco = json.loads((out / "instances_vcoco_all_2014.json").read_text())
    assert coco["categories"][0] == {"id": 1, "name": "person", "supercategory": ""}
    assert [c["name"] for c in coco["categories"]] == list(vcoco_scenes.categories())
    images = {image["id"]: image for image in coco["images"]}
    anns = {ann["id"]: ann for ann in coco["annotations"]}
    for ann in anns.values():
        x, y, w, h = ann["bbox"]
        image = images[ann["image_id"]]
        assert w >= 2 and h >= 2 and x >= 0 and y >= 0 and x + w <= image["width"] and y + h <= image["height"]
        assert ann["area"] == pytest.approx(w * h) and ann["iscrowd"] == 0
    for part in ("train", "test"):
        actions = json.loads((out / "vcoco" / f"vcoco_{part}.json").read_text())
        assert [a["action_name"] for a in actions] == [name for name, _ in vcoco_scenes.ACTION_ROLES]
        ids = np.loadtxt(out / "splits" / f"vcoco_{part}.ids")
        rows = len(actions[0]["ann_id"])
        assert np.array_equal(np.sort(np.unique(actions[0]["image_id"])), ids)  # vsrl_eval.py's "simple check"
        for action in actions:
            assert action["role_name"][0] == "agent" and len(action["include"]) == len(action["role_name"])
            assert action["ann_id"] == actions[0]["ann_id"] and action["image_id"] == actions[0]["image_id"]
            role_ids = np.array(action["role_object_id"]).reshape(len(action["role_name"]), -1).T  # as _load_vcoco
            assert role_ids.shape == (rows, len(action["role_name"]))
            assert (role_ids[:, 0] == action["ann_id"]).all()
            for row, label in enumerate(action["label"]):
                person = anns[action["ann_id"][row]]
                assert person["category_id"] == 1 and person["image_id"] == action["image_id"][row]
                for role, target in zip(action["role_name"][1:], role_ids[row, 1:]):
                    assert label == 1 or target == 0
                    if target:  # a role object of the same image, of a category the role includes
                        category = coco["categories"][anns[target]["category_id"] - 1]["name"]
                        assert anns[target]["image_id"] == person["image_id"]
                        assert category in action["include"][action["role_name"].index(role)]


def test_files_load_through_the_official_reader_with_complete_ground_truth(written):
    out, _ = written
    for part, count in (("train", 24), ("test", 12)):
        split = load_annotations(out / "vcoco" / f"vcoco_{part}.json")
        assert isinstance(split, VCOCOAnnotations) and split.benchmark == "vcoco" and len(split.images) == count
        truth = split.ground_truth
        assert truth.complete and set(truth.agent_only) == {"stand", "walk", "run", "smile"}
        assert not any(image.ignore.any() for image in truth.images), "every drawn person is labelled"
        assert all(len(image.boxes) >= 1 for image in truth.images)
        assert set(split.vocabulary.verb_roles) == {"obj", "instr"}
        assert {"hit instr", "hit obj", "eat obj", "eat instr"} <= set(split.vocabulary.verbs)
        detections = read_detections_json(out / f"detections_{part}.json", split.vocabulary.objects)
        assert set(detections) <= set(split.filenames) and len(detections) == count


def test_scenarios_1_and_2_differ_on_persons_whose_role_object_is_absent(written):
    out, _ = written
    truth = load_annotations(out / "vcoco" / "vcoco_test.json").ground_truth
    missing, agent_only = Counter(), Counter()
    for image in truth.images:
        for r, name in enumerate(truth.role_names):
            does = image.actions[:, truth.role_action[r]]
            missing[name] += int((does & np.isnan(image.role_boxes[:, r]).all(axis=1)).sum())
        for a in (truth.action_names.index(name) for name in truth.agent_only):
            agent_only[truth.action_names[a]] += int(image.actions[:, a].sum())
    assert {name for name, n in missing.items() if n} == {"hit obj", "eat instr"}
    assert agent_only["stand"] > 0 and sum(agent_only.values()) > agent_only["stand"]


def test_detections_use_coco_names_and_look_like_a_detector(written):
    out, _ = written
    payload = json.loads((out / "detections_test.json").read_text())
    assert payload["objects"] == list(vcoco_scenes.categories())
    assert {"sports ball", "cell phone", "tennis racket"} <= set(payload["objects"])
    scores = [s for entry in payload["images"].values() for s in entry["scores"]]
    assert len(scores) > 12 and 0 < min(scores) and max(scores) < 1


def test_generation_is_deterministic_per_seed(written, tmp_path):
    out, _ = written
    generate_demo.run(settings=SETTINGS, out_dir=tmp_path / "again")
    assert digests(tmp_path / "again") == digests(out)
    first = sorted((out / "images" / "train").glob("*.png"))[0]
    assert (tmp_path / "again" / "images" / "train" / first.name).read_bytes() == first.read_bytes()
    other = SyntheticConfig(family="vcoco", seed=3, num_train=24, num_test=12, image_size=96)
    generate_demo.run(settings=other, out_dir=tmp_path / "other")
    assert digests(tmp_path / "other")["vcoco/vcoco_train.json"] != digests(out)["vcoco/vcoco_train.json"]


def test_a_val_part_makes_trainval(tmp_path):
    settings = SyntheticConfig(family="vcoco", seed=1, num_train=6, num_val=4, num_test=3, image_size=96)
    generate_demo.run(settings=settings, out_dir=tmp_path)
    assert (tmp_path / "vcoco" / "vcoco_val.json").is_file() and (tmp_path / "images" / "val").is_dir()
    trainval = load_annotations(tmp_path, "trainval")
    assert len(trainval.images) == 10
    drawn = {p.name for part in ("train", "val") for p in (tmp_path / "images" / part).iterdir()}
    assert set(trainval.filenames) == drawn


def test_config_rejects_a_val_part_outside_the_vcoco_family():
    with pytest.raises(ConfigError, match="num_val"):
        from_dict(SyntheticConfig, {"num_val": 3}, "datasets.demo.synthetic")
    with pytest.raises(ConfigError, match="family"):
        from_dict(SyntheticConfig, {"family": "hico"}, "datasets.demo.synthetic")


def test_action_roles_are_predictable_from_box_geometry():
    """1-nearest-neighbour on (person box, role object box), per object class, recovers the action-role."""
    def pairs(split):
        rows = []
        for scene in split:
            boxes, record = scene.instance_boxes, scene.record
            for person in record.persons:
                for action, roles in person.actions.items():
                    for role, target in roles.items():
                        if target is not None:
                            rows.append((layout_features(boxes[person.person], boxes[target]),
                                         record.instances[target].category, f"{action} {role}"))
        return np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), np.array([r[2] for r in rows])

    x_train, obj_train, cls_train = pairs(vcoco_scenes.generate_scenes("train", 80, 128, 0))
    x_test, obj_test, cls_test = pairs(vcoco_scenes.generate_scenes("test", 40, 128, 0))
    scale = x_train.std(axis=0) + 1e-6
    correct = majority = 0
    for x, obj, cls in zip(x_test, obj_test, cls_test):
        same = obj_train == obj
        correct += cls_train[same][np.argmin(np.abs((x_train[same] - x) / scale).sum(axis=1))] == cls
        majority += Counter(cls_train[same].tolist()).most_common(1)[0][0] == cls
    assert correct / len(x_test) >= 0.9 and correct > majority + 0.1 * len(x_test)


def layout_features(h: np.ndarray, o: np.ndarray) -> np.ndarray:
    w, ht = h[2] - h[0], h[3] - h[1]
    return np.array([(o[0] - h[0]) / w, (o[1] - h[1]) / ht, (o[2] - h[2]) / w, (o[3] - h[3]) / ht,
                     np.log((o[2] - o[0]) / w), np.log((o[3] - o[1]) / ht), min(o[0] - h[2], h[0] - o[2]) / w])
