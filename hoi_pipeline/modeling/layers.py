"""Small building blocks shared by the model's heads."""

from __future__ import annotations

from torch import nn


def mlp(in_dim: int, hidden_dim: int, out_dim: int, *, final_relu: bool = False) -> nn.Sequential:
    """Two-layer perceptron Linear-ReLU-Linear (the F_E, F_K, F_P, F_B of the paper), optional final ReLU."""
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)]
    if final_relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)
