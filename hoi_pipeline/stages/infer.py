"""Stage `infer`: trained model + a split's images and proposals -> detections HDF5.

Every image of the split goes through the model in batches (on the GPU when there is one, under
autocast); the scores of each image's human-object pairs are fused as in paper Eq. 3
(`hoi_pipeline.scoring`) and its `infer.top_k` best tuples are kept. Output: the flat layout of
`hoi_pipeline.artifacts.write_detections`, written atomically:

    filenames (I,) str            offsets (I+1,) int64: image i owns rows offsets[i]:offsets[i+1]
    boxes_h, boxes_o (M, 4) float32   continuous original-image coordinates (x1, y1, x2, y2)
    hoi, verb, object (M,) int16      class indices in the dataset's (annotation file's) order
    score (M,) float32                fused score R; per-tuple factors score_global, score_pair,
                                      score_relatedness, score_detection (M,) float32
    attrs: schema_version, stage, split, annotations, proposals, checkpoint (path), checkpoint_digest,
           checkpoint_iterations, infer (the config section, JSON), classes (verb / object / HOI counts)

Boxes come from the proposals file by index, never from the model's (resized) inputs, so they are
in the coordinates of the original images. An image whose proposals hold no human has no pairs and
so no tuples; it keeps its (empty) row range. So does an image the detect stage skipped as
unreadable (`detector.on_bad_image: skip`): it is not read, and the file's `skipped_images` lists it.
With `shard`, only that shard's block of the images (`hoi_pipeline.shards`); `merge_shards`
joins the blocks.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from hoi_pipeline.artifacts import file_digest, refuse_overwriting_inputs, write_detections
from hoi_pipeline.config import InferConfig
from hoi_pipeline.devices import autocast, resolve_device
from hoi_pipeline.scoring import FACTOR_NAMES, fuse_scores, select_top_k
from hoi_pipeline.shards import Shard, recorded_config
from hoi_pipeline.structures import HOIDetections, ModelOutput, Proposals, Vocabulary

if TYPE_CHECKING:  # the dataset module is imported when a stage runs, not on import
    from hoi_pipeline.datasets.hoi_images import HOIBatch, HOIImageDataset

log = logging.getLogger(__name__)

NO_PAIR_CAP = 1 << 62  # `infer.max_pairs: 0` - score every pair of an image


# --------------------------------------------------------------------------------------------
# from model output to detection tuples (pure)


def empty_detections(filename: str) -> HOIDetections:
    """No tuples for an image (e.g. its proposals hold no human), with empty factor columns."""
    zeros = np.zeros(0, dtype=np.float32)
    return HOIDetections(
        filename=filename,
        boxes_h=np.zeros((0, 4), np.float32),
        boxes_o=np.zeros((0, 4), np.float32),
        hoi=np.zeros(0, np.int64),
        verb=np.zeros(0, np.int64),
        object=np.zeros(0, np.int64),
        score=zeros,
        factors={name: zeros for name in FACTOR_NAMES},
    )


def image_detections(
    proposals: Proposals,
    *,
    pairs: torch.Tensor,
    global_logits: torch.Tensor,
    pair_logits: torch.Tensor,
    relatedness_logits: torch.Tensor,
    hoi_lookup: torch.Tensor,
    settings: InferConfig,
) -> HOIDetections:
    """The top-K tuples of one image, boxes taken from its proposals (original image coordinates).

    pairs (P, 2) (human, object) indices into `proposals`; global_logits (N,); pair_logits (P, A);
    relatedness_logits (P,); hoi_lookup (A, O).
    """
    if pairs.shape[0] == 0:
        return empty_detections(proposals.filename)
    if int(pairs.max()) >= len(proposals) or int(pairs.min()) < 0:
        raise ValueError(f"{proposals.filename}: a pair indexes outside the image's {len(proposals)} proposals")
    index = pairs.cpu().numpy()
    human, obj = index[:, 0], index[:, 1]  # (P,), (P,)
    scores = torch.from_numpy(proposals.scores)
    fused = fuse_scores(
        global_logits.detach().float().cpu(),
        pair_logits.detach().float().cpu(),
        relatedness_logits.detach().float().cpu(),
        scores[human],
        scores[obj],
        torch.from_numpy(proposals.labels[obj]),
        hoi_lookup.cpu(),
        settings,
    )
    top = select_top_k(fused, settings.top_k)
    pair = top.pair.numpy()
    return HOIDetections(
        filename=proposals.filename,
        boxes_h=proposals.boxes[human[pair]],
        boxes_o=proposals.boxes[obj[pair]],
        hoi=top.hoi.numpy(),
        verb=top.verb.numpy(),
        object=proposals.labels[obj[pair]],
        score=top.score.numpy(),
        factors={name: value.numpy() for name, value in top.factors().items()},
    )


def detections_from_output(
    output: ModelOutput, proposals: Sequence[Proposals], hoi_lookup: torch.Tensor, settings: InferConfig
) -> list[HOIDetections]:
    """Tuples of each of the B images of a batch; `proposals[b]` are image b's proposals in original coordinates."""
    batch = output.global_logits.shape[0]
    if len(proposals) != batch:
        raise ValueError(f"the model output covers {batch} images but {len(proposals)} proposal sets were given")
    # one transfer of the whole batch to the CPU (fusion is cheap; per-image GPU syncs are not)
    global_logits = output.global_logits.detach().float().cpu()  # (B, N)
    pair_logits = output.pair_logits.detach().float().cpu()  # (P, A)
    relatedness_logits = output.relatedness_logits.detach().float().cpu()  # (P,)
    pairs, pair_image = output.pairs.cpu(), output.pair_image.cpu()  # (P, 2), (P,)
    results = []
    for b in range(batch):
        rows = torch.nonzero(pair_image == b, as_tuple=True)[0]  # (P_b,)
        results.append(
            image_detections(
                proposals[b],
                pairs=pairs[rows],
                global_logits=global_logits[b],
                pair_logits=pair_logits[rows],
                relatedness_logits=relatedness_logits[rows],
                hoi_lookup=hoi_lookup,
                settings=settings,
            )
        )
    return results


