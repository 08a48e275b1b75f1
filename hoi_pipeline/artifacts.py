"""Writing and reading pipeline artifacts safely.

Every stage writes its outputs through `atomic_path` (one file) or `atomic_outputs` (a set of files
or folders that belong together, such as metrics.csv, per_class_ap.csv and table.md). Outputs are
produced under temporary names (`.{name}.XXXXXXXX.tmp`) in their own folder and renamed only once
all of them are complete, so:

- an interrupted run never leaves a half-written file that a later run would trust;
- two runs writing the same outputs take turns: each output folder is locked (`fcntl.flock` on
  `FOLDER/.hoi-pipeline.lock`, removed again when released) while temporaries exist, so the set on
  disk is always one run's, never a mix (SIGTERM and SIGINT wait while a set is renamed);
- temporaries left by a killed run are removed by the next run writing the same output, under
  the lock, so no live run's temporary is ever touched;
- a full disk (or a quota, a read-only folder) is one `OutputWriteError` naming the output.

Inputs that cannot be read (a corrupted HDF5 block) raise `InputFileError` naming the file.
HDF5 files are built in memory and written with plain file I/O, because libhdf5 crashes the process
(SIGSEGV) when the disk fills up while it writes.

Per-image results (proposals, detections) share one HDF5 layout: a `filenames` (I,) dataset,
`offsets` (I+1,) int64, and flat per-row datasets whose rows offsets[i]:offsets[i+1] belong to
image i; `skipped_images` (K,) names the images a stage left out as unreadable. `write_ragged_h5`
and `RaggedH5` implement it once for all stages.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from hoi_pipeline.structures import HOIDetections, Proposals

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SKIPPED_IMAGES = "skipped_images"  # string dataset: images left out as unreadable (`detector.on_bad_image: skip`)
LOCK_NAME = ".hoi-pipeline.lock"
# errors that say the disk (not the code) refused the write
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})
LOW_SPACE_BYTES = 1 << 20  # a write failed without an errno (torch.save) and this little space is free: "disk full"


class InputFileError(ValueError):
    """An input file that cannot be used (e.g. a corrupted HDF5 block); the message names it, on one line.

    It stays one line when raised in a DataLoader worker: torch re-raises a worker's exception in the
    main process as `type(error)("Caught ... Original Traceback ...")`, and this constructor keeps only
    the original message (the last line of that text).
    """

    def __init__(self, message: str) -> None:
        marker = f"{type(self).__name__}: "
        if message.startswith("Caught ") and "Original Traceback" in message and marker in message:
            message = message.rsplit(marker, 1)[1].strip()
        super().__init__(message)


class OutputWriteError(OSError, ValueError):
    """An output could not be written (disk full, quota, read-only or forbidden folder); nothing was left behind.

    An OSError by nature, and a ValueError so that the CLI's one-line handler catches it.
    """


# --------------------------------------------------------------------------------------------
# locking an output folder and writing outputs atomically

_locks = threading.local()  # .held: folder -> [fd, depth] of the locks this thread holds
NO_LOCKING_ERRNOS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS})  # file systems without flock


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold the exclusive write lock of an output folder (re-entrant within a thread).

    The lock file is removed on release; a waiter that then holds a lock on the removed file sees
    that the path no longer names it and locks the new one, so exactly one run holds the folder.
    """
    folder = Path(os.path.realpath(folder))
    held: dict[Path, list[int]] = _locks.__dict__.setdefault("held", {})
    if folder in held:
        held[folder][1] += 1
        try:
            yield
        finally:
            held[folder][1] -= 1
        return
    lock_path = folder / LOCK_NAME
    fd = _acquire(lock_path)
    held[folder] = [fd, 1]
    try:
        yield
    finally:
        del held[folder]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)
        os.close(fd)


