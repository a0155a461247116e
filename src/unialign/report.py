"""Parameter accounting: total, frozen and trainable counts, trainable broken down by component."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

from unialign.config import ModelConfig, to_dict
from unialign.model import UniAlign


def build_for_counting(cfg: ModelConfig) -> UniAlign:
    """Build a model on the meta device: shapes only, no memory, no weights (fast for ViT-L too)."""
    with torch.device("meta"):
        return UniAlign(cfg)


def parameter_report(model: UniAlign) -> dict[str, Any]:
    """Counts of a model's parameters.

    Returns a mapping with ``total``, ``frozen``, ``trainable`` and ``breakdown``: trainable counts of
    ``experts`` and ``routers`` per modality (summed over blocks), ``tokenizers`` per modality and
    ``projectors`` per teacher; plus ``trainable_at_inference`` (everything but the projectors, which
    only serve distillation during training).
    """
    breakdown: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    total = frozen = 0
    for name, p in model.named_parameters():
        total += p.numel()
        if not p.requires_grad:
            frozen += p.numel()
            continue
        parts = name.split(".")
        if parts[0] == "moe":
            group = "routers" if parts[2] == "router" else "experts"
            breakdown[group][parts[3]] += p.numel()
        elif parts[0] in ("tokenizers", "projectors"):
            breakdown[parts[0]][parts[1]] += p.numel()
        else:
            breakdown["other"][name] += p.numel()
    trainable = total - frozen
    projectors = sum(breakdown.get("projectors", {}).values())
    return {
        "model": model.config.name,
        "clip": model.config.clip.name,
        "moe": to_dict(model.config.moe),
        "modalities": model.modalities,
        "total": total,
        "frozen": frozen,
        "trainable": trainable,
        "trainable_at_inference": trainable - projectors,
        "breakdown": {k: dict(v) for k, v in breakdown.items()},
    }


def format_report(report: dict[str, Any]) -> str:
    """Human-readable table of :func:`parameter_report`."""

    def m(n: int) -> str:
        return f"{n:>12,d}  ({n / 1e6:6.2f}M)"

    lines = [
        f"model {report['model']} on CLIP {report['clip']}; modalities: {', '.join(report['modalities'])}",
        f"MoE-LoRA: {report['moe']}",
        f"total parameters        {m(report['total'])}",
        f"frozen (CLIP + derived) {m(report['frozen'])}",
        f"trainable               {m(report['trainable'])}",
        f"  without projectors    {m(report['trainable_at_inference'])}  (what inference keeps)",
    ]
    for group in ("experts", "routers", "tokenizers", "projectors", "other"):
        items = report["breakdown"].get(group)
        if not items:
            continue
        lines.append(f"  {group:<22}{m(sum(items.values()))}")
        lines += [f"    {k:<20}{m(v)}" for k, v in items.items()]
    return "\n".join(lines)
