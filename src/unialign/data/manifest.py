"""Map-style datasets read from JSONL manifests, one modality each, and their collation into micro-batches.

A manifest line describes one sample (paths relative to :attr:`DatasetConfig.root`)::

    {"id": "chair_0001", "path": "pc/chair_0001.npy", "label": "chair", "caption": null,
     "anchor": "render/chair_0001.png"}

``path`` may also be a list of files of one sample (several views or clips): at training one of them is
picked with the sample's seed, at eval all are loaded and concatenated along the views axis V.
``label`` is a class index or a class name of :attr:`DatasetConfig.classnames` (or null); ``caption``
a free text (or null); at least one of the two must be given. ``anchor`` is a paired anchor-modality
file (a rendered view of a 3D shape, the RGB of an RGB-D pair), loaded with the SAME seed as the input
so teacher and student see one augmentation (supplement §3.2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from unialign.config import ModelConfig, from_dict
from unialign.errors import ConfigError
from unialign.preprocess import LoadContext, collate, load
from unialign.preprocess.base import make_generator
from unialign.preprocess.text import prompts, templates_for
from unialign.registry import Registry

_RECORD_KEYS = ("id", "path", "label", "caption", "anchor")


class ManifestError(ConfigError):
    """A manifest line is malformed; the message starts with ``file:line:``."""

    def __init__(self, path: str | Path, line: int, problem: str) -> None:
        self.path, self.line, self.problem = str(path), line, problem
        super().__init__(f"{path}:{line}: {problem}")


@dataclass(frozen=True)
class DatasetConfig:
    """One training or evaluation dataset: a JSONL manifest of a single modality and how to mix it."""

    manifest: str  # path to the JSONL manifest (one record per line)
    modality: str  # a modality name of the model config (e.g. "point")
    classnames: list[str] | str = field(default_factory=list)  # class names, or a text file (one per line); [] = captions
    templates: list[str] | str = ""  # a template-set name of preprocess/text.py, or explicit templates; "" = modality's set
    root: str = ""  # base folder of relative file paths; "" = the manifest's folder
    weight: float = 1.0  # share of the global batch (normalised over the mixture)
    repeat: int = 1  # repeated augmentation factor: each sample appears `repeat` times per pass (§4.1)
    max_per_class: int = 0  # category-balanced downsampling: at most this many entries per label per pass; 0 = off
    anchor_modality: str = "image"  # modality used to load the paired anchor files

    def __post_init__(self) -> None:
        for key in ("classnames", "templates"):
            value = getattr(self, key)
            if isinstance(value, (list, tuple)):
                if not all(isinstance(v, str) for v in value):
                    raise ConfigError(f"dataset {key} must be strings, got {value!r}")
                object.__setattr__(self, key, list(value))
            elif not isinstance(value, str):
                raise ConfigError(f"dataset {key} must be a list of strings or a string, got {value!r}")
        if not self.weight > 0:
            raise ConfigError(f"dataset weight must be > 0, got {self.weight}")
        if self.repeat < 1 or self.max_per_class < 0:
            raise ConfigError(f"dataset repeat must be >= 1 and max_per_class >= 0, got {self.repeat}, {self.max_per_class}")

    @property
    def folder(self) -> Path:
        """Base folder of relative paths."""
        return Path(self.root) if self.root else Path(self.manifest).parent


@dataclass(frozen=True)
class Record:
    """One parsed manifest line."""

    id: str  # unique sample id (also the teacher-cache key)
    paths: tuple[Path, ...]  # input file(s), resolved
    label: int  # class index, -1 when none
    caption: str | None  # free text, or None
    anchor: Path | None  # paired anchor file, or None


def read_classnames(value: list[str] | str, near: Path | None = None) -> list[str]:
    """Class names from a list, or from a text file (one per line; relative paths also tried next to `near`)."""
    if isinstance(value, list):
        return list(value)
    if not value:
        return []
    path = Path(value)
    if not path.is_file() and near is not None and (near / path).is_file():
        path = near / path
    if not path.is_file():
        raise ConfigError(f"classnames file not found: {value}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _parse_record(raw: str, where: tuple[Path, int], folder: Path, classes: Mapping[str, int], n_cls: int) -> Record:
    path, line = where

    def fail(problem: str) -> ManifestError:
        return ManifestError(path, line, problem)

    try:
        rec = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise fail(f"not valid JSON ({exc.msg})") from None
    if not isinstance(rec, dict):
        raise fail(f"expected a JSON object, got {type(rec).__name__}")
    unknown = sorted(set(rec) - set(_RECORD_KEYS))
    if unknown:
        raise fail(f"unknown key(s) {unknown}; known: {list(_RECORD_KEYS)}")
    sid = rec.get("id")
    if not isinstance(sid, str) or not sid:
        raise fail(f"'id' must be a non-empty string, got {sid!r}")
    files = rec.get("path")
    files = [files] if isinstance(files, str) else files
    if not isinstance(files, list) or not files or not all(isinstance(f, str) and f for f in files):
        raise fail(f"'path' must be a non-empty string or list of strings, got {rec.get('path')!r}")
    label = rec.get("label")
    if isinstance(label, bool) or not (label is None or isinstance(label, (int, str))):
        raise fail(f"'label' must be an int, a class name or null, got {label!r}")
    if isinstance(label, str):
        if label not in classes:
            raise fail(f"unknown class name {label!r} (not in the dataset's {n_cls} classnames)")
        label = classes[label]
    elif isinstance(label, int) and not 0 <= label < n_cls:
        raise fail(f"label {label} out of range [0, {n_cls}) of the dataset's classnames")
    caption = rec.get("caption")
    if caption is not None and (not isinstance(caption, str) or not caption.strip()):
        raise fail(f"'caption' must be a non-empty string or null, got {caption!r}")
    if label is None and caption is None:
        raise fail("a record needs a 'label' or a 'caption'")
    anchor = rec.get("anchor")
    if anchor is not None and (not isinstance(anchor, str) or not anchor):
        raise fail(f"'anchor' must be a file path or null, got {anchor!r}")
    return Record(
        id=sid, paths=tuple(folder / f for f in files), label=-1 if label is None else int(label),
        caption=caption.strip() if caption else None, anchor=folder / anchor if anchor else None,
    )


def read_manifest(cfg: DatasetConfig, classnames: Sequence[str]) -> list[Record]:
    """Parse and validate every line of ``cfg.manifest`` (blank lines skipped); errors name file:line."""
    path = Path(cfg.manifest)
    if not path.is_file():
        raise ConfigError(f"manifest not found: {path}")
    classes = {c: i for i, c in enumerate(classnames)}
    records: list[Record] = []
    seen: dict[str, int] = {}
    for line_no, raw in enumerate(path.read_text().splitlines(), start=1):
        if not raw.strip():
            continue
        rec = _parse_record(raw, (path, line_no), cfg.folder, classes, len(classnames))
        if rec.id in seen:
            raise ManifestError(path, line_no, f"duplicate id {rec.id!r} (first on line {seen[rec.id]})")
        seen[rec.id] = line_no
        records.append(rec)
    if not records:
        raise ConfigError(f"{path}: manifest holds no records")
    return records


def sample_text(label: int, caption: str | None, classnames: Sequence[str], templates: Sequence[str], seed: int) -> str:
    """The text of a sample: its caption if any, else a prompt of its class from a template chosen by `seed`."""
    if caption:
        return caption
    if label < 0:
        return ""
    g = make_generator(seed + 1)  # offset so the template draw is not the augmentation's first draw
    return prompts(classnames[label], [templates[int(torch.randint(len(templates), (), generator=g))]])[0]


def load_input(modality: str, paths: Sequence[Path], train: bool, config: ModelConfig, seed: int) -> Tensor:
    """Load one sample's file(s) -> (V, ...): at training one file picked with `seed`, at eval all concatenated."""
    if len(paths) == 1:
        return load(modality, paths[0], train, config=config, seed=seed)
    if train:
        pick = int(torch.randint(len(paths), (), generator=make_generator(seed + 2)))
        return load(modality, paths[pick], train, config=config, seed=seed)
    return torch.cat([load(modality, p, train, config=config, seed=seed) for p in paths])


