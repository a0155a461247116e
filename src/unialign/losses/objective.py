"""The contrastive term L_NCE and the full objective of Eq. 16, with switchable weights for ablations."""

from __future__ import annotations

import math
import types
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from unialign.errors import ConfigError, InputError
from unialign.losses.alignment import DIRECTIONS, KLDirection

# Which weight of Eq. 16 scales each named term (read-only). model_distil (alpha_3) scales both halves of
# Eq. 15; lambda already sits inside feat_align_loss.
TERM_WEIGHTS: Mapping[str, str] = types.MappingProxyType(
    {
        "nce_loss": "nce",
        "soft_bind_loss": "soft_bind",
        "anchor_distil_loss": "anchor_distil",
        "feat_align_loss": "model_distil",
        "modal_align_loss": "model_distil",
    }
)
WEIGHT_NAMES: tuple[str, ...] = ("nce", "soft_bind", "anchor_distil", "model_distil")


def nce_loss(
    x: Tensor, anchor: Tensor, logit_scale: float | Tensor, labels: Tensor | None = None, *, normalize: bool = True
) -> dict[str, Tensor]:
    """L_NCE of Eq. 16: CLIP's symmetric InfoNCE between each sample and its paired anchor.

    ``logits = logit_scale * x @ anchor.T`` (B, B); the loss is the mean of the cross-entropies of the
    rows (sample -> anchors) and of the columns (anchor -> samples). Without ``labels`` the target of
    row i is column i: exactly CLIP's loss.

    With ``labels`` (class-label prompts, where several samples of a batch share one label text, so their
    anchors are identical), same-label pairs are not treated as negatives: the target of row i is the
    uniform distribution over the columns j with ``labels[j] == labels[i]`` (soft cross-entropy; the
    target matrix is symmetric, so the column direction uses the same rule). Its minimum is then the
    target entropy ``mean_i log(count of label_i)``, not 0. With all labels distinct it equals CLIP's loss.

    Args:
        x: ``(B, E)`` sample embeddings.
        anchor: ``(B, E)`` paired anchor embeddings (label prompt text, paired image, ...).
        logit_scale: the multiplier (``exp`` of CLIP's learnable log scale, e.g. 100); float or scalar tensor.
        labels: optional ``(B,)`` integer class ids of the anchors.
        normalize: re-normalise ``x`` and ``anchor`` to unit norm first.

    Returns:
        ``{"nce_loss": scalar}``.
    """
    if x.ndim != 2 or anchor.shape != x.shape:
        raise InputError(f"x {tuple(x.shape)} and anchor {tuple(anchor.shape)} must be matching (B, E)")
    if normalize:
        x, anchor = F.normalize(x, dim=-1), F.normalize(anchor, dim=-1)
    logits = logit_scale * x @ anchor.T  # (B, B)
    if labels is None:
        target: Tensor = torch.arange(x.shape[0], device=x.device)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    else:
        if labels.shape != (x.shape[0],):
            raise InputError(f"labels must be ({x.shape[0]},), got {tuple(labels.shape)}")
        same = (labels[:, None] == labels[None, :]).to(logits.dtype)  # (B, B), symmetric
        soft = same / same.sum(dim=1, keepdim=True)
        loss = (F.cross_entropy(logits, soft) + F.cross_entropy(logits.T, soft)) / 2
    return {"nce_loss": loss}


@dataclass(frozen=True)
class LossWeights:
    """Weights and shared options of the objective (Eq. 16); a 0 switches a term off (paper Table 10)."""

    nce: float = 1.0  # weight of L_NCE (Eq. 16 fixes it to 1; 0 only for experiments)
    soft_bind: float = 1.0  # alpha_1: soft modality binding across datasets (Eq. 11)
    anchor_distil: float = 1.0  # alpha_2: distillation from anchor modalities (Eq. 12)
    model_distil: float = 1.0  # alpha_3: distillation from partial-modal foundation models (Eq. 15)
    lam: float = 2000.0  # lambda of Eq. 15, scales the per-element feature MSE (CLIP-KD's value)
    temperature: float = 0.01  # tau of the similarity S in Eq. 10-14 (CLIP: 1 / logit scale 100)
    direction: KLDirection = "target_student"  # KL(target||student) (KD convention) or "student_target"

    def __post_init__(self) -> None:
        for name in WEIGHT_NAMES + ("lam",):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"LossWeights.{name} must be a finite number >= 0, got {value!r}")
        if not (isinstance(self.temperature, (int, float)) and self.temperature > 0):
            raise ConfigError(f"LossWeights.temperature must be > 0, got {self.temperature!r}")
        if self.direction not in DIRECTIONS:
            raise ConfigError(f"LossWeights.direction must be one of {DIRECTIONS}, got {self.direction!r}")

    def weights(self) -> dict[str, float]:
        """The four weights of Eq. 16 by name, as :func:`total_loss` takes them."""
        return {name: float(getattr(self, name)) for name in WEIGHT_NAMES}


def total_loss(terms: Mapping[str, Tensor], weights: Mapping[str, float] | LossWeights | None = None) -> Tensor:
    """Eq. 16: ``L = L_NCE + a1 L_soft_bind + a2 L_anch_distil + a3 (feat_align + modal_align)``.

    Args:
        terms: named scalar losses, keys among ``nce_loss, soft_bind_loss, anchor_distil_loss,
            feat_align_loss, modal_align_loss`` (the dicts the loss functions return, merged).
        weights: ``{"nce", "soft_bind", "anchor_distil", "model_distil"}`` -> weight, or a
            :class:`LossWeights`; a missing weight is 1 (the paper's alpha = 1).

    A term that is absent, or whose weight is 0, is skipped (not multiplied by 0, so a NaN in a switched-off
    term cannot leak in). Unknown term or weight names raise, so a typo never drops a loss silently.

    Returns:
        The scalar total.
    """
    w = weights.weights() if isinstance(weights, LossWeights) else dict(weights or {})
    unknown_w = sorted(set(w) - set(WEIGHT_NAMES))
    if unknown_w:
        raise ConfigError(f"unknown loss weight(s) {unknown_w}; expected some of {list(WEIGHT_NAMES)}")
    unknown_t = sorted(set(terms) - set(TERM_WEIGHTS))
    if unknown_t:
        raise InputError(f"unknown loss term(s) {unknown_t}; expected some of {list(TERM_WEIGHTS)}")
    total: Tensor | None = None
    for name, value in terms.items():
        weight = float(w.get(TERM_WEIGHTS[name], 1.0))
        if weight == 0.0:
            continue
        if value.ndim != 0:
            raise InputError(f"loss term {name!r} must be a scalar, got shape {tuple(value.shape)}")
        part = value if weight == 1.0 else weight * value
        total = part if total is None else total + part
    if total is None:
        raise InputError(f"no loss term left to optimise: terms {sorted(terms)} with weights {w}")
    return total
