"""Pluggable text towers: a local Hugging Face encoder (e.g. a sentence-transformers model) as the anchor.

The paper's text tower is CLIP's own causal text transformer (:class:`unialign.backbone.clip.TextTransformer`,
``clip.text.tower: clip``). With ``clip.text.tower: hf`` the frozen anchor is instead any
``transformers.AutoModel`` encoder stored in a local directory ``clip.text.hf_path`` (``config.json``,
weights, tokenizer files), for example the Hugging Face BERT directory of ``all-MiniLM-L6-v2``::

    texts --AutoTokenizer--> ids, mask --AutoModel--> last_hidden_state (B, L, H)
          --pooling (masked mean, or the [CLS] token)--> (B, H) --text_projection--> (B, E)

``mean`` pooling is sentence-transformers' attention-masked mean (``sum(h * m) / clamp(sum(m), 1e-9)``), so
with its pooling config the pooled features equal the sentence-transformers embedding before its optional
``Normalize`` module. sentence-transformers itself is never imported, and nothing is downloaded: every read
uses ``local_files_only=True``.

State-dict layout (under ``base.text.`` in a :class:`~unialign.model.UniAlign`): ``model.*`` is the Hugging
Face encoder with its own parameter names, ``text_projection`` the (H, E) map into the shared space. Both are
ordinary frozen base weights, so a checkpoint saved without a base path stores them in ``base.safetensors``.
The tokenizer is not a tensor: it is always read from ``hf_path``, which must therefore exist when such a
checkpoint is loaded again.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from unialign.config import TextConfig
from unialign.errors import CheckpointError, ConfigError, InputError

HF_PREFIX = "model."  # state-dict prefix of the wrapped Hugging Face encoder inside the tower
PROJECTION_SEED = 0  # seed of the text projection's initialisation (see init_text_projection)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def check_hf_dir(path: str | Path) -> Path:
    """The text tower directory `path`, checked to exist and hold a ``config.json``."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise CheckpointError(
            f"text tower clip.text.hf_path={str(path)!r}: directory not found ({folder}); it must be a local "
            "Hugging Face model directory (config.json, model.safetensors or pytorch_model.bin, tokenizer files)"
        )
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"text tower clip.text.hf_path={str(path)!r}: {folder / 'config.json'} is missing")
    return folder


def resolve_text_config(cfg: TextConfig) -> TextConfig:
    """`cfg` with, for ``tower: hf``, an absolute ``hf_path`` and ``hf_width`` read from its ``config.json``.

    A ``clip`` tower config is returned unchanged. Raises :class:`CheckpointError` naming the path when the
    directory or its ``config.json`` is missing, :class:`ConfigError` when ``hf_width`` disagrees with it.
    """
    if cfg.tower != "hf":
        return cfg
    folder = check_hf_dir(cfg.hf_path)
    hidden = _read_json(folder / "config.json").get("hidden_size")
    if not isinstance(hidden, int) or hidden <= 0:
        raise CheckpointError(f"{folder / 'config.json'}: no positive integer hidden_size for the text tower")
    if cfg.hf_width and cfg.hf_width != hidden:
        raise ConfigError(
            f"clip.text.hf_width={cfg.hf_width} but the encoder at {folder} has hidden_size {hidden}"
        )
    return replace(cfg, hf_path=str(folder.resolve()), hf_width=hidden)


def init_text_projection(hidden: int, embed_dim: int, seed: int = PROJECTION_SEED) -> Tensor:
    """A (hidden, embed_dim) semi-orthogonal matrix: the Q factor of a seeded Gaussian, sign-fixed.

    Its columns (hidden >= E) or rows (hidden < E) are orthonormal, so before any training the projection is
    an isometry of the pooled features (hidden <= E) or a random orthogonal projection onto E directions,
    which approximately preserves the encoder's cosine geometry (Johnson-Lindenstrauss); when hidden == E it
    is a rotation and cosine similarities are exactly those of the encoder. The seed is fixed so the same
    configuration always rebuilds the same projection, also when a checkpoint does not store base weights.
    """
    g = torch.Generator(device="cpu").manual_seed(seed)
    a = torch.randn(max(hidden, embed_dim), min(hidden, embed_dim), generator=g, dtype=torch.float64)
    q, r = torch.linalg.qr(a)  # q: (max, min) with orthonormal columns
    sign = torch.sign(torch.diagonal(r))
    q = q * torch.where(sign == 0, torch.ones_like(sign), sign)  # unique Q: positive diagonal of R
    q = q if hidden >= embed_dim else q.T
    return q.to(torch.float32).contiguous()


