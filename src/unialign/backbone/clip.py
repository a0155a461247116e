"""CLIP vision and text transformers in plain torch (``F.scaled_dot_product_attention``).

Parameter names follow OpenAI / open_clip (``visual.transformer.resblocks.N.attn.in_proj_weight`` ...),
so their state dicts load by name; :mod:`unialign.backbone.convert` maps Hugging Face names onto these.
The block exposes a hook for the paper's MoE-LoRA branch, parallel to the frozen FFN (Eq. 7):

    X'  = X  + MSA(LN(X))                        (Eq. 1)
    X'' = X' + FFN(LN(X')) + MoE(LN(X'))          (Eq. 7; MoE omitted when no adapter is given)
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from unialign.config import ClipConfig, TextConfig, VisionConfig

Adapter = Callable[[Tensor], Tensor]


class QuickGELU(nn.Module):
    """OpenAI CLIP's activation ``x * sigmoid(1.702 x)``."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


def make_act(name: str) -> nn.Module:
    """Activation module by name (``quick_gelu`` or ``gelu``)."""
    if name == "quick_gelu":
        return QuickGELU()
    if name == "gelu":
        return nn.GELU()
    raise ValueError(f"unknown activation {name!r}; expected 'quick_gelu' or 'gelu'")


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``[q; k; v]`` input projection (open_clip layout)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
        b, n, d = x.shape  # (B, L, D)
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, L, 3D)
        q, k, v = qkv.view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, L, D/H)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
        return self.out_proj(o.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    """The frozen FFN: ``c_proj(act(c_fc(h)))``."""

    def __init__(self, width: int, hidden: int, act: str) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, hidden)
        self.gelu = make_act(act)
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, h: Tensor) -> Tensor:
        return self.c_proj(self.gelu(self.c_fc(h)))


