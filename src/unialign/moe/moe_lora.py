"""Modality-aware mixture of LoRA experts, parallel to a frozen FFN (paper Eq. 5-9).

For a token ``h = LN(X')`` (width D) of modality ``m`` the layer returns

    MoE_m(h) = sum_i G_m(h)_i * (alpha / r) * B_i A_i h                      (Eq. 8-9)

with ``G_m(h) = softmax(W_m h)`` restricted to the top-k experts (Eq. 4/6). The experts are folded into
the rank dimension, so a whole expert set costs two skinny GEMMs and no Python loop over experts:

    A_m : (D, n*r)   experts stacked along the rank     z = (h @ A_m).view(..., n, r) * gates[..., None]
    B_m : (n*r, D)   zero-initialised                   y = (alpha / r) * z.flatten(-2) @ B_m

* ``routing="grouped"`` (default, hierarchical): modality ``m`` is routed to its own set ``B_M`` of ``n``
  experts (Eq. 5) by its own router; cost is independent of how many modalities are registered.
* ``routing="global"`` (ablation, Eq. 6): modality ``m``'s router scores the experts of all sets.

Top-k keeps the k largest softmax gates and zeroes the rest (Switch-Transformer style: the kept gates
are *not* renormalised unless ``renormalize=True``), so with top-1 the router still receives a gradient.

Initialisation keeps the untrained model equal to the base: ``B = 0`` always. ``A`` is either Kaiming
uniform (``init="random"``, as ``nn.Linear``/peft) or, with ``init="clip"``, the top right-singular vectors
of the frozen FFN's first layer ``c_fc`` (the input directions the pretrained FFN responds to most),
expert i taking singular vectors ``i*r ... (i+1)*r - 1``, scaled to Kaiming's expected column norm.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unialign.config import MoEConfig
from unialign.errors import InputError


class MoELoRA(nn.Module):
    """One block's modality-aware LoRA experts and routers (parameters keyed by modality name)."""

    def __init__(self, width: int, modalities: Sequence[str], cfg: MoEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.width = width
        self.modalities = list(modalities)
        n, r = cfg.experts_per_modality, cfg.rank
        n_route = n if cfg.routing == "grouped" else n * len(self.modalities)
        if cfg.top_k > n_route:
            raise ValueError(f"top_k={cfg.top_k} exceeds the {n_route} experts a router can choose from")
        self.scaling = cfg.alpha / r
        self.lora_A = nn.ParameterDict({m: nn.Parameter(torch.empty(width, n * r)) for m in self.modalities})
        self.lora_B = nn.ParameterDict({m: nn.Parameter(torch.zeros(n * r, width)) for m in self.modalities})
        self.router = nn.ParameterDict({m: nn.Parameter(torch.empty(width, n_route)) for m in self.modalities})
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-uniform A and routers (bound 1/sqrt(D), as ``nn.Linear``), zero B."""
        bound = 1.0 / math.sqrt(self.width)
        for m in self.modalities:
            nn.init.uniform_(self.lora_A[m], -bound, bound)
            nn.init.uniform_(self.router[m], -bound, bound)
            nn.init.zeros_(self.lora_B[m])

    @torch.no_grad()
    def init_from_ffn(self, c_fc_weight: Tensor) -> None:
        """``init="clip"``: A from the top right-singular vectors of the frozen ``c_fc`` weight (H, D)."""
        n, r = self.cfg.experts_per_modality, self.cfg.rank
        if n * r > min(c_fc_weight.shape):
            raise ValueError(f"CLIP init needs n*r={n * r} <= {min(c_fc_weight.shape)} singular vectors")
        _, _, vh = torch.linalg.svd(c_fc_weight.float(), full_matrices=False)  # vh: (min(H, D), D)
        # Kaiming uniform on [-1/sqrt(D), 1/sqrt(D)] has expected column norm sqrt(D / (3 D)) = 1/sqrt(3).
        a = vh[: n * r].t() / math.sqrt(3.0)  # (D, n*r), columns orthonormal before scaling
        for m in self.modalities:
            self.lora_A[m].copy_(a.to(self.lora_A[m].dtype))
            self.lora_B[m].zero_()

    def _expert_set(self, modality: str) -> tuple[Tensor, Tensor]:
        if self.cfg.routing == "grouped":
            return self.lora_A[modality], self.lora_B[modality]
        a = torch.cat([self.lora_A[m] for m in self.modalities], dim=1)  # (D, M*n*r)
        b = torch.cat([self.lora_B[m] for m in self.modalities], dim=0)  # (M*n*r, D)
        return a, b

    def gates(self, h: Tensor, modality: str) -> Tensor:
        """Router weights G_m(h) (..., E): softmax over the modality's experts, top-k kept (Eq. 4/6)."""
        logits = h @ self.router[modality].to(h.dtype)  # (..., E)
        gates = logits.float().softmax(dim=-1)
        e = gates.shape[-1]
        if self.cfg.top_k < e:
            top = gates.topk(self.cfg.top_k, dim=-1).indices
            gates = gates * torch.zeros_like(gates).scatter_(-1, top, 1.0)
        if self.cfg.renormalize:
            gates = gates / gates.sum(dim=-1, keepdim=True).clamp_min(1e-9)
        return gates.to(h.dtype)

    def forward(self, h: Tensor, modality: str) -> Tensor:
        """MoE_m(h) for tokens h (B, L, D) of one modality -> (B, L, D) (Eq. 8-9)."""
        if modality not in self.lora_A:
            raise InputError(f"no expert set for modality {modality!r}; this model has {self.modalities}")
        a, b = self._expert_set(modality)
        g = self.gates(h, modality)  # (B, L, E)
        z = (h @ a.to(h.dtype)).unflatten(-1, (g.shape[-1], self.cfg.rank))  # (B, L, E, r)
        z = (z * g.unsqueeze(-1)).flatten(-2)  # (B, L, E*r): gate each expert's rank-r code
        return self.scaling * (z @ b.to(h.dtype))  # (B, L, D)

    def forward_loop(self, h: Tensor, modality: str) -> Tensor:
        """Reference form of :meth:`forward` with an explicit loop over experts (tests and docs only)."""
        a, b = self._expert_set(modality)
        g = self.gates(h, modality)
        r = self.cfg.rank
        out = torch.zeros_like(h)
        for i in range(g.shape[-1]):
            a_i, b_i = a[:, i * r : (i + 1) * r], b[i * r : (i + 1) * r]
            out = out + g[..., i : i + 1] * self.scaling * F.linear(F.linear(h, a_i.t()), b_i.t())
        return out
