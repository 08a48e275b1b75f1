"""Knowledge transfer network, KTN (paper Sec. 3.2.3, Eq. 1, local branch).

Per human-object pair:
    v_p    = F_E([v_h; v_o; v_sp])                 holistic pair feature (`PairFeatureEncoder`)
    alpha  = Softmax(W_T q)                        q = v_u, the union-box feature (Eq. 1), or v_p
    v_meta = alpha^T W_T                           knowledge retrieved from the (detached) bank
    v^_p   = F_K(v_p + P_m v_meta)                 P_m only where v_meta and v_p differ in width

Variants (config keys in `ModelConfig`):
- `ktn_logits`: the attention logits are the plain inner product W_T q (Eq. 1, default), or a
  learnable temperature (initialised at CLIP's 1/0.07) times the cosine, which does not depend on
  the feature norm the backbone may drift to.
- `ktn_attention` (Table 4): `softmax` over the N classes (Eq. 1), `uniform` (alpha = 1/N, the mean
  of the bank: no query-dependent retrieval, Exp 12), `sigmoid` (independent gates, divided by N
  so v_meta keeps the scale of a weighted mean, Exp 13).
- `ktn_knowledge: union` (Table 4, Exp 11): the union-box feature v_u itself replaces v_meta.
- `ktn_meta_projection: always`: P_m also where the widths agree.
- Without KTN (`enabled=False`, Table 2) the paper predicts from v_p itself (v^_p = v_p);
  `fk_without_ktn` keeps F_K (v^_p = F_K(v_p), the capacity of the KTN model without its knowledge).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hoi_pipeline.modeling.layers import mlp

INITIAL_TEMPERATURE = 1.0 / 0.07  # CLIP's initial logit scale
MAX_LOG_TEMPERATURE = math.log(100.0)
ATTENTIONS = ("softmax", "uniform", "sigmoid")


class PairFeatureEncoder(nn.Module):
    """F_E: [v_h; v_o; v_sp] (P, 2 Dv + spatial_dim) -> v_p (P, hidden)."""

    def __init__(self, *, visual_dim: int, spatial_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.mlp = mlp(2 * visual_dim + spatial_dim, hidden_dim, hidden_dim, final_relu=True)

    def forward(self, v_h: torch.Tensor, v_o: torch.Tensor, v_sp: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([v_h, v_o, v_sp], dim=1))


def knowledge_attention(
    query: torch.Tensor, bank: torch.Tensor, kind: str, temperature: torch.Tensor | None = None
) -> torch.Tensor:
    """(P, D) queries, (N, D) bank -> (P, N) attention weights alpha.

    Logits are the inner products W_T q (Eq. 1), or `temperature` * cos(W_T, q) when a temperature is given.
    """
    num_pairs, num_classes = query.shape[0], bank.shape[0]
    if kind == "uniform":
        return query.new_full((num_pairs, num_classes), 1.0 / num_classes)
    if temperature is None:
        logits = query @ bank.T  # (P, N)
    else:
        logits = temperature * F.normalize(query, dim=-1) @ F.normalize(bank, dim=-1).T  # (P, N)
    if kind == "softmax":
        return logits.softmax(dim=-1)
    if kind == "sigmoid":
        return torch.sigmoid(logits) / num_classes
    raise ValueError(f"unknown KTN attention '{kind}'; allowed: {', '.join(ATTENTIONS)}")


class KnowledgeTransferNetwork(nn.Module):
    """v_p (P, hidden), union features v_u (P, Dv) and the detached bank (N, D) -> v^_p (P, hidden)."""

    def __init__(
        self,
        *,
        hidden_dim: int,
        visual_dim: int,
        bank_dim: int,
        enabled: bool = True,
        query: str = "union",
        attention: str = "softmax",
        logits: str = "inner_product",
        knowledge: str = "bank",
        meta_projection: str = "when_widths_differ",
        fk_without_ktn: bool = False,
    ) -> None:
        super().__init__()
        for name, value, allowed in (
            ("query", query, ("union", "pair")),
            ("attention", attention, ATTENTIONS),
            ("logits", logits, ("inner_product", "scaled_cosine")),
            ("knowledge", knowledge, ("bank", "union")),
            ("meta_projection", meta_projection, ("when_widths_differ", "always")),
        ):
            if value not in allowed:
                raise ValueError(f"unknown KTN {name} '{value}'; allowed: {', '.join(allowed)}")
        self.enabled = enabled
        self.query = query
        self.attention = attention
        self.knowledge = knowledge
        if enabled:
            if knowledge == "bank":
                query_dim = visual_dim if query == "union" else hidden_dim
                self.query_projection = nn.Identity() if query_dim == bank_dim else nn.Linear(query_dim, bank_dim)
                if logits == "scaled_cosine":
                    self.log_temperature = nn.Parameter(torch.tensor(math.log(INITIAL_TEMPERATURE)))
            source_dim = bank_dim if knowledge == "bank" else visual_dim
            project = meta_projection == "always" or source_dim != hidden_dim
            self.meta_projection = nn.Linear(source_dim, hidden_dim) if project else nn.Identity()
        self.f_k = mlp(hidden_dim, hidden_dim, hidden_dim, final_relu=True) if enabled or fk_without_ktn else None

    @property
    def needs_union_features(self) -> bool:
        return self.enabled and (self.knowledge == "union" or self.query == "union")

    def forward(self, v_p: torch.Tensor, v_u: torch.Tensor | None, bank: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return v_p if self.f_k is None else self.f_k(v_p)
        if self.knowledge == "union":
            assert v_u is not None, "the union knowledge needs union-box features"
            return self.f_k(v_p + self.meta_projection(v_u).to(v_p.dtype))
        source = v_u if self.query == "union" else v_p
        assert source is not None, "the union query needs union-box features"
        query = self.query_projection(source).float()  # (P, D)
        temperature = None
        if hasattr(self, "log_temperature"):
            temperature = self.log_temperature.clamp(max=MAX_LOG_TEMPERATURE).exp()
        alpha = knowledge_attention(query, bank.float(), self.attention, temperature)  # (P, N)
        v_meta = alpha @ bank.float()  # (P, D)
        return self.f_k(v_p + self.meta_projection(v_meta).to(v_p.dtype))
