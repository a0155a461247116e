"""Shared parts of the file loaders: the one error type, the loader registry, seeded randomness.

Every loader returns a float tensor with a leading *views* axis ``(V, ...)``: one view at training and
for single-view eval, several clips/crops for multi-clip eval (audio, video). The embeddings of a file's
views are averaged (and re-normalised) by the caller, as ImageBind and ViT-Lens do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from unialign.config import ModelConfig
from unialign.errors import UniAlignError
from unialign.registry import Registry


class PreprocessError(UniAlignError, ValueError):
    """A file cannot be turned into model input. The message always names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class LoadContext:
    """What a loader needs besides the file: the model config, the modality's name and options, the mode."""

    config: ModelConfig  # image size and mean/std (config.clip), the modality's entry (config.modalities)
    modality: str  # the modality's name in the config (e.g. "point")
    tokenizer: Mapping[str, Any] = field(default_factory=dict)  # the entry's tokenizer options (no "type")
    preprocess: Mapping[str, Any] = field(default_factory=dict)  # the entry's "preprocess:" mapping
    train: bool = False  # training augmentation on/off
    seed: int = 0  # seeds every random choice of this load (augmentation, crops, clips)
    generator: torch.Generator | None = None  # a generator seeded with `seed`


Loader = Callable[[Path, LoadContext], torch.Tensor]

LOADERS: Registry[Loader] = Registry("file loader")


def check_file(path: str | Path, suffixes: tuple[str, ...] | None = None) -> Path:
    """The path as a Path, after checking it exists, is a non-empty file and has a known suffix."""
    path = Path(path)
    if not path.exists():
        raise PreprocessError(path, "file not found")
    if not path.is_file():
        raise PreprocessError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise PreprocessError(path, "file is empty")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise PreprocessError(path, f"unknown extension {path.suffix or '(none)'!r}; expected one of {list(suffixes)}")
    return path


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with `seed` (or from torch's global RNG when None)."""
    g = torch.Generator()
    g.manual_seed(int(seed) if seed is not None else int(torch.randint(0, 2**62, (1,)).item()))
    return g


def rand_uniform(g: torch.Generator | None, low: float = 0.0, high: float = 1.0) -> float:
    """One uniform draw in [low, high) from `g`."""
    return low + (high - low) * float(torch.rand((), generator=g))


def rand_int(g: torch.Generator | None, low: int, high: int) -> int:
    """One integer draw in [low, high] from `g`."""
    return int(torch.randint(low, high + 1, (), generator=g))


def parse_options(cls: type, ctx: LoadContext, path: Path) -> Any:
    """The modality's ``preprocess:`` mapping as dataclass `cls` (unknown keys fail, naming the key)."""
    from unialign.config import from_dict
    from unialign.errors import ConfigError

    try:
        return from_dict(cls, ctx.preprocess, f"modalities.{ctx.modality}.preprocess")
    except ConfigError as exc:
        raise PreprocessError(path, f"bad preprocessing options: {exc}") from None
