"""Tar shards in the webdataset layout, read with :mod:`tarfile` (the ``webdataset`` package is not needed).

A shard holds samples as consecutive members sharing a key (the member name up to its first dot)::

    000123.npy          the input file (any extension the modality's loader reads)
    000123.anchor.png   optional paired anchor file (extension starting with "anchor.")
    000123.json         {"id": str (default: the key), "label": int | str | null, "caption": str | null}

Split: every epoch the shard list is shuffled with ``(seed, epoch)`` (same order on every rank), rank r
takes shards ``r::world_size`` and DataLoader worker w of W takes ``w::W`` of those. Every rank yields the
same number of samples per epoch: the smallest rank's share (the others DROP their surplus); inside a
rank, worker w yields a share of that quota proportional to its shards' samples (so it never needs more
than it holds; were it to run short, it would re-read its shards reshuffled).
Samples pass through a seeded shuffle buffer. The augmentation seed of a sample is
``aug_seed(seed, name, crc32(key), epoch)`` (another draw when its shards are re-read). Sample dicts are those of :meth:`ManifestDataset.get`.
"""

from __future__ import annotations

import glob
import json
import tarfile
import tempfile
import zlib
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from unialign.config import ModelConfig, from_dict
from unialign.data.manifest import load_with_anchor, read_classnames, sample_text
from unialign.data.sampler import aug_seed, mix
from unialign.errors import ConfigError
from unialign.preprocess import load
from unialign.preprocess.text import templates_for


@dataclass(frozen=True)
class ShardSourceConfig:
    """A training dataset read from tar shards (the cluster-scale twin of a JSONL manifest)."""

    shards: list[str]  # shard files; each entry may be a glob pattern (e.g. "/data/as/train-*.tar")
    modality: str  # a modality name of the model config
    classnames: list[str] | str = field(default_factory=list)  # class names or a file; [] = captions
    templates: list[str] | str = ""  # template-set name or explicit templates; "" = the modality's set
    anchor_modality: str = "image"  # modality of the "anchor.*" members
    weight: float = 1.0  # share of the global batch (normalised with the manifest datasets' weights)
    shuffle_buffer: int = 256  # samples held for shuffling

    def files(self) -> list[str]:
        """The shard paths, globs expanded and sorted; an entry matching nothing is an error."""
        out: list[str] = []
        for entry in self.shards:
            matches = sorted(glob.glob(entry)) if glob.has_magic(entry) else [entry]
            if not matches or not all(Path(m).is_file() for m in matches):
                raise ConfigError(f"shard file(s) not found: {entry}")
            out += matches
        return out


def build_shard_datasets(
    mapping: Mapping[str, Any], model_config: ModelConfig, *, seed: int = 0, rank: int = 0, world_size: int = 1
) -> dict[str, "ShardDataset"]:
    """:class:`ShardDataset` per entry of a training config's ``shards:`` mapping (validated)."""
    out = {}
    for name, raw in mapping.items():
        cfg = raw if isinstance(raw, ShardSourceConfig) else from_dict(ShardSourceConfig, raw, f"shards.{name}")
        out[name] = ShardDataset(
            name, cfg.files(), cfg.modality, model_config, classnames=cfg.classnames, templates=cfg.templates,
            anchor_modality=cfg.anchor_modality, train=True, seed=seed, shuffle_buffer=cfg.shuffle_buffer,
            rank=rank, world_size=world_size,
        )
        out[name].weight = cfg.weight
    return out


