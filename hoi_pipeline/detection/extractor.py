"""Running a detector over images and turning its raw output into proposals.

`ProposalExtractor` is what the backends share: a backend implements `detect` (a batch of images to
raw boxes, scores and detector label ids); the base class maps the labels into the dataset's object
order and applies the post-processing of `postprocess.py`. `extract_split` feeds a split's images
through it with a DataLoader.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.functional import pil_to_tensor
from tqdm import tqdm

from hoi_pipeline.datasets.images import read_image
from hoi_pipeline.detection.label_map import apply_label_table
from hoi_pipeline.detection.postprocess import PostprocessSettings, select_proposals
from hoi_pipeline.devices import autocast
from hoi_pipeline.structures import Proposals

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawDetections:
    """A detector's output for one image, labels in the detector's own ids. Shapes (M, 4), (M,), (M,)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


def to_proposals(
    filename: str,
    raw: RawDetections,
    *,
    label_table: np.ndarray,
    person: int,
    settings: PostprocessSettings,
) -> Proposals:
    """Map detector labels to dataset objects (dropping unmapped classes), then post-process."""
    labels, mapped = apply_label_table(raw.labels, label_table)
    boxes = np.asarray(raw.boxes, dtype=np.float32).reshape(-1, 4)[mapped]
    scores = np.asarray(raw.scores, dtype=np.float32).reshape(-1)[mapped]
    labels = labels[mapped]
    keep = select_proposals(boxes, scores, labels, person=person, settings=settings)
    return Proposals(filename, boxes[keep], scores[keep], labels[keep])


class ProposalExtractor:
    """A detector with its label mapping and post-processing; `extract` gives proposals per image.

    Subclasses set `identity` (backend, model, weights: what made the proposals, stored in the
    output's attrs) and implement `detect`.
    """

    def __init__(
        self,
        *,
        objects: Sequence[str],
        label_table: np.ndarray,
        settings: PostprocessSettings,
        device: torch.device,
        precision: str,
        identity: dict[str, str],
    ) -> None:
        self.objects = tuple(objects)
        if "person" not in self.objects:
            raise ValueError("the dataset's object classes have no 'person'")
        self.person = self.objects.index("person")
        self.label_table = label_table
        self.settings = settings
        self.device = device
        self.precision = precision if device.type == "cuda" else "fp32"
        self.identity = identity

    def detect(self, images: list[torch.Tensor]) -> list[RawDetections]:
        """Raw detections of B uint8 (3, H, W) RGB images, boxes in their pixel coordinates."""
        raise NotImplementedError

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision on CUDA with the configured dtype; a no-op on CPU or for fp32."""
        return autocast(self.device, self.precision)

    def extract_tensors(self, images: list[torch.Tensor], filenames: Sequence[str]) -> list[Proposals]:
        """Proposals of B uint8 (3, H, W) RGB images."""
        if len(images) != len(filenames):
            raise ValueError(f"{len(images)} images but {len(filenames)} filenames")
        if not images:
            return []
        raws = self.detect(images)
        return [
            to_proposals(name, raw, label_table=self.label_table, person=self.person, settings=self.settings)
            for name, raw in zip(filenames, raws)
        ]

    def extract(self, images: list[Image.Image], filenames: list[str]) -> list[Proposals]:
        """Proposals of B PIL images (any mode; converted to RGB)."""
        tensors = [pil_to_tensor(image.convert("RGB")) for image in images]
        return self.extract_tensors(tensors, filenames)


# --------------------------------------------------------------------------------------------
# a split's images through a DataLoader


@dataclass(frozen=True)
class LoadedImage:
    index: int
    filename: str
    image: torch.Tensor | None  # uint8 (3, H, W); None when unreadable
    error: str = ""

    def pin_memory(self) -> LoadedImage:
        """A copy in page-locked memory (the DataLoader's `pin_memory`): the copy to the GPU runs asynchronously."""
        return self if self.image is None else LoadedImage(self.index, self.filename, self.image.pin_memory(), self.error)


class ImageFiles(Dataset):
    """Images of a split read in DataLoader workers; an unreadable file becomes an error entry, not a crash,
    so that the main process decides (raise or skip) with a message naming the file."""

    def __init__(self, root: str | os.PathLike, filenames: Sequence[str]) -> None:
        self.root = Path(root)
        self.filenames = list(filenames)

    def __len__(self) -> int:
        return len(self.filenames)

    def __getitem__(self, i: int) -> LoadedImage:
        name = self.filenames[i]
        try:
            image = read_image(self.root / name)
        except (FileNotFoundError, ValueError) as error:
            return LoadedImage(i, name, None, str(error))
        return LoadedImage(i, name, pil_to_tensor(image))


def collate_images(batch: list[LoadedImage]) -> list[LoadedImage]:
    return batch


def extract_split(
    extractor: ProposalExtractor,
    root: str | os.PathLike,
    filenames: Sequence[str],
    *,
    batch_size: int,
    num_workers: int,
    on_bad_image: str = "error",
) -> tuple[list[Proposals], list[str]]:
    """Proposals of every image, in `filenames` order, and the names of the images skipped.

    An unreadable image raises a ValueError naming it, or with `on_bad_image="skip"` gets an empty
    entry and is listed in the skipped names.
    """
    loader = DataLoader(
        ImageFiles(root, filenames),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_images,
        shuffle=False,
        pin_memory=extractor.device.type == "cuda",
    )
    results: list[Proposals | None] = [None] * len(filenames)
    skipped: list[str] = []
    with tqdm(total=len(filenames), unit="img", desc="detect", disable=not sys.stderr.isatty()) as bar:
        for batch in loader:
            readable = []
            for item in batch:
                if item.image is not None:
                    readable.append(item)
                    continue
                if on_bad_image != "skip":
                    raise ValueError(f"{item.error} (set detector.on_bad_image: skip to go on without it)")
                log.warning("skipping an unreadable image: %s", item.error)
                skipped.append(item.filename)
                results[item.index] = empty_proposals(item.filename)
            proposals = extractor.extract_tensors([it.image for it in readable], [it.filename for it in readable])
            for item, entry in zip(readable, proposals):
                results[item.index] = entry
            bar.update(len(batch))
    assert all(entry is not None for entry in results)
    return results, skipped  # type: ignore[return-value]


def empty_proposals(filename: str) -> Proposals:
    return Proposals(filename, np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
