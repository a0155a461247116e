"""UniAlign: one frozen CLIP shared by every modality, adapted by modality-aware MoE-LoRA (paper §3.1).

    raw batch --tokenizer[m]--> tokens (B, L, D) --frozen CLIP blocks + MoE_m (Eq. 7-9)--> class token
    --frozen ln_post + projection--> unit-norm embedding (B, E) in CLIP's space

Text is the anchor: it goes through the frozen text tower, CLIP's own (paper) or, with ``clip.text.tower: hf``,
a local Hugging Face encoder such as a sentence-transformers model (:mod:`unialign.backbone.text_towers`).
Trainable: the experts and routers, the modality tokenizers' own weights and the teacher feature projectors;
every CLIP weight is frozen.

LiT-style base pretraining (an image tower trained against a frozen text encoder, e.g. the demo's small ViT
against all-MiniLM-L6-v2) unfreezes base weights explicitly::

    model = create_model(cfg)                     # cfg.base == "": the checkpoint stores base.safetensors
    model.base.visual.requires_grad_(True)        # the image tower
    model.set_text_projection_trainable(True)     # the text tower's projection into the shared space
    opt = torch.optim.AdamW(model.trainable_parameters())

The text encoder itself stays frozen (and, for the ``hf`` tower, in eval mode). Base weights are saved only
when ``config.base`` is empty, so train them only on such a model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unialign.backbone.clip import CLIP, TextTransformer
from unialign.backbone.convert import check_state_dict
from unialign.backbone.text_towers import HF_PREFIX, resolve_text_config
from unialign.config import ModelConfig, TeacherConfig
from unialign.errors import ConfigError, InputError
from unialign.modalities import build_tokenizer
from unialign.moe.moe_lora import MoELoRA


class FeatureProjector(nn.Module):
    """Maps the student embedding (B, E) to a teacher's feature width (B, T) (supplement §2.2, Eq. 13).

    ``mlp``: Linear -> GELU -> Linear (default); ``linear``: one Linear (ablation, supplement Table 2).
    """

    def __init__(self, in_dim: int, cfg: TeacherConfig) -> None:
        super().__init__()
        if cfg.projector == "linear":
            self.net: nn.Module = nn.Linear(in_dim, cfg.dim)
        else:
            hidden = cfg.hidden_dim or cfg.dim
            self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, cfg.dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class UniAlign(nn.Module):
    """The unified multimodal encoder. Build it with :func:`unialign.create_model`."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        text = resolve_text_config(cfg.clip.text)  # hf tower: absolute hf_path, hf_width from its config.json
        if text != cfg.clip.text:
            cfg = dataclasses.replace(cfg, clip=dataclasses.replace(cfg.clip, text=text))
        self.config = cfg
        self.base = CLIP(cfg.clip)
        self.base.requires_grad_(False)
        self.tokenizers = nn.ModuleDict(
            {name: build_tokenizer(name, spec, cfg.clip.vision) for name, spec in cfg.modalities.items()}
        )
        width = cfg.clip.vision.width
        self.moe = nn.ModuleList([MoELoRA(width, list(cfg.modalities), cfg.moe) for _ in range(cfg.clip.vision.layers)])
        self.projectors = nn.ModuleDict(
            {name: FeatureProjector(cfg.clip.embed_dim, t) for name, t in cfg.teachers.items()}
        )
        self.adapters_enabled = True
        self.set_grad_checkpointing(cfg.grad_checkpointing)
        self._text_tokenizer = None

    # ------------------------------------------------------------------ set-up

    @property
    def modalities(self) -> list[str]:
        """The extended modalities this model encodes (text is always available too)."""
        return list(self.tokenizers)

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each vision block in backward (non-reentrant, so adapter gradients survive)."""
        self.base.visual.transformer.grad_checkpointing = enabled

    @torch.no_grad()
    def load_base_state_dict(self, state_dict: dict[str, Tensor], source: Path | str = "<state dict>") -> None:
        """Load frozen CLIP weights (unialign naming), checking every name and shape first.

        With the ``hf`` text tower, a CLIP checkpoint (no ``text.model.*`` tensors) supplies the image tower
        and ``logit_scale`` only: its CLIP text weights are dropped and the tower keeps the encoder read from
        ``hf_path`` and its seeded projection. A full unialign base (``base.safetensors``) must fit exactly.
        """
        if self.config.clip.text.tower != "clip" and not any(k.startswith("text." + HF_PREFIX) for k in state_dict):
            own = {k: v for k, v in self.base.state_dict().items() if k.startswith("text.")}
            state_dict = {k: v for k, v in state_dict.items() if not k.startswith("text.")} | own
        check_state_dict(self.base.state_dict(), state_dict, Path(source))
        self.base.load_state_dict(state_dict, strict=True)

    @torch.no_grad()
    def init_from_base(self) -> None:
        """Initialise weights derived from the frozen CLIP: tokenizer kernels, ``init="clip"`` experts."""
        for tok in self.tokenizers.values():
            tok.init_from_base(self.base.visual)
        if self.config.moe.init == "clip":
            for moe, block in zip(self.moe, self.base.visual.transformer.resblocks):
                moe.init_from_ffn(block.mlp.c_fc.weight)

    def named_trainable_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """(name, parameter) for every parameter that trains (experts, routers, tokenizers, projectors)."""
        return ((n, p) for n, p in self.named_parameters() if p.requires_grad)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters an optimizer should update; never a CLIP weight (unless unfrozen on purpose)."""
        return [p for _, p in self.named_trainable_parameters()]

    def set_text_projection_trainable(self, flag: bool = True) -> None:
        """Train (or freeze again) the text tower's projection ``base.text.text_projection`` (LiT-style base
        pretraining; see the module docstring). The text encoder itself stays frozen.

        Raises :class:`ConfigError` when `flag` is set on a model whose config names a base path: its
        checkpoints do not store base weights, so the trained projection would be lost on saving.
        """
        if flag and self.config.base:
            raise ConfigError(
                f"cannot train the text projection of a model whose base weights come from {self.config.base!r}: "
                "save_checkpoint stores base weights only when config.base is empty (set model.config = "
                "dataclasses.replace(model.config, base='') to make the checkpoint carry them)"
            )
        self.base.text.text_projection.requires_grad_(flag)

    @contextlib.contextmanager
    def disable_adapters(self) -> Iterator[None]:
        """Within the block, run the frozen CLIP trunk without the MoE-LoRA branch."""
        previous, self.adapters_enabled = self.adapters_enabled, False
        try:
            yield
        finally:
            self.adapters_enabled = previous

    # ------------------------------------------------------------------ encoding

    def _adapters(self, modality: str) -> Sequence | None:
        if not self.adapters_enabled:
            return None
        return [functools.partial(moe, modality=modality) for moe in self.moe]

    def forward_features(self, modality: str, x: Tensor) -> Tensor:
        """Pooled class-token features (B, D) after ``ln_post`` for a batch of one extended modality."""
        if modality not in self.tokenizers:
            raise InputError(
                f"unknown modality {modality!r}; this model encodes {self.modalities} and 'text'"
            )
        tokens = self.tokenizers[modality](x, self.base.visual)  # (B, L, D)
        return self.base.visual.encode_tokens(tokens, self._adapters(modality))

    def encode(self, modality: str, x: Tensor | Sequence[str], normalize: bool = True) -> Tensor:
        """Embedding (B, E) of a batch of one modality in the shared space; unit-norm by default."""
        if modality == "text":
            return self.encode_text(x, normalize=normalize)  # type: ignore[arg-type]
        emb = self.base.visual.project(self.forward_features(modality, x))
        return F.normalize(emb, dim=-1) if normalize else emb

    def forward(self, modality: str, x: Tensor, normalize: bool = True) -> Tensor:
        """Same as :meth:`encode` (so DDP can wrap the model)."""
        return self.encode(modality, x, normalize)

    @property
    def text_tokenizer(self):  # noqa: ANN201 - ClipTokenizer, imported lazily
        """The CLIP BPE tokenizer (from the base checkpoint directory when it has one, else bundled); for the
        ``hf`` text tower, its Hugging Face tokenizer (from ``hf_path``)."""
        if not isinstance(self.base.text, TextTransformer):
            return self.base.text.tokenizer
        if self._text_tokenizer is None:
            from unialign.backbone.tokenizer import ClipTokenizer

            base = Path(self.config.base) if self.config.base else None
            folder = base if base is not None and base.is_dir() else None
            self._text_tokenizer = ClipTokenizer.from_dir_or_default(
                folder, context_length=self.config.clip.text.context_length
            )
        return self._text_tokenizer

    def encode_text(self, texts: Sequence[str] | Tensor, normalize: bool = True) -> Tensor:
        """Embedding (B, E) of strings (tokenized with CLIP BPE) or of token ids (B, L).

        With the ``hf`` text tower only strings are accepted (its own tokenizer runs inside the tower).
        """
        if isinstance(texts, str):
            raise InputError("encode_text takes a list of strings, not a single string")
        if not isinstance(self.base.text, TextTransformer):
            if isinstance(texts, Tensor):
                raise InputError(
                    f"the {self.config.clip.text.tower!r} text tower ({self.config.clip.text.hf_path}) takes a list "
                    "of strings; token ids are not supported"
                )
            emb = self.base.text.encode(list(texts))
            return F.normalize(emb, dim=-1) if normalize else emb
        if isinstance(texts, Tensor):
            ids = texts
        else:
            ids = self.text_tokenizer(list(texts))
        device = self.base.text.positional_embedding.device
        emb = self.base.text(ids.to(device))
        return F.normalize(emb, dim=-1) if normalize else emb

    def encode_files(self, modality: str, paths: Sequence[str | Path], **kwargs: object):  # noqa: ANN201
        """Embed files of one modality: see :func:`unialign.inference.encode_files` (bad files are skipped
        and reported in the result's ``failures``)."""
        from unialign.inference import encode_files

        return encode_files(self, modality, list(paths), **kwargs)

    def project_to_teacher(self, teacher: str, embedding: Tensor) -> Tensor:
        """Student embedding (B, E) mapped to teacher `teacher`'s feature space (B, T)."""
        if teacher not in self.projectors:
            raise InputError(f"unknown teacher {teacher!r}; configured: {sorted(self.projectors)}")
        return self.projectors[teacher](embedding)

    @property
    def logit_scale(self) -> Tensor:
        """CLIP's (frozen) learned temperature, exponentiated."""
        return self.base.logit_scale.exp()
