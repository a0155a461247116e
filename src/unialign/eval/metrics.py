"""Evaluation metrics on tensors or arrays: top-k accuracy, mean per-class recall, mAP, retrieval Recall@K.

Conventions follow LAION clip_benchmark (ecosystem §A.9) and ViT-Lens (peer-systems §2):

- ``acc1`` / ``acc5``: top-k accuracy, a sample counts when its target is among the k highest logits.
- ``mean_per_class_recall``: sklearn's ``balanced_accuracy_score``: the recall of every class that has at
  least one sample, averaged.
- ``mAP``: mean over classes with >= 1 positive of average precision, with sklearn's definition
  ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds (ties form one threshold).
- Recall@K (CLIP paper style): a query is a hit when *any* of its positives is among its top-K results.

Every function accepts torch tensors, numpy arrays or nested lists and returns plain Python floats.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from unialign.errors import InputError


def as_tensor(x: Any, dtype: torch.dtype | None = None) -> Tensor:
    """`x` (tensor, array or list) as a CPU tensor, optionally cast to `dtype`."""
    t = x.detach().cpu() if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    return t.to(dtype) if dtype is not None else t


def _check_logits_targets(logits: Tensor, targets: Tensor) -> None:
    if logits.ndim != 2:
        raise InputError(f"logits must be (N, C), got shape {tuple(logits.shape)}")
    if targets.ndim != 1 or targets.shape[0] != logits.shape[0]:
        raise InputError(f"targets must be (N,) with N={logits.shape[0]}, got shape {tuple(targets.shape)}")
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= logits.shape[1]):
        lo, hi = int(targets.min()), int(targets.max())
        raise InputError(f"targets must lie in [0, {logits.shape[1]}), got [{lo}, {hi}]")


def topk_accuracy(logits: Any, targets: Any, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Top-k accuracy for each k in `ks` -> {k: fraction in [0, 1]}.

    Args:
        logits: scores (N, C); higher means more likely.
        targets: class indices (N,).
        ks: the k values; a k larger than C is clamped to C (then every sample is a hit).
    """
    logits, targets = as_tensor(logits, torch.float64), as_tensor(targets, torch.long)
    _check_logits_targets(logits, targets)
    if logits.shape[0] == 0:
        raise InputError("top-k accuracy of zero samples is undefined")
    out = {}
    for k in ks:
        kk = max(1, min(int(k), logits.shape[1]))
        top = logits.topk(kk, dim=1).indices  # (N, kk)
        out[int(k)] = float((top == targets[:, None]).any(dim=1).double().mean())
    return out


def mean_per_class_recall(logits_or_preds: Any, targets: Any) -> float:
    """Recall averaged over the classes present in `targets` (sklearn ``balanced_accuracy_score``).

    Args:
        logits_or_preds: scores (N, C) (argmax is taken) or predicted class indices (N,).
        targets: class indices (N,).
    """
    x, targets = as_tensor(logits_or_preds), as_tensor(targets, torch.long)
    if x.ndim == 2:
        _check_logits_targets(x, targets)
        preds = x.argmax(dim=1)
    else:
        preds = x.long()
    if preds.shape != targets.shape or targets.numel() == 0:
        raise InputError(f"predictions {tuple(preds.shape)} and targets {tuple(targets.shape)} must be (N,), N > 0")
    recalls = [float((preds[targets == c] == c).double().mean()) for c in torch.unique(targets).tolist()]
    return float(np.mean(recalls))


