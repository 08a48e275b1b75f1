"""Device choice errors name the config key; autocast only on CUDA."""

from __future__ import annotations

import contextlib
import warnings

import pytest
import torch

from hoi_pipeline.devices import autocast, resolve_device


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="infer.device: 'gpu please' is not a device"):
        resolve_device("gpu please", "infer.device")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_autocast_is_a_no_op_on_cpu_and_for_fp32():
    assert isinstance(autocast(torch.device("cpu"), "bf16"), contextlib.nullcontext)
    assert isinstance(autocast(torch.device("cuda"), "fp32"), contextlib.nullcontext)
    with warnings.catch_warnings():  # torch warns that CUDA is absent on machines without it
        warnings.simplefilter("ignore")
        assert isinstance(autocast(torch.device("cuda"), "bf16"), torch.autocast)
