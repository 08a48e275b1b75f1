"""From an image file to network input: decode, resize to a longer side S, normalise.

The steps and where they run (costs per 640 x 480 JPEG on one core of the development CPU,
`benchmarks/bench_input.py`):
- decode: Pillow or `torchvision.io.decode_image` (both libjpeg-turbo, equal pixels), about 1.7 ms;
  or nvJPEG on the GPU for a whole batch (`decode="device"`, `decode_on_device`);
- resize, keeping the aspect ratio, so that the longer side is S (`resized_size`): Pillow's bicubic
  2.5 ms at S = 224; torchvision's uint8 antialiased bicubic kernel 0.3 ms, its pixels within one
  grey level of Pillow's (0.3 % of them differ by one); none when the image already has that size;
- normalise, (x / 255 - mean) / std in float32: 2.4 ms at 640 x 480 on the CPU, and four times the
  bytes (float32 instead of uint8) through the DataLoader's shared memory, the collate copy and the
  host-to-device copy. `normalise_batch` does it on the device, on the padded batch, equal bit for
  bit to normalising each image on the CPU (the same float32 operations) with padding zeros.

`read_resized` is the worker's part for `decode` "pil" (the reference) or "torchvision";
`read_encoded` + `decode_on_device` split it between the worker (reading the file's bytes) and the
GPU. Every reader checks the image's size from its header first (`hoi_pipeline.datasets.images`)
and raises errors that name the file. `HOIImageDataset` (training, inference, predict) reads its
images with these functions and `HOIBatch.to` finishes them on the model's device; the setting is
`model.decode` (`DEFAULT_DECODE`, kept in the checkpoint's preprocessing so inference reads
images as training did).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import get_worker_info
from torchvision.io import ImageReadMode, decode_image, decode_jpeg
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2.functional import resize

from hoi_pipeline.datasets.images import open_image, read_image

Decode = Literal["pil", "torchvision", "device"]
DECODES: tuple[str, ...] = ("pil", "torchvision", "device")
# the measured choice on the CPU (README "Performance"): the same decoded pixels as Pillow, the resize
# 8x faster; "device" is for GPUs whose workers cannot keep up (it needs CUDA to differ from this one)
DEFAULT_DECODE: Decode = "torchvision"


def resized_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(new width, new height) with the longer side `size` and the aspect ratio kept (at least 1 pixel)."""
    scale = size / max(width, height)
    return max(1, min(size, round(width * scale))), max(1, min(size, round(height * scale)))


@dataclass(frozen=True)
class DecodedImage:
    """An image resized for the network, not yet normalised."""

    pixels: torch.Tensor  # (3, h, w) uint8 RGB, longer side S
    original_size: tuple[int, int]  # (height, width) of the file


@dataclass(frozen=True)
class EncodedImage:
    """A JPEG file's bytes, to be decoded on the device (`decode_on_device`)."""

    data: torch.Tensor  # (L,) uint8, the file's content
    original_size: tuple[int, int]  # (height, width) from the header
    path: str  # the file, for error messages


def read_resized(path: str | os.PathLike, size: int, decode: Decode = "pil") -> DecodedImage:
    """Decode an image file as RGB and resize it to the longer side `size` (bicubic, antialiased).

    decode "pil": Pillow for both steps (the reference); "torchvision": torchvision's decoder (the
    same pixels for JPEG and PNG; Pillow's for formats it lacks, e.g. BMP or TIFF) and its uint8
    bicubic resize (within one grey level of Pillow's).
    """
    if decode == "pil":
        image = read_image(path)
        width, height = image.size
        new_size = resized_size(width, height, size)
        if new_size != (width, height):
            image = image.resize(new_size, Image.BICUBIC)
        return DecodedImage(pillow_pixels(image), (height, width))
    if decode == "torchvision":
        encoded = read_encoded(path)
        try:
            pixels = decode_image(encoded.data, mode=ImageReadMode.RGB)  # (3, H, W) uint8
        except RuntimeError:  # a format torchvision does not decode, or a damaged file: Pillow decides
            pixels = pillow_pixels(read_image(path))
        return DecodedImage(resize_pixels(pixels, size), encoded.original_size)
    raise ValueError(f"decode: '{decode}' is not one of {list(DECODES)} for a CPU reader")


def read_input(path: str | os.PathLike, size: int, decode: Decode) -> DecodedImage | EncodedImage:
    """A DataLoader worker's part for `decode` (see `worker_decode`): the image decoded and resized, or,
    for "device", the file's bytes."""
    return read_encoded(path) if decode == "device" else read_resized(path, size, decode)


def pillow_pixels(image: Image.Image) -> torch.Tensor:
    """An RGB Pillow image -> (3, H, W) uint8."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def worker_decode(decode: Decode, device: torch.device) -> Decode:
    """What DataLoader workers do for `decode` when the model runs on `device`: "device" decoding
    needs CUDA (nvJPEG); elsewhere the workers decode as "torchvision" does, which is what
    `decode_on_device` would do on that device anyway (the same pixels, in parallel)."""
    if decode not in DECODES:
        raise ValueError(f"decode: '{decode}' is not one of {list(DECODES)}")
    return "torchvision" if decode == "device" and device.type != "cuda" else decode


def read_encoded(path: str | os.PathLike) -> EncodedImage:
    """The file's bytes after the header checks of `open_image` (exists, readable, not too large)."""
    path = Path(path)
    with open_image(path) as image:
        width, height = image.size
    data = torch.from_numpy(np.fromfile(path, dtype=np.uint8))
    return EncodedImage(data, (height, width), str(path))


