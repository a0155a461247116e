"""Run a zero-shot benchmark: files -> embeddings -> metrics -> a results dict (clip_benchmark style).

    items --preprocess.load (V, ...) per file--> model.encode (sum V, E) --mean over views, renorm--> (N, E)
    classification: logits = 100 * x @ W.T (W from class prompts; grouped classes take the max) -> acc1/5, mpcr
    multilabel:     same logits -> mAP over classes with a positive
    retrieval:      captions -> text embeddings (T, E); S = text @ x.T -> Recall@1/5/10 both ways

Files that fail to load (:class:`PreprocessError` or an OS error) are reported, counted and skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from unialign.config import ModelConfig
from unialign.errors import InputError
from unialign.eval.base import Benchmark, BenchmarkError, Item
from unialign.eval.benchmarks import list_benchmarks, read_benchmark
from unialign.eval.metrics import mean_average_precision, mean_per_class_recall, retrieval_metrics, topk_accuracy
from unialign.eval.readers_visual import read_archive_member
from unialign.eval.zeroshot import ZeroShotClassifier, encode_views, text_embeddings
from unialign.preprocess import PreprocessError, load

RECALL_KS = (1, 5, 10)


def resolve_modality(config: ModelConfig, modality_type: str, modality: str | None = None) -> str:
    """The model's modality name for a benchmark of `modality_type`: `modality` if given (its type must
    match), else the first modality of that type in ``config.modalities``."""
    types = {name: spec.get("type", name) for name, spec in config.modalities.items()}
    if modality is not None:
        if modality not in types:
            raise InputError(f"model {config.name!r} has no modality {modality!r}; it has {sorted(types)}")
        if types[modality] != modality_type:
            raise InputError(
                f"modality {modality!r} is of type {types[modality]!r}, the benchmark needs {modality_type!r}"
            )
        return modality
    for name, kind in types.items():
        if kind == modality_type:
            return name
    raise InputError(f"model {config.name!r} has no {modality_type!r} modality (it has {types})")


def loader_config(config: ModelConfig, modality: str, overrides: dict[str, Any]) -> ModelConfig:
    """`config` with `overrides` merged into ``modalities[modality].preprocess`` (e.g. a depth file format)."""
    if not overrides:
        return config
    spec = dict(config.modalities[modality])
    spec["preprocess"] = {**(spec.get("preprocess") or {}), **overrides}
    return dataclasses.replace(config, modalities={**config.modalities, modality: spec})


def _load_item(item: Item, modality: str, config: ModelConfig, scratch: Path) -> Tensor:
    """One item's views (V, ...); archive members are written to `scratch` as .npy first."""
    path = item.path
    if item.member is not None:
        try:
            arr = read_archive_member(item)
        except (OSError, KeyError, IndexError) as exc:
            raise PreprocessError(path, f"cannot read member {item.member}: {exc}") from None
        path = scratch / f"{item.path.stem}-{item.member}.npy"
        np.save(path, arr.astype(np.float32))
    try:
        return load(modality, path, train=False, config=config, seed=0)
    finally:
        if item.member is not None:
            path.unlink(missing_ok=True)


@torch.no_grad()
def embed_items(
    model: torch.nn.Module,
    modality: str,
    benchmark: Benchmark,
    *,
    config: ModelConfig | None = None,
    batch_size: int = 32,
    progress: bool = True,
    workers: int = 0,
) -> tuple[Tensor, list[int], list[dict[str, str]]]:
    """Embed every item's file -> (embeddings (N_ok, E) unit-norm, indices of the loaded items, skipped).

    ``skipped`` is a list of ``{"path", "error"}`` for files that failed to load.
    """
    from tqdm.auto import tqdm

    config = config or model.config
    embs: list[Tensor] = []
    kept: list[int] = []
    skipped: list[dict[str, str]] = []
    bar = tqdm(total=len(benchmark.items), desc=f"{benchmark.name} ({modality})", unit="file", disable=not progress)
    pool = ThreadPoolExecutor(workers) if workers > 0 else None
    with tempfile.TemporaryDirectory(prefix="unialign-eval-") as tmp:

        def one(i: int) -> tuple[int, Tensor | None, str | None]:
            try:
                return i, _load_item(benchmark.items[i], modality, config, Path(tmp)), None
            except (PreprocessError, OSError) as exc:
                return i, None, str(exc)

        try:
            for start in range(0, len(benchmark.items), batch_size):
                idx = range(start, min(start + batch_size, len(benchmark.items)))
                results = list(pool.map(one, idx)) if pool else [one(i) for i in idx]
                batch = []
                for i, x, err in results:
                    if err is not None:
                        skipped.append({"path": str(benchmark.items[i].path), "error": err})
                        bar.write(f"skipped {benchmark.items[i].path}: {err}", file=sys.stderr)
                    else:
                        batch.append((i, x))
                if batch:
                    embs.append(encode_views(model, modality, [x for _, x in batch]).cpu())
                    kept += [i for i, _ in batch]
                bar.update(len(idx))
        finally:
            bar.close()
            if pool:
                pool.shutdown()
    if not kept:
        first = "; ".join(f"{s['path']}: {s['error']}" for s in skipped[:3])
        raise BenchmarkError(f"{benchmark.name}: none of the {len(benchmark.items)} files could be loaded ({first})")
    return torch.cat(embs), kept, skipped


