"""Reading images with errors that name the file.

An image may have at most `MAX_IMAGE_PIXELS` pixels (100 megapixels, e.g. 12000 x 8000: above any
camera photo or dataset image, HICO-DET's and COCO's are below 1 MP). A larger one is refused
before it is decoded: a small compressed file can expand to gigabytes of RGB data (a "decompression
bomb"). Pillow's own guard (a warning above 89 MP, an error above 179 MP) is replaced by this one
limit, checked in `check_image_size`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

MAX_IMAGE_PIXELS = 100_000_000


def check_image_size(path: str | os.PathLike, size: tuple[int, int]) -> None:
    """Refuse an image of more than `MAX_IMAGE_PIXELS` pixels (`size` = (width, height) from its header)."""
    width, height = size
    if width * height > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"{path}: {width} x {height} pixels is more than the {MAX_IMAGE_PIXELS // 1_000_000} megapixels "
            "an image may have (hoi_pipeline.datasets.images.MAX_IMAGE_PIXELS; a decompression bomb?)"
        )


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open an image lazily (header only) after the size check; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies below
            image = Image.open(path)
    except Image.DecompressionBombError as error:  # beyond twice Pillow's limit: refused before we see a size
        raise ValueError(
            f"{path}: more than the {MAX_IMAGE_PIXELS // 1_000_000} megapixels an image may have "
            f"(hoi_pipeline.datasets.images.MAX_IMAGE_PIXELS; a decompression bomb?): {error}"
        ) from error
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{path}: cannot read image ({error})") from error
    try:
        check_image_size(path, image.size)
    except ValueError:
        image.close()
        raise
    return image


def read_image(path: str | os.PathLike) -> Image.Image:
    """Open an image as RGB; a missing, unreadable or too large file raises an error naming it."""
    with open_image(path) as image:
        try:
            return image.convert("RGB")
        except (OSError, SyntaxError, ValueError) as error:
            raise ValueError(f"{Path(path)}: cannot read image ({error})") from error
