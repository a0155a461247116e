"""The modality tokenizer contract and registry (supplement §2.1).

A modality is one file: a :class:`ModalityTokenizer` subclass registered by name with
``@MODALITY_TOKENIZERS.register("name")`` and an ``Options`` dataclass for its config keys. It maps a
preprocessed batch to tokens (B, L, D) whose first token is CLIP's class token; the shared frozen trunk,
the modality's expert set and the shared head do the rest. Nothing else in the model branches on modality.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import torch
from torch import Tensor, nn

from unialign.backbone.clip import VisionTransformer, resize_pos_embed
from unialign.config import VisionConfig, from_dict
from unialign.errors import ConfigError, InputError
from unialign.registry import Registry


@dataclass(frozen=True)
class NoOptions:
    """A tokenizer without options."""


class ModalityTokenizer(nn.Module):
    """Turns a batch of one modality into transformer tokens (B, 1 + N, D), class token first.

    Subclasses set ``Options`` (their config dataclass), ``input_shape`` (a readable description such as
    ``"(B, 3, H, W)"``), ``input_ndim`` and implement :meth:`tokens`. Weights derived from the frozen CLIP
    (inflated patch kernels, copied position tables) are set in :meth:`init_from_base`, which runs after
    the base weights are loaded.
    """

    Options: ClassVar[type] = NoOptions
    input_shape: ClassVar[str] = "(B, ...)"
    input_ndim: ClassVar[int] = 0
    channels: ClassVar[tuple[int, int] | None] = None  # (dim, allowed size): checked when set

    def __init__(self, name: str, options: Any, vision: VisionConfig) -> None:
        super().__init__()
        self.name = name
        self.options = options
        self.vision = vision

    def init_from_base(self, base: VisionTransformer) -> None:
        """Initialise weights that derive from the frozen CLIP (default: nothing)."""

    def check_input(self, x: Tensor) -> None:
        """Raise :class:`InputError` naming the modality and expected shape when `x` does not fit."""
        if not isinstance(x, Tensor):
            raise InputError(f"{self.name}: expected a tensor {self.input_shape}, got {type(x).__name__}")
        if x.ndim != self.input_ndim:
            raise InputError(f"{self.name}: expected a tensor of shape {self.input_shape}, got {tuple(x.shape)}")
        if self.channels is not None and x.shape[self.channels[0]] != self.channels[1]:
            raise InputError(
                f"{self.name}: expected {self.channels[1]} channel(s) at dim {self.channels[0]} of "
                f"{self.input_shape}, got shape {tuple(x.shape)}"
            )
        if x.shape[0] == 0:
            raise InputError(f"{self.name}: empty batch")
        if x.is_floating_point() and not torch.isfinite(x).all():
            raise InputError(f"{self.name}: input contains NaN or inf")

    def tokens(self, x: Tensor, base: VisionTransformer) -> Tensor:
        """Tokens (B, 1 + N, D) of a checked batch; implemented by each modality."""
        raise NotImplementedError

    def forward(self, x: Tensor, base: VisionTransformer) -> Tensor:
        self.check_input(x)
        return self.tokens(x, base)


class LearnedPosTokenizer(ModalityTokenizer):
    """Shared part of tokenizers with their own learnable position table (depth, audio).

    ``pos_embed`` (1 + N_max, D) holds the class-token position first; :meth:`add_pos_and_cls` adds it
    to patch tokens (B, N, D), resampling a square 2-D table when the grid differs.
    """

    def __init__(self, name: str, options: Any, vision: VisionConfig, num_positions: int) -> None:
        super().__init__(name, options, vision)
        self.pos_embed = nn.Parameter(torch.empty(1 + num_positions, vision.width))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def add_pos_and_cls(
        self, tokens: Tensor, base: VisionTransformer, grid_hw: tuple[int, int] | None = None
    ) -> Tensor:
        """tokens (B, N, D) + position table, with CLIP's class token prepended -> (B, 1 + N, D)."""
        n = tokens.shape[1]
        if grid_hw is not None:
            pos = resize_pos_embed(self.pos_embed[1:], grid_hw)
        else:
            if n > self.pos_embed.shape[0] - 1:
                raise InputError(
                    f"{self.name}: {n} tokens exceed the {self.pos_embed.shape[0] - 1} positions this tokenizer has"
                )
            pos = self.pos_embed[1 : 1 + n]
        return base.prepend_cls(tokens + pos.to(tokens.dtype), cls_pos=self.pos_embed[0])


MODALITY_TOKENIZERS: Registry[type[ModalityTokenizer]] = Registry("modality tokenizer")


def build_tokenizer(name: str, spec: Mapping[str, Any], vision: VisionConfig) -> ModalityTokenizer:
    """Build modality `name` from its config mapping (``type`` picks the tokenizer; the rest are options)."""
    spec = dict(spec)
    kind = spec.pop("type", name)
    spec.pop("preprocess", None)  # file-loading options belong to unialign.preprocess
    cls = MODALITY_TOKENIZERS.get(kind)
    try:
        options = from_dict(cls.Options, spec, f"modalities.{name}")
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - an options class's own validation
        raise ConfigError(f"modalities.{name}: {exc}") from None
    return cls(name, options, vision)