def load_with_anchor(
    modality: str, path: Path, anchor_modality: str, anchor: Path, train: bool, config: ModelConfig, seed: int
) -> tuple[Tensor, Tensor]:
    """Input (V, ...) and anchor (1, 3, S, S) of one sample, both with `seed`.

    A depth input with an image anchor goes through :func:`preprocess.depth.load_rgbd`, so the RGB and the
    depth share one crop/flip (a registered RGB-D pair); any other pair is two seeded :func:`load` calls.
    """
    kinds = {m: config.modalities[m].get("type", m) for m in (modality, anchor_modality) if m in config.modalities}
    if kinds.get(modality) == "depth" and kinds.get(anchor_modality) == "image":
        from unialign.preprocess.depth import load_rgbd

        options = dict(config.modalities[modality])
        options.pop("type", None)
        pre = options.pop("preprocess", None) or {}
        gen = make_generator(seed)
        ctx = LoadContext(config=config, modality=modality, tokenizer=options, preprocess=pre, train=train,
                          seed=int(seed), generator=gen)
        rgb, depth = load_rgbd(path, anchor, ctx)
        return depth, rgb
    x = load(modality, path, train, config=config, seed=seed)
    return x, load(anchor_modality, anchor, train, config=config, seed=seed)


class ManifestDataset:
    """A JSONL manifest of one modality -> sample dicts (see :meth:`get`).

    ``dataset[(index, seed)]`` is ``get(index, seed, train=self.train)``, so a torch DataLoader can drive
    it with the (index, seed) pairs of :class:`~unialign.data.sampler.MixedModalitySampler`.
    """

    def __init__(self, name: str, cfg: DatasetConfig, model_config: ModelConfig, train: bool = True) -> None:
        if cfg.modality not in model_config.modalities:
            raise ConfigError(f"dataset {name!r}: modality {cfg.modality!r} is not one of {sorted(model_config.modalities)}")
        self.name, self.cfg, self.model_config, self.train = name, cfg, model_config, train
        self.modality = cfg.modality
        self.classnames = read_classnames(cfg.classnames, Path(cfg.manifest).parent)
        kind = model_config.modalities[cfg.modality].get("type", cfg.modality)
        tpl = cfg.templates
        self.templates: list[str] = list(tpl) if isinstance(tpl, list) else list(templates_for(tpl or kind))
        if not self.templates:
            raise ConfigError(f"dataset {name!r}: no prompt templates")
        self.records = read_manifest(cfg, self.classnames)
        if any(r.anchor is not None for r in self.records) and cfg.anchor_modality not in model_config.modalities:
            raise ConfigError(f"dataset {name!r}: anchor_modality {cfg.anchor_modality!r} is not a model modality")
        self.labels: list[int] = [r.label for r in self.records]  # class index per sample, -1 when none
        self.ids: list[str] = [r.id for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, seed = key
        return self.get(int(index), int(seed), self.train)

    def get(self, index: int, seed: int, train: bool = True) -> dict[str, Any]:
        """Sample `index` with augmentation seed `seed` -> dict.

        Keys: ``id`` (str), ``inputs`` (modality tensor, e.g. (N, 3) points or (3, S, S) image; the V axis
        kept only when V > 1), ``label`` (int, -1 when none), ``text`` (caption, or a prompt of the label),
        ``anchor`` ((3, S, S) loaded with the same seed, or None), ``seed`` (int).
        """
        rec = self.records[index]
        anchor: Tensor | None = None
        if rec.anchor is not None and len(rec.paths) == 1:
            x, a = load_with_anchor(self.modality, rec.paths[0], self.cfg.anchor_modality, rec.anchor, train,
                                    self.model_config, seed)
            anchor = a[0]
        else:
            x = load_input(self.modality, rec.paths, train, self.model_config, seed)
            if rec.anchor is not None:
                anchor = load(self.cfg.anchor_modality, rec.anchor, train, config=self.model_config, seed=seed)[0]
        text = sample_text(rec.label, rec.caption, self.classnames, self.templates, seed)
        return {"id": rec.id, "inputs": x[0] if x.shape[0] == 1 else x, "label": rec.label, "text": text,
                "anchor": anchor, "seed": int(seed)}


@dataclass
class MicroBatch:
    """One dataset's share of an optimizer step (one modality)."""

    dataset: str  # dataset name
    modality: str  # model modality name
    ids: list[str]  # sample ids, (B,)
    inputs: Tensor  # (B, ...) stacked sample inputs
    labels: Tensor  # (B,) int64 class indices, -1 when none
    texts: list[str]  # (B,) prompts or captions
    anchors: Tensor | None  # (B, 3, S, S), or None when ANY sample of the batch lacks an anchor
    seeds: Tensor  # (B,) int64 augmentation seeds (teacher-cache keys with ids)
    teacher: dict[str, Tensor] = field(default_factory=dict)  # teacher name -> (B, T) cached features (join)

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "MicroBatch":
        """The batch with its tensors on `device`."""
        mv = lambda t: t.to(device, non_blocking=non_blocking)  # noqa: E731
        return MicroBatch(self.dataset, self.modality, list(self.ids), mv(self.inputs), mv(self.labels),
                          list(self.texts), None if self.anchors is None else mv(self.anchors), mv(self.seeds),
                          {k: mv(v) for k, v in self.teacher.items()})


def collate_samples(samples: Sequence[Mapping[str, Any]], dataset_name: str, modality: str) -> MicroBatch:
    """Sample dicts of :meth:`ManifestDataset.get` -> :class:`MicroBatch`.

    Anchors are all-or-nothing: when any sample has no anchor, ``anchors`` is None (the anchor losses then
    skip this micro-batch) rather than a partially filled tensor.
    """
    anchors = [s["anchor"] for s in samples]
    return MicroBatch(
        dataset=dataset_name, modality=modality, ids=[str(s["id"]) for s in samples],
        inputs=collate([s["inputs"] for s in samples]),
        labels=torch.tensor([int(s["label"]) for s in samples], dtype=torch.long),
        texts=[str(s["text"]) for s in samples],
        anchors=None if any(a is None for a in anchors) else collate(anchors),
        seeds=torch.tensor([int(s["seed"]) for s in samples], dtype=torch.long),
    )


class MixtureDataset:
    """Several datasets behind one key: ``mixture[step]`` turns a sampler step into micro-batches.

    ``step`` is ``{dataset: [(index, seed), ...]}`` as yielded by the mixed sampler; use it as
    ``DataLoader(mixture, sampler=sampler, batch_size=None, num_workers=n)`` to load steps in workers.
    """

    def __init__(self, datasets: Mapping[str, ManifestDataset], train: bool = True) -> None:
        self.datasets, self.train = dict(datasets), train

    def __getitem__(self, step: Mapping[str, Sequence[tuple[int, int]]]) -> dict[str, MicroBatch]:
        out = {}
        for name, pairs in step.items():
            ds = self.datasets[name]
            out[name] = collate_samples([ds.get(i, s, self.train) for i, s in pairs], name, ds.modality)
        return out


DATASETS: Registry[DatasetConfig] = Registry("dataset")  # name -> DatasetConfig, for configs naming datasets


def register_dataset(name: str, cfg: DatasetConfig | Mapping[str, Any]) -> DatasetConfig:
    """Register `cfg` (a DatasetConfig or its mapping) under `name`; returns the DatasetConfig."""
    if not isinstance(cfg, DatasetConfig):
        cfg = from_dict(DatasetConfig, cfg, f"datasets.{name}")
    return DATASETS.register(name)(cfg)


def build_datasets(
    mapping: Mapping[str, DatasetConfig | Mapping[str, Any] | str], model_config: ModelConfig, train: bool = True
) -> dict[str, ManifestDataset]:
    """Dataset name -> ManifestDataset; values are DatasetConfigs, their mappings, or registered names."""
    out = {}
    for name, spec in mapping.items():
        if isinstance(spec, str):
            cfg = DATASETS.get(spec)
        elif isinstance(spec, DatasetConfig):
            cfg = spec
        else:
            cfg = from_dict(DatasetConfig, spec, f"datasets.{name}")
        out[name] = ManifestDataset(name, cfg, model_config, train)
    return out
