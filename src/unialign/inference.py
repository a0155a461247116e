"""Files in, embeddings out: batched, fault-tolerant encoding of raw files and texts with a trained model.

    paths --preprocess.load (eval, V views each)--> (B, V, ...) --model.encode--> (B*V, E)
          --mean over views, re-normalise--> (B, E) unit-norm

A file that cannot be read or decoded is reported in :attr:`EncodeResult.failures` and skipped; it never
stops the run. Zero-shot label embeddings follow CLIP's prompt ensembling (:func:`encode_labels`).
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from unialign.errors import InputError
from unialign.model import UniAlign
from unialign.preprocess import PreprocessError, load
from unialign.preprocess.text import templates_for
from unialign.retrieval import save_embeddings


@dataclass
class EncodeResult:
    """What :func:`encode_files` produced for one modality."""

    modality: str  # the modality the files were read as
    ids: list[str] = field(default_factory=list)  # (N,) the paths that worked, in input order
    embeddings: Tensor = field(default_factory=lambda: torch.zeros(0, 0))  # (N, E) float32 unit-norm, CPU
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, message) of every skipped file

    def save(self, path: str | Path) -> Path:
        """Write ``ids``, ``embeddings`` and ``modality`` to an .npz (see :mod:`unialign.retrieval`)."""
        return save_embeddings(path, self.ids, self.embeddings, self.modality)


def _device_of(model: UniAlign) -> torch.device:
    return next(model.parameters()).device


def _autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on `device` when asked, else a no-op."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _load_one(model: UniAlign, modality: str, path: str) -> tuple[Tensor | None, str | None]:
    """(views (V, ...), None) or (None, message) for one file; never raises for a bad file."""
    try:
        x = load(modality, path, train=False, config=model.config, seed=0)
    except PreprocessError as exc:
        return None, exc.problem
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # any decoder error a loader did not translate
        return None, f"cannot decode ({type(exc).__name__}: {exc})"
    if not torch.is_floating_point(x) or x.dim() < 2 or x.shape[0] < 1:
        return None, f"loader returned an unusable tensor of shape {tuple(x.shape)}"
    if not bool(torch.isfinite(x).all()):
        return None, "decoded data contains NaN or infinite values"
    return x, None


def _encode_views(model: UniAlign, modality: str, views: Tensor, device: torch.device, bf16: bool) -> Tensor:
    """Views (B, V, ...) -> file embeddings (B, E): encode all views, average them, re-normalise."""
    b, v = views.shape[:2]
    with _autocast(device, bf16):
        emb = model.encode(modality, views.flatten(0, 1).to(device))  # (B*V, E)
    emb = emb.float().view(b, v, -1).mean(dim=1)  # (B, E)
    return F.normalize(emb, dim=-1).cpu()


def encode_files(
    model: UniAlign,
    modality: str,
    paths: Sequence[str | Path],
    *,
    batch_size: int = 16,
    progress: bool = True,
    device: str | torch.device | None = None,
    bf16: bool = False,
) -> EncodeResult:
    """Embed files of one modality -> :class:`EncodeResult` (ids, (N, E) unit-norm float32, failures).

    Args:
        model: a UniAlign model (put in eval mode here; restored afterwards).
        modality: a modality of ``model.config.modalities`` (e.g. ``"point"``).
        paths: the files; each is loaded with the eval preprocessing (V views, seed 0).
        batch_size: files per forward pass (all their views go through together).
        progress: show a tqdm bar on stderr.
        device: where to run; default the model's device (the model is moved there if different).
        bf16: run the encoder under bfloat16 autocast (outputs are float32 either way).

    A file that fails to load, or whose batch fails to encode on its own, lands in ``failures``.
    """
    if modality not in model.modalities:
        raise InputError(f"unknown modality {modality!r}; this model encodes {model.modalities}")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    dev = torch.device(device) if device is not None else _device_of(model)
    if _device_of(model) != dev:
        model.to(dev)
    items = [str(p) for p in paths]
    done: dict[int, Tensor] = {}  # input position -> (E,)
    failed: dict[int, str] = {}
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), tqdm(total=len(items), desc=f"embed {modality}", unit="file",
                                          disable=not progress, file=sys.stderr) as bar:
            for start in range(0, len(items), batch_size):
                groups: dict[tuple[int, ...], list[tuple[int, Tensor]]] = {}  # views shape -> files
                for pos in range(start, min(start + batch_size, len(items))):
                    x, problem = _load_one(model, modality, items[pos])
                    if x is None:
                        failed[pos] = problem or "unknown error"
                    else:
                        groups.setdefault(tuple(x.shape), []).append((pos, x))
                for members in groups.values():
                    _encode_group(model, modality, members, dev, bf16, done, failed)
                bar.update(min(start + batch_size, len(items)) - start)
    finally:
        model.train(was_training)
    order = sorted(done)
    dim = model.config.clip.embed_dim
    emb = torch.stack([done[i] for i in order]) if order else torch.zeros(0, dim)
    return EncodeResult(
        modality=modality, ids=[items[i] for i in order], embeddings=emb.float(),
        failures=[(items[i], failed[i]) for i in sorted(failed)],
    )


def _encode_group(model: UniAlign, modality: str, members: list[tuple[int, Tensor]], device: torch.device,
                  bf16: bool, done: dict[int, Tensor], failed: dict[int, str]) -> None:
    """Encode files whose views share one shape together; if that fails, one by one to isolate the culprit."""
    try:
        emb = _encode_views(model, modality, torch.stack([x for _, x in members]), device, bf16)  # (B, E)
        for (pos, _), e in zip(members, emb):
            done[pos] = e
        return
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # e.g. a shape the tokenizer rejects
        if len(members) == 1:
            failed[members[0][0]] = f"cannot encode ({type(exc).__name__}: {exc})"
            return
    for pos, x in members:
        try:
            done[pos] = _encode_views(model, modality, x.unsqueeze(0), device, bf16)[0]
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:  # e.g. a shape the tokenizer rejects
            failed[pos] = f"cannot encode ({type(exc).__name__}: {exc})"


def encode_texts(model: UniAlign, texts: Sequence[str], batch_size: int = 64,
                 device: str | torch.device | None = None) -> Tensor:
    """Texts (N,) -> (N, E) float32 unit-norm CPU embeddings through the frozen CLIP text tower."""
    if isinstance(texts, str):
        raise InputError("encode_texts takes a list of strings, not a single string")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    if device is not None and _device_of(model) != torch.device(device):
        model.to(device)
    texts = list(texts)
    if not texts:
        return torch.zeros(0, model.config.clip.embed_dim)
    was_training = model.training
    model.eval()
    try:
        from unialign.eval.zeroshot import text_embeddings  # the one chunked encode-and-normalise

        return text_embeddings(model, texts, batch_size).cpu()
    finally:
        model.train(was_training)


def encode_labels(model: UniAlign, labels: Sequence[str], templates: Sequence[str] | str | None = None,
                  batch_size: int = 64) -> Tensor:
    """Label text embeddings (C, E) for zero-shot classification (CLIP prompt ensembling).

    Each label is filled into every template (a list, or a set name of :mod:`unialign.preprocess.text`,
    e.g. ``"pointcloud"``); the unit prompt embeddings are averaged per label and re-normalised. This is
    :func:`unialign.eval.zeroshot.class_embeddings`, the one implementation evaluation uses too.
    """
    from unialign.eval.zeroshot import class_embeddings

    return class_embeddings(model, list(labels), templates, batch_size=batch_size)


def default_templates(model: UniAlign, modality: str) -> tuple[str, ...]:
    """The prompt templates for a modality of `model`: the set named after its loader type."""
    options = model.config.modalities.get(modality, {})
    return templates_for(str(options.get("type", modality)))


def expand_paths(items: Sequence[str | Path]) -> list[Path]:
    """Files as given; folders replaced by every non-hidden file below them (recursive, sorted).

    Paths that do not exist are kept, so the loader reports them as failures ("file not found").
    """
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*")
                          if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts))
        else:
            out.append(p)
    return out


def report_failures(failures: Sequence[tuple[str, str]], total: int) -> None:
    """Print the skipped files to stderr, one per line, then a count."""
    for path, message in failures:
        print(f"unialign: skipped {path}: {message}", file=sys.stderr)
    if failures:
        print(f"unialign: {len(failures)} of {total} file(s) failed", file=sys.stderr)


def embed_cli(checkpoint: str | Path, modality: str, files: Sequence[str | Path], out: str | Path,
              base: str | Path | None = None, batch_size: int = 16, *, progress: bool = True,
              device: str | None = None, bf16: bool = False) -> int:
    """``unialign embed``: embed files/folders with a checkpoint and write an embeddings .npz.

    Returns 0 when every file worked, 1 when some failed (the good ones are still written; the failures
    are printed to stderr). Nothing is written when no file worked. Config errors raise UniAlignError.
    """
    from unialign.checkpoint import load_checkpoint

    paths = expand_paths(files)
    if not paths:
        raise InputError("no input files (empty folders?)")
    model = load_checkpoint(checkpoint, base=base, device=device)
    if modality not in model.modalities:
        raise InputError(f"unknown modality {modality!r}; the checkpoint encodes {model.modalities}")
    result = encode_files(model, modality, paths, batch_size=batch_size, progress=progress, bf16=bf16)
    report_failures(result.failures, len(paths))
    if not result.ids:
        print("unialign: error: no file could be embedded; nothing written", file=sys.stderr)
        return 1
    result.save(out)
    print(f"wrote {len(result.ids)} {modality} embedding(s) of width {result.embeddings.shape[1]} to {out}")
    return 1 if result.failures else 0


__all__ = ["EncodeResult", "default_templates", "embed_cli", "encode_files", "encode_labels", "encode_texts",
           "expand_paths", "report_failures"]
