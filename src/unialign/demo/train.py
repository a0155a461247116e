"""One UniAlign training run of the demo, and its zero-shot evaluation: shared by the main run and the
ablations (:mod:`unialign.demo.ablations`), so every row of every table trains exactly like the demo.

    TrainSetup (world, model config, frozen base, teacher cache, batch, temperature, lr)
    train_and_evaluate(setup, out, steps, loss=..., moe=..., datasets=...)
        -> Trainer(...).run() on the chosen datasets -> load the saved checkpoint -> zero-shot on every
           eval split (embeddings, logits, confusion) -> RunResult
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: the four objectives of Eq. 16 at weight 1 (paper default)
ALL_OBJECTIVES = {"nce": 1.0, "soft_bind": 1.0, "anchor_distil": 1.0, "model_distil": 1.0}


@dataclass
class TrainSetup:
    """What every demo training run shares.

    Attributes:
        world: the :class:`~unialign.demo.world.World`.
        model_cfg: the model config as a dict (``unialign-demo`` with the demo's text tower and depth stats).
        base: the frozen base weights (``base.safetensors``).
        cache_dir: the teacher-feature cache.
        seed, global_batch, aug_views: trainer settings.
        temperature: tau of Eq. 10-14; the demo uses 1 / the base's logit scale (CLIP practice: 0.01 = 1/100).
        lr: peak learning rate.
    """

    world: Any
    model_cfg: dict[str, Any]
    base: str
    cache_dir: Path
    seed: int
    global_batch: int
    aug_views: int
    temperature: float
    lr: float = 2e-3


@dataclass
class RunResult:
    """A finished run: trainer summary, the saved model and per-eval-set results (see :func:`evaluate_all`)."""

    trained: dict[str, Any]
    model: Any
    evals: dict[str, dict[str, Any]]
    trainable: int
    seconds: float
    out: Path
    top1: dict[str, float] = field(default_factory=dict)  # modality -> zero-shot top-1


def evaluate_all(model: Any, world: Any) -> dict[str, dict[str, Any]]:
    """Per eval set: embeddings, logits, targets and zero-shot metrics (the library's evaluate() path)."""
    from unialign.eval.run import classification_metrics, embed_items, resolve_modality
    from unialign.eval.zeroshot import ZeroShotClassifier

    out: dict[str, dict[str, Any]] = {}
    model.eval()
    for name, bench in world.eval_sets().items():
        modality = resolve_modality(model.config, bench.modality_type, world.datasets[name].modality)
        emb, kept, skipped = embed_items(model, modality, bench, progress=False)
        items = [bench.items[i] for i in kept]
        with torch.no_grad():
            clf = ZeroShotClassifier.from_text(model, bench.classnames, bench.templates or None)
            logits = clf.logits(emb).cpu()
        targets = torch.tensor([it.label for it in items])
        metrics = classification_metrics(logits, targets)
        c = len(bench.classnames)
        confusion = np.zeros((c, c), dtype=np.int64)
        np.add.at(confusion, (targets.numpy(), logits.argmax(1).numpy()), 1)
        out[name] = {"modality": modality, "emb": emb, "logits": logits, "targets": targets, "items": items,
                     "classnames": list(bench.classnames), "templates": list(bench.templates),
                     "metrics": metrics, "confusion": confusion, "skipped": skipped}
    return out


def train_config(setup: TrainSetup, out: Path, steps: int, *, loss: dict[str, float] | None = None,
                 moe: dict[str, Any] | None = None, datasets: list[str] | None = None) -> Any:
    """The :class:`~unialign.train.config.TrainConfig` of one run.

    Args:
        loss: Eq. 16 weights (default :data:`ALL_OBJECTIVES`); other LossConfig fields may be included.
        moe: overrides of the model's ``moe`` section (Tables 8-9).
        datasets: train on these world datasets only (Table 11); default all.
    """
    from unialign.train.config import load_train_config

    data = setup.world.data_config("train")
    if datasets is not None:
        unknown = sorted(set(datasets) - set(data))
        if unknown:
            raise ValueError(f"unknown demo datasets {unknown}; the world has {sorted(data)}")
        data = {k: v for k, v in data.items() if k in datasets}
    model = dict(setup.model_cfg)
    if moe:
        model["moe"] = {**model.get("moe", {}), **moe}
    return load_train_config({
        "model": model, "base": str(setup.base), "data": data, "teachers_cache": str(setup.cache_dir),
        "optim": {"lr": setup.lr, "warmup_steps": max(1, steps // 10), "min_lr_ratio": 0.05, "grad_clip": 1.0},
        "loss": {**ALL_OBJECTIVES, "temperature": setup.temperature, **(loss or {})},
        "train": {"steps": steps, "global_batch": setup.global_batch, "seed": setup.seed,
                  "aug_views": setup.aug_views, "log_every": max(1, steps // 50), "save_every": steps,
                  "tensorboard": False},
        "out": str(out),
    })


def train_and_evaluate(setup: TrainSetup, out: Path, steps: int, *, loss: dict[str, float] | None = None,
                       moe: dict[str, Any] | None = None, datasets: list[str] | None = None,
                       progress: bool = False) -> RunResult:
    """Train one UniAlign run from scratch in `out` (``metrics.jsonl``, ``checkpoint/``) and evaluate it."""
    import unialign
    from unialign.train.loop import Trainer

    t0 = time.perf_counter()
    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)  # a fresh run: metrics.jsonl would otherwise append
    trainer = Trainer(train_config(setup, out, steps, loss=loss, moe=moe, datasets=datasets))
    trained = trainer.run(progress=progress)
    trainable = sum(p.numel() for p in trainer.model.trainable_parameters())
    del trainer
    model = unialign.load(out / "checkpoint").eval()  # the checkpoint as saved, not the live trainer
    evals = evaluate_all(model, setup.world)
    top1 = {ev["modality"]: float(ev["metrics"]["acc1"]) for ev in evals.values()}
    return RunResult(trained, model, evals, trainable, time.perf_counter() - t0, out, top1)


__all__ = ["ALL_OBJECTIVES", "RunResult", "TrainSetup", "evaluate_all", "train_and_evaluate", "train_config"]