def _acquire(lock_path: Path) -> int:
    waited = False
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not waited:
                    log.info("%s: another run is writing there; waiting for it", lock_path.parent)
                    waited = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as error:
                if error.errno not in NO_LOCKING_ERRNOS:
                    raise
                log.warning("%s: the file system cannot lock files (%s); writing without a lock", lock_path.parent,
                            os.strerror(error.errno))  # fmt: skip
                return fd
            try:
                current = os.stat(lock_path)
            except FileNotFoundError:
                current = None
            mine = os.fstat(fd)
            if current is not None and (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the previous holder removed that file: lock the current one


def _temporary_pattern(name: str) -> re.Pattern[str]:
    """Names of `name`'s temporaries (`tempfile`'s 8 random characters between the dots)."""
    return re.compile(rf"\.{re.escape(name)}\.[A-Za-z0-9_]{{8}}\.tmp")


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of output `path` that a killed run left; call only under `folder_lock`."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = _temporary_pattern(path.name)
    stale = [entry for entry in path.parent.iterdir() if pattern.fullmatch(entry.name)]
    for entry in stale:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    if stale:
        log.info("removed %d temporary file(s) left by an interrupted run: %s", len(stale),
                 ", ".join(entry.name for entry in stale))  # fmt: skip
    return stale


@contextlib.contextmanager
def atomic_outputs(*paths: str | os.PathLike, folders: Collection[str | os.PathLike] = ()) -> Iterator[list[Path]]:
    """Temporary paths for a set of outputs, renamed onto `paths` together when the block succeeds.

    The temporaries are empty files, or empty folders for the outputs listed in `folders` (an old
    folder is replaced whole). The output folders stay locked for the whole block, stale
    temporaries of these outputs are removed first, and a failed or interrupted block removes its
    temporaries and leaves the previous outputs as they were. A write the disk refused becomes
    `OutputWriteError` naming the outputs.
    """
    targets = [Path(p) for p in paths]
    if not targets:
        raise ValueError("atomic_outputs needs at least one output path")
    if len({os.path.abspath(t) for t in targets}) != len(targets):
        raise ValueError(f"the outputs {[str(t) for t in targets]} name one file twice")
    as_folders = {os.path.abspath(f) for f in folders}
    with contextlib.ExitStack() as stack:
        try:
            for parent in sorted({os.path.realpath(_made_folder(t.parent)) for t in targets}):  # one order: no deadlock
                stack.enter_context(folder_lock(parent))
        except OSError as error:
            failure = _write_error(error, targets)
            if failure is None:
                raise
            raise failure from error
        temps: list[Path] = []
        try:
            for target in targets:
                remove_stale_temporaries(target)
                prefix, folder = f".{target.name}.", target.parent
                if os.path.abspath(target) in as_folders:
                    temps.append(Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=folder)))
                else:
                    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
                    os.close(fd)
                    temps.append(Path(name))
            yield list(temps)
            _commit(temps, targets)
        except BaseException as error:
            failure = _write_error(error, targets) if isinstance(error, (OSError, RuntimeError)) else None
            _remove(temps)
            if failure is not None and not isinstance(error, OutputWriteError):
                raise failure from error
            raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` when the block succeeds (see `atomic_outputs`)."""
    with atomic_outputs(path) as (tmp,):
        yield tmp


def refuse_overwriting_inputs(outputs: Sequence[str | os.PathLike], inputs: Sequence[str | os.PathLike | None]) -> None:
    """A ValueError when an output path is one of the inputs (the same file, also through links)."""
    existing = {os.path.realpath(p): Path(p) for p in inputs if p is not None and Path(p).exists()}
    for output in outputs:
        if os.path.realpath(output) in existing:
            raise ValueError(f"{output}: is also an input of this stage ({existing[os.path.realpath(output)]}); "
                             "write the output elsewhere")


def _made_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _commit(temps: Sequence[Path], targets: Sequence[Path]) -> None:
    """Rename every temporary onto its output, with SIGTERM / SIGINT held back until the set is complete."""
    umask = _umask()
    for tmp in temps:  # mkstemp / mkdtemp make them private; give them the usual umask-based mode
        tmp.chmod((0o777 if tmp.is_dir() else 0o666) & ~umask)
    held = _hold_signals()
    replaced: list[Path] = []
    try:
        for tmp, target in zip(temps, targets):
            if tmp.is_dir() and target.is_dir() and not target.is_symlink():
                aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
                os.replace(target, aside)  # onto the empty folder just made
                replaced.append(aside)
            os.replace(tmp, target)
    finally:
        if held is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
    _remove(replaced)


def _hold_signals() -> set | None:
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})


def _remove(paths: Sequence[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _write_error(error: BaseException, targets: Sequence[Path]) -> OutputWriteError | None:
    """`OutputWriteError` naming the outputs when the disk refused the write, else None (a bug or an input error)."""
    if isinstance(error, OutputWriteError):
        return error
    reason = None
    if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
        reason = os.strerror(error.errno)
    elif getattr(error, "errno", None) is None:  # torch.save and libhdf5 report a full disk without an errno
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(targets[0].parent).free
            if free < LOW_SPACE_BYTES:
                reason = f"{os.strerror(errno.ENOSPC)}, {free} bytes free"
    if reason is None:
        return None
    names = str(targets[0]) if len(targets) == 1 else f"{targets[0].parent}/{{{','.join(t.name for t in targets)}}}"
    return OutputWriteError(f"{names}: cannot write ({reason}); nothing was written, earlier outputs are unchanged")


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


def write_h5(path: str | os.PathLike, fill: Callable[[h5py.File], None]) -> None:
    """Write an HDF5 file atomically: `fill(h5)` builds it in memory, plain file I/O writes it.

    libhdf5 kills the process (SIGSEGV) when the disk fills up under it; in memory it cannot, and a
    full disk is then an ordinary `OutputWriteError`.
    """
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        fill(h5)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


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
    lists: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Write per-image rows in the flat offsets layout, atomically.

    `rows[i][name]` is image i's array for dataset `name` (first axis = its rows); `dtypes` names
    every dataset and its on-disk type. `lists` are extra string datasets of any length (e.g. the
    names of skipped images). Dict or list attrs are stored as JSON strings.
    """
    if len(filenames) != len(rows):
        raise ValueError(f"{path}: {len(filenames)} filenames but {len(rows)} row groups")
    counts = np.array([len(next(iter(r.values()))) if r else 0 for r in rows], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def fill(h5: h5py.File) -> None:
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
        for name, values in (lists or {}).items():
            h5.create_dataset(name, data=np.array(list(values), dtype=object), dtype=h5py.string_dtype())
        h5.attrs["schema_version"] = SCHEMA_VERSION
        for key, value in attrs.items():
            h5.attrs[key] = json.dumps(value) if isinstance(value, (dict, list, tuple)) else value

    write_h5(path, fill)


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
            raise InputFileError(f"{self.path}: not a readable per-image HDF5 file ({error})") from error
        if missing:
            raise ValueError(f"{self.path}: missing datasets {missing}")
        if len(self.offsets) != len(self.filenames) + 1:
            raise ValueError(f"{self.path}: offsets has {len(self.offsets)} entries for {len(self.filenames)} images")
        self.index = {name: i for i, name in enumerate(self.filenames)}

    def __len__(self) -> int:
        return len(self.filenames)

    def _file(self) -> h5py.File:
        if self._h5 is None:
            try:
                self._h5 = h5py.File(self.path, "r")
            except OSError as error:
                raise self._unreadable("the file", error) from error
        return self._h5

    def _unreadable(self, what: str, error: Exception) -> InputFileError:
        """A corrupted block (libhdf5: "Can't synchronously read data") as one line naming the file."""
        detail = " ".join(str(error).split())
        return InputFileError(
            f"{self.path}: cannot read {what}, the file is damaged ({detail}); "
            "delete it and rerun the stage that made it"
        )

    def rows(self, i: int, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Image i's rows of the named datasets."""
        start, stop = int(self.offsets[i]), int(self.offsets[i + 1])
        h5 = self._file()
        try:
            return {name: h5[name][start:stop] for name in names}
        except OSError as error:
            raise self._unreadable(f"the rows of image '{self.filenames[i]}'", error) from error

    def read_all(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Whole flat datasets (fast bulk access for evaluation)."""
        h5 = self._file()
        try:
            return {name: h5[name][()] for name in names}
        except OSError as error:
            raise self._unreadable(f"the datasets {list(names)}", error) from error

    def has(self, name: str) -> bool:
        return name in self._file()

    @property
    def skipped_images(self) -> list[str]:
        """Images the file's stage left out as unreadable (`detector.on_bad_image: skip`), in file order."""
        return self.strings(SKIPPED_IMAGES)

    def strings(self, name: str) -> list[str]:
        """A string dataset written through `write_ragged_h5(lists=...)`; [] when the file has none."""
        h5 = self._file()
        if name not in h5:
            return []
        try:
            return [v.decode() if isinstance(v, bytes) else str(v) for v in h5[name][()]]
        except OSError as error:
            raise self._unreadable(f"the dataset '{name}'", error) from error

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


def write_proposals(
    path: str | os.PathLike,
    proposals: Sequence[Proposals],
    attrs: Mapping[str, object],
    skipped: Sequence[str] = (),
) -> None:
    """Proposals of a split: filenames, offsets, boxes (M, 4), scores (M,), labels (M,) int16.

    `skipped`: images the detector could not read (they have empty entries); stored as the
    `skipped_images` dataset (and their number as the `skipped_count` attribute), so that training and
    inference leave out exactly these images.
    """
    rows = [{"boxes": p.boxes, "scores": p.scores, "labels": p.labels} for p in proposals]
    unknown = sorted(set(skipped) - {p.filename for p in proposals})
    if unknown:
        raise ValueError(f"{path}: skipped images {unknown[:3]} are not among the proposals' images")
    attrs = {**attrs, "skipped_count": len(skipped)}
    write_ragged_h5(path, [p.filename for p in proposals], rows, PROPOSAL_DTYPES, attrs, {SKIPPED_IMAGES: skipped})


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
    path: str | os.PathLike,
    detections: Sequence[HOIDetections],
    attrs: Mapping[str, object],
    skipped: Sequence[str] = (),
) -> None:
    """HOI detections of a split in the flat layout; factors are written when every image has them.

    `skipped`: images left out as unreadable (no tuples), stored like the proposals' (`write_proposals`).
    """
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
    attrs = {**attrs, "skipped_count": len(skipped)}
    write_ragged_h5(path, [d.filename for d in detections], rows, dtypes, attrs, {SKIPPED_IMAGES: skipped})


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
