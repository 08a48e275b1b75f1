"""Reading images with errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError


def read_image(path: str | os.PathLike) -> Image.Image:
    """Open an image as RGB; a missing or unreadable file raises an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{path}: cannot read image ({error})") from error
