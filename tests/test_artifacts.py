"""Outputs appear complete or not at all, with normal file permissions."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from hoi_pipeline.artifacts import atomic_path


def test_a_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.h5"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_a_completed_write_has_the_umask_mode(tmp_path):
    target = tmp_path / "out.csv"
    old = os.umask(0o022)
    try:
        with atomic_path(target) as tmp:
            tmp.write_text("done")
    finally:
        os.umask(old)
    assert target.read_text() == "done"
    assert target.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600


def test_sigterm_during_a_write_removes_the_temporary_file(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        from hoi_pipeline.artifacts import atomic_path
        from hoi_pipeline.cli import _terminate
        signal.signal(signal.SIGTERM, _terminate)
        with atomic_path(Path({str(tmp_path / "model.pt")!r})) as tmp:
            tmp.write_bytes(b"x" * 1000)
            os.kill(os.getpid(), signal.SIGTERM)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 128 + 15, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_set_of_outputs_appears_together_or_not_at_all(tmp_path):
    from hoi_pipeline.artifacts import atomic_outputs

    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "old.png").write_bytes(b"old")
    (tmp_path / "a.json").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_outputs(tmp_path / "a.json", tmp_path / "images", folders=[tmp_path / "images"]) as (a, images):
            a.write_text("new")
            (images / "new.png").write_bytes(b"new")
            raise RuntimeError("interrupted")
    assert (tmp_path / "a.json").read_text() == "old" and os.listdir(tmp_path / "images") == ["old.png"]
    with atomic_outputs(tmp_path / "a.json", tmp_path / "images", folders=[tmp_path / "images"]) as (a, images):
        a.write_text("new")
        (images / "new.png").write_bytes(b"new")
        with atomic_path(tmp_path / "b.txt") as b:  # a nested writer in the same folder does not wait for itself
            b.write_text("b")
    assert (tmp_path / "a.json").read_text() == "new" and os.listdir(tmp_path / "images") == ["new.png"]
    assert sorted(os.listdir(tmp_path)) == ["a.json", "b.txt", "images"]  # no temporaries, no lock file


def test_only_the_temporaries_of_the_written_output_are_removed(tmp_path):
    stale = tmp_path / ".out.h5.abcd_123.tmp"
    stale.write_text("left by a killed run")
    keep = [tmp_path / ".out.h5.x.tmp", tmp_path / ".other.h5.abcd_123.tmp", tmp_path / "out.h5.abcd_123.tmp"]
    for path in keep:
        path.write_text("not a temporary of out.h5")
    with atomic_path(tmp_path / "out.h5") as tmp:
        tmp.write_text("done")
    assert not stale.exists() and all(path.exists() for path in keep)
