"""HOI recognition network (paper Sec. 3.2.2, global branch): image-level HOI logits s_g (B, N).

v_g is the attention-pooled CLIP feature of the whole image and W_T the knowledge bank (N, D). The
paper scores v_g by a plain inner product, s_g = W_T v_g (`model.global_logits: inner_product`, the
default). The alternative `scaled_cosine` is s_g = t * cos(W_T, v_g) + b with learnable t and b:
CLIP's own logit scale (~100) is calibrated for a softmax over classes while s_g feeds a per-class
sigmoid / BCE, so, as in SigLIP, a learnable scale and a negative bias (`logit_scale_init`,
`logit_bias_init`) start every class at a low prior. When the bank and the visual embedding differ
in width (a bank from another text model, Table 2) a linear projection maps v_g into the bank's space.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MAX_LOG_SCALE = math.log(100.0)  # CLIP's clamp of the logit scale
GLOBAL_LOGITS = ("inner_product", "scaled_cosine")


class HOIRecognitionNetwork(nn.Module):
    """(B, Dv) image features and (N, D) bank -> (B, N) logits s_g."""

    def __init__(
        self,
        *,
        visual_dim: int,
        bank_dim: int,
        logits: str = "inner_product",
        scale_init: float = 10.0,
        bias_init: float = -10.0,
    ) -> None:
        super().__init__()
        if logits not in GLOBAL_LOGITS:
            raise ValueError(f"unknown global_logits '{logits}'; allowed: {', '.join(GLOBAL_LOGITS)}")
        self.logits = logits
        self.projection = nn.Identity() if visual_dim == bank_dim else nn.Linear(visual_dim, bank_dim)
        if logits == "scaled_cosine":
            self.log_scale = nn.Parameter(torch.tensor(math.log(scale_init)))
            self.bias = nn.Parameter(torch.tensor(float(bias_init)))

    def forward(self, image_features: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        v_g = self.projection(image_features).float()  # (B, D)
        if self.logits == "inner_product":
            return v_g @ bank.float().T  # (B, N)
        scale = self.log_scale.clamp(max=MAX_LOG_SCALE).exp()
        return scale * F.normalize(v_g, dim=-1) @ F.normalize(bank.float(), dim=-1).T + self.bias  # (B, N)
