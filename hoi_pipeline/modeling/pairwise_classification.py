"""Pairwise classification network (paper Sec. 3.2.4, Eq. 2): verb logits s_p = F_P(v^_p) and relatedness s_b = F_B(v^_p).

s_p (P, A) is trained by multiple-instance learning against the image's verb labels (L_p) and
s_b (P,) by self-taught relatedness pseudo-labels (L_b); see `hoi_pipeline/losses.py`.
"""

from __future__ import annotations

import torch
from torch import nn

from hoi_pipeline.modeling.layers import mlp


class PairwiseClassificationNetwork(nn.Module):
    """(P, hidden) refined pair features -> ((P, A) verb logits, (P,) relatedness logits)."""

    def __init__(self, *, hidden_dim: int, num_verbs: int) -> None:
        super().__init__()
        self.f_p = mlp(hidden_dim, hidden_dim, num_verbs)
        self.f_b = mlp(hidden_dim, hidden_dim, 1)

    def forward(self, pair_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.f_p(pair_features), self.f_b(pair_features).squeeze(1)
