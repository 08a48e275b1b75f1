"""Writing and reading pipeline artifacts safely.

Every stage writes its output through `atomic_path`: the file is produced under a temporary name
in the same folder and renamed only once complete, so an interrupted run never leaves a
half-written file that a later run would trust.

Per-image results (proposals, detections) share one HDF5 layout: a `filenames` (I,) dataset,
`offsets` (I+1,) int64, and flat per-row datasets whose rows offsets[i]:offsets[i+1] belong to
image i. `write_ragged_h5` and `RaggedH5` implement it once for all stages.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from hoi_pipeline.structures import HOIDetections, Proposals

SCHEMA_VERSION = 1


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes the file private (0600); give it the usual umask-based mode
            tmp_path.chmod(0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_json(path: str | os.PathLike, what: str = "json file") -> dict:
    """Parse a json object; errors name the file and say what it should have been (`what`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    try:
        payload = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: expected a json object at the top level")
    return payload


def write_json(path: str | os.PathLike, payload: object) -> None:
    """Write JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=1))


def file_digest(path: str | os.PathLike, length: int = 16) -> str:
    """Short SHA-256 of a file's bytes, used to record which weights or checkpoint made an output."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]


def write_ragged_h5(
    path: str | os.PathLike,
    filenames: Sequence[str],
    rows: Sequence[Mapping[str, np.ndarray]],
    dtypes: Mapping[str, np.dtype | type],
    attrs: Mapping[str, object],
) -> None:
    """Write per-image rows in the flat offsets layout, atomically.

    `rows[i][name]` is image i's array for dataset `name` (first axis = its rows); `dtypes` names
    every dataset and its on-disk type. Dict or list attrs are stored as JSON strings.
    """
    if len(filenames) != len(rows):
        raise ValueError(f"{path}: {len(filenames)} filenames but {len(rows)} row groups")
    counts = np.array([len(next(iter(r.values()))) if r else 0 for r in rows], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("filenames", data=np.array(filenames, dtype=object), dtype=h5py.string_dtype())
            h5.create_dataset("offsets", data=offsets)
            for name, dtype in dtypes.items():
                parts = [np.asarray(r[name], dtype=dtype) for r in rows if name in r]
                if len(parts) != len(rows):
                    raise ValueError(f"{path}: some images lack the '{name}' rows")
                data = np.concatenate(parts) if parts else np.zeros((0,), dtype=dtype)
                if len(data) != offsets[-1]:
                    raise ValueError(f"{path}: '{name}' has {len(data)} rows, expected {offsets[-1]}")
                chunks = (min(max(len(data), 1), 65536),) + data.shape[1:]
                # maxshape lets an empty dataset (no rows in any image) have a one-row chunk
                h5.create_dataset(
                    name, data=data, chunks=chunks, maxshape=(None,) + data.shape[1:],
                    compression="gzip", compression_opts=1,
                )  # fmt: skip
            h5.attrs["schema_version"] = SCHEMA_VERSION
            for key, value in attrs.items():
                h5.attrs[key] = json.dumps(value) if isinstance(value, (dict, list, tuple)) else value


class RaggedH5:
    """Read-only access to a flat offsets HDF5 file; opens lazily (safe to pass to DataLoader workers)."""

    def __init__(self, path: str | os.PathLike, required: Sequence[str] = ()) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        self._h5: h5py.File | None = None
        try:
            with h5py.File(self.path, "r") as h5:
                self.filenames: list[str] = [f.decode() if isinstance(f, bytes) else f for f in h5["filenames"][()]]
                self.offsets: np.ndarray = h5["offsets"][()]
                missing = [name for name in required if name not in h5]
                self.attrs = {key: _decode_attr(value) for key, value in h5.attrs.items()}
        except (OSError, KeyError) as error:
            raise ValueError(f"{self.path}: not a readable per-image HDF5 file ({error})") from error
        if missing:
            raise ValueError(f"{self.path}: missing datasets {missing}")
        if len(self.offsets) != len(self.filenames) + 1:
            raise ValueError(f"{self.path}: offsets has {len(self.offsets)} entries for {len(self.filenames)} images")
        self.index = {name: i for i, name in enumerate(self.filenames)}

    def __len__(self) -> int:
        return len(self.filenames)

    def _file(self) -> h5py.File:
        if self._h5 is None:
            self._h5 = h5py.File(self.path, "r")
        return self._h5

    def rows(self, i: int, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Image i's rows of the named datasets."""
        start, stop = int(self.offsets[i]), int(self.offsets[i + 1])
        h5 = self._file()
        return {name: h5[name][start:stop] for name in names}

    def read_all(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Whole flat datasets (fast bulk access for evaluation)."""
        h5 = self._file()
        return {name: h5[name][()] for name in names}

    def has(self, name: str) -> bool:
        return name in self._file()

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_h5"] = None  # every worker opens its own handle
        return state


def _decode_attr(value: object) -> object:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


# --------------------------------------------------------------------------------------------
# proposals (detect stage) and HOI detections (infer stage)

PROPOSAL_DTYPES = {"boxes": np.float32, "scores": np.float32, "labels": np.int16}
DETECTION_DTYPES = {
    "boxes_h": np.float32,
    "boxes_o": np.float32,
    "hoi": np.int16,
    "verb": np.int16,
    "object": np.int16,
    "score": np.float32,
}
DETECTION_FACTORS = ("score_global", "score_pair", "score_relatedness", "score_detection")


def write_proposals(path: str | os.PathLike, proposals: Sequence[Proposals], attrs: Mapping[str, object]) -> None:
    """Proposals of a split: filenames, offsets, boxes (M, 4), scores (M,), labels (M,) int16."""
    rows = [{"boxes": p.boxes, "scores": p.scores, "labels": p.labels} for p in proposals]
    write_ragged_h5(path, [p.filename for p in proposals], rows, PROPOSAL_DTYPES, attrs)


class ProposalsFile(RaggedH5):
    """Reader of a proposals HDF5: `file[i]` or `file.get(filename)` gives a `Proposals`."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(path, required=tuple(PROPOSAL_DTYPES))

    def __getitem__(self, i: int) -> Proposals:
        rows = self.rows(i, tuple(PROPOSAL_DTYPES))
        return Proposals(self.filenames[i], rows["boxes"], rows["scores"], rows["labels"])

    def get(self, filename: str) -> Proposals:
        if filename not in self.index:
            raise KeyError(f"{self.path}: no proposals for image '{filename}'")
        return self[self.index[filename]]


def write_detections(
    path: str | os.PathLike, detections: Sequence[HOIDetections], attrs: Mapping[str, object]
) -> None:
    """HOI detections of a split in the flat layout; factors are written when every image has them."""
    factors = [name for name in DETECTION_FACTORS if detections and all(name in d.factors for d in detections)]
    rows = [
        {
            "boxes_h": d.boxes_h,
            "boxes_o": d.boxes_o,
            "hoi": d.hoi,
            "verb": d.verb,
            "object": d.object,
            "score": d.score,
            **{name: d.factors[name] for name in factors},
        }
        for d in detections
    ]
    dtypes = {**DETECTION_DTYPES, **{name: np.float32 for name in factors}}
    write_ragged_h5(path, [d.filename for d in detections], rows, dtypes, attrs)


class DetectionsFile(RaggedH5):
    """Reader of a detections HDF5: `file[i]` or `file.get(filename)` gives `HOIDetections`."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(path, required=tuple(DETECTION_DTYPES))
        self.factors = tuple(name for name in DETECTION_FACTORS if self.has(name))

    def __getitem__(self, i: int) -> HOIDetections:
        rows = self.rows(i, tuple(DETECTION_DTYPES) + self.factors)
        return HOIDetections(
            filename=self.filenames[i],
            **{name: rows[name] for name in DETECTION_DTYPES},
            factors={name: rows[name] for name in self.factors},
        )

    def get(self, filename: str) -> HOIDetections:
        if filename not in self.index:
            raise KeyError(f"{self.path}: no detections for image '{filename}'")
        return self[self.index[filename]]
