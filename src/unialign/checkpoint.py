"""UniAlign checkpoints: a directory that is written atomically and read without unpickling code.

Layout of a checkpoint directory::

    config.yaml          the full ModelConfig (with ``base``: where the frozen CLIP weights live)
    adapters.safetensors every tensor of the model outside the frozen CLIP (experts, routers,
                         tokenizers incl. BatchNorm buffers, projectors)
    base.safetensors     only when the config names no base path (random or self-pretrained CLIP,
                         e.g. tests and the demo): the frozen CLIP weights themselves
    train_state.pt       optional: optimizer / scheduler / sampler / RNG state (tensors and plain
                         containers only, read with ``torch.load(weights_only=True)``)
    meta.json            step, unialign version, anything the writer adds

It is first written to a hidden temporary sibling and then renamed into place, so a reader never sees
a half-written checkpoint; a killed writer leaves only a ``.tmp-*`` directory, which is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file

from unialign.config import load_model_config, to_dict
from unialign.errors import CheckpointError
from unialign.model import UniAlign

CONFIG, ADAPTERS, TRAIN_STATE, META = "config.yaml", "adapters.safetensors", "train_state.pt", "meta.json"
BASE = "base.safetensors"


def adapter_state_dict(model: UniAlign) -> dict[str, torch.Tensor]:
    """Every tensor of `model` that is not part of the frozen CLIP (``base.*``), detached and contiguous."""
    return {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if not k.startswith("base.")}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    model: UniAlign, folder: str | Path, train_state: dict[str, Any] | None = None, meta: dict[str, Any] | None = None
) -> Path:
    """Write `model`'s config and adapter weights (plus optional training state) atomically to `folder`."""
    from unialign import __version__

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
    try:
        (tmp / CONFIG).write_text(yaml.safe_dump(to_dict(model.config), sort_keys=False))
        save_file(adapter_state_dict(model), str(tmp / ADAPTERS))
        if not model.config.base:  # nothing to point at: the checkpoint carries its own frozen CLIP
            save_file({k: v.detach().contiguous().cpu() for k, v in model.base.state_dict().items()}, str(tmp / BASE))
        if train_state is not None:
            torch.save(train_state, tmp / TRAIN_STATE)
        (tmp / META).write_text(json.dumps({"unialign_version": __version__, **(meta or {})}, indent=2))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if folder.exists():  # replace: move the old one aside first (onto a fresh empty dir), then drop it
            old = Path(tempfile.mkdtemp(prefix=f".old-{folder.name}-", dir=folder.parent))
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
        _fsync_dir(folder.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def resolve_checkpoint(folder: str | Path) -> Path:
    """The checkpoint to read at `folder`: itself, or, when a writer was killed between moving the previous
    checkpoint aside and renaming the new one into place, the newest complete ``.old-<name>-*`` sibling."""
    folder = Path(folder)
    if folder.exists() or not folder.parent.is_dir():
        return folder
    olds = [p for p in folder.parent.glob(f".old-{folder.name}-*")
            if all((p / f).is_file() for f in (CONFIG, ADAPTERS, META))]
    return max(olds, key=lambda p: (p / META).stat().st_mtime) if olds else folder


def checkpoint_digest(folder: str | Path) -> str:
    """SHA-256 (first 16 hex digits) of the adapter weights and config: identifies a checkpoint in results."""
    folder = Path(folder)
    h = hashlib.sha256()
    for name in (CONFIG, ADAPTERS):
        h.update((folder / name).read_bytes())
    return h.hexdigest()[:16]


def load_checkpoint(
    folder: str | Path, base: str | Path | None = None, device: str | torch.device | None = None
) -> UniAlign:
    """A ready model from a checkpoint directory.

    The frozen CLIP weights come from `base` when given, else from the path recorded in the checkpoint's
    config; a checkpoint trained on random base weights (tests, demos without CLIP) needs neither.
    """
    from unialign.factory import create_model

    folder = resolve_checkpoint(folder)
    if not (folder / CONFIG).is_file():
        raise CheckpointError(f"{folder}: not a unialign checkpoint (no {CONFIG})")
    if not (folder / ADAPTERS).is_file():
        raise CheckpointError(f"{folder}: checkpoint has no {ADAPTERS}")
    cfg = load_model_config(folder / CONFIG)
    base_path = Path(base) if base is not None else (Path(cfg.base) if cfg.base else None)
    if base_path is None and (folder / BASE).is_file():
        base_path = folder / BASE
    if base_path is not None and not base_path.exists():
        raise CheckpointError(
            f"{folder}: its frozen CLIP weights {base_path} are missing; pass base=PATH (CLI: --base PATH)"
        )
    model = create_model(to_dict(cfg) | {"base": ""}, base=base_path)
    try:
        state = load_file(str(folder / ADAPTERS))
    except Exception as exc:  # corrupt or truncated file
        raise CheckpointError(f"cannot read {folder / ADAPTERS}: {exc}") from None
    expected = adapter_state_dict(model)
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [k for k in set(expected) & set(state) if expected[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{folder / ADAPTERS} does not fit its config: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"wrong shapes {sorted(wrong)[:5]}"
        )
    model.load_state_dict(state, strict=False)
    return model.to(device) if device is not None else model


def load_train_state(folder: str | Path) -> dict[str, Any] | None:
    """The training state saved with a checkpoint (None when there is none); never unpickles code."""
    path = resolve_checkpoint(folder) / TRAIN_STATE
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read {path} safely: {type(exc).__name__}: {exc}") from None
