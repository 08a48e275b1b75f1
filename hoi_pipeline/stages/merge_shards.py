"""Stage `merge-shards`: the shard files of a sharded detect or infer job -> the one file of one job.

The shards are per-image HDF5 files in the flat offsets layout (`hoi_pipeline.artifacts`), each
holding a contiguous block of a split's images (`hoi_pipeline.shards`). Their images are
concatenated in shard order and their per-row datasets likewise; the attributes must agree except
the shard's own (`shard_index`, `shard_count`, dropped) and the images left out as unreadable (the
`skipped_images` lists concatenated, their `skipped_count` summed). The result is written with the same writer as an unsharded job, so it
has the same datasets and attributes as the file one job would have written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from hoi_pipeline.artifacts import SKIPPED_IMAGES, RaggedH5, write_ragged_h5
from hoi_pipeline.shards import SHARD_ATTRS

log = logging.getLogger(__name__)

LAYOUT_DATASETS = ("filenames", "offsets", SKIPPED_IMAGES)  # not per-row


def run(*, shards: Sequence[Path], out: Path) -> None:
    """Join `shards` (given in any order; each names its place) into `out`."""
    parts = ordered_shards([RaggedH5(path) for path in shards])
    try:
        names, dtypes = _row_datasets(parts)
        filenames: list[str] = []
        rows: list[dict[str, np.ndarray]] = []
        for part in parts:
            data = part.read_all(names)
            for i, filename in enumerate(part.filenames):
                start, stop = int(part.offsets[i]), int(part.offsets[i + 1])
                rows.append({name: data[name][start:stop] for name in names})
                filenames.append(filename)
        attrs = merged_attrs([part.attrs for part in parts], [part.path for part in parts])
        skipped = [name for part in parts for name in part.skipped_images]
    finally:
        for part in parts:
            part.close()
    if len(set(filenames)) != len(filenames):
        raise ValueError(f"{out}: the shards {[str(p) for p in shards]} list some images more than once")
    write_ragged_h5(out, filenames, rows, dtypes, attrs, {SKIPPED_IMAGES: skipped})
    log.info("%s: %d images from %d shards", out, len(filenames), len(parts))


def ordered_shards(parts: Sequence[RaggedH5]) -> list[RaggedH5]:
    """The shard files sorted by shard index; all of one sharding, none missing."""
    for part in parts:
        if not all(key in part.attrs for key in SHARD_ATTRS):
            raise ValueError(f"{part.path}: not a shard file (no {' / '.join(SHARD_ATTRS)} attributes)")
    counts = {int(part.attrs["shard_count"]) for part in parts}
    if len(counts) != 1:
        raise ValueError(f"shards of different splittings: counts {sorted(counts)} in {[str(p.path) for p in parts]}")
    indices = sorted(int(part.attrs["shard_index"]) for part in parts)
    (count,) = counts
    if indices != list(range(count)):
        raise ValueError(
            f"need shards 0 to {count - 1} once each, got {indices} ({[str(p.path) for p in parts]})"
        )
    return sorted(parts, key=lambda part: int(part.attrs["shard_index"]))


def _row_datasets(parts: Sequence[RaggedH5]) -> tuple[list[str], dict[str, np.dtype]]:
    """The per-row datasets and their on-disk types; every shard must have the same."""

    def datasets(path: Path) -> dict[str, np.dtype]:
        with h5py.File(path, "r") as h5:
            return {name: h5[name].dtype for name in h5 if name not in LAYOUT_DATASETS}

    dtypes = datasets(parts[0].path)
    for part in parts[1:]:
        theirs = datasets(part.path)
        if theirs != dtypes:
            raise ValueError(f"{part.path}: datasets {theirs} differ from {parts[0].path}'s {dtypes}")
    return sorted(dtypes), dtypes


def merged_attrs(attrs: Sequence[dict], paths: Sequence[Path]) -> dict:
    """One job's attributes from its shards': equal ones kept, skipped counts summed, shard keys dropped."""
    summed = {"skipped_count"}
    first = {key: value for key, value in attrs[0].items() if key not in SHARD_ATTRS and key not in summed}
    first.pop("schema_version", None)  # the writer sets it
    for other, path in zip(attrs[1:], paths[1:]):
        rest = {key: value for key, value in other.items() if key not in SHARD_ATTRS and key not in summed}
        rest.pop("schema_version", None)
        if rest != first:
            differing = sorted(key for key in set(rest) | set(first) if rest.get(key) != first.get(key))
            raise ValueError(f"{path}: attributes {differing} differ from {paths[0]}'s; not shards of one job")
    merged = dict(first)
    if "skipped_count" in attrs[0]:
        merged["skipped_count"] = sum(int(a["skipped_count"]) for a in attrs)
    return merged
