"""What a benchmark reader returns (:class:`Benchmark` of :class:`Item` s) and helpers shared by readers."""

from __future__ import annotations

import csv
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, Sequence

from unialign.errors import UniAlignError

TASKS = ("classification", "multilabel", "retrieval")
MODALITY_TYPES = ("image", "video", "depth", "pointcloud", "audio")

# File suffixes per modality type, used to find media files and to guess a folder's modality.
SUFFIXES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "image": (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"),
    "video": (".mp4", ".avi", ".webm", ".mkv", ".mov"),
    "audio": (".wav", ".flac", ".ogg", ".oga", ".mp3"),
    "pointcloud": (".npy", ".npz", ".xyz", ".txt", ".ply", ".off", ".obj", ".stl"),
    "depth": (".png", ".tif", ".tiff", ".npy", ".pt"),
})


class BenchmarkError(UniAlignError, ValueError):
    """A benchmark's files are missing or do not have the expected layout; the message says what is expected."""


class BenchmarkUnavailable(BenchmarkError):
    """A benchmark needs an optional package that is not installed (the message names it)."""


@dataclass(frozen=True)
class Item:
    """One evaluation sample.

    path: the file to load (for archive members: the archive, see ``member``).
    label: class index for ``classification``; labels: class indices for ``multilabel``;
    captions: the paired texts for ``retrieval``; fold: the cross-validation fold (ESC-50);
    member: row of an array archive (ScanObjectNN's HDF5 ``data``) instead of a file of its own.
    """

    path: Path
    label: int | None = None
    labels: tuple[int, ...] = ()
    captions: tuple[str, ...] = ()
    fold: int | None = None
    member: int | None = None


@dataclass
class Benchmark:
    """A zero-shot benchmark as read from disk.

    name, split: identify it in results. modality_type: the loader/tokenizer type its files need
    (``image``, ``video``, ``depth``, ``pointcloud``, ``audio``). task: ``classification`` (top-1/5, mean
    per-class recall), ``multilabel`` (mAP) or ``retrieval`` (Recall@K both ways). classnames: output
    classes in label-index order; templates: prompt format strings; groups: output class -> member names
    whose max logit is the class's logit (NYU-D "others"); folds: evaluate each fold's items apart and
    average (ESC-50); preprocess: loader option overrides (e.g. SUN RGB-D's ``format: sunrgbd``);
    missing: listed samples whose file was not found (dropped while reading); notes: anything a reader
    wants in the results.
    """

    name: str
    split: str
    modality_type: str
    task: str
    items: list[Item]
    classnames: list[str] = field(default_factory=list)
    templates: tuple[str, ...] = ()
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    folds: tuple[int, ...] = ()
    preprocess: dict[str, object] = field(default_factory=dict)
    missing: int = 0
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise BenchmarkError(f"{self.name}: task must be one of {TASKS}, got {self.task!r}")
        if self.modality_type not in MODALITY_TYPES:
            raise BenchmarkError(
                f"{self.name}: modality type must be one of {MODALITY_TYPES}, got {self.modality_type!r}"
            )
        if not self.items:
            raise BenchmarkError(f"{self.name} ({self.split}): no samples found")
        if self.task != "retrieval" and not self.classnames:
            raise BenchmarkError(f"{self.name}: a {self.task} benchmark needs class names")
        if self.task == "retrieval" and any(not it.captions for it in self.items):
            raise BenchmarkError(f"{self.name}: every retrieval item needs at least one caption")

    def subset(self, n: int | None) -> "Benchmark":
        """The same benchmark with only the first `n` items (all when None)."""
        if n is None or n >= len(self.items):
            return self
        kw = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return Benchmark(**kw | {"items": self.items[:n]})


# ---------------------------------------------------------------------------------------------- helpers


def require_file(root: Path, names: Sequence[str], what: str, layout: str) -> Path:
    """The first of `names` (relative to `root`) that is a file, else a BenchmarkError showing `layout`."""
    for name in names:
        if (root / name).is_file():
            return root / name
    raise BenchmarkError(f"{root}: no {what} (looked for {', '.join(names)}). Expected layout:\n{layout}")


