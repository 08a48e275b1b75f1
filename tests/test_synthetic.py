"""Synthetic demo scenes: content limits, geometry rules, long tail, detections, and the stage's files."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import PIL
import pytest
from PIL import Image

from hoi_pipeline.config import ConfigError, SyntheticConfig, from_dict
from hoi_pipeline.datasets import load_annotations
from hoi_pipeline.datasets.detections_json import read_detections_json
from hoi_pipeline.datasets.synthetic import RULES, generate_dataset, synthetic_vocabulary
from hoi_pipeline.stages import generate_demo

SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL_HICO_TEST = SHARED / "hicodet" / "instances_test2015.json"


@pytest.fixture(scope="module")
def demo():
    """The default demo sizes (what the pipeline's demo trains and evaluates on)."""
    return generate_dataset(seed=0, num_train=240, num_test=80, image_size=192)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(K, L) IoU of two box sets."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def pairs_of(split, verb: str, obj: str):
    vocab = split.annotations.vocabulary
    target = vocab.hoi_lookup()[vocab.verbs.index(verb), vocab.objects.index(obj)]
    for image in split.annotations.images:
        for h, o, c in zip(image.boxes_h, image.boxes_o, image.hoi):
            if c == target:
                yield h, o


def test_vocabulary_shares_objects_and_verbs_across_classes():
    vocab = synthetic_vocabulary()
    assert vocab.num_classes == len(RULES) >= 12
    assert list(vocab.objects) == sorted(vocab.objects) and "person" in vocab.objects
    assert list(vocab.verbs) == sorted(vocab.verbs) and "no_interaction" in vocab.verbs
    assert len(vocab.verbs_ing) == vocab.num_verbs and vocab.verbs_ing[vocab.verbs.index("ride")] == "riding"
    verbs_per_object = Counter(o for _, o in vocab.hoi_classes.tolist())
    objects_per_verb = Counter(v for v, _ in vocab.hoi_classes.tolist())
    assert max(verbs_per_object.values()) >= 4  # e.g. bicycle: ride, straddle, push, repair, no_interaction
    assert max(objects_per_verb.values()) >= 3  # e.g. hold: cup, kite, sports_ball, umbrella


@pytest.mark.skipif(not REAL_HICO_TEST.is_file(), reason="real HICO-DET annotations not on this machine")
def test_every_class_is_a_hicodet_class():
    real = load_annotations(REAL_HICO_TEST).vocabulary
    real_classes = {real.class_name(i) for i in range(real.num_classes)}
    vocab = synthetic_vocabulary()
    assert {vocab.class_name(i) for i in range(vocab.num_classes)} <= real_classes
    assert set(vocab.verbs) <= set(real.verbs) and set(vocab.objects) <= set(real.objects)


def test_scene_content_limits(demo):
    for split in demo.values():
        two_interactions = 0
        for image in split.annotations.images:
            assert (image.width, image.height) == (192, 192)
            assert 0 <= image.num_pairs <= 3
            boxes = np.concatenate([image.boxes_h, image.boxes_o])
            assert (boxes >= 0).all() and (boxes <= 192).all()
            assert (boxes[:, 2] - boxes[:, 0] >= 3).all() and (boxes[:, 3] - boxes[:, 1] >= 3).all()
            persons = Counter(map(tuple, image.boxes_h.tolist()))
            two_interactions += sum(n == 2 for n in persons.values())
            assert max(persons.values(), default=0) <= 2
        assert two_interactions >= 10, "some persons should interact with two objects"
    # drawn instances (what the simulated detector sees): 1-3 people and 1-4 objects per image
    from hoi_pipeline.datasets.synthetic import generate_scenes

    vocab = synthetic_vocabulary()
    for scene in generate_scenes("train", 60, 192, 3, vocab):
        people = int((scene.instance_labels == vocab.person).sum())
        assert 1 <= people <= 3 and 1 <= len(scene.instance_labels) - people <= 4
        for box in np.concatenate([scene.annotation.boxes_h, scene.annotation.boxes_o]):
            assert np.isclose(iou(box[None], scene.instance_boxes), 1.0).any()  # annotated = drawn


def test_long_tail_and_rare_from_training_pairs(demo):
    vocab = demo["train"].annotations.vocabulary
    assert demo["test"].annotations.vocabulary is vocab or (
        demo["test"].annotations.vocabulary.rare.tolist() == vocab.rare.tolist()
    )
    counts = np.bincount(np.concatenate([i.hoi for i in demo["train"].annotations.images]), minlength=vocab.num_classes)
    assert vocab.rare.tolist() == np.flatnonzero(counts < 10).tolist()
    assert vocab.non_rare.tolist() == np.flatnonzero(counts >= 10).tolist()
    assert 4 <= len(vocab.rare) <= vocab.num_classes - 8
    assert (counts > 0).all() and counts.max() >= 25
    test_counts = np.bincount(np.concatenate([i.hoi for i in demo["test"].annotations.images]), minlength=vocab.num_classes)
    assert (test_counts > 0).all(), "every class, rare ones included, is in the test split"
    assert any(i.num_pairs == 0 for i in demo["train"].annotations.images)
    assert demo["train"].annotations.empty == tuple(i.filename for i in demo["train"].annotations.images if i.num_pairs == 0)


def test_geometry_decides_the_verb(demo):
    split = demo["train"]
    height = lambda b: b[3] - b[1]
    for verb, obj in (("ride", "bicycle"), ("ride", "horse")):
        for h, o in pairs_of(split, verb, obj):
            assert o[0] <= (h[0] + h[2]) / 2 <= o[2]  # person centred over the object
            assert h[3] < o[3] - 0.05 * height(o)  # feet above the ground: lifted
            assert h[3] > o[1]  # the person overlaps the object's top
    for h, o in pairs_of(split, "straddle", "bicycle"):
        assert abs(h[3] - o[3]) <= 0.06 * height(h)  # both stand on the ground
    for h, o in pairs_of(split, "fly", "kite"):
        assert o[3] < h[1]  # kite entirely above the person
    for h, o in pairs_of(split, "kick", "sports_ball"):
        assert (o[1] + o[3]) / 2 > h[1] + 0.8 * height(h)  # ball at the feet
    for h, o in pairs_of(split, "throw", "sports_ball"):
        assert (o[1] + o[3]) / 2 < h[1] + 0.2 * height(h)  # ball at or above the head
    for h, o in pairs_of(split, "drink_with", "cup"):
        assert (o[1] + o[3]) / 2 < h[1] + 0.3 * height(h)  # cup at the face
    for h, o in pairs_of(split, "hold", "cup"):
        assert (o[1] + o[3]) / 2 > h[1] + 0.35 * height(h)  # cup at the hip
    for verb, obj in (("no_interaction", "bicycle"), ("no_interaction", "horse")):
        for h, o in pairs_of(split, verb, obj):
            assert o[0] >= h[2] or o[2] <= h[0]  # apart


def spatial_features(h: np.ndarray, o: np.ndarray) -> np.ndarray:
    w, ht = h[2] - h[0], h[3] - h[1]
    return np.array([(o[0] - h[0]) / w, (o[1] - h[1]) / ht, (o[2] - h[2]) / w, (o[3] - h[3]) / ht,
                     np.log((o[2] - o[0]) / w), np.log((o[3] - o[1]) / ht), min(o[0] - h[2], h[0] - o[2]) / w])


def test_verbs_are_predictable_from_box_geometry(demo):
    """1-nearest-neighbour on the pair's boxes (per object class) recovers the verb on the test split."""
    def table(split):
        rows = [(spatial_features(h, o), int(a), int(c)) for image in split.annotations.images
                for h, o, a, c in zip(image.boxes_h, image.boxes_o, image.object, image.verb)]
        return np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), np.array([r[2] for r in rows])

    x_train, obj_train, verb_train = table(demo["train"])
    x_test, obj_test, verb_test = table(demo["test"])
    scale = x_train.std(axis=0) + 1e-6
    correct = 0
    majority = 0
    for x, obj, verb in zip(x_test, obj_test, verb_test):
        same = obj_train == obj
        distances = np.abs((x_train[same] - x) / scale).sum(axis=1)
        correct += verb_train[same][np.argmin(distances)] == verb
        majority += Counter(verb_train[same].tolist()).most_common(1)[0][0] == verb
    accuracy = correct / len(x_test)
    assert accuracy >= 0.85 and accuracy > majority / len(x_test) + 0.2