def shard_groups(path: str | Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {ext: bytes}) of each sample of a tar shard, in file order."""
    key: str | None = None
    group: dict[str, bytes] = {}
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = member.name.rsplit("/", 1)[-1]
            base, dot, ext = name.partition(".")
            if not dot:
                continue
            if key is not None and base != key:
                yield key, group
                group = {}
            key = base
            f = tar.extractfile(member)
            group[ext] = f.read() if f is not None else b""
    if key is not None:
        yield key, group


def count_samples(path: str | Path) -> int:
    """Number of samples (distinct consecutive keys) in a shard; reads the tar headers only."""
    n, last = 0, None
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            base = member.name.rsplit("/", 1)[-1].partition(".")[0]
            if member.isfile() and base != last:
                n, last = n + 1, base
    return n


class ShardDataset(IterableDataset):
    """Iterate the samples of tar shards of one modality; see the module docstring for the split rules.

    Args:
        name: dataset name (enters the augmentation seeds).
        shards: shard files.
        modality: a modality of `model_config`.
        classnames, templates, anchor_modality: as in :class:`~unialign.data.manifest.DatasetConfig`.
        train: augmentation on/off; seed: seeds shard order, the buffer and augmentation.
        shuffle_buffer: samples held for shuffling (0 or 1 = no shuffling).
        rank, world_size: distributed position.
        shard_sizes: samples per shard, if known (else counted from the tar headers once).
    """

    def __init__(
        self, name: str, shards: Sequence[str | Path], modality: str, model_config: ModelConfig, *,
        classnames: list[str] | str = (), templates: list[str] | str = "", anchor_modality: str = "image",
        train: bool = True, seed: int = 0, shuffle_buffer: int = 256, rank: int = 0, world_size: int = 1,
        shard_sizes: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if modality not in model_config.modalities:
            raise ConfigError(f"dataset {name!r}: modality {modality!r} is not one of {sorted(model_config.modalities)}")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is outside world size {world_size}")
        self.shards = [str(s) for s in shards]
        if len(self.shards) < world_size:
            raise ConfigError(f"dataset {name!r}: {len(self.shards)} shards cannot feed {world_size} ranks")
        self.name, self.modality, self.model_config = name, modality, model_config
        self.classnames = read_classnames(list(classnames) if not isinstance(classnames, str) else classnames)
        kind = model_config.modalities[modality].get("type", modality)
        self.templates = list(templates) if isinstance(templates, list) else list(templates_for(templates or kind))
        self.anchor_modality, self.train, self.seed = anchor_modality, train, int(seed)
        self.shuffle_buffer, self.rank, self.world_size = int(shuffle_buffer), rank, world_size
        sizes = list(shard_sizes) if shard_sizes is not None else [count_samples(s) for s in self.shards]
        if len(sizes) != len(self.shards):
            raise ConfigError(f"{len(sizes)} shard sizes for {len(self.shards)} shards")
        self.sizes = dict(zip(self.shards, sizes))
        self.epoch = 0
        self.weight = 1.0  # share of the global batch when mixed into training (set by build_shard_datasets)

    def set_epoch(self, epoch: int) -> None:
        """Shard order, buffer and augmentation seeds change with the epoch."""
        self.epoch = int(epoch)

    def _rank_shards(self, rank: int) -> list[str]:
        order = np.random.default_rng(mix(self.seed, "shards", self.name, self.epoch)).permutation(len(self.shards))
        return [self.shards[i] for i in order[rank::self.world_size]]

    def samples_per_rank(self) -> int:
        """Samples every rank yields this epoch: the smallest rank's share."""
        return min(sum(self.sizes[s] for s in self._rank_shards(r)) for r in range(self.world_size))

    def __len__(self) -> int:
        return self.samples_per_rank()

    def _decode(self, key: str, group: dict[str, bytes], seed: int) -> dict[str, Any]:
        meta = json.loads(group["json"].decode()) if "json" in group else {}
        label = meta.get("label")
        if isinstance(label, str):
            if label not in self.classnames:
                raise ConfigError(f"dataset {self.name!r}, sample {key!r}: unknown class name {label!r}")
            label = self.classnames.index(label)
        label = -1 if label is None else int(label)
        caption = meta.get("caption") or None
        inputs = [e for e in group if e != "json" and not e.startswith("anchor.")]
        if len(inputs) != 1:
            raise ConfigError(f"dataset {self.name!r}, sample {key!r}: expected one input member, got {sorted(group)}")
        anchor_ext = next((e for e in group if e.startswith("anchor.")), None)
        with tempfile.TemporaryDirectory(prefix="unialign-shard-") as tmp:
            path = Path(tmp) / f"{key}.{inputs[0]}"
            path.write_bytes(group[inputs[0]])
            anchor = None
            if anchor_ext is not None:
                apath = Path(tmp) / f"{key}.{anchor_ext}"
                apath.write_bytes(group[anchor_ext])
                x, a = load_with_anchor(self.modality, path, self.anchor_modality, apath, self.train,
                                        self.model_config, seed)
                anchor = a[0]
            else:
                x = load(self.modality, path, self.train, config=self.model_config, seed=seed)
        text = sample_text(label, caption, self.classnames, self.templates, seed)
        return {"id": str(meta.get("id", key)), "inputs": x[0] if x.shape[0] == 1 else x, "label": label,
                "text": text, "anchor": anchor, "seed": seed}

    def _worker_quotas(self, rank_shards: list[str], workers: int) -> list[int]:
        """The rank's quota split over workers in proportion to their shards' samples (largest remainder)."""
        total = self.samples_per_rank()
        have = [sum(self.sizes[s] for s in rank_shards[w::workers]) for w in range(workers)]
        if sum(have) == 0:
            return [0] * workers
        exact = [total * h / sum(have) for h in have]
        quotas = [int(e) for e in exact]
        for w in sorted(range(workers), key=lambda w: (quotas[w] - exact[w], w))[: total - sum(quotas)]:
            quotas[w] += 1
        return quotas

    def _raw(self, shards: list[str], worker: int) -> Iterator[tuple[str, dict[str, bytes], int]]:
        """(key, members, pass) forever: this worker's shards, reshuffled on every pass after the first."""
        p = 0
        while True:
            order = shards if p == 0 else [shards[i] for i in np.random.default_rng(
                mix(self.seed, "repass", self.name, self.epoch, self.rank, worker, p)).permutation(len(shards))]
            for shard in order:
                for key, group in shard_groups(shard):
                    yield key, group, p
            p += 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rank_shards = self._rank_shards(self.rank)
        shards = rank_shards[worker::workers]
        quota = self._worker_quotas(rank_shards, workers)[worker]
        if quota == 0:
            return
        if not shards:
            raise ConfigError(f"dataset {self.name!r}: rank {self.rank} has too few shards for {workers} workers")
        rng = np.random.default_rng(mix(self.seed, "buffer", self.name, self.epoch, self.rank, worker))
        buffer: list[tuple[str, dict[str, bytes], int]] = []
        produced = 0
        raw = self._raw(shards, worker)
        while produced < quota:
            while len(buffer) < min(max(1, self.shuffle_buffer), quota - produced):
                buffer.append(next(raw))
            key, group, p = buffer.pop(int(rng.integers(len(buffer))))
            draw = self.epoch if p == 0 else mix(self.epoch, p)
            yield self._decode(key, group, aug_seed(self.seed, self.name, zlib.crc32(key.encode()), draw))
            produced += 1


__all__ = ["ShardDataset", "count_samples", "shard_groups"]
