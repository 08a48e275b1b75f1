"""Sharded detect and infer: the shards' blocks, and a merged file equal to the file of one job."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from hoi_pipeline.artifacts import RaggedH5, write_proposals
from hoi_pipeline.config import DetectorConfig, InferConfig, SyntheticConfig
from hoi_pipeline.shards import Shard, recorded_config
from hoi_pipeline.stages import detect, generate_demo, infer, merge_shards
from hoi_pipeline.structures import Proposals
from tiny_models import write_tiny_checkpoint


@pytest.mark.parametrize(("total", "count", "sizes"), [(10, 3, [4, 3, 3]), (6, 3, [2, 2, 2]), (2, 4, [1, 1, 0, 0])])
def test_blocks_cover_the_images_in_order(total, count, sizes):
    items = list(range(total))
    blocks = [Shard(i, count).select(items) for i in range(count)]
    assert [len(b) for b in blocks] == sizes
    assert [x for b in blocks for x in b] == items  # contiguous, in order, each image once


def test_shard_text_and_bad_values():
    assert Shard.parse("2/5") == Shard(2, 5) and str(Shard(2, 5)) == "2/5"
    for text in ("5/5", "1", "-1/3", "a/b"):
        with pytest.raises(ValueError, match="shard"):
            Shard.parse(text)
    with pytest.raises(ValueError, match="shards must be >= 1"):
        InferConfig(shards=0)


def test_outputs_do_not_record_the_shard_count():
    assert "shards" not in recorded_config(DetectorConfig(shards=4))
    assert recorded_config(InferConfig(shards=4)) == recorded_config(InferConfig())


# --------------------------------------------------------------------------------------------
# the stages: sharded and merged == one job


def assert_same_h5(merged: Path, single: Path) -> None:
    """The same datasets (names, types, shapes, values) and the same attributes."""
    with h5py.File(merged, "r") as a, h5py.File(single, "r") as b:
        assert sorted(a) == sorted(b)
        for name in a:
            assert a[name].dtype == b[name].dtype, name
            assert a[name].shape == b[name].shape, name
            assert np.array_equal(a[name][()], b[name][()]), name
    assert RaggedH5(merged).attrs == RaggedH5(single).attrs


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """Synthetic demo scenes, small: 8 test images."""
    root = tmp_path_factory.mktemp("demo")
    generate_demo.run(settings=SyntheticConfig(num_train=2, num_test=8, image_size=64), out_dir=root)
    return root


def detect_demo(demo: Path, out: Path, shard: Shard | None = None) -> Path:
    detect.run(
        detector=DetectorConfig(backend="precomputed", shards=1 if shard is None else shard.count),
        annotations=demo / "test.json", split="test", images=demo / "images" / "test",
        detections=demo / "detections_test.json", out=out, shard=shard,
    )  # fmt: skip
    return out


def test_precomputed_detections_sharded_and_merged_equal_one_job(demo, tmp_path):
    single = detect_demo(demo, tmp_path / "single.h5")
    parts = [detect_demo(demo, tmp_path / f"part{i}.h5", Shard(i, 3)) for i in range(3)]
    assert [len(RaggedH5(p)) for p in parts] == [3, 3, 2]
    assert RaggedH5(parts[1]).attrs["shard_index"] == 1
    merge_shards.run(shards=[parts[2], parts[0], parts[1]], out=tmp_path / "merged.h5")  # any order
    assert_same_h5(tmp_path / "merged.h5", single)
    assert RaggedH5(single).offsets[-1] > 0  # the demo has proposals


def test_infer_sharded_and_merged_equals_one_job(demo, tmp_path):
    from hoi_pipeline.datasets import load_annotations

    proposals = detect_demo(demo, tmp_path / "proposals.h5")
    write_tiny_checkpoint(tmp_path / "model.pt", load_annotations(demo / "test.json", "test").vocabulary)

    def infer_demo(out: Path, shard: Shard | None = None) -> Path:
        # batches of 4 and shards of 4 images: the same images share a batch with and without shards (batched
        # CPU kernels may round differently for other batches, which is not what this test is about)
        settings = InferConfig(batch_size=4, num_workers=0, device="cpu", shards=1 if shard is None else shard.count)
        infer.run(
            infer=settings, annotations=demo / "test.json", split="test", images=demo / "images" / "test",
            proposals=proposals, checkpoint=tmp_path / "model.pt", out=out, shard=shard,
        )  # fmt: skip
        return out

    single = infer_demo(tmp_path / "single.h5")
    parts = [infer_demo(tmp_path / f"part{i}.h5", Shard(i, 2)) for i in range(2)]
    merge_shards.run(shards=parts, out=tmp_path / "merged.h5")
    assert_same_h5(tmp_path / "merged.h5", single)
    assert RaggedH5(single).offsets[-1] > 0  # some tuples were compared, not only empty files


def write_shard(path: Path, names: list[str], shard: Shard, skipped: tuple[str, ...] = (), **attrs) -> Path:
    proposals = [Proposals(name, [[0.0, 0.0, 5.0, 5.0]], [0.5], [1]) for name in [*names, *skipped]]
    write_proposals(path, proposals, {"stage": "detect", **shard.attrs(), **attrs}, skipped=skipped)
    return path


def test_merge_refuses_missing_foreign_or_disagreeing_shards(tmp_path):
    a = write_shard(tmp_path / "a.h5", ["x.png"], Shard(0, 2))
    b = write_shard(tmp_path / "b.h5", ["y.png"], Shard(1, 2), split="other")
    c = write_shard(tmp_path / "c.h5", ["z.png"], Shard(1, 3))
    plain = tmp_path / "plain.h5"
    write_proposals(plain, [], {})
    with pytest.raises(ValueError, match=r"need shards 0 to 1 once each, got \[0\]"):
        merge_shards.run(shards=[a], out=tmp_path / "m.h5")
    with pytest.raises(ValueError, match=r"attributes \['split'\] differ"):
        merge_shards.run(shards=[a, b], out=tmp_path / "m.h5")
    with pytest.raises(ValueError, match="different splittings"):
        merge_shards.run(shards=[a, c], out=tmp_path / "m.h5")
    with pytest.raises(ValueError, match="plain.h5: not a shard file"):
        merge_shards.run(shards=[plain], out=tmp_path / "m.h5")
    assert not (tmp_path / "m.h5").exists()


def test_merge_joins_the_skipped_images_of_the_shards(tmp_path):
    a = write_shard(tmp_path / "a.h5", ["x.png"], Shard(0, 2), skipped=("bad0.png",))
    b = write_shard(tmp_path / "b.h5", ["y.png"], Shard(1, 2), skipped=("bad1.png", "bad2.png"))
    merge_shards.run(shards=[a, b], out=tmp_path / "m.h5")
    merged = RaggedH5(tmp_path / "m.h5")
    assert merged.attrs["skipped_count"] == 3 and merged.skipped_images == ["bad0.png", "bad1.png", "bad2.png"]
    assert "shard_index" not in merged.attrs and "shard_count" not in merged.attrs