def classification_metrics(logits: Tensor, targets: Tensor) -> dict[str, float]:
    """acc1, acc5 and mean_per_class_recall of (N, C) logits against (N,) targets."""
    acc = topk_accuracy(logits, targets, (1, 5))
    return {"acc1": acc[1], "acc5": acc[5], "mean_per_class_recall": mean_per_class_recall(logits, targets)}


def _score(model: torch.nn.Module, bench: Benchmark, emb: Tensor, items: list[Item]) -> dict[str, Any]:
    """Metrics (and per-fold metrics) of embeddings (N, E) of `items`."""
    if bench.task == "retrieval":
        texts = [c for it in items for c in it.captions]
        owner = torch.tensor([n for n, it in enumerate(items) for _ in it.captions])
        t = text_embeddings(model, texts).cpu()  # (T, E)
        sim = t @ emb.T  # (T, N)
        positives = owner[:, None] == torch.arange(len(items))[None, :]
        metrics = retrieval_metrics(sim, positives, RECALL_KS, query="text", gallery=bench.modality_type)
        return {"metrics": metrics, "num_captions": len(texts)}
    clf = ZeroShotClassifier.from_text(model, bench.classnames, bench.templates or None, bench.groups)
    logits = clf.logits(emb.to(clf.weights.device)).cpu()  # (N, C)
    if bench.task == "multilabel":
        targets = torch.zeros(logits.shape, dtype=torch.bool)
        for n, it in enumerate(items):
            targets[n, list(it.labels)] = True
        m, aps = mean_average_precision(logits, targets)
        return {"metrics": {"mAP": m, "num_classes_with_positives": int(sum(a == a for a in aps))}}
    targets = torch.tensor([it.label for it in items])
    if not bench.folds:
        return {"metrics": classification_metrics(logits, targets)}
    folds = torch.tensor([it.fold for it in items])
    per_fold = {f"fold{f}": classification_metrics(logits[folds == f], targets[folds == f])
                for f in bench.folds if bool((folds == f).any())}
    mean = {k: float(np.mean([m[k] for m in per_fold.values()])) for k in next(iter(per_fold.values()))}
    return {"metrics": mean, "per_fold": per_fold}


def evaluate(
    model: torch.nn.Module,
    benchmark: Benchmark,
    *,
    modality: str | None = None,
    batch_size: int = 32,
    progress: bool = True,
    max_items: int | None = None,
    workers: int = 0,
    checkpoint: str | Path | None = None,
) -> dict[str, Any]:
    """Zero-shot evaluation of `model` on `benchmark` -> results dict (JSON-serialisable).

    Args:
        modality: the model's modality name to use; default: the first of the benchmark's type.
        max_items: evaluate only the first n items (smoke tests; not a random sample).
        workers: threads loading files (0: in the main thread).
        checkpoint: the checkpoint directory, recorded with its digest in the results.

    Keys: benchmark, split, task, modality, modality_type, metrics, [per_fold], num_samples, num_listed,
    num_skipped, skipped_files, missing_files, model, checkpoint, checkpoint_digest, unialign_version,
    wall_time_s, [num_classes | num_captions], notes.
    """
    from unialign import __version__
    from unialign.checkpoint import checkpoint_digest

    t0 = time.perf_counter()
    was_training = model.training
    model.eval()
    bench = benchmark.subset(max_items)
    modality = resolve_modality(model.config, bench.modality_type, modality)
    config = loader_config(model.config, modality, dict(bench.preprocess))
    try:
        emb, kept, skipped = embed_items(model, modality, bench, config=config, batch_size=batch_size,
                                         progress=progress, workers=workers)
        with torch.no_grad():
            scored = _score(model, bench, emb, [bench.items[i] for i in kept])
    finally:
        model.train(was_training)
    out: dict[str, Any] = {
        "benchmark": bench.name, "split": bench.split, "task": bench.task,
        "modality": modality, "modality_type": bench.modality_type,
        **scored,
        "num_samples": len(kept), "num_listed": len(bench.items), "num_skipped": len(skipped),
        "skipped_files": skipped, "missing_files": bench.missing,
        "model": model.config.name,
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "checkpoint_digest": checkpoint_digest(checkpoint) if checkpoint is not None else None,
        "unialign_version": __version__,
        "notes": list(bench.notes) + ([f"first {max_items} items only"] if max_items is not None else []),
    }
    if bench.task != "retrieval":
        out["num_classes"] = len(bench.classnames)
    out["wall_time_s"] = round(time.perf_counter() - t0, 3)
    return out