class ResidualAttentionBlock(nn.Module):
    """Pre-LN transformer block with an optional adapter parallel to the FFN (Eq. 1 and 7)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, act: str, ln_eps: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, eps=ln_eps)
        self.attn = Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width, eps=ln_eps)
        self.mlp = Mlp(width, int(width * mlp_ratio), act)

    def forward(
        self, x: Tensor, adapter: Adapter | None = None, attn_mask: Tensor | None = None, is_causal: bool = False
    ) -> Tensor:
        x = x + self.attn(self.ln_1(x), attn_mask, is_causal)  # Eq. 1, (B, L, D)
        h = self.ln_2(x)
        y = self.mlp(h)
        if adapter is not None:
            y = y + adapter(h)  # Eq. 7: the MoE sees the same LN(X') as the FFN
        return x + y


class Transformer(nn.Module):
    """A stack of blocks; runs each with its own adapter and optional activation checkpointing."""

    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float, act: str, ln_eps: float) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(
            [ResidualAttentionBlock(width, heads, mlp_ratio, act, ln_eps) for _ in range(layers)]
        )
        self.grad_checkpointing = False

    def forward(
        self,
        x: Tensor,
        adapters: Sequence[Adapter | None] | None = None,
        attn_mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        for i, block in enumerate(self.resblocks):
            adapter = adapters[i] if adapters is not None else None
            if self.grad_checkpointing and torch.is_grad_enabled():
                # Non-reentrant: adapter parameters behind frozen inputs still get gradients.
                x = checkpoint(block, x, adapter, attn_mask, is_causal, use_reentrant=False)
            else:
                x = block(x, adapter, attn_mask, is_causal)
        return x


def resize_pos_embed(pos: Tensor, grid_hw: tuple[int, int]) -> Tensor:
    """Bicubically resample square 2-D position embeddings (N, D) to a (gh, gw) grid -> (gh*gw, D)."""
    n, d = pos.shape
    side = int(math.isqrt(n))
    if side * side != n:
        raise ValueError(f"position embedding of {n} entries is not a square grid")
    if (side, side) == tuple(grid_hw):
        return pos
    grid = pos.reshape(1, side, side, d).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=grid_hw, mode="bicubic", align_corners=False).to(pos.dtype)
    return grid.permute(0, 2, 3, 1).reshape(grid_hw[0] * grid_hw[1], d)


class VisionTransformer(nn.Module):
    """CLIP image tower: patch embedding, ``ln_pre``, blocks, ``ln_post`` on the class token, projection."""

    def __init__(self, cfg: VisionConfig, embed_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.conv1 = nn.Conv2d(3, w, kernel_size=cfg.patch_size, stride=cfg.patch_size, bias=False)
        scale = w**-0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(w))
        self.positional_embedding = nn.Parameter(scale * torch.randn(cfg.grid**2 + 1, w))
        self.ln_pre = nn.LayerNorm(w, eps=cfg.ln_eps)
        self.transformer = Transformer(w, cfg.layers, cfg.heads, cfg.mlp_ratio, cfg.act, cfg.ln_eps)
        self.ln_post = nn.LayerNorm(w, eps=cfg.ln_eps)
        self.proj = nn.Parameter(scale * torch.randn(w, embed_dim))

    def spatial_pos_embed(self, grid_hw: tuple[int, int], table: Tensor | None = None) -> Tensor:
        """Patch position embeddings (gh*gw, D) of `table` (default: CLIP's), resampled to the grid."""
        table = self.positional_embedding if table is None else table
        return resize_pos_embed(table[1:], grid_hw)

    def prepend_cls(self, tokens: Tensor, cls_pos: Tensor | None = None) -> Tensor:
        """Prepend CLIP's class token (plus its position embedding, or `cls_pos`) to tokens (B, N, D)."""
        pos = self.positional_embedding[0] if cls_pos is None else cls_pos
        cls = (self.class_embedding + pos).to(tokens.dtype).expand(tokens.shape[0], 1, -1)
        return torch.cat([cls, tokens], dim=1)  # (B, 1 + N, D)

    def embed_image(self, x: Tensor) -> Tensor:
        """Image tokens (B, 1 + gh*gw, D) from pixels (B, 3, H, W): CLIP's frozen image tokenizer."""
        p = self.conv1(x)  # (B, D, gh, gw)
        grid_hw = (p.shape[-2], p.shape[-1])
        tokens = p.flatten(2).transpose(1, 2) + self.spatial_pos_embed(grid_hw).to(p.dtype)
        return self.prepend_cls(tokens)

    def encode_tokens(
        self, tokens: Tensor, adapters: Sequence[Adapter | None] | None = None, attn_mask: Tensor | None = None
    ) -> Tensor:
        """Run ``ln_pre`` and the blocks on tokens (B, L, D); returns the pooled class token (B, D)."""
        x = self.transformer(self.ln_pre(tokens), adapters, attn_mask)
        return self.ln_post(x[:, 0])

    def project(self, pooled: Tensor) -> Tensor:
        """Map pooled features (B, D) into the shared embedding space (B, E)."""
        return pooled @ self.proj

    def forward(self, x: Tensor) -> Tensor:
        """Unnormalised image embedding (B, E)."""
        return self.project(self.encode_tokens(self.embed_image(x)))


class TextTransformer(nn.Module):
    """CLIP text tower: causal blocks, ``ln_final``, pooled at the first end-of-text token, projection."""

    def __init__(self, cfg: TextConfig, embed_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.width)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(cfg.context_length, cfg.width))
        self.transformer = Transformer(cfg.width, cfg.layers, cfg.heads, cfg.mlp_ratio, cfg.act, cfg.ln_eps)
        self.ln_final = nn.LayerNorm(cfg.width, eps=cfg.ln_eps)
        self.text_projection = nn.Parameter(cfg.width**-0.5 * torch.randn(cfg.width, embed_dim))
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def forward(self, ids: Tensor, adapters: Sequence[Adapter | None] | None = None) -> Tensor:
        """Unnormalised text embedding (B, E) from token ids (B, L), L <= context_length."""
        if ids.ndim != 2 or ids.shape[1] > self.cfg.context_length:
            raise ValueError(
                f"text ids must have shape (B, L<={self.cfg.context_length}), got {tuple(ids.shape)}"
            )
        x = self.token_embedding(ids) + self.positional_embedding[: ids.shape[1]]  # (B, L, D)
        x = self.ln_final(self.transformer(x, adapters, is_causal=True))
        is_eot = ids == self.cfg.eot_token_id
        # First end-of-text position; rows without one fall back to the highest id (OpenAI's rule).
        pos = torch.where(is_eot.any(1), is_eot.int().argmax(1), ids.argmax(1))
        return x[torch.arange(ids.shape[0], device=ids.device), pos] @ self.text_projection


def build_text_tower(cfg: TextConfig, embed_dim: int) -> nn.Module:
    """The text tower `cfg.tower` names: CLIP's :class:`TextTransformer` (``clip``) or an
    :class:`~unialign.backbone.text_towers.HFTextTower` (``hf``, a local Hugging Face encoder)."""
    if cfg.tower == "hf":
        from unialign.backbone.text_towers import HFTextTower

        return HFTextTower(cfg, embed_dim)
    return TextTransformer(cfg, embed_dim)


class CLIP(nn.Module):
    """A CLIP model: image tower ``visual``, text tower ``text`` and the learned ``logit_scale``.

    ``text`` is CLIP's text transformer or, with ``cfg.text.tower == "hf"``, a Hugging Face encoder
    (:mod:`unialign.backbone.text_towers`); either way its weights live under ``text.`` in the state dict.
    """

    def __init__(self, cfg: ClipConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.visual = VisionTransformer(cfg.vision, cfg.embed_dim)
        self.text = build_text_tower(cfg.text, cfg.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(cfg.init_logit_scale))

    def encode_image(self, x: Tensor, normalize: bool = False) -> Tensor:
        """Image embedding (B, E) of normalised pixels (B, 3, H, W)."""
        e = self.visual(x)
        return F.normalize(e, dim=-1) if normalize else e

    def encode_text(self, ids: Tensor | Sequence[str], normalize: bool = False) -> Tensor:
        """Text embedding (B, E) of token ids (B, L) (CLIP tower) or of a list of strings (``hf`` tower)."""
        e = self.text(ids) if isinstance(self.text, TextTransformer) else self.text.encode(ids)
        return F.normalize(e, dim=-1) if normalize else e
