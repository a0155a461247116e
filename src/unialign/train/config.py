"""Training configuration: one YAML file with ``model``, ``base``, ``data``, ``optim``, ``loss``, ``train``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from unialign.config import deep_merge, from_dict
from unialign.errors import ConfigError


@dataclass(frozen=True)
class OptimConfig:
    """AdamW and the schedule of supplement Table 1."""

    lr: float = 2e-4  # peak learning rate
    betas: tuple[float, float] = (0.9, 0.98)  # AdamW momentum terms
    eps: float = 1e-6  # AdamW epsilon
    weight_decay: float = 0.05  # not applied to norms, biases, 1-D tensors or the logit scale
    warmup_steps: int = 10_000  # linear warm-up from 0, then cosine decay to min_lr_ratio * lr
    min_lr_ratio: float = 0.0  # floor of the cosine schedule as a fraction of lr
    grad_clip: float = 0.0  # max global gradient norm; 0 = off


@dataclass(frozen=True)
class LossConfig:
    """Weights of Eq. 16 and the options of Eq. 10-15 (0 switches a term off: paper Table 10)."""

    nce: float = 1.0  # L_NCE, CLIP InfoNCE with the paired text prompt / caption (and paired image)
    soft_bind: float = 1.0  # alpha_1, L_soft_bind (Eq. 11)
    anchor_distil: float = 1.0  # alpha_2, L_anch_distil (Eq. 12)
    model_distil: float = 1.0  # alpha_3, L_model_distil (Eq. 15)
    lam: float = 2000.0  # lambda of Eq. 15 (CLIP-KD)
    temperature: float = 0.01  # softmax temperature of S(.,.) in Eq. 10-14 (1/100, CLIP's logit scale)
    direction: str = "target_student"  # KL(target || student); "student_target" = the literal Eq. order
    image_anchor_nce: bool = True  # also contrast extended samples with their paired image (ImageBind-style)


@dataclass(frozen=True)
class RunConfig:
    """The loop."""

    steps: int = 1000  # total optimizer steps (the schedule is defined over these)
    global_batch: int = 2048  # samples per optimizer step, summed over all datasets and ranks
    seed: int = 0
    bf16: bool = False  # bf16 autocast for forward/backward (master weights stay fp32)
    grad_checkpointing: bool = False  # recompute blocks in backward (non-reentrant)
    log_every: int = 10  # steps between metric lines
    save_every: int = 500  # steps between checkpoints (also saved at the end)
    max_bad_steps: int = 10  # consecutive non-finite losses before the run stops
    collective_timeout_s: int = 600  # a rank waiting longer than this in a collective ends the job
    aug_views: int = 0  # restrict augmentation seeds to K cached teacher views per sample (0 = any)
    tensorboard: bool = True  # also log to TensorBoard when it is installed


@dataclass(frozen=True)
class TrainConfig:
    """A whole training experiment."""

    model: Any = "unialign-vitb16"  # model name, YAML path or mapping (see unialign.config)
    base: str = ""  # pretrained CLIP weights ("" = random: tests only)
    data: dict[str, dict[str, Any]] = field(default_factory=dict)  # dataset name -> DatasetConfig mapping
    shards: dict[str, dict[str, Any]] = field(default_factory=dict)  # dataset name -> ShardSourceConfig mapping
    teachers_cache: str = ""  # folder of the teacher-feature cache ("" = no model distillation)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: RunConfig = field(default_factory=RunConfig)
    out: str = "runs/train"  # output folder: checkpoint, metrics.jsonl, config copy


def load_train_config(path: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """A :class:`TrainConfig` from YAML (or a mapping) with nested overrides; errors name the file."""
    if isinstance(path, Mapping):
        data, origin = dict(path), "<mapping>"
    else:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"training config not found: {p}")
        data, origin = yaml.safe_load(p.read_text()) or {}, str(p)
    if overrides:
        data = deep_merge(data, overrides)
    try:
        return from_dict(TrainConfig, data, "")
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None
