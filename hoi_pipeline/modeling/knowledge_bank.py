"""The knowledge bank W_T (paper Sec. 3.2, "HOI Knowledge Bank Generation"): one D-dim text embedding per HOI class.

W_T is initialised from the CLIP text embeddings of the prompts "a person {verb-ing} a/an {object}"
(made once by the embed-prompts stage, a pipeline artifact). The global branch (HOI recognition)
uses it as trainable classifier weights; the local branch (knowledge transfer) reads a detached
copy, so the pairwise losses never move the bank ("We detach the parameters of the knowledge bank on
the local branch", Sec. 4.2). Table 2 ablations: a frozen bank
(`bank_trainable: false`) and a random bank (`random_bank`, seeded) instead of CLIP text.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def random_bank(num_classes: int, dim: int, seed: int) -> torch.Tensor:
    """(N, D) random unit vectors, a function of `seed` only (Table 2: random bank)."""
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(num_classes, dim, generator=generator), dim=-1)


class KnowledgeBank(nn.Module):
    """W_T (N, D); `for_global()` is trainable when configured, `for_local()` is always detached."""

    def __init__(self, embeddings: torch.Tensor, *, trainable: bool) -> None:
        super().__init__()
        if embeddings.ndim != 2 or embeddings.shape[0] == 0:
            raise ValueError(f"knowledge bank embeddings must be (N, D) with N > 0, got {tuple(embeddings.shape)}")
        self.weight = nn.Parameter(embeddings.detach().float().clone(), requires_grad=trainable)

    @property
    def num_classes(self) -> int:
        return self.weight.shape[0]

    @property
    def dim(self) -> int:
        return self.weight.shape[1]

    def for_global(self) -> torch.Tensor:
        """(N, D) W_T for the HOI recognition network (gradient flows when trainable)."""
        return self.weight

    def for_local(self) -> torch.Tensor:
        """(N, D) W_T for the knowledge transfer network, detached (paper Sec. 4.2)."""
        return self.weight.detach()