def is_jpeg(data: torch.Tensor) -> bool:
    """True when the bytes start with the JPEG start-of-image marker."""
    return data.numel() >= 3 and data[:3].tolist() == [0xFF, 0xD8, 0xFF]


def resize_pixels(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """(3, H, W) uint8 -> (3, h, w) uint8 with the longer side `size` (antialiased bicubic; a copy-free
    no-op when the image already has that size). On the CPU: torchvision's uint8 kernel; on a GPU:
    float32 interpolation rounded back to uint8."""
    height, width = pixels.shape[-2:]
    new_width, new_height = resized_size(width, height, size)
    if (new_width, new_height) == (width, height):
        return pixels
    if pixels.device.type == "cpu":
        return resize(pixels, [new_height, new_width], InterpolationMode.BICUBIC, antialias=True)
    resized = F.interpolate(pixels[None].float(), size=(new_height, new_width), mode="bicubic", antialias=True)
    return resized[0].round_().clamp_(0, 255).to(torch.uint8)


def decode_on_device(
    images: Sequence[EncodedImage | DecodedImage], size: int, device: torch.device
) -> list[torch.Tensor]:
    """B images -> B (3, h, w) uint8 on `device`, resized to the longer side `size`.

    JPEG bytes are decoded together by nvJPEG (`torchvision.io.decode_jpeg(device=...)`); other
    formats, or a JPEG the GPU decoder refuses, by the CPU; already decoded images are only moved.
    """
    out: list[torch.Tensor | None] = [None] * len(images)
    jpegs = [i for i, item in enumerate(images) if isinstance(item, EncodedImage) and is_jpeg(item.data)]
    if jpegs and device.type == "cuda":
        try:
            decoded = decode_jpeg([images[i].data for i in jpegs], mode=ImageReadMode.RGB, device=device)
        except RuntimeError:  # e.g. a CMYK JPEG: decode the batch's images one by one below
            decoded = [None] * len(jpegs)
        for i, pixels in zip(jpegs, decoded):
            out[i] = pixels
    for i, item in enumerate(images):
        if out[i] is None:
            if isinstance(item, DecodedImage):
                out[i] = item.pixels.to(device, non_blocking=True)
                continue
            try:
                pixels = decode_image(item.data, mode=ImageReadMode.RGB)
            except RuntimeError:  # not a format torchvision decodes (or damaged): Pillow reads it or names the file
                pixels = pillow_pixels(read_image(item.path))
            out[i] = pixels.to(device, non_blocking=True)
    return [resize_pixels(pixels, size) for pixels in out]  # type: ignore[arg-type]


PAD_MULTIPLE = 32  # a batch's height and width are multiples of the backbone's stride


def padded_size(sizes: Sequence[tuple[int, int]], multiple: int = PAD_MULTIPLE) -> tuple[int, int]:
    """(height, width) holding every (height, width) of `sizes`, rounded up to `multiple`."""
    height = max(h for h, _ in sizes)
    width = max(w for _, w in sizes)
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def pad_images(images: Sequence[torch.Tensor], multiple: int = PAD_MULTIPLE, shared: bool = True) -> torch.Tensor:
    """B (3, h_b, w_b) images -> (B, 3, H, W), each at the top left, zeros elsewhere.

    In a DataLoader worker the batch is allocated in shared memory (unless `shared` is false), as
    torch's default collate does, so that sending it to the main process does not copy it again.
    """
    height, width = padded_size([tuple(image.shape[-2:]) for image in images], multiple)
    shape = (len(images), images[0].shape[0], height, width)
    if shared and get_worker_info() is not None and images[0].device.type == "cpu":
        storage = torch.UntypedStorage._new_shared(math.prod(shape) * images[0].element_size())
        batch = torch.tensor([], dtype=images[0].dtype).set_(storage).view(shape).zero_()
    else:
        batch = images[0].new_zeros(shape)
    for b, image in enumerate(images):
        batch[b, :, : image.shape[-2], : image.shape[-1]] = image
    return batch


def normalise_batch(
    images: torch.Tensor,
    content_sizes: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
) -> torch.Tensor:
    """(B, 3, H, W) uint8 padded batch -> float32 (x / 255 - mean) / std inside each image's content
    (B, 2) (height, width) and zero in the padding (the mean colour), on the batch's device."""
    # made on the host and copied without waiting (`torch.tensor(..., device=cuda)` would wait for the GPU)
    mean_t = torch.tensor(mean, dtype=torch.float32)[:, None, None].to(images.device, non_blocking=True)
    std_t = torch.tensor(std, dtype=torch.float32)[:, None, None].to(images.device, non_blocking=True)
    pixels = images.to(torch.float32).div_(255.0).sub_(mean_t).div_(std_t)  # in place: one float32 copy
    height, width = images.shape[-2:]
    sizes = content_sizes.to(images.device)
    rows = torch.arange(height, device=images.device)[None, :, None] < sizes[:, 0, None, None]  # (B, H, 1)
    cols = torch.arange(width, device=images.device)[None, None, :] < sizes[:, 1, None, None]  # (B, 1, W)
    return pixels.masked_fill_(~(rows & cols)[:, None], 0.0)
