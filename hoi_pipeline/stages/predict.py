"""Stage `predict`: interactions on your own images (not part of any dataset).

    hoi-pipeline predict --run RUN [--checkpoint PATH] [--detector NAME] IMAGE_OR_DIR... --out DIR

The run's detector (or `--detector NAME` from the same config) finds humans and objects, the trained
model scores their pairs, and the scores are fused as in the inference stage (paper Eq. 3, the run's
`infer` section). Per input image `<stem>.json` holds every kept tuple, best first:

    {"image": "photos/bike.jpg", "width": 640, "height": 480, "run": "hico_rn50",
     "checkpoint": "...", "checkpoint_digest": "...", "detector": {...},
     "proposals": {"humans": 2, "objects": 5},
     "interactions": [{"score": 0.41, "verb": "ride", "object": "bicycle", "hoi": 87,
                       "verb_index": 76, "object_index": 1,
                       "box_human": [x1, y1, x2, y2], "box_object": [x1, y1, x2, y2],
                       "score_global": ..., "score_pair": ..., "score_relatedness": ...,
                       "score_detection": ...}, ...]}

Boxes are continuous pixel coordinates of the original image (x1, y1, x2, y2). `<stem>.png` draws
the `top` best interactions (human box, object box, a line between their centres, "verb object
score"). Runs on the CPU when there is no GPU (`--device cpu` forces it).

The output folder may not hold any of the input images (`DIR --out DIR` is refused): the drawings
would overwrite PNG inputs, and a second run would take the drawings for inputs. All outputs of a
run are one set (`atomic_outputs`): they appear together at the end, or not at all.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch
from PIL import Image, UnidentifiedImageError

from hoi_pipeline.artifacts import atomic_outputs, file_digest
from hoi_pipeline.config import ConfigError, DetectorConfig, InferConfig, load_project_config
from hoi_pipeline.datasets.images import open_image, read_image
from hoi_pipeline.devices import resolve_device
from hoi_pipeline.stages.infer import predict_batch, progress
from hoi_pipeline.structures import HOIDetections, Proposals, Vocabulary
from hoi_pipeline.visualize import Interaction, draw_interactions
from hoi_pipeline.workflow import resolve_run

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DEFAULT_CHECKPOINT = "results/{run}/train/model.pt"


class ProposalSource(Protocol):
    """What predict needs from a detector (`hoi_pipeline.detection.build_proposal_extractor`'s result)."""

    identity: dict[str, str]

    def extract(self, images: list[Image.Image], filenames: list[str]) -> list[Proposals]: ...


# --------------------------------------------------------------------------------------------
# inputs and outputs


def collect_images(inputs: Sequence[Path]) -> list[Path]:
    """Image files of the inputs: files as given, folders' .jpg/.jpeg/.png files sorted by name.

    A missing path, a folder without images, or a file of another type is an error naming it.
    """
    if not inputs:
        raise ValueError("predict: give at least one image file or folder")
    found: list[Path] = []
    for path in map(Path, inputs):
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ValueError(f"{path}: folder holds no {'/'.join(IMAGE_SUFFIXES)} images")
            found.extend(files)
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise ValueError(f"{path}: not a {'/'.join(IMAGE_SUFFIXES)} image")
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such image file or folder")
    return found


def check_images(paths: Sequence[Path]) -> None:
    """Open every image's header before any work, so that a bad file fails the run early, by name."""
    for path in paths:
        with open_image(path) as image:
            try:
                image.verify()
            except (UnidentifiedImageError, OSError, SyntaxError) as error:
                raise ValueError(f"{path}: cannot read image ({error})") from error


def check_output_folder(out_dir: Path, paths: Sequence[Path]) -> None:
    """The output folder must not hold an input image (its drawing could overwrite it, or become an input)."""
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ValueError(f"--out {out_dir}: is a file; give the folder for the results")
    folder = Path(out_dir).resolve()
    inside = [path for path in paths if path.resolve().parent == folder]
    if inside:
        raise ValueError(
            f"--out {out_dir}: holds input images ({inside[0]}{' and more' if len(inside) > 1 else ''}); "
            "write the results to another folder"
        )


def output_stems(paths: Sequence[Path]) -> list[str]:
    """Output names: the image's stem, with -2, -3, ... for repeated stems (a/x.jpg, b/x.png)."""
    stems: list[str] = []
    seen: dict[str, int] = {}
    for path in paths:
        count = seen.get(path.stem, 0) + 1
        seen[path.stem] = count
        stems.append(path.stem if count == 1 else f"{path.stem}-{count}")
    return stems


def interactions_json(detections: HOIDetections, vocabulary: Vocabulary) -> list[dict]:
    """Tuples of one image as JSON records, in the detections' (best-first) order."""
    records = []
    for t in range(len(detections)):
        verb, obj = int(detections.verb[t]), int(detections.object[t])
        records.append(
            {
                "score": float(detections.score[t]),
                "verb": vocabulary.verbs[verb],
                "object": vocabulary.objects[obj],
                "hoi": int(detections.hoi[t]),
                "verb_index": verb,
                "object_index": obj,
                "box_human": [round(float(v), 2) for v in detections.boxes_h[t]],
                "box_object": [round(float(v), 2) for v in detections.boxes_o[t]],
                **{name: float(values[t]) for name, values in detections.factors.items()},
            }
        )
    return records


def draw_top(image: Image.Image, detections: HOIDetections, vocabulary: Vocabulary, top: int) -> Image.Image:
    """The image with its `top` best interactions drawn."""
    items = [
        Interaction(
            box_h=tuple(float(v) for v in detections.boxes_h[t]),
            box_o=tuple(float(v) for v in detections.boxes_o[t]),
            label=f"{vocabulary.verbs[int(detections.verb[t])]} {vocabulary.objects[int(detections.object[t])]}",
            score=float(detections.score[t]),
        )
        for t in range(min(top, len(detections)))
    ]
    return draw_interactions(image, items)


# --------------------------------------------------------------------------------------------
# the stage


def resolve_detector(project_detectors: dict[str, DetectorConfig], name: str, run_name: str) -> DetectorConfig:
    """The detector config to run on new images; `precomputed` cannot, so it is a clear error."""
    if name not in project_detectors:
        raise ConfigError(f"--detector: '{name}' is not in the config's detectors {sorted(project_detectors)}")
    detector = project_detectors[name]
    if detector.backend == "precomputed":
        runnable = sorted(n for n, d in project_detectors.items() if d.backend != "precomputed")
        raise ConfigError(
            f"detector '{name}' (of run '{run_name}') has backend 'precomputed': it imports detections made "
            f"elsewhere and cannot run on new images. Give a detector with real weights with --detector NAME "
            f"(this config has {runnable or 'none'}; set its `weights` to a local file when offline)"
        )
    return detector


def run(
    *,
    config_file: Path,
    run_name: str,
    checkpoint: Path | None,
    inputs: list[Path],
    out_dir: Path,
    detector: str | None = None,
    top: int = 5,
    device: str | None = None,
    extractor: ProposalSource | None = None,
) -> None:
    """Interactions on the input images -> `<stem>.json` and `<stem>.png` per image in `out_dir`.

    `extractor` replaces the configured detector (tests, or a detector built by the caller).
    """
    if top < 0:
        raise ValueError(f"--top must be >= 0, got {top}")
    project = load_project_config(config_file)
    run_config = resolve_run(project, run_name)  # a configured run or an ablation `{run}/ablations/{preset}`
    infer: InferConfig = run_config.infer
    detector_name = detector or run_config.detector
    detector_config = None if extractor is not None else resolve_detector(project.detectors, detector_name, run_name)
    if checkpoint is None:  # where the workflow shows the run's training
        checkpoint = Path(DEFAULT_CHECKPOINT.format(run=run_name))
    if not checkpoint.is_file():
        raise FileNotFoundError(
            f"{checkpoint}: trained model not found (train the run first, or give --checkpoint PATH)"
        )
    paths = collect_images(inputs)
    check_output_folder(out_dir, paths)
    check_images(paths)
    stems = output_stems(paths)
    torch_device = resolve_device(device or infer.device)

    from hoi_pipeline.checkpoints import load_trained_model
    from hoi_pipeline.datasets.hoi_images import collate_samples, make_sample
    from hoi_pipeline.datasets.input_pipeline import read_input, worker_decode

    model, info = load_trained_model(checkpoint, torch_device)
    vocabulary, preprocessing = info.vocabulary, info.preprocessing
    decode = worker_decode(preprocessing.decode, torch_device)  # as inference reads images
    if extractor is None:
        from hoi_pipeline.detection import build_proposal_extractor

        extractor = build_proposal_extractor(detector_config, vocabulary.objects, str(torch_device))
    hoi_lookup = torch.from_numpy(vocabulary.hoi_lookup())
    header = {
        "run": run_name,
        "checkpoint": str(checkpoint),
        "checkpoint_digest": file_digest(checkpoint),
        "detector": {"name": detector_name, **dict(getattr(extractor, "identity", {}))},
        "infer": {"gamma": infer.gamma, "top_k": infer.top_k},
    }
    log.info("predict: %d images, %s on %s -> %s", len(paths), checkpoint, torch_device, out_dir)

    start = time.perf_counter()
    outputs = [out_dir / f"{stem}{suffix}" for stem in stems for suffix in (".json", ".png")]
    with atomic_outputs(*outputs) as temps, progress(len(paths), "predict") as bar:
        for first in range(0, len(paths), infer.batch_size):
            chunk = list(range(first, min(first + infer.batch_size, len(paths))))
            images = [read_image(paths[i]) for i in chunk]
            names = [str(paths[i]) for i in chunk]
            proposals = extractor.extract(images, names)
            if len(proposals) != len(chunk):
                raise ValueError(f"the detector returned {len(proposals)} proposal sets for {len(chunk)} images")
            samples = [
                make_sample(j, names[j], read_input(paths[i], preprocessing.image_size, decode), proposals[j],
                            vocabulary, preprocessing.image_size)
                for j, i in enumerate(chunk)
            ]  # fmt: skip
            batch = collate_samples(samples, preprocessing)
            detections = predict_batch(model, batch, proposals, hoi_lookup, infer, torch_device)
            for j, i in enumerate(chunk):
                humans = int((proposals[j].labels == vocabulary.person).sum())
                record = {
                    "image": str(paths[i]),
                    "width": images[j].width,
                    "height": images[j].height,
                    **header,
                    "proposals": {"humans": humans, "objects": len(proposals[j]) - humans},
                    "interactions": interactions_json(detections[j], vocabulary),
                }
                temps[2 * i].write_text(json.dumps(record, indent=1))
                draw_top(images[j], detections[j], vocabulary, top).save(temps[2 * i + 1], format="PNG")
                if humans == 0:
                    log.info("%s: no human detected, no interactions", paths[i])
            bar.update(len(chunk))
    seconds = time.perf_counter() - start
    log.info("predict: wrote %d JSON + PNG pairs to %s (%.2f images/s)", len(paths), out_dir, len(paths) / seconds)
