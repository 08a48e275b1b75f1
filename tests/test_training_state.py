"""Reruns of the train stage: resume only the same training, keep other trainings aside, survive SIGTERM.

Uses the tiny model and split of test_train.py; every training here is a few iterations on CPU.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import CLIP, LOSS, MODEL, make_split, read_csv, run_training

from hoi_pipeline.checkpoints import load_trained_model
from hoi_pipeline.config import TrainConfig, to_dict
from hoi_pipeline.knowledge_bank_file import write_knowledge_bank
from hoi_pipeline.stages import train as train_stage
from hoi_pipeline.training_state import (
    HISTORY_COLUMNS,
    STATE_FILE,
    LossRecord,
    TrainingIdentity,
    read_saved_state,
    reproducible_kernels,
)

TINY = dict(batch_size=2, num_workers=0, precision="fp32", log_every=1)


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> dict[str, Path]:
    return make_split(tmp_path_factory.mktemp("split"))


def weights(out_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(out_dir / "model.pt", weights_only=True)["state_dict"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [key for key in a if not torch.equal(a[key], b[key])]
    assert not different, f"{len(different)} of {len(a)} tensors differ, e.g. {different[:3]}"


def superseded(out_dir: Path) -> list[Path]:
    return sorted((out_dir / "checkpoints" / "superseded").glob("*"))


def train_messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "hoi_pipeline.stages.train"]


@pytest.fixture(scope="module")
def finished(split, tmp_path_factory) -> Path:
    """A finished 2-iteration training (copied by each test that reruns it)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    run_training(split, out, TrainConfig(iterations=2, **TINY))
    return out


