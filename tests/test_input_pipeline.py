"""The input pipeline: decoders, resizing, padding in shared memory, normalisation on the device."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from hoi_pipeline.datasets.input_pipeline import (
    DecodedImage,
    decode_on_device,
    is_jpeg,
    normalise_batch,
    pad_images,
    read_encoded,
    read_resized,
    resized_size,
)

MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def write_photo(path, width=64, height=48, seed=0, quality=90):
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8))
    pixels = np.asarray(coarse.resize((width, height), Image.BICUBIC), dtype=np.int16)
    pixels = (pixels + rng.integers(-10, 11, pixels.shape)).clip(0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=quality)
    return path


def test_resized_size_keeps_the_aspect_ratio_with_the_longer_side_given():
    assert resized_size(640, 480, 224) == (224, 168)
    assert resized_size(480, 640, 224) == (168, 224)
    assert resized_size(640, 480, 640) == (640, 480)
    assert resized_size(1000, 1, 100) == (100, 1)  # at least one pixel


def test_pil_reader_is_pillow_bicubic_and_torchvision_is_within_one_grey_level(tmp_path):
    path = write_photo(tmp_path / "a.jpg")
    with Image.open(path) as image:
        expected = np.asarray(image.convert("RGB").resize((40, 30), Image.BICUBIC))
    pil = read_resized(path, 40, "pil")
    assert pil.original_size == (48, 64) and pil.pixels.dtype == torch.uint8
    np.testing.assert_array_equal(pil.pixels.permute(1, 2, 0).numpy(), expected)
    fast = read_resized(path, 40, "torchvision")
    assert fast.original_size == (48, 64) and fast.pixels.shape == (3, 30, 40)
    assert int((fast.pixels.int() - pil.pixels.int()).abs().max()) <= 1
    # no resize needed (HICO-DET's 640 x 480 at 640): both decoders give the same pixels
    assert torch.equal(read_resized(path, 64, "pil").pixels, read_resized(path, 64, "torchvision").pixels)


def test_normalise_batch_equals_normalising_each_image_on_the_cpu_as_before(tmp_path):
    """The pipeline of before: float32 x / 255 in numpy, then (x - mean) / std, zeros in the padding."""
    images = [read_resized(write_photo(tmp_path / f"{i}.jpg", 64 - 16 * i, 48, seed=i), 64, "pil") for i in range(2)]
    batch = pad_images([image.pixels for image in images])  # (2, 3, 64, 64): padded to multiples of 32
    sizes = torch.tensor([image.pixels.shape[-2:] for image in images])
    out = normalise_batch(batch, sizes, MEAN, STD)
    assert batch.shape == (2, 3, 64, 64) and out.dtype == torch.float32
    for b, image in enumerate(images):
        hwc = image.pixels.permute(1, 2, 0).numpy()
        before = torch.from_numpy(np.asarray(hwc, dtype=np.float32) / 255.0).permute(2, 0, 1)
        before = (before - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
        height, width = image.pixels.shape[-2:]
        assert torch.equal(out[b, :, :height, :width], before)  # bit for bit
        padding = torch.ones(64, 64, dtype=torch.bool)
        padding[:height, :width] = False
        assert (out[b][:, padding] == 0).all()


class Items(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        return torch.full((3, 5 + i, 7), i, dtype=torch.uint8)


def test_pad_images_allocates_in_shared_memory_inside_a_worker():
    here = pad_images([torch.ones(3, 5, 7, dtype=torch.uint8)], multiple=4)
    assert here.shape == (1, 3, 8, 8) and not here.is_shared()
    assert int(here.sum()) == 3 * 5 * 7
    loader = DataLoader(Items(), batch_size=2, num_workers=1, collate_fn=lambda items: pad_images(items, multiple=4))
    (batch,) = list(loader)
    assert batch.shape == (2, 3, 8, 8) and batch.is_shared()
    assert int(batch[1, :, :6, :7].min()) == 1 and int(batch[1, :, 6:].sum()) == 0 and int(batch[0].sum()) == 0


def test_readers_name_the_file_on_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        read_resized(tmp_path / "missing.jpg", 32, "torchvision")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    for decode in ("pil", "torchvision"):
        with pytest.raises(ValueError, match="bad.jpg"):
            read_resized(tmp_path / "bad.jpg", 32, decode)
    with pytest.raises(ValueError, match="bad.jpg"):
        read_encoded(tmp_path / "bad.jpg")
    with pytest.raises(ValueError, match="decode"):
        read_resized(write_photo(tmp_path / "a.jpg"), 32, "device")


def test_device_decoding_falls_back_to_the_cpu_and_matches_the_torchvision_reader(tmp_path):
    jpeg = read_encoded(write_photo(tmp_path / "a.jpg"))
    assert is_jpeg(jpeg.data) and jpeg.original_size == (48, 64)
    Image.open(tmp_path / "a.jpg").save(tmp_path / "b.png")
    png = read_encoded(tmp_path / "b.png")
    assert not is_jpeg(png.data)
    already = DecodedImage(torch.zeros(3, 24, 32, dtype=torch.uint8), (48, 64))
    out = decode_on_device([jpeg, png, already], 32, torch.device("cpu"))
    expected = read_resized(tmp_path / "a.jpg", 32, "torchvision").pixels
    assert torch.equal(out[0], expected) and out[1].shape == (3, 24, 32) and torch.equal(out[2], already.pixels)
