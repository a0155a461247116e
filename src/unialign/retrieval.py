"""Search the shared embedding space: an index over embeddings of any modalities, composed queries, zero-shot
classification.

Every embedding in UniAlign's space is unit-norm, so the score of a match is a cosine similarity (an inner
product). :class:`EmbeddingIndex` holds ids, a modality per row and the vectors (N, E); it searches exactly,
with ``faiss.IndexFlatIP`` when faiss-cpu is installed (same results) or a torch matmul + topk otherwise.

Files are ``.npz`` archives of plain numpy arrays (str and float32 only), read with ``allow_pickle=False``:

* an *embeddings file* (``unialign embed``): ``ids`` (N,) str, ``embeddings`` (N, E) float32, ``modality``
  () str;
* an *index file* (``EmbeddingIndex.save``): ``ids`` (N,) str, ``modalities`` (N,) str, ``vectors`` (N, E)
  float32, ``format`` () str.

A *composed query* (paper Fig. 5 bottom, §4.7) is the re-normalised weighted sum of unit embeddings of several
inputs, e.g. an image and a sound: it retrieves targets that carry the attributes of all of them.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from unialign.errors import ConfigError, InputError

INDEX_FORMAT = "unialign-index-v1"
BACKENDS = ("auto", "torch", "faiss")


class Hit(NamedTuple):
    """One search result: the item's id, its modality and its cosine similarity to the query."""

    id: str
    modality: str
    score: float


def _faiss() -> Any | None:
    """The faiss module when faiss-cpu (or faiss-gpu) is importable, else None."""
    try:
        import faiss  # type: ignore[import-not-found]
    except ImportError:
        return None
    return faiss


def faiss_available() -> bool:
    """Whether the faiss backend can be used."""
    return _faiss() is not None


def _as_matrix(x: Tensor | np.ndarray | Sequence[float], name: str) -> Tensor:
    """`x` as a float32 CPU tensor (N, E); a single vector (E,) becomes (1, E). Non-finite values fail."""
    t = torch.as_tensor(np.asarray(x, dtype=np.float32) if not isinstance(x, Tensor) else x)
    t = t.detach().to("cpu", torch.float32)
    if t.dim() == 1:
        t = t.unsqueeze(0)
    if t.dim() != 2:
        raise InputError(f"{name} must be (E,) or (N, E), got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise InputError(f"{name} contains NaN or infinite values")
    return t


def _write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write `arrays` to `path` exactly (no '.npz' appended), atomically via a temporary sibling."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file, read without unpickling; unreadable files raise InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as exc:  # corrupt archive, object arrays (would need pickle), not an npz
        raise InputError(f"{path}: not a readable unialign .npz file ({type(exc).__name__}: {exc})") from None


def save_embeddings(path: str | Path, ids: Sequence[str], embeddings: Tensor | np.ndarray, modality: str) -> Path:
    """Write an embeddings file: ``ids`` (N,) str, ``embeddings`` (N, E) float32, ``modality`` () str."""
    emb = _as_matrix(embeddings, "embeddings").numpy()
    if emb.shape[0] != len(ids):
        raise InputError(f"{len(ids)} ids but {emb.shape[0]} embeddings")
    return _write_npz(path, {"ids": np.asarray(list(ids), dtype=np.str_), "embeddings": emb,
                             "modality": np.asarray(modality, dtype=np.str_)})


def read_embeddings(path: str | Path) -> tuple[list[str], list[str], Tensor]:
    """(ids, modality per row, vectors (N, E) float32) of an embeddings file or an index file."""
    data = _read_npz(path)
    if {"ids", "embeddings", "modality"} <= set(data):
        vectors, modalities = data["embeddings"], [str(data["modality"])] * len(data["ids"])
    elif {"ids", "modalities", "vectors"} <= set(data):
        vectors, modalities = data["vectors"], [str(m) for m in data["modalities"]]
    else:
        raise InputError(f"{path}: has arrays {sorted(data)}; expected ids/embeddings/modality "
                         "(unialign embed) or ids/modalities/vectors (unialign index)")
    ids = [str(i) for i in data["ids"]]
    if vectors.ndim != 2 or vectors.shape[0] != len(ids) or len(modalities) != len(ids):
        raise InputError(f"{path}: {len(ids)} ids, {len(modalities)} modalities, vectors of shape {vectors.shape}")
    return ids, modalities, torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))