def copy_run(finished: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


# --------------------------------------------------------------------------------------------
# same training: resume, complete, extend


def test_rerun_of_a_finished_training_reuses_it(split, finished, tmp_path, caplog):
    out = copy_run(finished, tmp_path)
    before = weights(out)
    (out / "model.pt").unlink()  # what Snakemake does before it reruns the rule
    caplog.set_level(logging.INFO)
    # runtime-only keys differ: still the same training
    run_training(split, out, TrainConfig(iterations=2, **{**TINY, "log_every": 5}, checkpoint_every=7, gpus=2))
    assert any("is complete (iteration 2 of 2, same settings, code and inputs)" in m for m in train_messages(caplog))
    assert not any(m.startswith("training iterations") for m in train_messages(caplog))
    assert_same_weights(before, weights(out))
    assert not superseded(out)


def test_resume_and_extension_give_the_weights_of_an_uninterrupted_run(split, finished, tmp_path, caplog):
    straight = tmp_path / "straight"
    run_training(split, straight, TrainConfig(iterations=5, **TINY))
    # the finished 2-iteration training continues to 5 (an uninterrupted 5-iteration run passes through it)
    out = copy_run(finished, tmp_path)
    caplog.set_level(logging.INFO)
    run_training(split, out, TrainConfig(iterations=5, **TINY), max_steps=1)
    assert read_saved_state(out / STATE_FILE).iteration == 3 and not (out / "model.pt").exists()
    run_training(split, out, TrainConfig(iterations=5, **TINY))
    messages = train_messages(caplog)
    assert any(f"resuming from {out / STATE_FILE} at iteration 2 of 5: same settings, code and inputs" in m
               for m in messages)  # fmt: skip
    assert any("at iteration 3 of 5" in m for m in messages)
    assert_same_weights(weights(straight), weights(out))
    assert (out / "losses.csv").read_text() == (straight / "losses.csv").read_text()
    (aside,) = superseded(out)  # the finished 2-iteration model, kept
    assert [p.name for p in aside.iterdir()] == ["model.pt"]
    assert load_trained_model(aside / "model.pt")[1].iterations == 2


# --------------------------------------------------------------------------------------------
# another training: start afresh, keep the old state aside


def test_code_change_starts_afresh_and_keeps_the_old_state(split, finished, tmp_path, caplog, monkeypatch):
    out = copy_run(finished, tmp_path)
    old_state = (out / STATE_FILE).read_bytes()
    old_model = (out / "model.pt").read_bytes()
    old_code = read_saved_state(out / STATE_FILE).identity.code
    monkeypatch.setattr(train_stage, "stage_code_digest", lambda module: "0123456789abcdef")
    caplog.set_level(logging.INFO)
    run_training(split, out, TrainConfig(iterations=2, **TINY))

    (line,) = [m for m in train_messages(caplog) if m.startswith("starting afresh")]
    assert f"code differs (train stage code digest {old_code} -> 0123456789abcdef)" in line
    assert "settings differ" not in line and "inputs differ" not in line
    (aside,) = superseded(out)
    assert str(aside) in line and "last.pt, losses.csv, model.pt" in line
    assert (aside / "last.pt").read_bytes() == old_state and (aside / "model.pt").read_bytes() == old_model
    assert [int(r["iteration"]) for r in read_csv(aside / "losses.csv")] == [1, 2]
    assert any(m.startswith("training iterations 1-2 of 2") for m in train_messages(caplog))  # trained again
    assert read_saved_state(out / STATE_FILE).identity.code == "0123456789abcdef"
    assert (out / "model.pt").is_file()


def test_settings_change_starts_afresh_naming_the_keys(split, finished, tmp_path, caplog):
    out = copy_run(finished, tmp_path)
    caplog.set_level(logging.INFO)
    run_training(split, out, TrainConfig(iterations=2, **TINY, lr_head=5e-4))
    (line,) = [m for m in train_messages(caplog) if m.startswith("starting afresh")]
    assert "settings differ (train.lr_head: 0.0001 -> 0.0005)" in line and "code differs" not in line
    assert len(superseded(out)) == 1
    assert read_saved_state(out / STATE_FILE).identity.settings["train"]["lr_head"] == 5e-4
    _, info = load_trained_model(out / "model.pt")
    assert info.train.lr_head == 5e-4


def test_input_change_starts_afresh_naming_the_file(split, tmp_path, caplog):
    data = tmp_path / "data"
    shutil.copytree(split["annotations"].parent, data)
    inputs = {name: data / path.name for name, path in split.items()}
    out = tmp_path / "run"
    train = TrainConfig(iterations=1, **TINY)
    train_stage.run(clip=CLIP, model=MODEL, loss=LOSS, train=train, split="train", out_dir=out, **inputs)
    bank = np.random.default_rng(5).normal(size=(4, 64)).astype(np.float32)
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    classes = [[0, 2], [1, 1], [2, 1], [0, 1]]
    write_knowledge_bank(inputs["bank"], bank, ["p"] * 4, classes, {"clip_model": "hoi-tiny-rn"})
    caplog.set_level(logging.INFO)
    train_stage.run(clip=CLIP, model=MODEL, loss=LOSS, train=train, split="train", out_dir=out, **inputs)
    (line,) = [m for m in train_messages(caplog) if m.startswith("starting afresh")]
    assert f"inputs differ (bank {inputs['bank']})" in line and "settings differ" not in line
    assert len(superseded(out)) == 1


def test_state_beyond_the_target_starts_afresh(split, finished, tmp_path, caplog):
    out = copy_run(finished, tmp_path)
    caplog.set_level(logging.INFO)
    run_training(split, out, TrainConfig(iterations=1, **TINY))
    (line,) = [m for m in train_messages(caplog) if m.startswith("starting afresh")]
    assert "it is at iteration 2, beyond train.iterations 1" in line
    assert read_saved_state(out / STATE_FILE).iteration == 1


def test_state_of_an_earlier_version_starts_afresh(split, finished, tmp_path, caplog):
    out = copy_run(finished, tmp_path)
    payload = torch.load(out / STATE_FILE, weights_only=True)
    old = {key: payload[key] for key in ("iteration", "model", "optimizer", "scheduler", "scaler", "rng", "history")}
    torch.save({"format": "hoi-pipeline-train-state", "version": 1, **old, "config": {}}, out / STATE_FILE)
    caplog.set_level(logging.INFO)
    run_training(split, out, TrainConfig(iterations=2, **TINY))
    (line,) = [m for m in train_messages(caplog) if m.startswith("starting afresh")]
    assert "written by an earlier version that did not record its code and inputs" in line
    assert read_saved_state(out / STATE_FILE).identity is not None


def test_identity_ignores_runtime_keys_and_the_target():
    sections = {"clip": to_dict(CLIP), "model": to_dict(MODEL), "loss": to_dict(LOSS)}
    inputs = {"annotations": "a", "bank": "b"}

    def identity(train: TrainConfig, **changes) -> TrainingIdentity:
        return TrainingIdentity.of({**sections, "train": to_dict(train)}, code="c", inputs={**inputs, **changes})

    base = identity(TrainConfig())
    runtime = TrainConfig(num_workers=0, log_every=1, checkpoint_every=3, device="cpu", gpus=4, iterations=7)
    assert identity(runtime) == base and identity(runtime).differences(base) == []
    assert identity(TrainConfig(seed=3, batch_size=8)).differences(base) == [
        "settings differ (train.batch_size: 24 -> 8, train.seed: 0 -> 3)"
    ]
    assert identity(TrainConfig(deterministic=True)).differences(base) == [
        "settings differ (train.deterministic: False -> True)"
    ]
    assert identity(TrainConfig(), annotations="z").differences(base) == ["inputs differ (annotations)"]


# --------------------------------------------------------------------------------------------
# iterations 0, the loss history


def test_zero_iterations_saves_the_initial_model(split, tmp_path, caplog):
    out = tmp_path / "zero"
    run_training(split, out, TrainConfig(iterations=0, **TINY))
    model, info = load_trained_model(out / "model.pt")
    assert info.iterations == 0 and read_saved_state(out / STATE_FILE).iteration == 0
    assert read_csv(out / "losses.csv") == [] and (out / "losses.csv").read_text().strip() == ",".join(HISTORY_COLUMNS)
    # the model a training with these settings starts from
    train_stage.seed_everything(0)
    from hoi_pipeline.datasets import load_annotations
    from hoi_pipeline.knowledge_bank_file import load_knowledge_bank

    initial, _ = train_stage.prepare_model(
        clip=CLIP, model=MODEL, vocabulary=load_annotations(split["annotations"], "train").vocabulary,
        bank_embeddings=torch.from_numpy(load_knowledge_bank(split["bank"]).embeddings), max_pairs=256, seed=0,
    )  # fmt: skip
    assert_same_weights({k: v for k, v in initial.state_dict().items()}, weights(out))
    # one trained iteration moves the weights away from it
    run_training(split, tmp_path / "one", TrainConfig(iterations=1, **TINY))
    assert not torch.equal(weights(out)["pairwise.f_p.2.weight"], weights(tmp_path / "one")["pairwise.f_p.2.weight"])
    caplog.set_level(logging.INFO)
    run_training(split, out, TrainConfig(iterations=0, **TINY))
    assert any("is complete (iteration 0 of 0" in m for m in train_messages(caplog))


def test_loss_record_columns_are_the_csv_header():
    record = LossRecord.of(3, {"image": 1.0, "pair": 2.0, "relatedness": 0.5, "total": 3.5}, {"backbone": 1e-5})
    assert HISTORY_COLUMNS == ("iteration", "loss_image", "loss_pair", "loss_relatedness", "loss_total",
                               "lr_backbone", "lr_head")  # fmt: skip
    assert (record.iteration, record.loss_total, record.lr_backbone, record.lr_head) == (3, 3.5, 1e-5, 0.0)
    with pytest.raises(ValueError, match="iterations must be >= 0"):
        TrainConfig(iterations=-1)
    for key, value in (("gpus", 0), ("lr_gamma", -0.1), ("lr_head", float("nan"))):
        with pytest.raises(ValueError, match=key):
            TrainConfig(**{key: value})


# --------------------------------------------------------------------------------------------
# reproducible kernels and threads


def test_kernel_settings_are_set_for_the_run_and_restored():
    threads = torch.get_num_threads()
    assert not torch.are_deterministic_algorithms_enabled()
    with reproducible_kernels(torch.device("cpu"), deterministic=False, threads=1) as strict:
        assert not strict and torch.get_num_threads() == 1
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.mkldnn.deterministic
    assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()
    # GPU runs with train.deterministic (the flags can be set without a GPU): strict, and a clear error
    environment = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    with pytest.raises(ValueError, match=r"^train.deterministic: put_ does not have a deterministic "
                                         r"implementation on cuda; set train.deterministic: false$"):  # fmt: skip
        with reproducible_kernels(torch.device("cuda"), deterministic=True, threads=threads) as strict:
            assert strict and not torch.is_deterministic_algorithms_warn_only_enabled()
            assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
            assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8" if environment is None else environment
            torch.zeros(3).put_(torch.tensor([1, 1]), torch.tensor([1.0, 2.0]))  # has no deterministic kernel
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic
    assert os.environ.get("CUBLAS_WORKSPACE_CONFIG") == environment


def test_resume_uses_the_thread_count_recorded_in_the_state(split, tmp_path, caplog):
    out = tmp_path / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_training(split, out, TrainConfig(iterations=2, **TINY), max_steps=1)
    finally:
        torch.set_num_threads(threads)
    assert read_saved_state(out / STATE_FILE).runtime.threads == 1
    caplog.set_level(logging.INFO)
    run_training(split, out, TrainConfig(iterations=2, **TINY))
    assert any(m.startswith("training iterations 2-2 of 2") and m.endswith(", 1 CPU threads)")
               for m in train_messages(caplog))  # fmt: skip
    assert read_saved_state(out / STATE_FILE).runtime.threads == 1 and torch.get_num_threads() == threads


# --------------------------------------------------------------------------------------------
# bad state files, SIGTERM


def cli_arguments(split: dict[str, Path], out: Path, train: TrainConfig) -> list[str]:
    sections = {"clip": to_dict(CLIP), "model": to_dict(MODEL), "loss": to_dict(LOSS), "train": to_dict(train)}
    return ["train", "--config-json", json.dumps(sections), "--annotations", str(split["annotations"]),
            "--images", str(split["images"]), "--proposals", str(split["proposals"]), "--bank", str(split["bank"]),
            "--out-dir", str(out)]  # fmt: skip


@pytest.mark.parametrize("damage", ["truncated", "garbage", "model file"])
def test_unreadable_state_is_a_one_line_error_saying_what_to_move(split, finished, tmp_path, caplog, damage):
    from hoi_pipeline.cli import main

    out = copy_run(finished, tmp_path)
    state = out / STATE_FILE
    if damage == "truncated":
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    elif damage == "garbage":
        state.write_bytes(b"this is not a checkpoint\n" * 10)
    else:
        shutil.copy(out / "model.pt", state)
    content = state.read_bytes()
    assert main(cli_arguments(split, out, TrainConfig(iterations=2, **TINY))) == 2
    (error,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "\n" not in error and error.startswith(f"{state}: cannot resume from this training state (")
    assert error.endswith(f"to train afresh, delete it or move it out of the way (mv '{state}' '{state}.bad')")
    if damage == "model file":
        assert "expected a 'hoi-pipeline-train-state' file, found 'hoi-pipeline-model'" in error
    assert state.read_bytes() == content and not superseded(out)  # nothing moved or rewritten


def test_sigterm_saves_the_state_and_a_rerun_resumes_it(split, tmp_path):
    """SLURM preemption: SIGTERM to every process of the job (main process and DataLoader worker), mid-iteration."""
    train = TrainConfig(iterations=6, batch_size=2, num_workers=1, precision="fp32", log_every=1, checkpoint_every=100)
    out = tmp_path / "run"
    job = subprocess.Popen(
        [sys.executable, "-m", "hoi_pipeline", *cli_arguments(split, out, train)],
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    seen, logged, deadline = [], {}, time.monotonic() + 300
    while time.monotonic() < deadline and "iter 2/6" not in logged:
        line = job.stderr.readline()
        if not line:
            break
        seen.append(line)
        logged.update({f"iter {i}/6": time.monotonic() for i in (1, 2) if f"iter {i}/6" in line})
    time.sleep((logged.get("iter 2/6", 0) - logged.get("iter 1/6", 0)) / 2)  # into iteration 3
    os.killpg(job.pid, signal.SIGTERM)
    _, rest = job.communicate(timeout=300)
    log_text = "".join(seen) + rest
    assert job.returncode == 143, log_text[-3000:]
    saved = read_saved_state(out / STATE_FILE)  # no periodic checkpoint before 100: this one is SIGTERM's
    assert 2 <= saved.iteration < 6, log_text[-3000:]
    assert f"SIGTERM: stopped after iteration {saved.iteration} of the training" in log_text
    assert [int(r["iteration"]) for r in read_csv(out / "losses.csv")] == list(range(1, saved.iteration + 1))
    assert not (out / "model.pt").exists() and not list(out.rglob("*.tmp"))

    resumed = subprocess.run([sys.executable, "-m", "hoi_pipeline", *cli_arguments(split, out, train)],
                             capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {out / STATE_FILE} at iteration {saved.iteration} of 6" in resumed.stderr
    # the uninterrupted reference in a process of its own too (same thread count as the interrupted one)
    subprocess.run([sys.executable, "-m", "hoi_pipeline", *cli_arguments(split, tmp_path / "straight", train)],
                   capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    assert_same_weights(weights(tmp_path / "straight"), weights(out))


@pytest.mark.slow
def test_sigterm_under_torchrun_saves_once_and_resumes(split, tmp_path):
    """DDP on 2 CPU processes: every process and torchrun get SIGTERM (and torchrun forwards one more)."""
    train = TrainConfig(iterations=8, batch_size=4, num_workers=0, precision="fp32", log_every=1, checkpoint_every=100)
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "hoi_pipeline", *cli_arguments(split, out, train)]  # fmt: skip
    job = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    seen, deadline = [], time.monotonic() + 600
    while time.monotonic() < deadline:
        line = job.stderr.readline()
        seen.append(line)
        if "iter 2/8" in line or not line:
            break
    os.killpg(job.pid, signal.SIGTERM)
    _, rest = job.communicate(timeout=600)
    log_text = "".join(seen) + rest
    assert job.returncode != 0, log_text[-3000:]
    saved = read_saved_state(out / STATE_FILE)
    assert 2 <= saved.iteration < 8 and saved.runtime.world_size == 2, log_text[-3000:]
    assert log_text.count("SIGTERM: stopped after iteration") == 1  # rank 0 only
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {out / STATE_FILE} at iteration {saved.iteration} of 8" in resumed.stderr
    _, info = load_trained_model(out / "model.pt")
    assert info.iterations == 8 and len(read_csv(out / "losses.csv")) == 8
