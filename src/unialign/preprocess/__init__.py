"""Raw files in: one entry point ``load(modality, path, train=False, *, config=None, seed=None)``.

Each modality type has a loader module registered in :data:`LOADERS` under the tokenizer type it feeds
(``image``, ``video``, ``depth``, ``pointcloud``, ``audio``). All errors are :class:`PreprocessError`,
whose message names the file and what is wrong.
"""

from __future__ import annotations

from pathlib import Path

import torch

from unialign.config import ModelConfig, load_model_config
from unialign.errors import InputError
from unialign.preprocess.base import LOADERS, LoadContext, PreprocessError, make_generator


def _register_all() -> None:
    # Loader modules register themselves on import; imported lazily so optional I/O deps stay optional.
    from unialign.preprocess import audio, depth, image, pointcloud, video  # noqa: F401


def load(
    modality: str,
    path: str | Path,
    train: bool = False,
    *,
    config: ModelConfig | str | None = None,
    seed: int | None = None,
) -> torch.Tensor:
    """Read `path` as `modality` -> a float tensor (V, ...) ready for ``model.encode`` (after collation).

    Args:
        modality: a modality name of the config (e.g. ``"point"``; its ``type`` picks the loader).
        path: the file.
        train: apply the training augmentation of supplement Table 1.
        config: the model config (or its name) giving image size, normalisation and the modality's
            tokenizer and ``preprocess:`` options; default: the paper's ``unialign-vitb16``.
        seed: seeds every random choice (augmentation, crops, clips), so a teacher pass and a student
            pass see identical inputs (supplement §3.2). ``None`` draws a seed from torch's global RNG.
    """
    _register_all()
    if not isinstance(config, ModelConfig):
        config = load_model_config(config or "unialign-vitb16")
    if modality not in config.modalities:
        raise InputError(f"unknown modality {modality!r}; the config has {sorted(config.modalities)}")
    options = dict(config.modalities[modality])
    kind = options.pop("type", modality)
    preprocess = options.pop("preprocess", None) or {}
    gen = make_generator(seed)
    ctx = LoadContext(
        config=config, modality=modality, tokenizer=options, preprocess=preprocess, train=train,
        seed=int(gen.initial_seed()), generator=gen,
    )
    return LOADERS.get(kind)(Path(path), ctx)


def collate(samples: list[torch.Tensor]) -> torch.Tensor:
    """Stack per-file tensors (V, ...) of one modality into (B, V, ...); all must share one shape."""
    if not samples:
        raise InputError("cannot collate an empty list of samples")
    shapes = {tuple(s.shape) for s in samples}
    if len(shapes) > 1:
        raise InputError(f"samples of one batch must share a shape, got {sorted(shapes)}")
    return torch.stack(samples)


__all__ = ["LOADERS", "LoadContext", "PreprocessError", "collate", "load"]
