"""Knowledge transfer network, KTN (paper Sec. 4.2, local branch).

Per human-object pair:
    v_p    = F_E([v_h; v_o; v_sp])                 pair feature (`PairFeatureEncoder`)
    alpha  = attention(W_T, q)                     q = v_u (union-box feature) or v_p (Table 4)
    v_meta = alpha^T W_T                           knowledge retrieved from the (detached) bank
    v^_p   = F_K(v_p + P_m v_meta)                 P_m: linear D -> hidden, as v_p and v_meta differ in size

Attention variants (Table 4): `softmax` over the N classes (paper), `uniform` (alpha = 1/N, the
mean of the bank: no query-dependent retrieval), `sigmoid` (independent gates, divided by N so v_meta
keeps the scale of a weighted mean). Logits are cosine similarities times a learnable temperature
(initialised at CLIP's 1/0.07): a raw dot product W_T q depends on the feature norm, which the
backbone can change freely. Without KTN (`enabled=False`, Table 2) v^_p = F_K(v_p): the same capacity,
no knowledge.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hoi_pipeline.modeling.layers import mlp

INITIAL_TEMPERATURE = 1.0 / 0.07  # CLIP's initial logit scale
MAX_LOG_TEMPERATURE = math.log(100.0)


class PairFeatureEncoder(nn.Module):
    """F_E: [v_h; v_o; v_sp] (P, 2 Dv + spatial_dim) -> v_p (P, hidden)."""

    def __init__(self, *, visual_dim: int, spatial_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.mlp = mlp(2 * visual_dim + spatial_dim, hidden_dim, hidden_dim, final_relu=True)

    def forward(self, v_h: torch.Tensor, v_o: torch.Tensor, v_sp: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([v_h, v_o, v_sp], dim=1))


def knowledge_attention(query: torch.Tensor, bank: torch.Tensor, temperature: torch.Tensor, kind: str) -> torch.Tensor:
    """(P, D) queries, (N, D) bank -> (P, N) attention weights alpha."""
    num_pairs, num_classes = query.shape[0], bank.shape[0]
    if kind == "uniform":
        return query.new_full((num_pairs, num_classes), 1.0 / num_classes)
    logits = temperature * F.normalize(query, dim=-1) @ F.normalize(bank, dim=-1).T  # (P, N)
    if kind == "softmax":
        return logits.softmax(dim=-1)
    if kind == "sigmoid":
        return torch.sigmoid(logits) / num_classes
    raise ValueError(f"unknown KTN attention '{kind}'; allowed: softmax, uniform, sigmoid")


class KnowledgeTransferNetwork(nn.Module):
    """v_p (P, hidden), union features v_u (P, Dv) and the detached bank (N, D) -> v^_p (P, hidden)."""

    def __init__(
        self, *, hidden_dim: int, visual_dim: int, bank_dim: int, query: str, attention: str, enabled: bool
    ) -> None:
        super().__init__()
        if query not in ("union", "pair"):
            raise ValueError(f"unknown KTN query '{query}'; allowed: union, pair")
        self.enabled = enabled
        self.query = query
        self.attention = attention
        if enabled:
            query_dim = visual_dim if query == "union" else hidden_dim
            self.query_projection = nn.Identity() if query_dim == bank_dim else nn.Linear(query_dim, bank_dim)
            self.log_temperature = nn.Parameter(torch.tensor(math.log(INITIAL_TEMPERATURE)))
            self.meta_projection = nn.Linear(bank_dim, hidden_dim)
        self.f_k = mlp(hidden_dim, hidden_dim, hidden_dim, final_relu=True)

    @property
    def needs_union_features(self) -> bool:
        return self.enabled and self.query == "union"

    def forward(self, v_p: torch.Tensor, v_u: torch.Tensor | None, bank: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return self.f_k(v_p)
        source = v_u if self.query == "union" else v_p
        assert source is not None, "the union query needs union-box features"
        query = self.query_projection(source).float()  # (P, D)
        temperature = self.log_temperature.clamp(max=MAX_LOG_TEMPERATURE).exp()
        alpha = knowledge_attention(query, bank.float(), temperature, self.attention)  # (P, N)
        v_meta = alpha @ bank.float()  # (P, D)
        return self.f_k(v_p + self.meta_projection(v_meta).to(v_p.dtype))