def cmd_eval(
    checkpoint: str | Path,
    benchmark: str,
    data_root: str | Path,
    out: str | Path | None = None,
    base: str | Path | None = None,
    batch_size: int = 32,
    modality: str | None = None,
    *,
    split: str | None = None,
    max_items: int | None = None,
    workers: int = 0,
    device: str | None = None,
    progress: bool = True,
) -> int:
    """``unialign eval``: load a checkpoint, read a benchmark, evaluate, write (or print) results JSON.

    Errors are :class:`unialign.UniAlignError` s (the CLI prints them); returns 0 on success.
    """
    import unialign

    model = unialign.load(checkpoint, base=base)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(dev).eval()
    mtype = None
    if modality is not None:
        if modality not in model.config.modalities:
            raise InputError(f"model {model.config.name!r} has no modality {modality!r}; "
                             f"it has {sorted(model.config.modalities)}")
        mtype = model.config.modalities[modality].get("type", modality)
    bench = read_benchmark(benchmark, data_root, split=split, modality_type=mtype)
    results = evaluate(model, bench, modality=modality, batch_size=batch_size, progress=progress,
                       max_items=max_items, workers=workers, checkpoint=checkpoint)
    text = json.dumps(results, indent=2)
    if out is None:
        print(text)
    else:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    summary = ", ".join(f"{k}={v:.4f}" for k, v in results["metrics"].items() if isinstance(v, float))
    print(f"{results['benchmark']} ({results['split']}): {summary}; {results['num_samples']} samples, "
          f"{results['num_skipped']} skipped, {results['missing_files']} missing", file=sys.stderr)
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``eval`` to an argparse sub-parser set; ``args.func(args)`` runs it (see :func:`run_from_args`)."""
    p = subparsers.add_parser("eval", help="zero-shot evaluation of a checkpoint on a benchmark",
                              description="Zero-shot classification / retrieval of a checkpoint on a benchmark.")
    p.add_argument("checkpoint", help="checkpoint directory")
    p.add_argument("--benchmark", required=True, help=f"one of: {', '.join(list_benchmarks())}")
    p.add_argument("--data-root", required=True, help="the benchmark's folder (layout: see the reader's docs)")
    p.add_argument("--out", default=None, help="results JSON path (default: print to stdout)")
    p.add_argument("--modality", default=None, help="the model's modality name to use (default: first of the type)")
    p.add_argument("--split", default=None, help="benchmark split, e.g. fold3 (ESC-50), testlist02 (UCF101)")
    p.add_argument("--base", default=None, help="frozen CLIP weights, if not where the checkpoint says")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-items", type=int, default=None, help="evaluate only the first N items (smoke test)")
    p.add_argument("--workers", type=int, default=0, help="file-loading threads")
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_from_args)
    return p


def run_from_args(args: argparse.Namespace) -> int:
    """Run :func:`cmd_eval` from parsed ``eval`` arguments."""
    return cmd_eval(args.checkpoint, args.benchmark, args.data_root, out=args.out, base=args.base,
                    batch_size=args.batch_size, modality=args.modality, split=args.split,
                    max_items=args.max_items, workers=args.workers, device=args.device,
                    progress=not args.no_progress)


__all__ = ["add_parser", "classification_metrics", "cmd_eval", "embed_items", "evaluate", "loader_config",
           "resolve_modality", "run_from_args"]