def check_vocabulary(vocabulary: Vocabulary, trained: Vocabulary, annotations: Path, checkpoint: Path) -> None:
    """The classes to emit (the annotation file's) must be those the checkpoint was trained on."""
    for key in ("verbs", "objects"):
        if list(getattr(vocabulary, key)) != list(getattr(trained, key)):
            raise ValueError(
                f"{annotations}: its {key} list differs from the one {checkpoint} was trained with "
                f"({len(getattr(vocabulary, key))} vs {len(getattr(trained, key))} names)"
            )
    if not np.array_equal(vocabulary.hoi_classes, trained.hoi_classes):
        raise ValueError(
            f"{annotations}: its {vocabulary.num_classes} HOI classes differ from the {trained.num_classes} "
            f"that {checkpoint} was trained with"
        )


# --------------------------------------------------------------------------------------------
# device helpers






def progress(total: int, desc: str) -> tqdm:
    """A progress bar on the terminal, silent in logs and under Snakemake."""
    return tqdm(total=total, unit="img", desc=desc, disable=not sys.stderr.isatty())


def detection_attrs(
    *,
    infer: InferConfig,
    vocabulary: Vocabulary,
    split: str,
    annotations: Path,
    proposals: Path,
    checkpoint: Path,
    iterations: int,
) -> dict[str, object]:
    """What made the detections: inputs, checkpoint identity and the inference config."""
    return {
        "stage": "infer",
        "split": split,
        "annotations": str(annotations),
        "proposals": str(proposals),
        "checkpoint": str(checkpoint),
        "checkpoint_digest": file_digest(checkpoint),
        "checkpoint_iterations": iterations,
        "infer": recorded_config(infer),
        "classes": {"verbs": vocabulary.num_verbs, "objects": vocabulary.num_objects, "hoi": vocabulary.num_classes},
    }


