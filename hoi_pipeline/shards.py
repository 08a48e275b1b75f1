"""Splitting a split's images over several jobs (`detector.shards`, `infer.shards`), and joining the parts.

Shard i of N takes a contiguous block of the split's images in annotation-file order, block sizes
differing by at most one (the first `I mod N` blocks are one image longer). Concatenating the
shard files in shard order therefore gives the images in the order one job writes them, and the
merge (`hoi_pipeline.stages.merge_shards`) writes the file one job would have written: the same
datasets and the same attributes.

A shard's file records which shard it is in its attributes (`SHARD_ATTRS`); everything else must
agree between the shards. `shards` itself changes how the work is split, not what it computes,
so outputs do not record it (`recorded_config`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hoi_pipeline.config import to_dict

SHARD_ATTRS = ("shard_index", "shard_count")
_SHARD_RE = re.compile(r"^(\d+)/(\d+)$")


@dataclass(frozen=True)
class Shard:
    """Shard `index` (0-based) of `count`."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 0 <= index < count")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`I/N` (as in `--shard 0/4`) -> Shard(I, N)."""
        match = _SHARD_RE.match(text.strip())
        if match is None:
            raise ValueError(f"shard '{text}': expected INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/4")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def bounds(self, total: int) -> tuple[int, int]:
        """[start, stop) of this shard's block among `total` images."""
        base, extra = divmod(total, self.count)
        start = self.index * base + min(self.index, extra)
        return start, start + base + (1 if self.index < extra else 0)

    def select(self, items: list) -> list:
        """This shard's block of `items` (a split's filenames, or per-image results)."""
        start, stop = self.bounds(len(items))
        return items[start:stop]

    def attrs(self) -> dict[str, int]:
        return {"shard_index": self.index, "shard_count": self.count}


def recorded_config(config: Any) -> dict:
    """A config section as an output records it: without `shards`, which does not change the content."""
    data = to_dict(config)
    data.pop("shards", None)
    return data
