"""Supervised fine-tuning of one modality on a labelled manifest (paper Table 5, Speech Commands V2; Table 7, UCF101).

A classification head ``nn.Linear(E, C)`` is initialised from the zero-shot classifier: its weight is the
unit-norm class text embeddings (C, E) (templates averaged, as in :func:`unialign.eval.zeroshot.class_embeddings`)
times the model's logit scale, its bias zero, so before any step it reproduces the zero-shot predictions.

Modes:

* ``"adapters"`` (default): tunes this modality's expert set (``lora_A``/``lora_B``/``router`` of every
  block, keyed by the modality name), the parameters of its tokenizer that were trainable on entry
  (e.g. the video tokenizer's frozen, CLIP-derived kernel stays frozen) and the head. Every other weight is
  frozen for the duration (``requires_grad`` restored afterwards), so other modalities are untouched.
  Our reading of Table 5's "1.8M" tuned parameters: for the paper config's audio modality this is
  experts 147,456 + routers 18,432 + audio tokenizer 1,671,936 = 1,837,824 (≈ 1.84M), plus the head
  (35 x 513 for Speech Commands V2's 35 classes); the frozen CLIP is not counted.
* ``"linear"``: a linear probe. Embeddings of the frozen model are computed once, without augmentation
  (eval views averaged), and only the head is trained on them.

Training: cross-entropy, AdamW (weight decay on matrices only), per-step cosine schedule to zero,
augmented training loads (``train=True``, one seed per sample and epoch), eval loads without augmentation
with multi-view inputs (several clips/files) averaged in embedding space. Everything is seeded.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unialign.data.manifest import DatasetConfig, ManifestDataset, load_input, read_classnames
from unialign.errors import InputError
from unialign.eval.metrics import topk_accuracy
from unialign.eval.zeroshot import class_embeddings, encode_views
from unialign.model import UniAlign

MODES = ("adapters", "linear")


@dataclass
class FinetuneResult:
    """Outcome of :func:`finetune`.

    ``history``: one dict per epoch; epoch 0 is the zero-shot head before any step (train metrics None),
    each later one has ``train_loss``/``train_acc1`` (running mean over the epoch's augmented batches) and,
    with a validation set, ``val_acc1``/``val_acc5``.
    """

    head: nn.Linear  # (E -> C) classifier over unit-norm embeddings
    modality: str
    mode: str
    classnames: list[str]
    history: list[dict[str, Any]] = field(default_factory=list)
    num_trainable: int = 0  # tuned parameters, head included
    trainable_names: list[str] = field(default_factory=list)  # model parameter names, then "head.weight"/"head.bias"


def tuned_parameter_names(model: UniAlign, modality: str) -> list[str]:
    """Names of the model parameters ``mode="adapters"`` tunes for `modality` (experts, routers, tokenizer)."""
    if modality not in model.modalities:
        raise InputError(f"unknown modality {modality!r}; this model encodes {model.modalities}")
    names = [f"moe.{i}.{kind}.{modality}" for i in range(len(model.moe)) for kind in ("lora_A", "lora_B", "router")]
    names += [f"tokenizers.{modality}.{n}" for n, p in model.tokenizers[modality].named_parameters() if p.requires_grad]
    return names


def init_head(model: UniAlign, classnames: list[str], templates: list[str] | str | None) -> nn.Linear:
    """Zero-shot head: weight = logit_scale * class text embeddings (C, E), bias 0 (C,)."""
    w = class_embeddings(model, classnames, templates).float()  # (C, E), unit rows
    head = nn.Linear(w.shape[1], w.shape[0]).to(w.device)
    with torch.no_grad():
        head.weight.copy_(w * model.logit_scale.float().to(w.device))
        head.bias.zero_()
    return head


def _labels(ds: ManifestDataset) -> Tensor:
    """Class indices (N,) of `ds`; every sample must be labelled."""
    labels = torch.tensor(ds.labels, dtype=torch.long)
    if (labels < 0).any():
        raise InputError(f"dataset {ds.name!r}: fine-tuning needs a label on every record")
    return labels


def _views(ds: ManifestDataset, index: int, seed: int, train: bool) -> Tensor:
    """Sample `index` as a view stack (V, ...): one augmented view at training, all files/clips at eval."""
    return load_input(ds.modality, ds.records[index].paths, train, ds.model_config, seed)


@torch.no_grad()
def embed_dataset(model: UniAlign, ds: ManifestDataset, batch_size: int) -> Tensor:
    """Eval-mode (no augmentation) embeddings (N, E) of every sample of `ds`."""
    out = [encode_views(model, ds.modality, [_views(ds, i, 0, False) for i in range(s, min(s + batch_size, len(ds)))])
           for s in range(0, len(ds), batch_size)]
    return torch.cat(out)


def _batches(n: int, batch_size: int, gen: torch.Generator) -> list[Tensor]:
    """Shuffled index batches over range(n); a 1-sample tail joins the previous batch (BatchNorm-safe)."""
    chunks = list(torch.randperm(n, generator=gen).split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks[-2:] = [torch.cat(chunks[-2:])]
    return chunks


def _optimizer(params: list[nn.Parameter], lr: float, weight_decay: float, total: int) -> tuple[Any, Any]:
    """AdamW (decay on matrices only) and a per-step cosine schedule lr -> 0 over `total` steps."""
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / max(total, 1))))
    return opt, sched


def finetune(
    model: UniAlign,
    modality: str,
    train_ds: ManifestDataset,
    val_ds: ManifestDataset | None = None,
    *,
    mode: str = "adapters",
    epochs: int = 10,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    templates: list[str] | str | None = None,
    progress: bool = True,
) -> FinetuneResult:
    """Fine-tune `model` in place (adapters mode) on `train_ds`'s labels; see the module docstring.

    Classes and prompt templates come from `train_ds` (``templates`` overrides). Returns the head, the
    per-epoch history and the tuned parameter count/names. ``epochs=0`` only builds the zero-shot head.
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}")
    if train_ds.modality != modality or (val_ds is not None and val_ds.modality != modality):
        raise InputError(f"datasets must be of modality {modality!r}")
    if val_ds is not None and val_ds.classnames != train_ds.classnames:
        raise InputError("train and validation datasets must share their class names")
    y_train = _labels(train_ds)
    y_val = _labels(val_ds) if val_ds is not None else None
    names = tuned_parameter_names(model, modality) if mode == "adapters" else []
    gen = torch.Generator().manual_seed(seed)
    saved_grad = {n: p.requires_grad for n, p in model.named_parameters()}
    saved_training = {n: m.training for n, m in model.named_modules()}
    try:
        model.requires_grad_(False)
        model.eval()
        head = init_head(model, train_ds.classnames, templates if templates is not None else train_ds.templates)
        device = head.weight.device
        params = dict(model.named_parameters())
        for n in names:
            params[n].requires_grad_(True)
        tuned = [params[n] for n in names] + list(head.parameters())
        num = sum(p.numel() for p in tuned)
        feats = embed_dataset(model, train_ds, batch_size) if mode == "linear" and epochs > 0 else None

        def evaluate() -> dict[str, float]:
            if val_ds is None:
                return {}
            model.eval()
            with torch.no_grad():
                logits = head(embed_dataset(model, val_ds, batch_size))
            acc = topk_accuracy(logits, y_val, (1, 5))
            return {"val_acc1": acc[1], "val_acc5": acc[5]}

        history: list[dict[str, Any]] = [{"epoch": 0, "train_loss": None, "train_acc1": None, **evaluate()}]
        steps = epochs * len(_batches(len(train_ds), batch_size, torch.Generator()))
        opt, sched = _optimizer(tuned, lr, weight_decay, steps)
        for epoch in range(1, epochs + 1):
            if mode == "adapters":
                model.tokenizers[modality].train()
            loss_sum, correct = 0.0, 0
            for idx in _batches(len(train_ds), batch_size, gen):
                y = y_train[idx].to(device)
                if feats is not None:
                    emb = feats[idx.to(feats.device)]
                else:
                    aug = seed * 1_000_003 + epoch * len(train_ds)
                    emb = encode_views(model, modality, [_views(train_ds, int(i), aug + int(i), True) for i in idx])
                logits = head(emb)  # (B, C)
                loss = F.cross_entropy(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                loss_sum += float(loss.detach()) * len(idx)
                correct += int((logits.argmax(dim=1) == y).sum())
            row = {"epoch": epoch, "train_loss": loss_sum / len(train_ds), "train_acc1": correct / len(train_ds),
                   "lr": sched.get_last_lr()[0], **evaluate()}
            history.append(row)
            if progress:
                print(f"finetune {modality} [{mode}] " + " ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), file=sys.stderr)
    finally:
        for n, p in model.named_parameters():
            p.requires_grad_(saved_grad[n])
        for n, m in model.named_modules():
            m.train(saved_training[n])
    head.requires_grad_(False)
    return FinetuneResult(head=head, modality=modality, mode=mode, classnames=list(train_ds.classnames),
                          history=history, num_trainable=num, trainable_names=names + ["head.weight", "head.bias"])


def parse_classnames(value: str) -> list[str]:
    """Class names from a text file (one per line) or a comma-separated list."""
    if Path(value).is_file():
        return read_classnames(value)
    names = [c.strip() for c in value.split(",") if c.strip()]
    if not names:
        raise InputError(f"no class names in {value!r}")
    return names


def cmd_finetune(
    checkpoint: str, modality: str, train_manifest: str, classnames: str | list[str], val_manifest: str | None = None,
    *, out: str, mode: str = "adapters", epochs: int = 10, batch_size: int = 32, lr: float = 1e-3,
    weight_decay: float = 0.05, seed: int = 0, templates: str = "", base: str | None = None,
    device: str | None = None, progress: bool = True,
) -> int:
    """Fine-tune a checkpoint; write the tuned model to `out` plus ``head.safetensors`` and ``finetune.json``."""
    from safetensors.torch import save_file

    import unialign
    from unialign.checkpoint import save_checkpoint

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = unialign.load(checkpoint, base=base, device=device)
    names = parse_classnames(classnames) if isinstance(classnames, str) else list(classnames)

    def dataset(manifest: str, train: bool) -> ManifestDataset:
        cfg = DatasetConfig(manifest=manifest, modality=modality, classnames=names, templates=templates)
        return ManifestDataset("train" if train else "val", cfg, model.config, train)

    result = finetune(model, modality, dataset(train_manifest, True),
                      dataset(val_manifest, False) if val_manifest else None, mode=mode, epochs=epochs,
                      batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed, progress=progress)
    summary = {"checkpoint": str(checkpoint), "modality": modality, "mode": mode, "classnames": result.classnames,
               "epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "seed": seed,
               "num_trainable": result.num_trainable, "trainable_names": result.trainable_names,
               "history": result.history}
    folder = save_checkpoint(model, out, meta={"finetune": {k: summary[k] for k in ("modality", "mode", "epochs")}})
    save_file({"weight": result.head.weight.detach().cpu().contiguous(),
               "bias": result.head.bias.detach().cpu().contiguous()}, str(folder / "head.safetensors"))
    (folder / "finetune.json").write_text(json.dumps(summary, indent=2))
    final = result.history[-1]
    print(json.dumps({"out": str(folder), "num_trainable": result.num_trainable,
                      **{k: v for k, v in final.items() if k != "epoch"}}))
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``finetune`` to an argparse sub-parser set; ``args.func(args)`` runs it."""
    p = subparsers.add_parser("finetune", help="supervised fine-tuning of one modality (adapters or linear probe)",
                              description="Fine-tune one modality's experts + tokenizer + a zero-shot-initialised "
                                          "head (or a linear probe) on a labelled JSONL manifest.")
    p.add_argument("checkpoint", help="checkpoint directory")
    p.add_argument("--modality", required=True, help="the model's modality name, e.g. audio")
    p.add_argument("--train", required=True, help="training JSONL manifest")
    p.add_argument("--classnames", required=True, help="class-name file (one per line) or comma-separated list")
    p.add_argument("--val", default=None, help="validation JSONL manifest")
    p.add_argument("--out", required=True, help="output checkpoint directory")
    p.add_argument("--mode", choices=MODES, default="adapters")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--templates", default="", help="template-set name (default: the modality's)")
    p.add_argument("--base", default=None, help="frozen CLIP weights, if not where the checkpoint says")
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true", help="no per-epoch log lines")
    p.set_defaults(func=run_from_args)
    return p


def run_from_args(args: argparse.Namespace) -> int:
    """Run :func:`cmd_finetune` from parsed ``finetune`` arguments."""
    return cmd_finetune(args.checkpoint, args.modality, args.train, args.classnames, args.val, out=args.out,
                        mode=args.mode, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        weight_decay=args.weight_decay, seed=args.seed, templates=args.templates, base=args.base,
                        device=args.device, progress=not args.no_progress)


__all__ = ["MODES", "FinetuneResult", "add_parser", "cmd_finetune", "embed_dataset", "finetune",
           "init_head", "parse_classnames", "run_from_args", "tuned_parameter_names"]
