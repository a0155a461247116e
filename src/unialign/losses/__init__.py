"""Training objectives of UniAlign, one function per equation (paper §3.2, Eq. 10-16).

Each loss returns a dict of named scalar tensors (keys end in ``_loss``); :func:`total_loss` weights and
sums them as Eq. 16, and :class:`LossWeights` switches terms off for ablations (paper Table 10).
"""

from unialign.losses.alignment import (
    KLDirection,
    anchor_distil_loss,
    kl_div,
    model_distil_loss,
    similarity,
    soft_bind_all,
    soft_bind_loss,
    soft_bind_term,
)
from unialign.losses.objective import TERM_WEIGHTS, LossWeights, nce_loss, total_loss

__all__ = [
    "KLDirection",
    "LossWeights",
    "TERM_WEIGHTS",
    "anchor_distil_loss",
    "kl_div",
    "model_distil_loss",
    "nce_loss",
    "similarity",
    "soft_bind_all",
    "soft_bind_loss",
    "soft_bind_term",
    "total_loss",
]
