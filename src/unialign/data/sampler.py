"""Mixed-modality sampling: every optimizer step holds a micro-batch of every dataset of the mixture.

Supplement Table 1: "the total batch size is the sum of the mini-batches of all modalities involved in
the weighted sampling". Each dataset gets a fixed micro-batch size from its weight; the sizes sum exactly
to the global batch (largest-remainder rounding). Each dataset reads an endless stream of *passes*; pass
``p`` is its indices repeated ``repeat`` times (repeated augmentation, paper §4.1), downsampled to at most
``max_per_class`` entries per label (category-balanced, §4.1) and shuffled, all seeded by
``(seed, dataset, p)``. A step takes the next chunk of every stream, running into the next pass when a
pass ends. Everything is a pure function of ``(seed, step)``, so resuming is exact.

Augmentation seeds: entry ``(index, copy)`` of pass ``p`` is the sample's draw ``n = p * repeat + copy``;
its seed is :func:`aug_seed` ``(seed, dataset, index, n)``, or ``(seed, dataset, index, n % K)`` with
``aug_views=K`` so only K views per sample exist (the ones the teacher cache holds, see
:func:`cached_view_seeds`).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from unialign.errors import ConfigError

_MASK = (1 << 64) - 1


def _splitmix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def mix(*parts: int | str) -> int:
    """A stable 62-bit hash of ints and strings (strings by CRC32), identical across processes and runs."""
    h = 0
    for p in parts:
        v = zlib.crc32(p.encode()) if isinstance(p, str) else int(p) & _MASK
        h = _splitmix(h ^ v)
    return h >> 2


def aug_seed(seed: int, dataset: str, index: int, draw: int) -> int:
    """Augmentation seed of draw number `draw` of sample `index` of `dataset` (a 62-bit int)."""
    return mix(seed, "aug", dataset, index, draw)


def cached_view_seeds(seed: int, dataset: str, index: int, views: int) -> list[int]:
    """The K = `views` seeds a sampler with ``aug_views=views`` can give sample `index` (teacher cache)."""
    return [aug_seed(seed, dataset, index, v) for v in range(views)]


def split_batch(weights: Sequence[float], total: int, multiple: int = 1) -> list[int]:
    """Sizes proportional to `weights`, summing to `total`, each a positive multiple of `multiple`.

    Largest-remainder (Hamilton) rounding in units of `multiple`; each dataset gets at least one unit,
    the units left after that are shared by the weights. Ties go to the earlier dataset.
    """
    if total % multiple:
        raise ConfigError(f"global batch {total} must divide by {multiple} (the world size)")
    units, n = total // multiple, len(weights)
    if units < n:
        raise ConfigError(f"global batch {total} is too small for {n} datasets x {multiple} ranks")
    wsum = float(sum(weights))
    quota = [w / wsum * units for w in weights]
    sizes = [max(1, math.floor(q)) for q in quota]
    while sum(sizes) > units:  # the at-least-one floors overshot: take from the most over-served
        i = max((j for j in range(n) if sizes[j] > 1), key=lambda j: (sizes[j] - quota[j], -j))
        sizes[i] -= 1
    order = sorted(range(n), key=lambda j: (-(quota[j] - sizes[j]), j))
    for k in range(units - sum(sizes)):
        sizes[order[k % n]] += 1
    return [s * multiple for s in sizes]


@dataclass(frozen=True)
class PoolSpec:
    """What the sampler needs of a dataset."""

    labels: Sequence[int]  # class index per sample, -1 when none (never downsampled)
    weight: float = 1.0  # share of the global batch
    repeat: int = 1  # repeated augmentation factor
    max_per_class: int = 0  # balanced downsampling cap per label per pass; 0 = off


def build_pass(spec: PoolSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One pass of a dataset -> (indices (L,), copy numbers (L,)), shuffled.

    Labels whose ``k * repeat`` entries exceed ``max_per_class = m`` keep ``m // k`` copies of every sample
    plus ``m % k`` random samples one more time (so no sample is dropped while another is doubled).
    """
    labels = np.asarray(spec.labels, dtype=np.int64)
    n, r, m = len(labels), spec.repeat, spec.max_per_class
    idx = np.tile(np.arange(n), r)
    copy = np.repeat(np.arange(r), n)
    if m > 0:
        keep_i, keep_c = [], []
        order = np.argsort(labels, kind="stable")
        classes, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
        for c, s, k in zip(classes, starts, counts):
            members = order[s:s + k]
            if c < 0 or k * r <= m:
                keep_i.append(np.tile(members, r))
                keep_c.append(np.repeat(np.arange(r), k))
                continue
            copies, extra = divmod(m, k)
            keep_i += [np.tile(members, copies), rng.permutation(members)[:extra]]
            keep_c += [np.repeat(np.arange(copies), k), np.full(extra, copies)]
        idx, copy = np.concatenate(keep_i), np.concatenate(keep_c)
    perm = rng.permutation(len(idx))
    return idx[perm], copy[perm]


