"""Images + proposals + image-level labels as a torch Dataset, for training and inference.

Image resizing policy: every image is resized, keeping its aspect ratio, so that its longer side is
S pixels (S = `model.input_size`, 640 by default: HICO-DET images are mostly 640 x 480, so they keep
about their native size; the paper states no input size). A batch is padded at the right and
bottom to its largest image, rounded up to a multiple of 32 (`PAD_MULTIPLE`, the backbone's
stride), with zeros after normalisation (the mean colour); a batch of 640 x 480 images is therefore
640 x 480, not a 640 x 640 square. Proposal boxes are scaled by the same per-axis factors (new size
/ old size). The model gets each image's content size: global pooling reads only the image's own
feature cells, and the spatial encoding is relative to the content. Pixels are normalised with the
CLIP mean / std. Training may flip an image horizontally; the flip is decided by the batch sampler
(a function of seed and sample position, so it is resumable).

Where each step runs (`hoi_pipeline.datasets.input_pipeline`, `model.decode`): DataLoader workers
decode and resize (Pillow, or torchvision's decoder and uint8 resize) and send uint8 batches;
`HOIBatch.to(device)` normalises on the model's device (a quarter of the bytes through shared memory
and the host-to-device copy, and no float work in the workers). With `decode: device` the workers
only read the files' bytes and the GPU decodes the batch (nvJPEG).

Training uses every image with an HOI label. Images whose proposals make no human-object pair (no
human, or a human alone) still train the global branch (L_g needs no pair; `loss.images_without_
pairs: train_global`) or are skipped (`skip`); `HOIImageDataset.training_indices` lists the usable
ones and counts the others. Images with no proposals at all are valid items (empty box tensors), so
inference never crashes on them. Proposals come from the detect stage's HDF5 (`ProposalsFile`),
opened lazily in each DataLoader worker.

`detector.on_bad_image: skip` means the same in every stage: the images the detect stage could not
read are listed in the proposals file (`skipped_images`); training leaves them out of its indices
and inference out of its loop (`readable_indices`), both counting them. An image that cannot be
read but is not listed is an `InputFileError` naming it (one line, also from a DataLoader worker).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from hoi_pipeline.artifacts import InputFileError, ProposalsFile
from hoi_pipeline.datasets.input_pipeline import (
    Decode,
    DecodedImage,
    EncodedImage,
    decode_on_device,
    normalise_batch,
    pad_images,
    read_input,
    resized_size,
)
from hoi_pipeline.losses import ImageTargets
from hoi_pipeline.structures import HOIAnnotations, ImageAnnotation, Proposals, Vocabulary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preprocessing:
    """How images become model input: longer side resized to `image_size`, then (x - mean) / std;
    `decode` names the decoder and resize (`hoi_pipeline.datasets.input_pipeline`)."""

    image_size: int  # longer side, pixels
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    decode: Decode = "pil"  # what checkpoints written before the setting existed were trained with

    def to_dict(self) -> dict:
        return {"image_size": self.image_size, "mean": list(self.mean), "std": list(self.std), "decode": self.decode}

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        return cls(int(data["image_size"]), tuple(data["mean"]), tuple(data["std"]), data.get("decode", "pil"))


@dataclass(frozen=True)
class HOISample:
    """One image ready for the model. Boxes are in input pixels (after resize and flip)."""

    index: int  # position in the dataset
    filename: str
    image: torch.Tensor | EncodedImage  # (3, h, w) uint8 RGB, not padded (longer side S), or the file's bytes
    content_size: tuple[int, int]  # (height, width) of the image inside the padded input
    original_size: tuple[int, int]  # (height, width) of the file
    scale: tuple[float, float]  # (x, y) input pixels per original pixel
    flipped: bool
    boxes: torch.Tensor  # (M, 4) float32
    scores: torch.Tensor  # (M,) float32
    labels: torch.Tensor  # (M,) int64
    hoi: torch.Tensor  # (N,) multi-hot image labels (zeros without annotations)
    verb: torch.Tensor  # (A,)
    object: torch.Tensor  # (O,)


@dataclass(frozen=True)
class HOIBatch:
    """B collated samples; the model takes images, boxes, labels, scores and image_sizes.

    From the loader, `images` are uint8 (or the files' bytes, for `decode: device`); `to(device)`
    makes them the network's input there: decoded, padded, normalised float32.
    """

    indices: torch.Tensor  # (B,) dataset positions
    filenames: tuple[str, ...]
    # (B, 3, H, W) padded to the largest image, H and W multiples of 32: uint8 RGB from the loader,
    # float32 normalised (padding 0) after `to`; or B encoded files, decoded by `to`
    images: torch.Tensor | tuple[EncodedImage, ...]
    image_sizes: torch.Tensor  # (B, 2) content (height, width)
    original_sizes: torch.Tensor  # (B, 2) (height, width)
    scales: torch.Tensor  # (B, 2) (x, y)
    flipped: torch.Tensor  # (B,) bool
    boxes: tuple[torch.Tensor, ...]  # B x (M_b, 4)
    scores: tuple[torch.Tensor, ...]  # B x (M_b,)
    labels: tuple[torch.Tensor, ...]  # B x (M_b,)
    targets: ImageTargets
    preprocessing: Preprocessing

    def __len__(self) -> int:
        return len(self.filenames)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> HOIBatch:
        """The model's inputs and the targets on `device` (the host-side bookkeeping stays), the images
        finished there: decoded (encoded files: `decode_on_device`, then flipped where the sampler
        said so), padded and normalised (`normalise_batch`). Images already normalised only move."""
        device = torch.device(device)
        moved = self._map_model_tensors(lambda t: t.to(device, non_blocking=non_blocking))
        if isinstance(moved.images, torch.Tensor):
            if moved.images.dtype != torch.uint8:
                return moved
            pixels = moved.images
        else:
            decoded = decode_on_device(moved.images, self.preprocessing.image_size, device)
            pixels = pad_images([p.flip(-1) if f else p for p, f in zip(decoded, self.flipped.tolist())])
        mean, std = self.preprocessing.mean, self.preprocessing.std
        return replace(moved, images=normalise_batch(pixels, moved.image_sizes, mean, std))

    def pin_memory(self) -> HOIBatch:
        """The DataLoader's `pin_memory=True`: page-locked copies, so `to(cuda, non_blocking=True)` does not wait."""
        return self._map_model_tensors(torch.Tensor.pin_memory)

    def _map_model_tensors(self, move: Callable[[torch.Tensor], torch.Tensor]) -> HOIBatch:
        return HOIBatch(
            indices=self.indices,
            filenames=self.filenames,
            images=move(self.images) if isinstance(self.images, torch.Tensor) else self.images,
            image_sizes=move(self.image_sizes),
            original_sizes=self.original_sizes,
            scales=self.scales,
            flipped=self.flipped,
            boxes=tuple(move(b) for b in self.boxes),
            scores=tuple(move(s) for s in self.scores),
            labels=tuple(move(lab) for lab in self.labels),
            targets=ImageTargets(move(self.targets.hoi), move(self.targets.verb), move(self.targets.object)),
            preprocessing=self.preprocessing,
        )

    def original_boxes(self, b: int) -> torch.Tensor:
        """(M_b, 4) image b's boxes back in the file's pixel coordinates (undoing flip and resize)."""
        boxes = self.boxes[b].detach().float().cpu().clone()
        if bool(self.flipped[b]):
            width = float(self.image_sizes[b, 1])
            boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
        sx, sy = (float(v) for v in self.scales[b])
        return boxes / torch.tensor([sx, sy, sx, sy])


def collate_samples(samples: Sequence[HOISample], preprocessing: Preprocessing) -> HOIBatch:
    """Stack B samples into an `HOIBatch`, images padded to the largest (in shared memory in a
    DataLoader worker) or kept encoded; boxes stay a per-image tuple."""
    images = [s.image for s in samples]
    return HOIBatch(
        indices=torch.tensor([s.index for s in samples], dtype=torch.int64),
        filenames=tuple(s.filename for s in samples),
        images=tuple(images) if images and isinstance(images[0], EncodedImage) else pad_images(images),
        image_sizes=torch.tensor([s.content_size for s in samples], dtype=torch.int64),
        original_sizes=torch.tensor([s.original_size for s in samples], dtype=torch.int64),
        scales=torch.tensor([s.scale for s in samples], dtype=torch.float32),
        flipped=torch.tensor([s.flipped for s in samples], dtype=torch.bool),
        boxes=tuple(s.boxes for s in samples),
        scores=tuple(s.scores for s in samples),
        labels=tuple(s.labels for s in samples),
        targets=ImageTargets(
            hoi=torch.stack([s.hoi for s in samples]),
            verb=torch.stack([s.verb for s in samples]),
            object=torch.stack([s.object for s in samples]),
        ),
        preprocessing=preprocessing,
    )


def make_sample(
    index: int,
    filename: str,
    image: DecodedImage | EncodedImage,
    proposals: Proposals,
    vocabulary: Vocabulary,
    image_size: int,
    *,
    annotation: ImageAnnotation | None = None,
    flip: bool = False,
) -> HOISample:
    """One image read by `input_pipeline.read_input` at the longer side `image_size`, its proposals scaled
    (and flipped) with it, and its labels as multi-hot vectors (zeros without an annotation)."""
    height, width = image.original_size
    new_width, new_height = resized_size(width, height, image_size)
    scale = (new_width / width, new_height / height)
    if isinstance(image, EncodedImage):
        pixels: torch.Tensor | EncodedImage = image  # decoded, and flipped, by `HOIBatch.to`
    else:
        pixels = image.pixels.flip(-1) if flip else image.pixels

    boxes = torch.from_numpy(proposals.boxes.copy()) * torch.tensor([scale[0], scale[1], scale[0], scale[1]])
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clamp(0, new_width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clamp(0, new_height)
    if flip:
        boxes[:, [0, 2]] = new_width - boxes[:, [2, 0]]

    hoi = torch.zeros(vocabulary.num_classes)
    verb = torch.zeros(vocabulary.num_verbs)
    obj = torch.zeros(vocabulary.num_objects)
    if annotation is not None:
        hoi[torch.from_numpy(annotation.hoi)] = 1.0
        verb[torch.from_numpy(annotation.verb)] = 1.0
        obj[torch.from_numpy(annotation.object)] = 1.0
    return HOISample(
        index=index,
        filename=filename,
        image=pixels,
        content_size=(new_height, new_width),
        original_size=(height, width),
        scale=scale,
        flipped=flip,
        boxes=boxes.float(),
        scores=torch.from_numpy(proposals.scores.copy()).float(),
        labels=torch.from_numpy(proposals.labels.copy()).long(),
        hoi=hoi,
        verb=verb,
        object=obj,
    )


class HOIImageDataset(Dataset):
    """Item i = image `filenames[i]` letterboxed, its proposals, and its image-level labels.

    An item may also be requested as `(i, flip)` (what `SeededBatchSampler` yields in training).
    `proposals` is a proposals HDF5 path (read lazily, per worker) or a list of `Proposals` in
    `filenames` order (e.g. fresh detections on the user's images). `decode` is what the workers do
    (`input_pipeline.worker_decode` of the preprocessing's decode and the model's device; default
    the preprocessing's own); `collate` makes the batches.
    """

    def __init__(
        self,
        *,
        images: str | os.PathLike,
        filenames: Sequence[str],
        proposals: str | os.PathLike | Sequence[Proposals],
        vocabulary: Vocabulary,
        preprocessing: Preprocessing,
        annotations: Sequence[ImageAnnotation] | None = None,
        decode: Decode | None = None,
    ) -> None:
        self.images = Path(images)
        self.filenames = list(filenames)
        self.vocabulary = vocabulary
        self.preprocessing = preprocessing
        self.decode = decode or preprocessing.decode
        if annotations is not None and len(annotations) != len(self.filenames):
            raise ValueError(f"{len(annotations)} annotations for {len(self.filenames)} images")
        self.annotations = None if annotations is None else list(annotations)
        if isinstance(proposals, (str, os.PathLike)):
            self._file: ProposalsFile | None = ProposalsFile(proposals)
            missing = [name for name in self.filenames if name not in self._file.index]
            if missing:
                raise ValueError(
                    f"{self._file.path}: no proposals for {len(missing)} of {len(self.filenames)} images "
                    f"(first: {missing[:3]}); was it made from the same split?"
                )
            self._rows = [self._file.index[name] for name in self.filenames]
            self._proposals: list[Proposals] | None = None
            self.skipped_images = frozenset(self._file.skipped_images) & set(self.filenames)
        else:
            self._file = None
            self.skipped_images = frozenset()  # images the detect stage could not read (on_bad_image: skip)
            self._proposals = list(proposals)
            if len(self._proposals) != len(self.filenames):
                raise ValueError(f"{len(self._proposals)} proposal sets for {len(self.filenames)} images")

    @classmethod
    def from_split(
        cls,
        annotations: HOIAnnotations,
        *,
        images: str | os.PathLike,
        proposals: str | os.PathLike | Sequence[Proposals],
        preprocessing: Preprocessing,
        decode: Decode | None = None,
    ) -> HOIImageDataset:
        """Every image of a split, with its labels."""
        return cls(
            images=images,
            filenames=annotations.filenames,
            proposals=proposals,
            vocabulary=annotations.vocabulary,
            preprocessing=preprocessing,
            annotations=annotations.images,
            decode=decode,
        )

    def __len__(self) -> int:
        return len(self.filenames)

    def proposals(self, i: int) -> Proposals:
        """Proposals of image i (original pixel coordinates)."""
        if self._file is not None:
            return self._file[self._rows[i]]
        return self._proposals[i]  # type: ignore[index]

    def close(self) -> None:
        """Close the HDF5 handle (before forking workers; each reopens its own)."""
        if self._file is not None:
            self._file.close()

    def readable_indices(self) -> list[int]:
        """Every image but those the detect stage skipped as unreadable (what inference runs on)."""
        return [i for i, name in enumerate(self.filenames) if name not in self.skipped_images]

    def training_indices(self, include_without_pairs: bool = True) -> tuple[list[int], dict[str, int]]:
        """Images usable for training, and counts: unreadable, without an HOI label, without a human-object pair.

        An image whose proposals make no human-object pair is used when `include_without_pairs`
        (it trains L_g) and left out otherwise; `no_human_pair` counts such images either way.
        """
        if self.annotations is None:
            raise ValueError("training needs annotations (image-level labels)")
        person = self.vocabulary.person
        if self._file is not None:
            labels = self._file.read_all(["labels"])["labels"]
            offsets = self._file.offsets
            image_labels = [labels[offsets[r] : offsets[r + 1]] for r in self._rows]
            self.close()
        else:
            image_labels = [p.labels for p in self._proposals]  # type: ignore[union-attr]
        # a pair needs a human and one more detection
        has_pair = [bool((lab == person).any()) and len(lab) >= 2 for lab in image_labels]
        keep, no_label, no_human = [], 0, 0
        readable = self.readable_indices()
        for i in readable:
            if self.annotations[i].num_pairs == 0:
                no_label += 1
                continue
            if not has_pair[i]:
                no_human += 1
                if not include_without_pairs:
                    continue
            keep.append(i)
        unreadable = len(self.filenames) - len(readable)
        if unreadable:
            log.warning(
                "%d images that the detect stage could not read are left out (detector.on_bad_image: skip; "
                "listed in %s)", unreadable, self._file.path if self._file is not None else "the proposals",
            )  # fmt: skip
        return keep, {"unreadable": unreadable, "no_hoi_label": no_label, "no_human_pair": no_human}

    def __getitem__(self, item: int | tuple[int, bool]) -> HOISample:
        i, flip = item if isinstance(item, tuple) else (item, False)
        filename = self.filenames[int(i)]
        return make_sample(
            int(i), filename, self._read(filename), self.proposals(int(i)), self.vocabulary,
            self.preprocessing.image_size, annotation=None if self.annotations is None else self.annotations[int(i)],
            flip=bool(flip),
        )  # fmt: skip

    def collate(self, samples: Sequence[HOISample]) -> HOIBatch:
        """The DataLoader's `collate_fn`: `collate_samples` with this dataset's preprocessing."""
        return collate_samples(samples, self.preprocessing)

    def _read(self, filename: str) -> DecodedImage | EncodedImage:
        """The image resized (or its bytes, for device decoding), or an `InputFileError` naming it (one
        line, also when raised in a DataLoader worker)."""
        path = self.images / filename
        if filename in self.skipped_images:
            raise InputFileError(f"{path}: the detect stage skipped this unreadable image; it has no item")
        try:
            return read_input(path, self.preprocessing.image_size, self.decode)
        except (FileNotFoundError, ValueError) as error:
            hint = (
                f"; {self._file.path} does not list it as skipped: restore the image, or rerun detect with "
                "detector.on_bad_image: skip to leave it out"
                if self._file is not None
                else ""
            )
            raise InputFileError(f"{error}{hint}") from error


class SeededBatchSampler(Sampler):
    """Training batches for iterations [start, stop), each a list of (dataset index, flip) pairs.

    The order is a pure function of (seed, iteration): global sample position t = iteration * B + j
    is slot t % n of epoch t // n, whose permutation of the n usable images (and flip bits) comes
    from numpy's generator seeded with [seed, epoch]. A resumed run therefore sees exactly the
    batches an uninterrupted run would. Under DDP, rank r takes the positions j = r, r + W, ... of
    each global batch of B. With `micro_batch_size` m, each iteration's share of B / W images comes
    as `steps_per_iteration` = B / (W m) consecutive micro-batches of m (gradient accumulation).
    """

    def __init__(
        self,
        indices: Sequence[int],
        *,
        batch_size: int,
        seed: int,
        start: int,
        stop: int,
        flip: bool = True,
        rank: int = 0,
        world_size: int = 1,
        micro_batch_size: int | None = None,
    ) -> None:
        if not indices:
            raise ValueError("no usable training images")
        if batch_size % world_size:
            raise ValueError(f"train.batch_size {batch_size} is not a multiple of the {world_size} processes")
        share = batch_size // world_size
        micro = share if micro_batch_size is None else min(micro_batch_size, share)
        if micro < 1 or share % micro:
            raise ValueError(
                f"train.micro_batch_size {micro_batch_size} does not divide the {share} images of each process "
                f"(train.batch_size {batch_size} over {world_size} processes)"
            )
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size, self.seed, self.start, self.stop = batch_size, seed, start, stop
        self.flip, self.rank, self.world_size = flip, rank, world_size
        self.micro_batch_size = micro
        self.steps_per_iteration = share // micro
        self._epoch_cache: tuple[int, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.steps_per_iteration

    def _epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(len(self.indices))
            flips = rng.random(len(self.indices)) < 0.5
            self._epoch_cache = (epoch, self.indices[order], flips)
        return self._epoch_cache[1], self._epoch_cache[2]

    def batch(self, iteration: int) -> list[tuple[int, bool]]:
        """This rank's share of the global batch of `iteration`."""
        n = len(self.indices)
        out = []
        for j in range(self.rank, self.batch_size, self.world_size):
            t = iteration * self.batch_size + j
            order, flips = self._epoch(t // n)
            out.append((int(order[t % n]), bool(flips[t % n]) and self.flip))
        return out

    def __iter__(self) -> Iterator[list[tuple[int, bool]]]:
        for iteration in range(self.start, self.stop):
            share = self.batch(iteration)
            for first in range(0, len(share), self.micro_batch_size):
                yield share[first : first + self.micro_batch_size]
