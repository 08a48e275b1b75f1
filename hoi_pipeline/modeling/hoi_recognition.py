"""HOI recognition network (paper Sec. 4.2, global branch): image-level HOI logits s_g = W_T v_g.

v_g is the attention-pooled CLIP feature of the whole image. We score it against the bank by cosine
similarity with a learnable scale t and bias b, s_g = t * cos(W_T, v_g) + b: CLIP's own logit scale
(~100) is calibrated for a softmax over classes, while s_g feeds a per-class sigmoid / BCE, so,
as in SigLIP, a learnable scale and a negative bias (config `logit_scale_init`, `logit_bias_init`)
start every class at a low prior. When the bank and the visual embedding differ in size (a bank
from another text model, Table 2) a linear projection maps v_g into the bank's space.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MAX_LOG_SCALE = math.log(100.0)  # CLIP's clamp of the logit scale


class HOIRecognitionNetwork(nn.Module):
    """(B, Dv) image features and (N, D) bank -> (B, N) logits s_g."""

    def __init__(self, *, visual_dim: int, bank_dim: int, scale_init: float, bias_init: float) -> None:
        super().__init__()
        self.projection = nn.Identity() if visual_dim == bank_dim else nn.Linear(visual_dim, bank_dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale_init)))
        self.bias = nn.Parameter(torch.tensor(float(bias_init)))

    def forward(self, image_features: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        v_g = F.normalize(self.projection(image_features).float(), dim=-1)  # (B, D)
        w_t = F.normalize(bank.float(), dim=-1)  # (N, D)
        scale = self.log_scale.clamp(max=MAX_LOG_SCALE).exp()
        return scale * v_g @ w_t.T + self.bias  # (B, N)
