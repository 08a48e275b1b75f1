"""Device choice and mixed precision, shared by every stage that runs a network."""

from __future__ import annotations

import contextlib

import torch

AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(name: str, key: str = "device") -> torch.device:
    """`auto` = the first CUDA device when there is one, else the CPU; an unavailable CUDA is an error.

    `key` is the config key the value came from, named in the error (e.g. "infer.device").
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"{key}: '{name}' is not a device (use auto, cpu, cuda or cuda:N)") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{key}: '{name}' requested but CUDA is not available (use auto or cpu)")
    return device


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA with the configured dtype; full precision on CPU or for fp32."""
    if device.type != "cuda" or precision not in AUTOCAST_DTYPES:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=AUTOCAST_DTYPES[precision])
