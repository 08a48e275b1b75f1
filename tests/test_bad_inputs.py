"""What the pipeline refuses, and what it never does to a user's files (issue 9): one probe per point.

Each probe breaks one input on purpose and asserts the outcome a user sees: exit code 2 with one
error line naming the file or key and the problem (no traceback), and that no file was lost,
overwritten or left mixed or half-written. Read top to bottom, this file is the list of what is
refused:

- outputs: predict (or any stage) never writes over its inputs; a stage's outputs are one set (two
  runs never mix them); temporaries of a killed run are removed by the next run; a full disk is one
  line and leaves nothing half-written;
- the detections-import json: names are matched across Unicode forms and folder prefixes, and
  images missing from it are an error unless `detector.allow_missing_images: true`;
- annotations: class indices out of range (hoi, verb, object, rare, non_rare, empty) and boxes with
  x2 < x1 or NaN, in the json and in anno_bbox.mat;
- config values: NaN / Inf numbers, infer.gamma, eval.iou_threshold outside (0, 1], empty
  eval.settings / scenarios, train.gpus < 1, train.lr_gamma <= 0;
- unreadable inputs: a corrupted HDF5 block (also read in DataLoader workers), a decompression-bomb
  image (more than `MAX_IMAGE_PIXELS`);
- `detector.on_bad_image: skip` holds in training and inference too, and an unreadable image that
  the detect stage did not record is one line;
- `clip.pretrained: random` works for any open_clip model name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import signal
import struct
import subprocess
import sys
import threading
import unicodedata
import zlib
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from hoi_pipeline import cli
from hoi_pipeline.artifacts import DetectionsFile, ProposalsFile, write_detections, write_proposals
from hoi_pipeline.config import EvalConfig
from hoi_pipeline.datasets import load_annotations
from hoi_pipeline.datasets.detections_json import write_detections_json
from hoi_pipeline.datasets.hicodet import hicodet_json_payload, save_hicodet_json
from hoi_pipeline.datasets.hoi_images import HOIImageDataset, Preprocessing
from hoi_pipeline.datasets.images import MAX_IMAGE_PIXELS
from hoi_pipeline.stages import evaluate
from hoi_pipeline.structures import HOIAnnotations, HOIDetections, ImageAnnotation, Proposals, Vocabulary
from test_datasets import boxes, image, visible, write_tiny_mat
from tiny_models import write_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[1]

# verbs 0 hold, 1 ride; objects 0 person, 1 cup, 2 bike; HOI classes (hold cup), (ride bike), (hold bike)
VOCABULARY = Vocabulary(
    verbs=("hold", "ride"),
    objects=("person", "cup", "bike"),
    hoi_classes=np.array([[0, 1], [1, 2], [0, 2]]),
    rare=np.array([2]),
    non_rare=np.array([0, 1]),
)
NAMES = ("img0.png", "img1.png", "img2.png", "img3.png")


# --------------------------------------------------------------------------------------------
# a tiny split: images, annotation json, proposals, a random-init checkpoint


def write_split(root: Path, skipped: tuple[str, ...] = ()) -> dict[str, Path]:
    """Four small images with a human, a cup and a bike each; their annotation json and proposals HDF5."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    annotations, proposals = [], []
    for name in NAMES:
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(root / "images" / name)
        annotations.append(ImageAnnotation(name, 64, 48, [[1, 1, 20, 40]], [[15, 10, 60, 45]], [1], [1], [2]))
        if name in skipped:  # what the detect stage writes for an image it could not read
            proposals.append(Proposals(name, np.zeros((0, 4)), [], []))
        else:
            proposals.append(Proposals(name, [[0, 0, 20, 40], [30, 5, 50, 20], [15, 10, 60, 45]], [0.9, 0.7, 0.8],
                                       [0, 1, 2]))  # fmt: skip
    save_hicodet_json(HOIAnnotations(VOCABULARY, tuple(annotations)), root / "test.json")
    write_proposals(root / "proposals.h5", proposals, {"stage": "detect"}, skipped=skipped)
    return {"annotations": root / "test.json", "images": root / "images", "proposals": root / "proposals.h5"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.pt"
    write_tiny_checkpoint(path, VOCABULARY)
    return path


def infer_args(split: dict[str, Path], checkpoint: Path, out: Path, workers: int = 0) -> list[str]:
    settings = {"infer": {"batch_size": 2, "num_workers": workers, "device": "cpu", "precision": "fp32"}}
    return [
        "infer", "--config-json", json.dumps(settings), "--annotations", str(split["annotations"]),
        "--images", str(split["images"]), "--proposals", str(split["proposals"]),
        "--checkpoint", str(checkpoint), "--out", str(out),
    ]  # fmt: skip


def error_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


def assert_one_line(caplog, *fragments: str) -> str:
    """Exactly one error record, on one line, containing every fragment."""
    errors = error_lines(caplog)
    assert len(errors) == 1, errors
    assert "\n" not in errors[0] and "Traceback" not in errors[0], errors[0]
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def leftovers(folder: Path) -> list[str]:
    """Temporary and lock files in a folder (there must be none after any run)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_module(*args: str) -> subprocess.Popen:
    """`python -m hoi_pipeline ARGS` in a subprocess (text pipes)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "hoi_pipeline", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


# --------------------------------------------------------------------------------------------
# outputs: never over an input, one set, no stale temporaries, nothing half-written


def test_predict_refuses_an_output_folder_that_holds_its_input_images(tmp_path, checkpoint, caplog):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(photos / "street.png")
    Image.new("RGB", (40, 30), (10, 200, 10)).save(photos / "kitchen.jpg")
    before = snapshot(photos)
    config = {
        "datasets": {"mine": {"splits": {"train": {"annotations": "a.json", "images": "i"},
                                         "test": {"annotations": "a.json", "images": "i"}}}},
        "detectors": {"tiny": {"backend": "torchvision", "weights": "none.pt"}},
        "runs": {"tiny": {"dataset": "mine", "detector": "tiny"}},
    }  # fmt: skip
    (tmp_path / "config.yaml").write_text(json.dumps(config))
    for inputs in ([photos], [photos / "street.png"]):  # the folder, or one file of it
        caplog.clear()
        code = cli.main([
            "predict", "--config", str(tmp_path / "config.yaml"), "--run", "tiny", "--checkpoint", str(checkpoint),
            *map(str, inputs), "--out", str(photos),
        ])  # fmt: skip
        assert code == 2
        assert_one_line(caplog, f"--out {photos}: holds input images", "another folder")
        assert snapshot(photos) == before and leftovers(photos) == []  # nothing overwritten, nothing added


def test_no_stage_writes_over_its_inputs(tmp_path, checkpoint, caplog):
    split = write_split(tmp_path)
    before = snapshot(tmp_path)
    same_as_input = {
        "infer": infer_args(split, checkpoint, split["proposals"]),
        "detect": ["detect", "--config-json", json.dumps({"detector": {"backend": "precomputed"}}),
                   "--annotations", str(split["annotations"]), "--images", str(split["images"]),
                   "--detections", str(tmp_path / "d.json"), "--out", str(split["annotations"])],
        "summarize": ["summarize", "--metrics", str(tmp_path / "m.csv"), "--names", "x",
                      "--out", str(tmp_path / "m.csv")],
    }  # fmt: skip
    (tmp_path / "m.csv").write_text("setting,full\ndefault,1.0\n")
    before["m.csv"] = (tmp_path / "m.csv").read_bytes()
    for stage, args in same_as_input.items():
        caplog.clear()
        assert cli.main(args) == 2, stage
        assert_one_line(caplog, "is also an input of this stage", "write the output elsewhere")
    assert snapshot(tmp_path) == before and leftovers(tmp_path) == []


def write_two_detection_files(root: Path, split: dict[str, Path]) -> dict[str, Path]:
    """Two detections files of the split with different scores (so different metrics)."""
    files = {}
    for name, score in (("a", 0.9), ("b", 0.1)):
        rows = [
            HOIDetections(n, [[1, 1, 20, 40]], [[15, 10, 60, 45]] if i % 2 else [[30, 5, 50, 20]], [1], [1], [2],
                          [score if i % 2 else 1 - score])
            for i, n in enumerate(NAMES)
        ]  # fmt: skip
        files[name] = root / f"detections_{name}.h5"
        write_detections(files[name], rows, {"stage": "infer"})
    return files


EVAL_OUTPUTS = ("metrics.csv", "per_class_ap.csv", "table.md")


def test_two_evaluations_into_one_folder_leave_one_complete_set(tmp_path):
    split = write_split(tmp_path)
    detections = write_two_detection_files(tmp_path, split)
    expected = {}
    for name, path in detections.items():  # each set on its own
        evaluate.run(eval_config=EvalConfig(), annotations=split["annotations"], split="test",
                     detections=path, out_dir=tmp_path / f"alone_{name}")  # fmt: skip
        expected[name] = {f: (tmp_path / f"alone_{name}" / f).read_bytes() for f in EVAL_OUTPUTS}
    assert expected["a"]["metrics.csv"] != expected["b"]["metrics.csv"]
    out = tmp_path / "shared"
    for attempt in range(15):
        threads = [
            threading.Thread(target=evaluate.run, kwargs=dict(
                eval_config=EvalConfig(), annotations=split["annotations"], split="test",
                detections=path, out_dir=out))
            for path in detections.values()
        ]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        found = {f: (out / f).read_bytes() for f in EVAL_OUTPUTS}
        assert found in (expected["a"], expected["b"]), f"attempt {attempt}: a mixed set"
        assert leftovers(out) == []


def test_an_evaluation_waits_while_another_run_writes_the_same_folder(tmp_path):
    """A run holding the folder's outputs makes `evaluate` wait; then evaluate's whole set replaces the other's."""
    split = write_split(tmp_path)
    detections = write_two_detection_files(tmp_path, split)
    out = tmp_path / "results"
    holder_script = (
        "import sys\nfrom pathlib import Path\nfrom hoi_pipeline.artifacts import atomic_outputs\n"
        f"out = Path({str(out)!r})\n"
        f"with atomic_outputs(*(out / f for f in {EVAL_OUTPUTS!r})) as temps:\n"
        "    for tmp in temps:\n        tmp.write_text('other run\\n')\n"
        "    print('holding', flush=True)\n    sys.stdin.readline()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen([sys.executable, "-c", holder_script], env=env, text=True, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)  # fmt: skip
    assert holder.stdout.readline().strip() == "holding"
    run = run_module("evaluate", "--annotations", str(split["annotations"]), "--detections", str(detections["a"]),
                     "--out", str(out))  # fmt: skip
    waited = []
    for line in run.stderr:  # evaluate says that it waits for the other run
        waited.append(line)
        if "another run is writing there; waiting for it" in line:
            break
    assert run.poll() is None and not (out / "metrics.csv").exists(), "".join(waited)
    holder.communicate("go\n", timeout=30)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 0, stderr
    assert "other run" not in "".join((out / f).read_text() for f in EVAL_OUTPUTS)  # evaluate's set, whole
    assert (out / "table.md").read_text().startswith("### HICO-DET mAP: detections_a.h5")
    assert leftovers(out) == []


def test_the_next_run_removes_the_temporaries_a_killed_run_left(tmp_path, checkpoint):
    split = write_split(tmp_path)
    out = tmp_path / "results" / "detections_test.h5"
    out.parent.mkdir()
    stale = [out.parent / ".detections_test.h5.k1ll3d_x.tmp", out.parent / ".detections_test.h5.zz9abcde.tmp"]
    for path in stale:
        path.write_bytes(b"half a file from a killed job")
    others = [out.parent / ".detections_train.h5.k1ll3d_x.tmp", out.parent / "notes.tmp"]  # not this output's
    for path in others:
        path.write_bytes(b"someone else's")
    assert cli.main(infer_args(split, checkpoint, out)) == 0
    assert not any(path.exists() for path in stale)
    assert all(path.read_bytes() == b"someone else's" for path in others)
    assert len(DetectionsFile(out)) == len(NAMES)


@contextlib.contextmanager
def file_size_limit(limit_bytes: int) -> Iterator[None]:
    """Writes past `limit_bytes` fail at the OS level (EFBIG), as writes to a full disk fail (ENOSPC)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead of killing the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@pytest.mark.parametrize(("stage", "limit"), [("infer", 2000), ("evaluate", 100)])  # below each stage's largest output
def test_a_full_disk_is_one_line_and_leaves_the_previous_outputs(tmp_path, checkpoint, caplog, stage, limit):
    """A refused write: one line naming the outputs, the previous outputs untouched, no temporary left.

    libhdf5 used to crash the process (SIGSEGV) when the disk filled under it; HDF5 files are now built
    in memory and written with plain file I/O. (Reproduced on a 256 KiB tmpfs as well; this probe uses a
    file-size limit, which needs no root.)
    """
    split = write_split(tmp_path)
    out_dir = tmp_path / "results"
    if stage == "infer":
        args = infer_args(split, checkpoint, out_dir / "detections_test.h5")
    else:
        detections = write_two_detection_files(tmp_path, split)
        args = ["evaluate", "--annotations", str(split["annotations"]), "--detections", str(detections["a"]),
                "--out", str(out_dir)]  # fmt: skip
    assert cli.main(args) == 0
    before = snapshot(out_dir)
    caplog.clear()
    with file_size_limit(limit):
        code = cli.main(args)
    assert code == 2
    message = assert_one_line(caplog, f"{out_dir}/", "cannot write (File too large); nothing was written")
    assert snapshot(out_dir) == before and leftovers(out_dir) == [], message


# --------------------------------------------------------------------------------------------
# the detections-import json


def write_precomputed_case(root: Path, keys: list[str]) -> dict[str, Path]:
    """A split of images 'café.png' (NFC) and 'b.png', and a detections json keyed by `keys` (same order)."""
    names = [unicodedata.normalize("NFC", "café.png"), "b.png"]
    annotations = [ImageAnnotation(n, 32, 32, [[1, 1, 10, 10]], [[5, 5, 20, 20]], [0], [0], [1]) for n in names]
    save_hicodet_json(HOIAnnotations(VOCABULARY, tuple(annotations)), root / "test.json")
    entries = [Proposals(key, [[0, 0, 10, 10], [4, 4, 20, 20]], [0.9, 0.8], [0, 1]) for key in keys]
    write_detections_json(root / "detections.json", entries, VOCABULARY.objects)
    return {"annotations": root / "test.json", "detections": root / "detections.json", "images": root}


def detect_args(case: dict[str, Path], out: Path, **detector) -> list[str]:
    settings = {"detector": {"backend": "precomputed", **detector}}
    return [
        "detect", "--config-json", json.dumps(settings), "--annotations", str(case["annotations"]),
        "--images", str(case["images"]), "--detections", str(case["detections"]), "--out", str(out),
    ]  # fmt: skip


def test_detections_json_names_match_across_unicode_forms_and_folder_prefixes(tmp_path, caplog):
    nfd = unicodedata.normalize("NFD", "images/test/café.png")  # what a Mac writes, with the folder in front
    case = write_precomputed_case(tmp_path, [nfd, "./b.png"])
    out = tmp_path / "proposals.h5"
    assert cli.main(detect_args(case, out)) == 0
    file = ProposalsFile(out)
    assert [len(file[i]) for i in range(len(file))] == [2, 2]  # no image silently lost its detections
    assert file.filenames[0] == unicodedata.normalize("NFC", "café.png")  # the annotation's name is kept


def test_images_missing_from_the_detections_json_are_an_error_unless_allowed(tmp_path, caplog):
    case = write_precomputed_case(tmp_path, ["elsewhere/other.png", "b.png"])
    out = tmp_path / "proposals.h5"
    assert cli.main(detect_args(case, out)) == 2
    assert_one_line(caplog, f"{case['detections']}: 1 of the split's 2 images have no entry", "'café.png'",
                    "entries look like 'elsewhere/other.png'", "detector.allow_missing_images: true")  # fmt: skip
    assert not out.exists() and leftovers(tmp_path) == []
    caplog.clear()
    assert cli.main(detect_args(case, out, allow_missing_images=True)) == 0  # the user says it is expected
    file = ProposalsFile(out)
    assert [len(file[i]) for i in range(len(file))] == [0, 2]


def test_a_name_two_entries_could_match_is_an_error(tmp_path, caplog):
    case = write_precomputed_case(tmp_path, ["a/café.png", "b/café.png", "b.png"])
    assert cli.main(detect_args(case, tmp_path / "p.h5")) == 2
    assert_one_line(caplog, "image 'café.png' could be any of the entries ['a/café.png', 'b/café.png']")


# --------------------------------------------------------------------------------------------
# annotations: indices and boxes


def tiny_payload() -> dict:
    """Two images of the VOCABULARY's classes in the HICO-DET json layout (1-based boxes)."""
    annotations = [ImageAnnotation(n, 64, 48, [[0, 0, 20, 40]], [[15, 10, 60, 45]], [1], [1], [2]) for n in NAMES[:2]]
    return hicodet_json_payload(HOIAnnotations(VOCABULARY, tuple(annotations)))


ANNOTATION_CASES = {
    "hoi -1": (lambda p: p["annotation"][1].update(hoi=[-1]),
               "annotation[1] ('img1.png'), pair 0: 'hoi' is -1, outside 0..2"),
    "hoi past the classes": (lambda p: p["annotation"][0].update(hoi=[3]), "'hoi' is 3, outside 0..2"),
    "verb past the verbs": (lambda p: p["annotation"][0].update(verb=[2]), "'verb' is 2, outside 0..1"),
    "verb disagrees with hoi": (lambda p: p["annotation"][0].update(verb=[0]), "must agree with 'correspondence'"),
    "x2 < x1": (lambda p: p["annotation"][0].update(boxes_h=[[30, 1, 20, 40]]), "'boxes_h' is [30, 1, 20, 40]"),
    "NaN box": (lambda p: p["annotation"][1].update(boxes_o=[[1, 1, float("nan"), 5]]), "'boxes_o' is [1, 1, nan, 5]"),
    "rare -1": (lambda p: p.update(rare=[-1]), "'rare' is -1, outside 0..2"),
    "rare past the classes": (lambda p: p.update(rare=[600]), "'rare' is 600, outside 0..2"),
    "non_rare past the classes": (lambda p: p.update(non_rare=[0, 7]), "'non_rare' is 7, outside 0..2"),
    "empty past the images": (lambda p: p.update(empty=[5]), "'empty' is 5, outside 0..1"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(ANNOTATION_CASES))
def test_bad_annotation_values_are_refused_when_loaded(tmp_path, caplog, case):
    edit, message = ANNOTATION_CASES[case]
    payload = tiny_payload()
    edit(payload)
    path = tmp_path / "train.json"
    path.write_text(json.dumps(payload))
    out = tmp_path / "results"
    code = cli.main(["evaluate", "--annotations", str(path), "--detections", str(tmp_path / "d.h5"), "--out", str(out)])
    assert code == 2
    assert_one_line(caplog, f"{path}", message)
    assert not out.exists()


def test_bad_mat_annotations_are_refused_when_loaded(tmp_path):
    path = tmp_path / "anno_bbox.mat"
    write_tiny_mat(path, [image("t.jpg", [visible(1, boxes((50, 1, 10, 10)), boxes((1, 1, 5, 5)), [[1, 1]])])])
    message = r"anno_bbox.mat: image 't.jpg', hoi entry 1, bboxhuman box 1: 'bboxhuman' is \[50, 1, 10, 10\]"
    with pytest.raises(ValueError, match=message):
        load_annotations(path, "test")
    write_tiny_mat(path, [image("t.jpg", [visible(0, boxes((1, 1, 10, 10)), boxes((1, 1, 5, 5)), [[1, 1]])])])
    with pytest.raises(ValueError, match=r"image 't.jpg', hoi entry 1: HOI class id 0 is not an integer in 1..3"):
        load_annotations(path, "test")


# --------------------------------------------------------------------------------------------
# config values


CONFIG_CASES = {
    "infer.gamma NaN": ("infer", {"infer": {"gamma": float("nan")}}, "infer.gamma: expected a finite number, got nan"),
    "infer.gamma Inf": ("infer", {"infer": {"gamma": float("inf")}}, "infer.gamma: expected a finite number, got inf"),
    "eval.iou_threshold 0": ("evaluate", {"eval": {"iou_threshold": 0}}, "eval: iou_threshold must lie in (0, 1]"),
    "eval.iou_threshold 1.5": ("evaluate", {"eval": {"iou_threshold": 1.5}}, "eval: iou_threshold must lie in (0, 1]"),
    "eval.settings []": ("evaluate", {"eval": {"settings": []}}, "eval: settings must name at least one entry"),
    "eval.scenarios []": ("evaluate", {"eval": {"scenarios": []}}, "eval: scenarios must name at least one entry"),
    "train.gpus -1": ("train", {"train": {"gpus": -1}}, "train: gpus must be >= 1 (the processes torchrun starts)"),
    "train.gpus 0": ("train", {"train": {"gpus": 0}}, "train: gpus must be >= 1"),
    "train.lr_gamma 0": ("train", {"train": {"lr_gamma": 0}}, "train: lr_gamma must be a number > 0"),
    "train.lr_gamma -0.1": ("train", {"train": {"lr_gamma": -0.1}}, "train: lr_gamma must be a number > 0"),
}  # fmt: skip
STAGE_FILES = {
    "infer": ["--annotations", "a.json", "--images", "i", "--proposals", "p.h5", "--checkpoint", "m.pt",
              "--out", "d.h5"],
    "evaluate": ["--annotations", "a.json", "--detections", "d.h5", "--out", "results"],
    "train": ["--annotations", "a.json", "--images", "i", "--proposals", "p.h5", "--bank", "b.h5", "--out-dir", "t"],
}  # fmt: skip


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_config_values_are_refused_at_the_boundary(tmp_path, caplog, monkeypatch, case):
    stage, sections, message = CONFIG_CASES[case]
    if stage == "train":
        sections = {"clip": {}, "model": {}, "loss": {}, **sections}
    monkeypatch.chdir(tmp_path)
    assert cli.main([stage, "--config-json", json.dumps(sections), *STAGE_FILES[stage]]) == 2
    assert_one_line(caplog, message)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# unreadable inputs: one line, also from DataLoader workers


def damage_first_chunk(path: Path, dataset: str) -> None:
    """Overwrite the first stored chunk of `dataset` with random bytes (a corrupted data block)."""
    with h5py.File(path, "r") as h5:
        chunk = h5[dataset].id.get_chunk_info(0)
    data = bytearray(path.read_bytes())
    data[chunk.byte_offset : chunk.byte_offset + chunk.size] = np.random.default_rng(0).bytes(chunk.size)
    path.write_bytes(bytes(data))


def test_a_corrupted_hdf5_block_is_one_line(tmp_path, checkpoint, caplog):
    split = write_split(tmp_path)
    damage_first_chunk(split["proposals"], "boxes")
    out = tmp_path / "results" / "detections_test.h5"
    assert cli.main(infer_args(split, checkpoint, out, workers=1)) == 2  # read in a DataLoader worker
    assert_one_line(caplog, f"{split['proposals']}: cannot read the rows of image", "the file is damaged",
                    "Can't synchronously read data", "rerun the stage that made it")  # fmt: skip
    assert not out.exists()

    caplog.clear()
    detections = write_two_detection_files(tmp_path, split)["a"]
    damage_first_chunk(detections, "score")
    assert cli.main(["evaluate", "--annotations", str(split["annotations"]), "--detections", str(detections),
                     "--out", str(tmp_path / "eval")]) == 2  # fmt: skip
    assert_one_line(caplog, f"{detections}: cannot read the datasets", "the file is damaged")
    assert not (tmp_path / "eval" / "metrics.csv").exists()


def write_png_header(path: Path, width: int, height: int) -> None:
    """A tiny PNG file that claims width x height pixels (what a decompression bomb looks like before decoding)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


@pytest.mark.parametrize(("size", "workers"), [((12000, 9000), 1), ((30000, 30000), 0)])  # ours / Pillow's error limit
def test_a_decompression_bomb_image_is_one_line(tmp_path, checkpoint, caplog, size, workers):
    assert size[0] * size[1] > MAX_IMAGE_PIXELS
    split = write_split(tmp_path)
    write_png_header(split["images"] / NAMES[1], *size)
    out = tmp_path / "results" / "detections_test.h5"
    assert cli.main(infer_args(split, checkpoint, out, workers=workers)) == 2
    assert_one_line(caplog, f"{split['images'] / NAMES[1]}", "the 100 megapixels an image may have",
                    "MAX_IMAGE_PIXELS", "decompression bomb")  # fmt: skip
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# detector.on_bad_image: skip means the same in every stage


def test_images_the_detect_stage_skipped_are_left_out_of_inference_and_listed(tmp_path, checkpoint, caplog):
    split = write_split(tmp_path, skipped=(NAMES[2],))
    (split["images"] / NAMES[2]).write_bytes(b"not an image any more")
    out = tmp_path / "results" / "detections_test.h5"
    assert cli.main(infer_args(split, checkpoint, out)) == 0
    file = DetectionsFile(out)
    assert file.filenames == list(NAMES) and file.skipped_images == [NAMES[2]] and file.attrs["skipped_count"] == 1
    assert len(file.get(NAMES[2])) == 0 and all(len(file.get(n)) > 0 for n in NAMES if n != NAMES[2])
    assert "1 images that the detect stage could not read get no tuples" in caplog.text


def test_images_the_detect_stage_skipped_are_left_out_of_training(tmp_path, caplog):
    split = write_split(tmp_path, skipped=(NAMES[0], NAMES[3]))
    dataset = HOIImageDataset.from_split(
        load_annotations(split["annotations"]), images=split["images"], proposals=split["proposals"],
        preprocessing=Preprocessing(64, (0.5,) * 3, (0.5,) * 3),
    )  # fmt: skip
    indices, skipped = dataset.training_indices()
    assert indices == [1, 2] and skipped == {"unreadable": 2, "no_hoi_label": 0, "no_human_pair": 0}
    assert "2 images that the detect stage could not read are left out" in caplog.text


def test_an_unreadable_image_the_detect_stage_did_not_record_is_one_line(tmp_path, checkpoint, caplog):
    split = write_split(tmp_path)
    (split["images"] / NAMES[3]).write_bytes(b"\x89PNG truncated")
    out = tmp_path / "results" / "detections_test.h5"
    assert cli.main(infer_args(split, checkpoint, out, workers=1)) == 2
    assert_one_line(caplog, f"{split['images'] / NAMES[3]}: cannot read image", f"{split['proposals']} does not list",
                    "detector.on_bad_image: skip")  # fmt: skip
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# CLIP random init for any model name


def test_random_clip_init_works_for_any_model_name(tmp_path, caplog):
    from hoi_pipeline.config import ClipConfig
    from hoi_pipeline.knowledge_bank_file import load_knowledge_bank
    from hoi_pipeline.modeling.clip_loading import load_clip
    from hoi_pipeline.stages import init_clip

    clip = {"model": "hoi-tiny-rn-quickgelu", "pretrained": "random", "device": "cpu"}  # no init-clip file anywhere
    split = write_split(tmp_path)
    bank = tmp_path / "bank.h5"
    assert cli.main(["embed-prompts", "--config-json", json.dumps({"clip": clip}), "--annotations",
                     str(split["annotations"]), "--split", "test", "--out", str(bank)]) == 0  # fmt: skip
    assert load_knowledge_bank(bank).attrs["clip_pretrained"] == "random-init:seed0"
    config = ClipConfig(model="hoi-tiny-rn-quickgelu", pretrained="random")
    torch.manual_seed(1)
    first = load_clip(config).state_dict()
    torch.manual_seed(2)  # the caller's RNG state does not matter: every stage builds the same model
    second = load_clip(config).state_dict()
    init_clip.run(model_name="hoi-tiny-rn-quickgelu", seed=0, out=tmp_path / "init.pt")
    saved = torch.load(tmp_path / "init.pt", weights_only=True)
    assert all(torch.equal(first[k], second[k]) and torch.equal(first[k], saved[k]) for k in first)