class EmbeddingIndex:
    """Exact cosine search over unit embeddings (N, E) of any modalities, each row with an id and a modality.

    Args:
        ids: (N,) item ids (file paths for ``unialign embed`` output); need not be unique across modalities.
        modalities: (N,) the modality of each row.
        vectors: (N, E) embeddings; re-normalised to unit length if they are not.
        backend: ``"faiss"`` (IndexFlatIP), ``"torch"`` (matmul + topk) or ``"auto"`` (faiss when importable).
    """

    def __init__(self, ids: Sequence[str], modalities: Sequence[str], vectors: Tensor | np.ndarray,
                 backend: str = "auto") -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"unknown search backend {backend!r}; choose one of {list(BACKENDS)}")
        if backend == "faiss" and not faiss_available():
            raise ConfigError("search backend 'faiss' needs faiss-cpu (pip install faiss-cpu)")
        self.backend = "faiss" if backend == "faiss" or (backend == "auto" and faiss_available()) else "torch"
        self.ids = [str(i) for i in ids]
        self.modalities = [str(m) for m in modalities]
        if len(self.ids) == 0:
            raise InputError("an index needs at least one embedding")
        v = _as_matrix(vectors, "vectors")  # (N, E)
        # re-normalise only rows that are not unit-norm already, so saved indexes round-trip bit-exactly
        self.vectors = F.normalize(v, dim=-1) if bool(((v.norm(dim=-1) - 1).abs() > 1e-5).any()) else v
        if not (len(self.ids) == len(self.modalities) == self.vectors.shape[0]):
            raise InputError(f"{len(self.ids)} ids, {len(self.modalities)} modalities, "
                             f"{self.vectors.shape[0]} vectors: they must match")
        self._subsets: dict[str | None, tuple[Tensor, Any]] = {}  # filter -> (row numbers, faiss index)

    @classmethod
    def from_files(cls, paths: Sequence[str | Path], backend: str = "auto") -> "EmbeddingIndex":
        """An index over the rows of one or more embeddings/index files (all of one embedding width E)."""
        ids: list[str] = []
        modalities: list[str] = []
        parts: list[Tensor] = []
        for path in paths:
            i, m, v = read_embeddings(path)
            if parts and v.shape[0] and v.shape[1] != parts[0].shape[1]:
                raise InputError(f"{path}: embeddings have width {v.shape[1]}, earlier files {parts[0].shape[1]}")
            ids += i
            modalities += m
            if v.shape[0]:
                parts.append(v)
        if not parts:
            raise InputError("no embeddings in " + ", ".join(str(p) for p in paths))
        return cls(ids, modalities, torch.cat(parts), backend=backend)

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto") -> "EmbeddingIndex":
        """Read an index file written by :meth:`save` (or an embeddings file) without unpickling."""
        return cls.from_files([path], backend=backend)

    def save(self, path: str | Path) -> Path:
        """Write the index as one .npz of str and float32 arrays (see the module docstring)."""
        return _write_npz(path, {
            "ids": np.asarray(self.ids, dtype=np.str_),
            "modalities": np.asarray(self.modalities, dtype=np.str_),
            "vectors": self.vectors.numpy().astype(np.float32),
            "format": np.asarray(INDEX_FORMAT, dtype=np.str_),
        })

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        """Embedding width E."""
        return int(self.vectors.shape[1])

    def modality_counts(self) -> dict[str, int]:
        """Rows per modality."""
        out: dict[str, int] = {}
        for m in self.modalities:
            out[m] = out.get(m, 0) + 1
        return out

    def _subset(self, modality: str | None) -> tuple[Tensor, Any]:
        """(row numbers (n,), faiss index over those rows or None) for a modality filter, cached."""
        if modality not in self._subsets:
            if modality is None:
                rows = torch.arange(len(self))
            else:
                rows = torch.tensor([i for i, m in enumerate(self.modalities) if m == modality], dtype=torch.long)
                if rows.numel() == 0:
                    raise InputError(f"no items of modality {modality!r} in the index; it has {self.modality_counts()}")
            index = None
            if self.backend == "faiss":
                faiss = _faiss()
                index = faiss.IndexFlatIP(self.dim)
                index.add(np.ascontiguousarray(self.vectors[rows].numpy()))
            self._subsets[modality] = (rows, index)
        return self._subsets[modality]

    def search_batch(self, queries: Tensor | np.ndarray, k: int = 10, modality: str | None = None) -> list[list[Hit]]:
        """The `k` best items for each query of (Q, E) (or (E,)), best first; `modality` keeps only that one."""
        q = F.normalize(_as_matrix(queries, "query"), dim=-1)  # (Q, E)
        if q.shape[1] != self.dim:
            raise InputError(f"query has width {q.shape[1]}, the index {self.dim} (a different model?)")
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        rows, index = self._subset(modality)
        k = min(k, rows.numel())
        if index is not None:
            scores_np, local_np = index.search(np.ascontiguousarray(q.numpy()), k)  # (Q, k) each
            scores, local = torch.from_numpy(scores_np), torch.from_numpy(local_np).long()
        else:
            scores, local = (q @ self.vectors[rows].T).topk(k, dim=1)  # (Q, k) each
        found = rows[local]  # (Q, k) global row numbers
        return [[Hit(self.ids[r], self.modalities[r], float(s)) for r, s in zip(rs.tolist(), ss.tolist())]
                for rs, ss in zip(found, scores)]

    def search(self, query: Tensor | np.ndarray, k: int = 10,
               modality: str | None = None) -> list[Hit] | list[list[Hit]]:
        """Hits (id, modality, score) for a query (E,), best first; a list of such lists for queries (Q, E)."""
        single = torch.as_tensor(np.asarray(query) if not isinstance(query, Tensor) else query).dim() == 1
        hits = self.search_batch(query, k, modality)
        return hits[0] if single else hits


