"""AdamW over trainable parameters only, with decay groups, and the warm-up + cosine schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from unialign.train.config import OptimConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters split into decayed (matrices, kernels) and not decayed (norms, biases, 1-D
    tensors such as position tables' biases and the logit scale), as supplement Table 1 prescribes."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or name.endswith(".bias") or "norm" in name.lower() or "logit_scale" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW(lr, betas=(0.9, 0.98), eps, weight decay 0.05 on the decayed group)."""
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Multiplier of the peak lr at `step`: linear warm-up to 1 over `warmup` steps, then cosine to
    `min_ratio` at `total`: ``min + (1 - min) * 0.5 * (1 + cos(pi * progress))``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(opt: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR applying :func:`lr_factor`; warm-up is capped at the run length for short runs."""
    warmup = min(cfg.warmup_steps, max(0, total_steps // 10)) if total_steps < cfg.warmup_steps else cfg.warmup_steps
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, warmup, total_steps, cfg.min_lr_ratio)
    )
