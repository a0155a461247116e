"""Zero-shot classifiers from text, and per-file embeddings from multi-view inputs.

Class embeddings follow CLIP / LAION clip_benchmark: for each class, every template is filled with the
class name, each prompt embedding is L2-normalised, the template embeddings are averaged and the mean is
re-normalised. Logits are ``100 * x @ W.T`` for unit-norm inputs x.

Grouped classes (supplement §3.1, NYU-D "others"): an output class may stand for several member names;
its logit is the *maximum* over its members' logits (equivalently the max cosine similarity), which is
what ViT-Lens's ``cond_acc`` remapping computes (peer-systems §2).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from unialign.errors import InputError
from unialign.preprocess.text import class_prompts, templates_for

LOGIT_SCALE = 100.0  # CLIP / clip_benchmark's fixed zero-shot scale


def expand_groups(
    classnames: Sequence[str], groups: Mapping[str, Sequence[str]] | None = None
) -> tuple[list[str], Tensor]:
    """Names to prompt and the output class of each -> (names (P,), owner index (P,) in [0, C)).

    A class listed in `groups` is replaced by its member names; every other class is its own name.
    """
    groups = groups or {}
    unknown = sorted(set(groups) - set(classnames))
    if unknown:
        raise InputError(f"groups name classes that are not in the class list: {unknown}")
    names: list[str] = []
    owner: list[int] = []
    for c, name in enumerate(classnames):
        members = list(groups.get(name, (name,)))
        if not members:
            raise InputError(f"group {name!r} has no member names")
        names += members
        owner += [c] * len(members)
    return names, torch.tensor(owner, dtype=torch.long)


@torch.no_grad()
def text_embeddings(model: torch.nn.Module, texts: Sequence[str], batch_size: int = 256) -> Tensor:
    """Unit-norm text embeddings (T, E) of `texts`, encoded in chunks of `batch_size`."""
    if not texts:
        raise InputError("no texts to embed")
    chunks = [model.encode_text(list(texts[i:i + batch_size])) for i in range(0, len(texts), batch_size)]
    return F.normalize(torch.cat(chunks).float(), dim=-1)


@torch.no_grad()
def class_embeddings(
    model: torch.nn.Module,
    classnames: Sequence[str],
    templates: Sequence[str] | str | None = None,
    batch_size: int = 256,
) -> Tensor:
    """Zero-shot weights (C, E): per class, normalised prompt embeddings averaged over templates, renormalised.

    Args:
        model: anything with ``encode_text(list[str]) -> (B, E)``.
        classnames: C class names (underscores become spaces).
        templates: format strings with one ``{}``/``{c}`` slot, or a template-set name (see
            :func:`unialign.preprocess.text.templates_for`).
    """
    if templates is None or isinstance(templates, str):
        templates = templates_for(templates)
    prompts = class_prompts(classnames, templates)  # C lists of T prompts
    flat = [p for ps in prompts for p in ps]
    emb = text_embeddings(model, flat, batch_size)  # (C*T, E)
    emb = emb.view(len(prompts), len(templates), -1).mean(dim=1)  # (C, E)
    return F.normalize(emb, dim=-1)


class ZeroShotClassifier:
    """Text-derived linear classifier over unit-norm embeddings, with optional max-grouped classes.

    ``weights`` (P, E) holds one row per prompted name; ``owner`` (P,) maps each row to its output class
    in [0, C). ``logits(x)`` (N, C) = max over each class's rows of ``100 * x @ weights.T``.
    """

    def __init__(self, weights: Tensor, owner: Tensor, classnames: Sequence[str]) -> None:
        if weights.ndim != 2 or owner.shape != (weights.shape[0],):
            raise InputError(f"weights (P, E) and owner (P,) disagree: {tuple(weights.shape)} vs {tuple(owner.shape)}")
        self.weights = weights
        self.owner = owner.to(weights.device)
        self.classnames = list(classnames)
        if sorted(set(self.owner.tolist())) != list(range(len(self.classnames))):
            raise InputError("every output class needs at least one weight row")

    @classmethod
    def from_text(
        cls,
        model: torch.nn.Module,
        classnames: Sequence[str],
        templates: Sequence[str] | str | None = None,
        groups: Mapping[str, Sequence[str]] | None = None,
        batch_size: int = 256,
    ) -> "ZeroShotClassifier":
        """Build from class names, templates and optional ``{class: member names}`` groups."""
        names, owner = expand_groups(classnames, groups)
        return cls(class_embeddings(model, names, templates, batch_size), owner, classnames)

    @property
    def num_classes(self) -> int:
        """C, the number of output classes."""
        return len(self.classnames)

    def logits(self, x: Tensor) -> Tensor:
        """Class logits (N, C) of unit-norm embeddings x (N, E); grouped classes take their members' max."""
        raw = LOGIT_SCALE * x.to(self.weights) @ self.weights.T  # (N, P)
        return group_max(raw, self.owner, self.num_classes)


def group_max(logits: Tensor, owner: Tensor, num_classes: int) -> Tensor:
    """Reduce (N, P) member logits to (N, C) class logits by a max over each class's members.

    ``owner[p]`` is the class of column p; with one member per class this is a permutation-free copy.
    """
    owner = owner.to(logits.device)
    if owner.shape != (logits.shape[1],):
        raise InputError(f"owner must be ({logits.shape[1]},), got {tuple(owner.shape)}")
    if bool((owner[1:] >= owner[:-1]).all()) and logits.shape[1] == num_classes:
        return logits[:, owner]
    out = logits.new_full((logits.shape[0], num_classes), float("-inf"))
    index = owner[None, :].expand_as(logits)
    return out.scatter_reduce(1, index, logits, reduce="amax", include_self=True)


def mean_views(emb: Tensor, counts: Sequence[int]) -> Tensor:
    """Per-file embeddings (B, E) from stacked view embeddings (sum(counts), E): mean, then re-normalise."""
    if sum(counts) != emb.shape[0] or any(c < 1 for c in counts):
        raise InputError(f"view counts {list(counts)} do not add up to {emb.shape[0]} embeddings")
    parts = torch.split(emb, list(counts), dim=0)
    return F.normalize(torch.stack([p.mean(dim=0) for p in parts]), dim=-1)


def encode_views(model: torch.nn.Module, modality: str, samples: Sequence[Tensor]) -> Tensor:
    """Encode files given as view stacks (V_i, ...) -> (B, E): views flattened, encoded, averaged per file.

    Files may have different view counts V_i but must agree on the per-view shape. Runs in the caller's
    grad mode: evaluation wraps it in ``torch.no_grad()``, fine-tuning back-propagates through it.
    """
    if not samples:
        raise InputError("no samples to encode")
    shapes = {tuple(s.shape[1:]) for s in samples}
    if len(shapes) > 1:
        raise InputError(f"views of one batch must share a shape, got {sorted(shapes)}")
    device = next(model.parameters()).device
    x = torch.cat(list(samples), dim=0).to(device)  # (sum V_i, ...)
    emb = model.encode(modality, x).float()  # (sum V_i, E)
    return mean_views(emb, [int(s.shape[0]) for s in samples])


__all__ = [
    "LOGIT_SCALE", "ZeroShotClassifier", "class_embeddings", "encode_views", "expand_groups", "group_max",
    "mean_views", "text_embeddings",
]
