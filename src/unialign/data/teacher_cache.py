"""Offline teacher features (paper §4.1: "we cache offline features to avoid repeatedly forwarding").

Layout of a cache folder, per teacher ``t``::

    t.f16            raw float16 rows (R, T), appended in write order, read as a numpy memmap
    t.index.npz      ids (R',) str, seeds (R',) int64, rows (R',) int64, dim () int64 — written atomically

A row is keyed by (sample id, augmentation seed): the teacher saw the sample augmented with that seed,
the same seed the student's loader uses (supplement §3.2). :func:`cache_teacher` computes the K seeds
per sample with :func:`~unialign.data.sampler.cached_view_seeds`, the ones a
:class:`~unialign.data.sampler.MixedModalitySampler` with ``aug_views=K`` (and the same seed) yields.
"""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from unialign.data.manifest import ManifestDataset, MicroBatch, collate_samples
from unialign.data.sampler import cached_view_seeds
from unialign.errors import ConfigError


class TeacherCacheMiss(KeyError):
    """A (sample id, seed) pair has no cached feature; the message names it, the teacher and the folder."""

    def __str__(self) -> str:
        return str(self.args[0])


class TeacherCache:
    """Per-teacher fp16 feature matrices keyed by (sample id, augmentation seed).

    Writes append rows immediately; :meth:`finalize` (or leaving a ``with`` block) persists the index.
    Rows appended without a finalized index (a crash) are ignored on reopen and never reused.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._index: dict[str, dict[tuple[str, int], int]] = {}
        self._dim: dict[str, int] = {}
        self._maps: dict[str, np.memmap] = {}
        self._dirty: set[str] = set()

    def __enter__(self) -> "TeacherCache":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.finalize()

    def _data(self, teacher: str) -> Path:
        return self.folder / f"{teacher}.f16"

    def _index_path(self, teacher: str) -> Path:
        return self.folder / f"{teacher}.index.npz"

    def teachers(self) -> list[str]:
        """Teachers with a finalized index in the folder (plus ones written in this session)."""
        on_disk = {p.name[: -len(".index.npz")] for p in self.folder.glob("*.index.npz")}
        return sorted(on_disk | {t for t, rows in self._index.items() if rows})

    def _load(self, teacher: str) -> dict[tuple[str, int], int]:
        if teacher not in self._index:
            path = self._index_path(teacher)
            if path.is_file():
                with np.load(path, allow_pickle=False) as z:
                    self._dim[teacher] = int(z["dim"])
                    self._index[teacher] = dict(zip(zip(z["ids"].tolist(), z["seeds"].tolist()), z["rows"].tolist()))
            else:
                self._index[teacher] = {}
        return self._index[teacher]

    def __contains__(self, key: tuple[str, str, int]) -> bool:
        teacher, sid, seed = key
        return (str(sid), int(seed)) in self._load(teacher)

    def write(self, teacher: str, ids: Sequence[str], seeds: Sequence[int] | Tensor, feats: Tensor | np.ndarray) -> None:
        """Append features (B, T) of samples `ids` (B,) seen with `seeds` (B,); a later write of a key wins."""
        arr = feats.detach().float().cpu().numpy() if isinstance(feats, Tensor) else np.asarray(feats)
        seeds = seeds.tolist() if isinstance(seeds, Tensor) else list(seeds)
        if arr.ndim != 2 or arr.shape[0] != len(ids) or len(seeds) != len(ids):
            raise ConfigError(f"teacher {teacher!r}: features {arr.shape} do not match {len(ids)} ids / {len(seeds)} seeds")
        index = self._load(teacher)
        dim = self._dim.setdefault(teacher, int(arr.shape[1]))
        if arr.shape[1] != dim:
            raise ConfigError(f"teacher {teacher!r} in {self.folder}: width {arr.shape[1]} != cached width {dim}")
        self.folder.mkdir(parents=True, exist_ok=True)
        data = self._data(teacher)
        start = data.stat().st_size // (2 * dim) if data.exists() else 0
        with open(data, "r+b" if data.exists() else "wb") as f:
            f.seek(start * 2 * dim)  # drop a torn partial row, if any
            f.write(np.ascontiguousarray(arr, dtype=np.float16).tobytes())
            f.truncate()
        for k, (sid, seed) in enumerate(zip(ids, seeds)):
            index[(str(sid), int(seed))] = start + k
        self._maps.pop(teacher, None)
        self._dirty.add(teacher)

    def finalize(self) -> None:
        """Write the index of every teacher written since the last call (temp file + ``os.replace``)."""
        for teacher in sorted(self._dirty):
            index = self._index[teacher]
            keys = list(index)
            tmp = self.folder / f".{teacher}.index.{os.getpid()}.tmp.npz"
            np.savez(tmp, ids=np.array([k[0] for k in keys], dtype=np.str_),
                     seeds=np.array([k[1] for k in keys], dtype=np.int64),
                     rows=np.array([index[k] for k in keys], dtype=np.int64), dim=np.int64(self._dim[teacher]))
            os.replace(tmp, self._index_path(teacher))
        self._dirty.clear()

    def _matrix(self, teacher: str) -> np.memmap:
        if teacher not in self._maps:
            dim = self._dim[teacher]
            rows = self._data(teacher).stat().st_size // (2 * dim)
            self._maps[teacher] = np.memmap(self._data(teacher), dtype=np.float16, mode="r", shape=(rows, dim))
        return self._maps[teacher]

    def lookup(self, teacher: str, ids: Sequence[str], seeds: Sequence[int] | Tensor) -> Tensor:
        """Cached features of (id, seed) pairs -> (B, T) float32; a missing pair raises :class:`TeacherCacheMiss`."""
        index = self._load(teacher)
        if not index:
            raise TeacherCacheMiss(f"no features of teacher {teacher!r} in cache folder {self.folder} "
                                   f"(found: {self.teachers()})")
        seeds = seeds.tolist() if isinstance(seeds, Tensor) else list(seeds)
        rows = []
        for sid, seed in zip(ids, seeds):
            row = index.get((str(sid), int(seed)))
            if row is None:
                raise TeacherCacheMiss(
                    f"teacher {teacher!r}: no cached feature for id {sid!r} with aug seed {int(seed)} in "
                    f"{self.folder} (was the cache built with the sampler's seed and aug_views?)"
                )
            rows.append(row)
        return torch.from_numpy(np.asarray(self._matrix(teacher)[np.asarray(rows, dtype=np.int64)], dtype=np.float32))


def join(micro_batch: MicroBatch, cache: TeacherCache, teachers: Iterable[str]) -> MicroBatch:
    """Fill ``micro_batch.teacher[t]`` (B, T) float32 for every teacher `t`, keyed by its ids and seeds."""
    for t in teachers:
        micro_batch.teacher[t] = cache.lookup(t, micro_batch.ids, micro_batch.seeds)
    return micro_batch


@torch.no_grad()
def cache_teacher(
    dataset: ManifestDataset, teacher_name: str, teacher_fn: Callable[[Tensor], Tensor], folder: str | Path, *,
    seeds_per_sample: int = 1, batch_size: int = 64, train: bool = True, seed: int = 0, source: str = "inputs",
    skip_existing: bool = True,
) -> TeacherCache:
    """Run `teacher_fn` over every sample x each of its K cached views and store the features.

    Args:
        dataset: the dataset (its ``name`` enters the seeds, as in the sampler).
        teacher_fn: (B, ...) batched inputs -> (B, T) features (any callable; put it in eval mode first).
        seeds_per_sample: K, the sampler's ``aug_views``; seed: the sampler's seed.
        source: ``"inputs"`` (the modality tensor) or ``"anchors"`` (the paired anchor images).
        skip_existing: keys already cached are not recomputed (resume an interrupted run).
    """
    if seeds_per_sample < 1 or batch_size < 1:
        raise ConfigError("seeds_per_sample and batch_size must be >= 1")
    cache = TeacherCache(folder)
    pending: list[tuple[int, int]] = []

    def flush() -> None:
        samples = [dataset.get(i, s, train) for i, s in pending]
        mb = collate_samples(samples, dataset.name, dataset.modality)
        x = mb.inputs if source == "inputs" else mb.anchors
        if x is None:
            raise ConfigError(f"dataset {dataset.name!r}: source={source!r} but some samples have no anchor")
        feats = teacher_fn(x)
        if feats.ndim != 2 or feats.shape[0] != len(mb):
            raise ConfigError(f"teacher {teacher_name!r} returned {tuple(feats.shape)}, expected ({len(mb)}, T)")
        cache.write(teacher_name, mb.ids, mb.seeds, feats)
        pending.clear()

    with cache:
        for index in range(len(dataset)):
            for s in cached_view_seeds(seed, dataset.name, index, seeds_per_sample):
                if skip_existing and (teacher_name, dataset.ids[index], s) in cache:
                    continue
                pending.append((index, s))
                if len(pending) == batch_size:
                    flush()
        if pending:
            flush()
    return cache


def _import_teacher(spec: str) -> Callable[[Tensor], Tensor]:
    """``"package.module:factory"`` -> ``factory()``, the teacher callable."""
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ConfigError(f"teacher {spec!r} must look like 'package.module:factory'")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import teacher {spec!r}: {exc}") from None
    return factory()


def cache_teacher_cli(
    dataset: str, teacher: str, name: str, folder: str, *, model: str = "unialign-vitb16", views: int = 1,
    batch_size: int = 64, seed: int = 0, train: bool = True, source: str = "inputs",
) -> TeacherCache:
    """`unialign cache-teacher`: cache the features of teacher `teacher` under `name` for one dataset.

    Args:
        dataset: a registered dataset name, or a YAML/JSON file holding one DatasetConfig mapping.
        teacher: ``"package.module:factory"``; ``factory()`` returns a callable (B, ...) -> (B, T).
        name: the teacher's name in the model config (``teachers:``) and in the cache.
        model: the model config (name or YAML) that fixes the preprocessing.
    """
    import yaml

    from unialign.config import load_model_config
    from unialign.data.manifest import build_datasets

    path = Path(dataset)
    spec: Any = dataset
    if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
        spec = yaml.safe_load(path.read_text())
        if not isinstance(spec, dict):
            raise ConfigError(f"{path}: expected a DatasetConfig mapping")
    ds_name = path.stem if spec is not dataset else dataset
    ds = build_datasets({ds_name: spec}, load_model_config(model), train=train)[ds_name]
    return cache_teacher(ds, name, _import_teacher(teacher), folder, seeds_per_sample=views,
                         batch_size=batch_size, train=train, seed=seed, source=source)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``cache-teacher`` command to an argparse ``subparsers``; its ``func`` calls :func:`cache_teacher_cli`."""
    p = subparsers.add_parser("cache-teacher", help="cache a teacher's features for a dataset (paper §4.1)")
    p.add_argument("dataset", help="registered dataset name or DatasetConfig YAML/JSON file")
    p.add_argument("--teacher", required=True, help="package.module:factory returning the teacher callable")
    p.add_argument("--name", required=True, help="teacher name (as in the model config's teachers:)")
    p.add_argument("--out", required=True, dest="folder", help="cache folder")
    p.add_argument("--model", default="unialign-vitb16", help="model config fixing the preprocessing")
    p.add_argument("--views", type=int, default=1, help="augmented views per sample (the sampler's aug_views)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    p.add_argument("--eval", dest="train", action="store_false", help="no augmentation (eval preprocessing)")
    p.add_argument("--source", choices=("inputs", "anchors"), default="inputs")
    p.set_defaults(func=lambda a: cache_teacher_cli(
        a.dataset, a.teacher, a.name, a.folder, model=a.model, views=a.views, batch_size=a.batch_size,
        seed=a.seed, train=a.train, source=a.source))
    return p