def require_dir(root: Path, names: Sequence[str], what: str, layout: str) -> Path:
    """The first of `names` (relative to `root`; "." is root itself) that is a directory."""
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise BenchmarkError(f"{root}: no {what} folder (looked for {', '.join(names)}). Expected layout:\n{layout}")


def read_csv_rows(path: Path, comment: str | None = None) -> list[dict[str, str]]:
    """Rows of a CSV with a header line, as dicts with stripped keys/values; `comment` lines are skipped."""
    with open(path, newline="", encoding="utf-8") as fh:
        lines = [ln for ln in fh if ln.strip() and not (comment and ln.lstrip().startswith(comment))]
    reader = csv.DictReader(lines, skipinitialspace=True)
    return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]


def pick_column(row: Mapping[str, str], names: Sequence[str], path: Path) -> str:
    """The first of `names` that is a column of `row`; BenchmarkError naming the file otherwise."""
    for name in names:
        if name in row:
            return name
    raise BenchmarkError(f"{path}: needs a column named one of {list(names)}; found {sorted(row)}")


def media_index(folder: Path, suffixes: Iterable[str]) -> dict[str, Path]:
    """Every file under `folder` (recursively) with one of `suffixes`, keyed by its stem."""
    suffixes = tuple(s.lower() for s in suffixes)
    return {p.stem: p for p in sorted(folder.rglob("*")) if p.suffix.lower() in suffixes and p.is_file()}


def youtube_file(index: Mapping[str, Path], ytid: str, start: str | float | None = None) -> Path | None:
    """Find a YouTube clip's file among common naming schemes: ``ID``, ``YID``, ``ID_START`` (int or
    ``%.1f`` / ``%.3f`` seconds), ``ID_START_END``-style prefixes. None when absent."""
    keys = [ytid, "Y" + ytid]
    if start not in (None, ""):
        s = float(start)
        for fmt in (f"{int(s)}", f"{s:.1f}", f"{s:.3f}", f"{int(s * 1000)}"):
            keys += [f"{ytid}_{fmt}", f"Y{ytid}_{fmt}"]
    for k in keys:
        if k in index:
            return index[k]
    return None


def normalise_label(label: str) -> str:
    """Scene labels compared case-, space- and hyphen-insensitively: ``"Living Room"`` -> ``living_room``."""
    return re.sub(r"[\s\-]+", "_", label.strip().lower())


def split_camel(name: str) -> str:
    """``ApplyEyeMakeup`` -> ``Apply Eye Makeup``; ``YoYo`` -> ``Yo Yo`` (UCF101 class ids to words)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name).strip()


def attach_layout(fn: Callable[..., Any], layout: str) -> None:
    """Put `layout` (the expected files) into `fn`'s docstring at its ``{layout}`` line."""
    fn.__doc__ = (fn.__doc__ or "").replace("    {layout}", textwrap.indent(layout, "    "))


def guess_modality_type(paths: Sequence[Path]) -> str:
    """The modality type most of `paths` belong to by suffix (``.png`` counts as image, ``.npy`` as points)."""
    votes: dict[str, int] = {}
    for p in paths:
        for kind in ("image", "video", "audio", "pointcloud"):
            if p.suffix.lower() in SUFFIXES[kind]:
                votes[kind] = votes.get(kind, 0) + 1
                break
    if not votes:
        raise BenchmarkError(f"cannot tell the modality of files like {[str(p) for p in paths[:3]]}; pass --modality")
    return max(votes, key=votes.__getitem__)


__all__ = [
    "Benchmark", "BenchmarkError", "BenchmarkUnavailable", "Item", "MODALITY_TYPES", "SUFFIXES", "TASKS",
    "attach_layout", "guess_modality_type", "media_index", "normalise_label", "pick_column", "read_csv_rows",
    "require_dir", "require_file", "split_camel", "youtube_file",
]