def log_summary(out: Path, detections: Sequence[HOIDetections], seconds: float) -> None:
    """Tuple counts and the speed of the batch loop (loading the model and data excluded)."""
    counts = np.array([len(d) for d in detections])
    log.info(
        "%s: %d tuples over %d images (%d without any), %.1f images/s",
        out, counts.sum(), len(counts), int((counts == 0).sum()), len(counts) / max(seconds, 1e-9),
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# the stage


def run(
    *,
    infer: InferConfig,
    annotations: Path,
    split: str,
    images: Path,
    proposals: Path,
    checkpoint: Path,
    out: Path,
    shard: Shard | None = None,
) -> None:
    """Detections of every image of `split` (the annotation file gives the image list and the classes)."""
    from hoi_pipeline.checkpoints import load_trained_model
    from hoi_pipeline.datasets import load_annotations
    from hoi_pipeline.datasets.hoi_images import HOIImageDataset
    from hoi_pipeline.datasets.input_pipeline import worker_decode

    start = time.perf_counter()
    refuse_overwriting_inputs([out], [annotations, proposals, checkpoint])
    device = resolve_device(infer.device, "infer.device")
    data = load_annotations(annotations, split)
    model, info = load_trained_model(checkpoint, device)
    check_vocabulary(data.vocabulary, info.vocabulary, Path(annotations), Path(checkpoint))
    filenames = list(data.filenames) if shard is None else shard.select(list(data.filenames))
    dataset = HOIImageDataset(
        images=images,
        filenames=filenames,
        proposals=proposals,
        vocabulary=data.vocabulary,
        preprocessing=info.preprocessing,
        decode=worker_decode(info.preprocessing.decode, device),
    )  # no labels: inference never looks at them
    hoi_lookup = torch.from_numpy(data.vocabulary.hoi_lookup())
    log.info(
        "infer: %d images of %s, checkpoint %s (%d iterations) on %s, top %d tuples per image",
        len(dataset), split, checkpoint, info.iterations, device, infer.top_k,
    )  # fmt: skip
    loop_start = time.perf_counter()
    detections = infer_dataset(model, dataset, hoi_lookup=hoi_lookup, infer=infer, device=device)
    seconds = time.perf_counter() - loop_start
    attrs = detection_attrs(
        infer=infer, vocabulary=data.vocabulary, split=split, annotations=Path(annotations),
        proposals=Path(proposals), checkpoint=Path(checkpoint), iterations=info.iterations,
    )  # fmt: skip
    write_detections(out, detections, {**attrs, **(shard.attrs() if shard is not None else {})},
                     skipped=sorted(dataset.skipped_images))
    log_summary(Path(out), detections, seconds)
    log.info("infer: done in %.1f s", time.perf_counter() - start)


def infer_dataset(
    model: torch.nn.Module,
    dataset: HOIImageDataset,
    *,
    hoi_lookup: torch.Tensor,
    infer: InferConfig,
    device: torch.device,
) -> list[HOIDetections]:
    """Detections of every image of `dataset`, in its order (DataLoader, progress bar, autocast).

    Output boxes are the dataset's proposals in original image coordinates (`dataset.proposals(i)`),
    not the letterboxed boxes the model saw. Images the detect stage skipped get no tuples.
    """
    from torch.utils.data import DataLoader

    dataset.close()  # workers open their own HDF5 handles
    readable = dataset.readable_indices()
    if len(readable) < len(dataset):
        log.warning("%d images that the detect stage could not read get no tuples (detector.on_bad_image: skip)",
                    len(dataset) - len(readable))  # fmt: skip
    loader = DataLoader(
        dataset,
        sampler=readable,
        batch_size=infer.batch_size,
        num_workers=infer.num_workers,
        collate_fn=dataset.collate,
        pin_memory=device.type == "cuda",
    )
    detections = [empty_detections(name) for name in dataset.filenames]
    try:
        with progress(len(readable), "infer") as bar:
            for batch in loader:
                originals = [dataset.proposals(int(i)) for i in batch.indices]
                for i, found in zip(batch.indices, predict_batch(model, batch, originals, hoi_lookup, infer, device)):
                    detections[int(i)] = found
                bar.update(len(batch))
    finally:
        dataset.close()
    return detections


@torch.inference_mode()
def predict_batch(
    model: torch.nn.Module,
    batch: HOIBatch,
    proposals: Sequence[Proposals],
    hoi_lookup: torch.Tensor,
    infer: InferConfig,
    device: torch.device,
) -> list[HOIDetections]:
    """Detections of one collated batch; `proposals` are its images' proposals in original coordinates.

    The model gets its pairs and content sizes from the host copy of the batch, as in training, so the
    forward pass never waits for the device; the detections are read back once at the end.
    """
    max_pairs = infer.max_pairs or NO_PAIR_CAP
    pairs = model.pair_batch(batch.labels, batch.scores, max_pairs)
    host_sizes = batch.image_sizes
    batch = batch.to(device, non_blocking=True)
    with autocast(device, infer.precision):
        output = model(batch.images, batch.boxes, batch.labels, batch.scores, host_sizes, max_pairs=max_pairs,
                       pairs=pairs)  # fmt: skip
    return detections_from_output(output, proposals, hoi_lookup, infer)