def test_detections_look_like_a_detector():
    from hoi_pipeline.datasets.synthetic import DetectorNoise, generate_scenes
    from hoi_pipeline.datasets.synthetic.hicodet_scenes import detect

    vocab = synthetic_vocabulary()
    rng = np.random.default_rng(0)
    matched_scores, unmatched_scores, found, total, confused = [], [], 0, 0, 0
    for scene in generate_scenes("test", 80, 192, 0, vocab):
        proposals = detect(scene, vocab, DetectorNoise(), rng)
        assert ((proposals.scores > 0) & (proposals.scores < 1)).all()
        assert proposals.labels.min() >= 0 and proposals.labels.max() < vocab.num_objects
        overlap = iou(scene.instance_boxes, proposals.boxes)  # (drawn instances, detections)
        hit = overlap >= 0.5
        found += int(hit.any(axis=1).sum())
        total += len(scene.instance_boxes)
        same_class = scene.instance_labels[:, None] == proposals.labels[None, :]
        confused += int((hit & ~same_class).any(axis=0).sum())
        best = overlap.max(axis=0, initial=0)
        matched_scores += proposals.scores[best >= 0.5].tolist()
        unmatched_scores += proposals.scores[best < 0.1].tolist()
    assert 0.85 <= found / total < 1.0  # most drawn instances found, some missed
    assert confused >= 1  # occasional class confusions
    assert len(unmatched_scores) >= 20 and np.mean(unmatched_scores) < np.mean(matched_scores) - 0.3