def _max_length(folder: Path, tokenizer: Any, config: Any) -> int:
    """Token limit: sentence-transformers' ``max_seq_length`` when present, else what tokenizer and model allow."""
    st = folder / "sentence_bert_config.json"
    if st.is_file():
        n = _read_json(st).get("max_seq_length")
        if isinstance(n, int) and n > 0:
            return n
    limits = [int(getattr(tokenizer, "model_max_length", 0) or 0),
              int(getattr(config, "max_position_embeddings", 0) or 0)]
    limits = [n for n in limits if 0 < n < 1_000_000]  # transformers uses ~1e30 for "no limit"
    return min(limits) if limits else 512


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """No transformers "Loading weights" progress bar while the tower loads (restored afterwards)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


class HFTextTower(nn.Module):
    """A frozen Hugging Face text encoder from a local directory, pooled and projected into the shared space.

    Args:
        cfg: the text config; ``cfg.hf_path`` names the directory, ``cfg.pooling`` the pooling.
        embed_dim: width E of the shared embedding space.

    :meth:`forward` gives pooled features (B, H), :meth:`encode` the unnormalised embedding (B, E). The
    encoder always runs in eval mode (no dropout), whatever ``train()`` says: it is a frozen anchor.
    Under a ``torch.device("meta")`` context (parameter counting) the encoder is built from its config only.
    """

    def __init__(self, cfg: TextConfig, embed_dim: int) -> None:
        super().__init__()
        folder = check_hf_dir(cfg.hf_path)
        try:
            from transformers import AutoConfig, AutoModel, AutoTokenizer
        except ImportError as exc:
            raise ConfigError(
                f"clip.text.tower 'hf' needs the transformers package ({exc}); pip install transformers"
            ) from None
        self.cfg = cfg
        self.path = folder
        try:
            hf_config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - unknown model type, malformed config.json
            raise CheckpointError(
                f"text tower {folder}: cannot read config.json: {type(exc).__name__}: {exc}"
            ) from None
        hidden = int(hf_config.hidden_size)
        if cfg.hf_width and cfg.hf_width != hidden:
            raise ConfigError(
                f"clip.text.hf_width={cfg.hf_width} but the encoder at {folder} has hidden_size {hidden}"
            )
        meta = torch.get_default_device().type == "meta"
        try:
            if meta:
                self.model = AutoModel.from_config(hf_config)
            else:
                with _quiet_progress():
                    self.model = AutoModel.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
        except Exception as exc:  # noqa: BLE001 - no weight file, truncated weights, wrong architecture
            raise CheckpointError(
                f"text tower {folder}: cannot load the encoder weights (model.safetensors or pytorch_model.bin): "
                f"{type(exc).__name__}: {exc}"
            ) from None
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - missing or malformed tokenizer files
            raise CheckpointError(
                f"text tower {folder}: cannot load its tokenizer (tokenizer.json or vocab.txt ...): "
                f"{type(exc).__name__}: {exc}"
            ) from None
        self.hidden_size = hidden
        self.max_length = _max_length(folder, self.tokenizer, hf_config)
        proj = torch.empty(hidden, embed_dim) if meta else init_text_projection(hidden, embed_dim)
        self.text_projection = nn.Parameter(proj)
        self.model.eval()

    def train(self, mode: bool = True) -> HFTextTower:
        """Set the mode of the tower; the wrapped encoder stays in eval mode (frozen, no dropout)."""
        super().train(mode)
        self.model.eval()
        return self

    @property
    def device(self) -> torch.device:
        return self.text_projection.device

    def tokenize(self, texts: Sequence[str]) -> dict[str, Tensor]:
        """Padded, truncated token tensors (``input_ids``, ``attention_mask``, ...) on the tower's device."""
        if isinstance(texts, (str, Tensor)):
            raise InputError("the Hugging Face text tower takes a list of strings (token ids are not supported)")
        texts = list(texts)
        if not all(isinstance(t, str) for t in texts):
            raise InputError("the Hugging Face text tower takes a list of strings")
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items()}

    def forward(self, texts: Sequence[str]) -> Tensor:
        """Pooled features (B, H) of a list of strings (masked mean, or the first token for ``cls``)."""
        if len(texts) == 0:
            return self.text_projection.new_zeros(0, self.hidden_size)
        batch = self.tokenize(texts)
        h = self.model(**batch).last_hidden_state  # (B, L, H)
        if self.cfg.pooling == "cls":
            return h[:, 0]
        mask = batch["attention_mask"].unsqueeze(-1).to(h.dtype)  # (B, L, 1)
        return (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def project(self, pooled: Tensor) -> Tensor:
        """Map pooled features (B, H) into the shared embedding space (B, E)."""
        return pooled.to(self.text_projection.dtype) @ self.text_projection

    def encode(self, texts: Sequence[str]) -> Tensor:
        """Unnormalised text embedding (B, E) of a list of strings."""
        return self.project(self(texts))
