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


# --------------------------------------------------------------------------------------------
# the dataset and its batches read through the pipeline


def tiny_dataset(folder, names, decode=None, size=64):
    from hoi_pipeline.datasets.hoi_images import HOIImageDataset, Preprocessing
    from hoi_pipeline.structures import Proposals, Vocabulary

    vocabulary = Vocabulary(verbs=("hold",), objects=("person", "cup"), hoi_classes=[[0, 1]], rare=[], non_rare=[0])
    proposals = [Proposals(name, [[1, 2, 30, 40], [20, 5, 60, 45]], [0.9, 0.8], [0, 1]) for name in names]
    return HOIImageDataset(images=folder, filenames=names, proposals=proposals, vocabulary=vocabulary,
                           preprocessing=Preprocessing(size, MEAN, STD, "pil"), decode=decode)  # fmt: skip


def reference_input(path, size, flip):
    """The pipeline of before, in the worker: Pillow decode and bicubic resize, float32 / 255 in numpy,
    (x - mean) / std, flipped."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        image = image.resize(resized_size(*image.size, size), Image.BICUBIC)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    pixels = (pixels - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    return pixels.flip(-1) if flip else pixels


def test_batches_normalised_on_the_device_equal_the_worker_normalisation_of_before(tmp_path):
    """decode "pil": uint8 from the workers, `HOIBatch.to` normalises: bit for bit the old float pipeline
    (resized, flipped, padded with zeros), and the uint8 batch a quarter of its bytes."""
    names = [write_photo(tmp_path / f"{i}.jpg", 80 - 24 * i, 60, seed=i).name for i in range(2)]
    dataset = tiny_dataset(tmp_path, names, size=64)
    batch = dataset.collate([dataset[0], dataset[(1, True)]])
    assert batch.images.dtype == torch.uint8 and batch.images.shape == (2, 3, 64, 64)
    ready = batch.to("cpu")
    assert ready.images.dtype == torch.float32 and ready.preprocessing == dataset.preprocessing
    for b, (name, flip) in enumerate(zip(names, (False, True))):
        expected = reference_input(tmp_path / name, 64, flip)
        height, width = expected.shape[-2:]
        assert batch.image_sizes[b].tolist() == [height, width]
        assert torch.equal(ready.images[b, :, :height, :width], expected)  # bit for bit
        assert float(ready.images[b, :, height:].abs().sum() + ready.images[b, :, :, width:].abs().sum()) == 0
    assert torch.equal(ready.to("cpu").images, ready.images)  # a batch already normalised only moves


def test_torchvision_and_device_decoding_give_the_same_batches_through_workers(tmp_path):
    """decode "torchvision": Pillow's pixels at the native size, within one grey level when resized;
    decode "device": the workers send the files' bytes (flipped after decoding) and `HOIBatch.to` decodes
    them: equal to "torchvision" on the CPU, which is also what `worker_decode` picks off a GPU."""
    from hoi_pipeline.datasets.input_pipeline import EncodedImage, worker_decode

    names = [write_photo(tmp_path / f"{i}.jpg", 64, 48 - 8 * i, seed=i).name for i in range(3)]
    Image.open(tmp_path / names[2]).save(tmp_path / "c.png")  # a PNG among the JPEGs
    names[2] = "c.png"
    items = [0, (1, True), 2]

    def loaded(decode, size):
        dataset = tiny_dataset(tmp_path, names, decode, size)
        loader = DataLoader(dataset, batch_sampler=[items], num_workers=1, collate_fn=dataset.collate)
        (batch,) = list(loader)
        return batch

    native = {decode: loaded(decode, 64) for decode in ("pil", "torchvision", "device")}
    assert isinstance(native["device"].images, tuple) and isinstance(native["device"].images[0], EncodedImage)
    assert native["device"].image_sizes.tolist() == native["pil"].image_sizes.tolist()
    for decode in ("torchvision", "device"):
        assert torch.equal(native[decode].to("cpu").images, native["pil"].to("cpu").images), decode
        assert torch.equal(torch.stack(native[decode].boxes), torch.stack(native["pil"].boxes))
    resized = {decode: loaded(decode, 32).to("cpu").images for decode in ("pil", "torchvision", "device")}
    assert torch.equal(resized["device"], resized["torchvision"])
    one_grey_level = 1 / 255 / min(STD) + 1e-6
    assert 0 < float((resized["torchvision"] - resized["pil"]).abs().max()) <= one_grey_level
    assert worker_decode("device", torch.device("cpu")) == "torchvision"
    assert worker_decode("device", torch.device("cuda")) == "device"
    assert worker_decode("pil", torch.device("cuda")) == "pil"


def test_every_decoder_reads_formats_beyond_torchvisions_and_names_damaged_files(tmp_path):
    """A BMP (which torchvision does not decode) reads as Pillow reads it; a JPEG damaged after its header
    is one error naming the file, from the worker (pil, torchvision) or from `HOIBatch.to` (device)."""
    from hoi_pipeline.artifacts import InputFileError

    Image.open(write_photo(tmp_path / "a.jpg")).save(tmp_path / "a.bmp")
    good = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 3])
    for decode in ("pil", "torchvision", "device"):
        dataset = tiny_dataset(tmp_path, ["a.bmp", "cut.jpg"], decode)
        bmp = dataset.collate([dataset[0]]).to("cpu").images
        reference = tiny_dataset(tmp_path, ["a.bmp"], "pil")  # Pillow reads the BMP itself
        assert torch.equal(bmp, reference.collate([reference[0]]).to("cpu").images)
        with pytest.raises((InputFileError, ValueError), match="cut.jpg"):
            dataset.collate([dataset[1]]).to("cpu")


def test_checkpoints_from_before_the_decode_setting_read_images_with_pillow():
    from hoi_pipeline.datasets.hoi_images import Preprocessing

    old = {"image_size": 640, "mean": list(MEAN), "std": list(STD)}
    assert Preprocessing.from_dict(old).decode == "pil"
    now = Preprocessing(640, MEAN, STD, "device")
    assert Preprocessing.from_dict(now.to_dict()) == now


def test_the_input_benchmark_measures_the_datasets_own_loader(tmp_path, monkeypatch):
    """`benchmarks/bench_input.py` reads through `HOIImageDataset`, its collate and `HOIBatch.to` (no copy of
    the pipeline), and says what a worker costs; device decoding without CUDA is a row's error, not a crash."""
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    monkeypatch.delitem(sys.modules, "bench_input", raising=False)
    import bench_input

    collated = []
    original = bench_input.HOIImageDataset.collate

    def counting_collate(self, samples):
        collated.append(len(samples))
        return original(self, samples)

    monkeypatch.setattr(bench_input.HOIImageDataset, "collate", counting_collate)
    row = bench_input.measure_input(variant="torchvision", workers=0, size=64, images=6, batch_size=4, root=tmp_path)
    assert not row.error and row.images_per_s > 0 and "worker CPU ms/image" in row.details
    assert collated == [4, 4, 2]  # the warm-up batch, then the 6 images in batches of 4
    assert bench_input.measure_input(variant="device", workers=0, size=64, images=4, device="cpu").error
    steps = bench_input.measure_steps(variant="pil", size=64, repeat=2, root=tmp_path / "steps")
    assert steps.images_per_s > 0 and steps.details["decode+resize ms"] > 0