def test_generation_is_seeded():
    a = generate_dataset(seed=5, num_train=6, num_test=3, image_size=96)
    b = generate_dataset(seed=5, num_train=6, num_test=3, image_size=96)
    c = generate_dataset(seed=6, num_train=6, num_test=3, image_size=96)
    for split in ("train", "test"):
        for x, y in zip(a[split].images, b[split].images):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(a[split].detections, b[split].detections):
            np.testing.assert_array_equal(x.boxes, y.boxes)
    assert any(not np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a["train"].images, c["train"].images))


def test_stage_writes_the_dataset_atomically(tmp_path):
    settings = SyntheticConfig(seed=1, num_train=12, num_test=6, image_size=96)
    out = tmp_path / "demo"
    (out / "images" / "train").mkdir(parents=True)
    (out / "images" / "train" / "stale.png").write_bytes(b"old")
    written = generate_demo.run(settings=settings, out_dir=out)
    assert sorted(p.name for p in out.iterdir()) == [
        "detections_test.json", "detections_train.json", "images", "test.json", "train.json"
    ]  # no staging folder left behind
    assert written == [out / name for name in generate_demo.demo_outputs(settings)]
    assert generate_demo.demo_outputs(settings) == [
        "images", "detections_train.json", "detections_test.json", "train.json", "test.json"
    ]
    train, test = load_annotations(out / "train.json"), load_annotations(out / "test.json")
    assert train.vocabulary.objects == test.vocabulary.objects and train.vocabulary.verbs == test.vocabulary.verbs
    assert train.vocabulary.rare.tolist() == test.vocabulary.rare.tolist()
    assert json.loads((out / "train.json").read_text())["verbs_ing"] == list(train.vocabulary.verbs_ing)
    for name, split in (("train", train), ("test", test)):
        files = sorted(p.name for p in (out / "images" / name).iterdir())
        assert files == sorted(split.filenames)
        with Image.open(out / "images" / name / files[0]) as image:
            assert image.size == (96, 96) and image.mode == "RGB"
        detections = read_detections_json(out / f"detections_{name}.json", split.vocabulary.objects)
        assert set(detections) == set(split.filenames)


def test_config_rejects_bad_generator_settings():
    with pytest.raises(ConfigError, match="num_train and num_test must be >= 1"):
        from_dict(SyntheticConfig, {"num_train": 0}, "datasets.demo.synthetic")
    with pytest.raises(ConfigError, match="detector_miss_rate must lie in"):
        from_dict(SyntheticConfig, {"detector_miss_rate": 1.5}, "datasets.demo.synthetic")


# --------------------------------------------------------------------------------------------
# the HICO-DET demo's output is pinned: the table-driven generator reproduces the original one

# sha256 of the files that the original single-module generator (commit ea33e39) wrote for
# SyntheticConfig(seed=3, num_train=24, num_test=8, image_size=96). The json files depend only on
# NumPy (its Generator streams and float arithmetic) and on json formatting, not on Pillow: boxes
# come from the shapes' geometry, the random draws do not depend on the drawing.
PINNED_JSON = {
    "train.json": "e412dc5d6190227ff8befcd64726a6a7a87342331907215b509104486c9468b3",
    "test.json": "604994c7ad7b2d430267ef31b887af5f138f0cd92d2b2aafa03e96f829a4922a",
    "detections_train.json": "ed43b1c51e14e856a51e63af3ad6cdef634b3ee988a1ffaee295d52e83e2556d",
    "detections_test.json": "677cd598dad4df3563cb2032b60a1f41d2ba07847923d16a15722109825ddc14",
}
# sha256 over (relative path, decoded RGB bytes) of every image, sorted by path. Rasterisation
# (polygon and ellipse edges) changes between Pillow releases, so this is pinned to the Pillow
# major version it was recorded with.
PINNED_PIXELS = ("13", "55acb3774eafb4d7fd4612d3cfd902248f972c22ae5ba4be9eefbbfc921bea9a")
PINNED_SETTINGS = SyntheticConfig(seed=3, num_train=24, num_test=8, image_size=96)


@pytest.fixture(scope="module")
def pinned_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("pinned")
    generate_demo.run(settings=PINNED_SETTINGS, out_dir=out)
    return out


def test_hicodet_demo_annotations_and_detections_match_the_original_generator(pinned_demo):
    digests = {name: hashlib.sha256((pinned_demo / name).read_bytes()).hexdigest() for name in PINNED_JSON}
    assert digests == PINNED_JSON


@pytest.mark.skipif(PIL.__version__.split(".")[0] != PINNED_PIXELS[0],
                    reason=f"pixel digest recorded with Pillow {PINNED_PIXELS[0]}.x (rasterisation differs by release)")
def test_hicodet_demo_pixels_match_the_original_generator(pinned_demo):
    digest = hashlib.sha256()
    for path in sorted((pinned_demo / "images").rglob("*.png")):
        with Image.open(path) as image:
            digest.update(path.relative_to(pinned_demo).as_posix().encode())
            digest.update(np.asarray(image.convert("RGB")).tobytes())
    assert digest.hexdigest() == PINNED_PIXELS[1]