def compose(embeddings: Sequence[Tensor | np.ndarray], weights: Sequence[float] | None = None) -> Tensor:
    """Composed query (paper Fig. 5 bottom): unit(Σ_i w_i · unit(e_i)) -> (E,) float32.

    Args:
        embeddings: the parts, each (E,) or (1, E), of any modalities; each is normalised first so that
            the weights alone set their influence.
        weights: one per part (default: equal). Negative weights subtract an attribute.
    """
    if len(embeddings) == 0:
        raise InputError("compose needs at least one embedding")
    w = [1.0] * len(embeddings) if weights is None else [float(x) for x in weights]
    if len(w) != len(embeddings):
        raise InputError(f"{len(embeddings)} embeddings but {len(w)} weights")
    parts = [_as_matrix(e, f"embedding {i}") for i, e in enumerate(embeddings)]
    if any(p.shape[0] != 1 for p in parts) or len({p.shape[1] for p in parts}) != 1:
        raise InputError(f"compose takes single embeddings of one width, got shapes {[tuple(p.shape) for p in parts]}")
    total = sum(wi * F.normalize(p[0], dim=-1) for wi, p in zip(w, parts))  # (E,)
    if float(total.norm()) < 1e-6:
        raise InputError("the weighted sum of the query embeddings is zero; change the weights")
    return F.normalize(total, dim=-1)


@dataclass
class Classification:
    """Zero-shot classification of N inputs over C labels."""

    probs: Tensor  # (N, C) softmax over labels of logit_scale * cosine similarity
    labels: list[str]  # (C,) label names (or "0".."C-1" when none were given)

    def top(self, k: int = 5) -> list[list[tuple[str, float]]]:
        """For each input, the `k` most probable (label, probability), best first."""
        p, i = self.probs.topk(min(k, self.probs.shape[1]), dim=1)  # (N, k)
        return [[(self.labels[c], float(v)) for c, v in zip(ci.tolist(), pi.tolist())] for ci, pi in zip(i, p)]

    def predictions(self) -> list[str]:
        """The most probable label of each input (N,)."""
        return [self.labels[c] for c in self.probs.argmax(dim=1).tolist()]


def classify(embeddings: Tensor | np.ndarray, label_embeddings: Tensor | np.ndarray,
             labels: Sequence[str] | None = None, logit_scale: float = 100.0) -> Classification:
    """Zero-shot classification: softmax over labels of ``logit_scale · cos(x_n, t_c)`` (CLIP's rule).

    Args:
        embeddings: (N, E) or (E,) inputs of any modality.
        label_embeddings: (C, E) one text embedding per label (e.g. :func:`unialign.inference.encode_labels`).
        labels: (C,) label names.
        logit_scale: the temperature's inverse; CLIP's learned value is 100.
    """
    x = F.normalize(_as_matrix(embeddings, "embeddings"), dim=-1)  # (N, E)
    t = F.normalize(_as_matrix(label_embeddings, "label embeddings"), dim=-1)  # (C, E)
    if x.shape[1] != t.shape[1]:
        raise InputError(f"embeddings have width {x.shape[1]}, label embeddings {t.shape[1]}")
    names = [str(c) for c in range(t.shape[0])] if labels is None else [str(c) for c in labels]
    if len(names) != t.shape[0]:
        raise InputError(f"{t.shape[0]} label embeddings but {len(names)} labels")
    probs = (float(logit_scale) * x @ t.T).softmax(dim=1)  # (N, C)
    return Classification(probs=probs, labels=names)


__all__ = ["BACKENDS", "Classification", "EmbeddingIndex", "Hit", "classify", "compose", "faiss_available",
           "read_embeddings", "save_embeddings"]
