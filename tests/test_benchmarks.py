"""`benchmarks/run_all.py --quick`: every stage's benchmark runs and lands in one table."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

RUN_ALL = Path(__file__).resolve().parents[1] / "benchmarks" / "run_all.py"
STAGES = ("input", "detect", "embed", "train", "pairs", "infer", "evaluate")


@pytest.mark.slow
def test_run_all_quick_on_the_cpu_writes_one_table_with_a_row_per_stage(tmp_path):
    done = subprocess.run([sys.executable, str(RUN_ALL), "--device", "cpu", "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    table = (tmp_path / "cpu-quick.md").read_text()
    assert table in done.stdout
    lines = [line for line in table.splitlines() if line.startswith("|")][2:]  # rows after header and rule
    assert {line.split("|")[1].strip() for line in lines} == set(STAGES)
    rows = json.loads((tmp_path / "cpu-quick.json").read_text())
    assert [row["error"] for row in rows if row["error"]] == []
    for row in rows:
        assert row["images_per_s"] > 0 and row["device"]
    assert {row["stage"] for row in rows if row["peak_mib"]} >= {"detect", "embed", "train", "pairs", "infer"}
    (pairs,) = [row for row in rows if row["stage"] == "pairs"]
    assert pairs["details"]["saved for backward, MiB per 1,000 RoIs"] > 0
    assert "saved for backward, MiB per 1,000 RoIs" in table


def test_a_failing_case_becomes_its_rows_error_and_the_table_still_comes(monkeypatch):
    """A case whose function raises: its row says so; the command still writes the table."""
    spec = importlib.util.spec_from_file_location("run_all", RUN_ALL)
    run_all = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "run_all", run_all)  # dataclasses look their module up there
    spec.loader.exec_module(run_all)
    case = run_all.Case("embed", "bench_embed", "measure_embed", {"model": "no-such-model", "device": "cpu"})
    (row,) = run_all.run_case(case)
    assert row["stage"] == "embed" and "no-such-model" in row["error"] and row["images_per_s"] is None
    table = run_all.markdown([row], ["# t"])
    assert "**failed**" in table and "no-such-model" in table


@pytest.mark.parametrize(("device", "quick"), [("cuda", False), ("cpu", False), ("cpu", True)])
def test_every_case_calls_its_function_with_keywords_it_takes(monkeypatch, device, quick):
    """The GPU path cannot run here: at least its cases name real functions and their real keywords."""
    monkeypatch.syspath_prepend(str(RUN_ALL.parent))
    run_all = importlib.import_module("run_all")
    bench_train = importlib.import_module("bench_train")
    options = vars(bench_train.build_parser().parse_args([]))
    cases = run_all.cases(device, quick)
    assert {case.stage for case in cases} == set(STAGES)
    for case in cases:
        function = getattr(importlib.import_module(case.module), case.function)
        if case.module == "bench_train":  # keywords are the command line's options
            assert set(case.kwargs) - {"batch_sizes"} <= set(options), case
        else:
            inspect.signature(function).bind(**case.kwargs)


@pytest.mark.slow
def test_bench_deviations_trains_the_demo_under_a_switch(tmp_path):
    """`python benchmarks/bench_deviations.py` (README "Deviations from the paper"), cut to a few iterations."""
    script = RUN_ALL.parent / "bench_deviations.py"
    done = subprocess.run([sys.executable, str(script), "--variants", "paper", "relatedness_mean", "--iterations", "3",
                           "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [dict(item.split("=") for item in line.split()) for line in done.stdout.splitlines()
            if line.startswith("variant=")]  # fmt: skip
    assert [row["variant"] for row in rows] == ["paper", "relatedness_mean"]
    for row in rows:
        assert 0 <= float(row["full"]) <= 100 and 0 <= float(row["pick"]) <= 1


@pytest.fixture
def benchmarks(monkeypatch):
    """The benchmark modules import each other by name, as when run as scripts."""
    monkeypatch.syspath_prepend(str(RUN_ALL.parent))
    return importlib.import_module


def test_saved_activation_bytes_counts_each_storage_once_and_whole(benchmarks):
    bench_common = benchmarks("bench_common")
    x = torch.randn(3, 4, requires_grad=True)  # a leaf that requires grad (like a parameter): existing
    w = torch.randn(4)  # an input without grad, named as existing

    def forward() -> torch.Tensor:
        e = x.exp()  # saves its result e: 3 x 4 float32 = 48 bytes, made
        y = (e * w).sum()  # saves w (16 bytes, existing), not e (w needs no gradient)
        y = y + (e[0] * e[1]).sum()  # saves two views of e: e's storage again, not counted again
        y = y + (x * x).sum()  # saves x twice: its 48 bytes once, existing
        f = x + 1  # a new 3 x 4 tensor; adding a number saves nothing
        return y + (f[:1] * x[:1]).sum()  # saves the slice f[:1]: all 48 bytes of f, made; a view of x

    with bench_common.saved_activation_bytes(existing=[w]) as saved:
        y = forward()
    assert (saved.activations, saved.existing) == (48 + 48, 16 + 48)
    (grad,) = torch.autograd.grad(y, x)  # the graph works on what the hooks kept
    assert torch.equal(grad, torch.autograd.grad(forward(), x)[0])


def test_cpu_tensor_peak_is_the_most_bytes_made_in_the_block_and_live_at_once(benchmarks):
    bench_common = benchmarks("bench_common")
    n = 1 << 20
    x = torch.ones(n)  # made before the block: not counted
    with bench_common.cpu_tensor_peak() as peak:
        y = x * 2  # 4n bytes live
        z = y + 1  # 8n
        del y  # 4n
        w = z * 3  # 8n again
        del z, w  # 0
    assert 8 * n <= peak.peak < 8 * n + 4096  # (a few bytes more: numbers wrapped as tensors)


def test_bench_pairs_saves_more_for_backward_with_more_rois_at_a_steady_rate(benchmarks):
    """Two tiny runs per variant (K / 4 and K RoIs each): the saved bytes grow linearly with the RoIs."""
    bench_pairs = benchmarks("bench_pairs")
    for variant in bench_pairs.VARIANTS:
        small, large = (
            bench_pairs.measure_pairs(variant=variant, model="hoi-tiny-rn", images=2, rois=rois, repeat=1).details
            for rois in (8, 32)
        )
        assert 0 < small["saved for backward MiB"] < large["saved for backward MiB"]
        slope = large["saved for backward, MiB per 1,000 RoIs"]  # 16 -> 64 RoIs in all
        assert slope > 0
        assert small["saved for backward, MiB per 1,000 RoIs"] == pytest.approx(slope, rel=0.02, abs=0.2)  # 4 -> 16
        grown = large["saved for backward MiB"] - small["saved for backward MiB"]  # 16 -> 64 RoIs
        assert grown == pytest.approx(slope * 48 / 1000, rel=0.02, abs=0.1)
        assert "max allocated, MiB per 1,000 RoIs" not in large  # a CUDA figure


def test_bench_pairs_compares_two_roi_counts_that_take_the_same_roi_align_method(benchmarks, monkeypatch):
    """The CPU's dense RoI-Align limit put between K / 4 and K: the fewer RoIs move up to the limit."""
    from hoi_pipeline.modeling import backbone

    bench_pairs = benchmarks("bench_pairs")
    per_roi = 3 * 512 * 15 * 20  # hoi-tiny-rn, projected: 3 C4 channels, 20 x 15 layer4 cells at 640
    monkeypatch.setattr(backbone, "DENSE_ROI_ALIGN_MAX_ELEMENTS", 6 * per_roi)  # dense up to 6 RoIs in all
    dense_calls = []
    dense_roi_align = backbone.dense_roi_align

    def counted(features: torch.Tensor, rois: torch.Tensor, *args) -> torch.Tensor:
        dense_calls.append(len(rois))
        return dense_roi_align(features, rois, *args)

    monkeypatch.setattr(backbone, "dense_roi_align", counted)

    def measure(variant: str, rois: int) -> dict:
        return bench_pairs.measure_pairs(variant=variant, model="hoi-tiny-rn", images=2, rois=rois, repeat=1).details

    def method(details: dict) -> tuple[str, str]:
        return details["RoI-Align"], details["per 1,000 RoIs between"]

    details = measure("projected", 8)  # 2 x 8 = 16 RoIs: torchvision; 2 x 2 would be dense, 2 x 4 is not
    assert method(details) == ("torchvision roi_align", "4 and 8 RoIs per image")
    assert dense_calls == [] and details["saved for backward, MiB per 1,000 RoIs"] > 0
    details = measure("grid", 8)  # C4 channels only: 16 RoIs x 512 x 300 is below the limit, 2 and 8 both dense
    assert method(details) == ("dense matrices", "2 and 8 RoIs per image")
    assert sorted(dense_calls) == [4, 4, 16, 16]  # a measured and a timed step per count
    details = measure("projected", 3)  # 6 RoIs: dense, as 3 // 4 -> 1 per image
    assert method(details) == ("dense matrices", "1 and 3 RoIs per image")
    monkeypatch.setattr(backbone, "DENSE_ROI_ALIGN_MAX_ELEMENTS", 5 * per_roi)  # 3 per image is the first above
    details = measure("projected", 3)
    assert method(details) == ("torchvision roi_align", "none") and details["ms per 1,000 RoIs"] is None