def average_precision(scores: Any, positives: Any) -> float:
    """Average precision of one ranking: scores (N,), positives (N,) bool/0-1 -> AP (sklearn definition).

    Sorted by decreasing score; at each distinct score threshold t, P(t) = TP/(TP+FP) and R(t) = TP/#pos;
    AP = sum_t (R(t) - R(t_prev)) P(t). NaN when there is no positive.
    """
    s, y = as_tensor(scores, torch.float64).flatten(), as_tensor(positives).flatten().bool()
    if s.shape != y.shape:
        raise InputError(f"scores {tuple(s.shape)} and positives {tuple(y.shape)} differ in shape")
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = torch.argsort(s, descending=True, stable=True)
    s, y = s[order], y[order].double()
    tps = torch.cumsum(y, 0)  # (N,)
    # the last index of every run of equal scores is a threshold
    last = torch.ones_like(s, dtype=torch.bool)
    last[:-1] = s[1:] != s[:-1]
    idx = torch.nonzero(last).flatten()
    tp = tps[idx]
    precision = tp / (idx + 1).double()
    recall = tp / n_pos
    prev = torch.cat([recall.new_zeros(1), recall[:-1]])
    return float(((recall - prev) * precision).sum())


def mean_average_precision(scores: Any, targets: Any) -> tuple[float, list[float]]:
    """Multi-label mAP -> (mean over classes with >= 1 positive, per-class AP list with NaN for the rest).

    Args:
        scores: (N, C) scores (logits or probabilities: AP only depends on the ranking).
        targets: (N, C) multi-hot 0/1 (or bool) labels.
    """
    scores, targets = as_tensor(scores, torch.float64), as_tensor(targets)
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise InputError(
            f"scores and targets must both be (N, C), got {tuple(scores.shape)} and {tuple(targets.shape)}"
        )
    aps = [average_precision(scores[:, c], targets[:, c]) for c in range(scores.shape[1])]
    valid = [a for a in aps if not np.isnan(a)]
    if not valid:
        raise InputError("mAP is undefined: no class has a positive sample")
    return float(np.mean(valid)), aps


def recall_at_k(similarity: Any, positives: Any, ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Recall@K of queries (rows) over a gallery (columns) -> {K: fraction of queries with a hit}.

    Args:
        similarity: (Q, G) query-to-gallery scores.
        positives: (Q, G) bool; a query is a hit at K when any of its positives is among its top-K.
            Queries without any positive fail (count as misses) so they cannot inflate the score.
        ks: the K values; a K larger than G is clamped to G.
    """
    sim, pos = as_tensor(similarity, torch.float64), as_tensor(positives).bool()
    if sim.ndim != 2 or sim.shape != pos.shape:
        raise InputError(f"similarity and positives must both be (Q, G), got {tuple(sim.shape)} and {tuple(pos.shape)}")
    if sim.shape[0] == 0 or sim.shape[1] == 0:
        raise InputError("recall@K needs at least one query and one gallery item")
    out = {}
    for k in ks:
        kk = max(1, min(int(k), sim.shape[1]))
        top = sim.topk(kk, dim=1).indices  # (Q, kk)
        out[int(k)] = float(pos.gather(1, top).any(dim=1).double().mean())
    return out


def retrieval_metrics(
    similarity: Any, positives: Any, ks: Sequence[int] = (1, 5, 10), query: str = "text", gallery: str = "image"
) -> dict[str, float]:
    """Recall@K in both directions, named as clip_benchmark does.

    Args:
        similarity: (Q, G) scores of `query` items (rows, e.g. captions) against `gallery` items (columns).
        positives: (Q, G) bool pairs.
        query, gallery: modality names used in the keys: ``{gallery}_retrieval_recall@K`` (query -> gallery,
            e.g. text -> image) and ``{query}_retrieval_recall@K`` (gallery -> query).
    """
    sim, pos = as_tensor(similarity, torch.float64), as_tensor(positives).bool()
    fwd = recall_at_k(sim, pos, ks)
    bwd = recall_at_k(sim.T, pos.T, ks)
    out = {f"{gallery}_retrieval_recall@{k}": v for k, v in fwd.items()}
    out.update({f"{query}_retrieval_recall@{k}": v for k, v in bwd.items()})
    return out


__all__ = [
    "as_tensor", "average_precision", "mean_average_precision", "mean_per_class_recall", "recall_at_k",
    "retrieval_metrics", "topk_accuracy",
]