class MixedModalitySampler:
    """Yields one optimizer step at a time: ``{dataset: [(index, aug_seed), ...]}`` for THIS rank.

    Args:
        specs: dataset name -> :class:`PoolSpec` (see :meth:`from_datasets`).
        global_batch: samples per optimizer step over all datasets and ranks.
        seed: seeds pools, shuffles and augmentation seeds.
        rank, world_size: distributed position. Micro-batch sizes are split in units of `world_size`
            (``split_batch(weights, global_batch, world_size)``), so every global micro-batch divides by
            the world size; rank r takes the r-th contiguous slice of each. Every rank runs the same steps.
        aug_views: 0 = a fresh seed per draw; K > 0 = the seed of view ``draw % K`` (K cached views).
        size_multiple: the unit of the split; default `world_size`. A single process with
            ``size_multiple=W`` yields exactly the union of the W ranks' steps.
    """

    def __init__(
        self, specs: Mapping[str, PoolSpec], global_batch: int, *, seed: int = 0, rank: int = 0,
        world_size: int = 1, aug_views: int = 0, size_multiple: int | None = None,
    ) -> None:
        if not specs:
            raise ConfigError("the sampler needs at least one dataset")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is outside world size {world_size}")
        multiple = size_multiple or world_size
        if multiple % world_size:
            raise ConfigError(f"size_multiple={multiple} must divide by world_size={world_size}")
        self.names = list(specs)
        self.specs = dict(specs)
        for name, spec in self.specs.items():
            if len(spec.labels) == 0:
                raise ConfigError(f"dataset {name!r} is empty")
        self.seed, self.rank, self.world_size, self.aug_views = int(seed), rank, world_size, int(aug_views)
        self.global_sizes = dict(zip(self.names, split_batch([s.weight for s in specs.values()], global_batch, multiple)))
        self.local_sizes = {n: g // world_size for n, g in self.global_sizes.items()}
        self.pool_lengths = {n: self._pool_length(s) for n, s in self.specs.items()}
        # the pool that takes the most steps to read once defines the epoch
        self.steps_per_epoch = max(math.ceil(self.pool_lengths[n] / self.global_sizes[n]) for n in self.names)
        self.epoch, self.step = 0, 0  # position: next step to yield is (epoch, step)
        self._pass_cache: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}

    @classmethod
    def from_datasets(cls, datasets: Mapping[str, Any], global_batch: int, **kwargs: Any) -> "MixedModalitySampler":
        """Sampler over ManifestDatasets (their ``labels`` and ``cfg.weight/repeat/max_per_class``)."""
        specs = {n: PoolSpec(d.labels, d.cfg.weight, d.cfg.repeat, d.cfg.max_per_class) for n, d in datasets.items()}
        return cls(specs, global_batch, **kwargs)

    @staticmethod
    def _pool_length(spec: PoolSpec) -> int:
        if spec.max_per_class <= 0:
            return len(spec.labels) * spec.repeat
        classes, counts = np.unique(np.asarray(spec.labels), return_counts=True)
        return int(sum(k * spec.repeat if c < 0 else min(k * spec.repeat, spec.max_per_class)
                       for c, k in zip(classes, counts)))

    def _pass(self, name: str, p: int) -> tuple[np.ndarray, np.ndarray]:
        cached = self._pass_cache.get(name)
        if cached is None or cached[0] != p:
            idx, copy = build_pass(self.specs[name], np.random.default_rng(mix(self.seed, "pass", name, p)))
            cached = (p, idx, copy)
            self._pass_cache[name] = cached
        return cached[1], cached[2]

    def _entries(self, name: str, start: int, count: int) -> list[tuple[int, int]]:
        """Entries [start, start + count) of the dataset's endless stream -> (index, aug_seed)."""
        length, repeat, out = self.pool_lengths[name], self.specs[name].repeat, []
        pos = start
        while len(out) < count:
            p, off = divmod(pos, length)
            idx, copy = self._pass(name, p)
            take = min(count - len(out), length - off)
            for i, c in zip(idx[off:off + take].tolist(), copy[off:off + take].tolist()):
                draw = p * repeat + c
                out.append((i, aug_seed(self.seed, name, i, draw % self.aug_views if self.aug_views else draw)))
            pos += take
        return out

    def global_step(self, step: int) -> dict[str, list[tuple[int, int]]]:
        """This rank's share of absolute step `step` (counted from the start of training)."""
        out = {}
        for name in self.names:
            g, b = self.global_sizes[name], self.local_sizes[name]
            out[name] = self._entries(name, step * g + self.rank * b, b)
        return out

    def __len__(self) -> int:
        return self.steps_per_epoch

    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` at its first step (a no-op when already there)."""
        if epoch != self.epoch:
            self.epoch, self.step = int(epoch), 0

    def __iter__(self) -> Iterator[dict[str, list[tuple[int, int]]]]:
        """The remaining steps of the current epoch; afterwards the position moves to the next epoch.

        The position advances as each step is yielded. Behind a DataLoader, which runs the sampler ahead
        of training, save the trainer's own count of consumed steps instead (``load_state_dict`` takes it).
        """
        while self.step < self.steps_per_epoch:
            step = self.epoch * self.steps_per_epoch + self.step
            self.step += 1
            yield self.global_step(step)
        self.epoch, self.step = self.epoch + 1, 0

    def state_dict(self) -> dict[str, Any]:
        """Plain-data position and the settings it depends on."""
        return {"epoch": self.epoch, "step": self.step, "seed": self.seed, "names": list(self.names),
                "global_sizes": [self.global_sizes[n] for n in self.names],
                "pool_lengths": [self.pool_lengths[n] for n in self.names], "aug_views": self.aug_views}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume at the saved position; fails if the mixture, sizes or seed differ."""
        mine = self.state_dict()
        for key in ("seed", "names", "global_sizes", "pool_lengths", "aug_views"):
            if key not in state:
                continue
            saved = list(state[key]) if isinstance(mine[key], list) else state[key]
            if saved != mine[key]:
                raise ConfigError(f"sampler state mismatch in {key!r}: saved {state[key]}, now {mine[key]}")
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
