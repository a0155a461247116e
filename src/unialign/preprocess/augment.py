"""Seeded resize/crop/normalise helpers and the kornia augmentations shared by image, video and depth.

All tensors are float32. Image-like batches are ``(N, C, H, W)`` with values in [0, 1] before
:func:`normalize`. Every random choice is drawn inside :func:`seeded`, which forks torch's global RNG
(kornia draws from it) and seeds it with the load's seed, so the same seed gives bit-identical output
and the caller's global RNG state is left untouched.

RandAugment magnitudes follow timm's scale (``m`` in [0, 10], the paper's ``m=9``); kornia's
``RandAugment`` uses a 0-30 scale, so :func:`rand_augment` passes ``3 * m``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:  # kornia is imported lazily: eval preprocessing does not need it
    from kornia.augmentation.auto import RandAugment
    from kornia.augmentation.container.params import ParamItem

_TORCH_MODES = ("nearest", "bilinear", "bicubic")

# RandAugment's geometric ops (kornia names and timm's ranges): the policy used on a lone depth map.
GEOMETRIC_POLICY = (
    ("rotate", -30.0, 30.0), ("shear_x", -0.3, 0.3), ("shear_y", -0.3, 0.3),
    ("translate_x", -0.1, 0.1), ("translate_y", -0.1, 0.1),
)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's global CPU RNG seeded by `seed`; the outer RNG state is restored after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def check_interpolation(name: str) -> str:
    """`name` if torch can resize with it (``nearest``, ``bilinear``, ``bicubic``), else ValueError."""
    if name not in _TORCH_MODES:
        raise ValueError(f"interpolation must be one of {list(_TORCH_MODES)}, got {name!r}")
    return name


def short_side_size(h: int, w: int, size: int) -> tuple[int, int]:
    """Output (h, w) when the shorter side of (h, w) becomes `size` (torchvision's rounding: truncate)."""
    if h <= w:
        return size, max(size, int(size * w / h))
    return max(size, int(size * h / w)), size


def resize(x: Tensor, hw: tuple[int, int], mode: str = "bicubic") -> Tensor:
    """(N, C, H, W) -> (N, C, h, w); antialiased when shrinking with bilinear/bicubic; range not clamped."""
    if tuple(x.shape[-2:]) == tuple(hw):
        return x
    if mode == "nearest":
        return F.interpolate(x, size=hw, mode="nearest-exact")
    return F.interpolate(x, size=hw, mode=mode, align_corners=False, antialias=True)


def resize_short(x: Tensor, size: int, mode: str = "bicubic") -> Tensor:
    """(N, C, H, W) -> (N, C, h, w) with min(h, w) == `size`, aspect ratio kept."""
    return resize(x, short_side_size(x.shape[-2], x.shape[-1], size), mode)


def crop(x: Tensor, top: int, left: int, size: int) -> Tensor:
    """The `size` x `size` window of (..., H, W) at (top, left)."""
    return x[..., top : top + size, left : left + size]


def center_crop(x: Tensor, size: int) -> Tensor:
    """Central `size` x `size` window of (..., H, W) (torchvision's rounding of the offsets)."""
    h, w = x.shape[-2:]
    return crop(x, int(round((h - size) / 2.0)), int(round((w - size) / 2.0)), size)


def spatial_crops(x: Tensor, size: int, crops: int) -> list[Tensor]:
    """`crops` (1 or 3) square windows of (..., H, W) whose short side is `size`.

    One crop is the centre; three are start / centre / end along the long side (ImageBind's
    ``SpatialCrop``), i.e. left / centre / right for landscape and top / centre / bottom for portrait.
    """
    if crops == 1:
        return [center_crop(x, size)]
    h, w = x.shape[-2:]
    out = []
    for frac in (0.0, 0.5, 1.0):
        top = int(round((h - size) * frac)) if h > w else int(round((h - size) / 2.0))
        left = int(round((w - size) * frac)) if w >= h else int(round((w - size) / 2.0))
        out.append(crop(x, top, left, size))
    return out


def normalize(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """(x - mean) / std per channel; `x` is (N, C, H, W) or (C, ...) with channels at dim -3 for 4-D."""
    shape = (1, -1, 1, 1) if x.ndim == 4 else (-1,) + (1,) * (x.ndim - 1)
    m = torch.tensor(mean, dtype=x.dtype).view(shape)
    s = torch.tensor(std, dtype=x.dtype).view(shape)
    return (x - m) / s


# ---------------------------------------------------------------------------------------------
# RandAugment with shared (per-clip) parameters and a geometric-only subset for depth


def rand_augment(n: int, m: float, geometric_only: bool = False) -> RandAugment:
    """kornia RandAugment choosing `n` of its 15 ops (or of the 5 of :data:`GEOMETRIC_POLICY`),
    magnitude `m` on timm's 0-10 scale (kornia's scale is 0-30, so it gets 3m)."""
    if not 0 < m < 10:
        raise ValueError(f"RandAugment magnitude m must lie in (0, 10) (timm scale), got {m}")
    from kornia.augmentation.auto import RandAugment

    policy = [[op] for op in GEOMETRIC_POLICY] if geometric_only else None
    return RandAugment(n=n, m=3 * m, policy=policy)


def _expand_params(data: Any, batch: int) -> Any:
    """Copy RandAugment parameters drawn for a batch of one to `batch` rows (same values on every row)."""
    from kornia.augmentation.container.params import ParamItem

    if isinstance(data, list):
        return [ParamItem(item.name, _expand_params(item.data, batch)) for item in data]
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            if key == "forward_input_shape":  # the (B, C, H, W) the params were drawn for
                value = value.clone()
                value[0] = batch
            elif torch.is_tensor(value) and value.ndim >= 1 and value.shape[0] == 1:
                value = value.expand(batch, *value.shape[1:]).clone()
            out[key] = value
        return out
    return data


def shared_params(ra: RandAugment, x: Tensor) -> list[ParamItem]:
    """One RandAugment draw for a single image of `x`'s shape, repeated for each of its N rows.

    Applying ``ra(x, params=shared_params(ra, x))`` to the frames of a clip gives every frame the same
    ops and magnitudes (kornia would otherwise draw signs and op probabilities per row).
    """
    one = ra.forward_parameters(torch.Size((1, *x.shape[1:])))
    return _expand_params(one, x.shape[0])


def geometric_params(ra: RandAugment, params: list[ParamItem]) -> list[ParamItem]:
    """The geometric ops (rotate, shear, translate) of a RandAugment draw; intensity ops are dropped.

    Used for depth: colour ops (saturation, solarize, posterize, ...) have no meaning on a disparity
    map, while the warps must match the paired RGB exactly.
    """
    from kornia.augmentation import GeometricAugmentationBase2D
    from kornia.augmentation.auto.operations import PolicySequential

    keep = []
    for item in params:
        sub = ra.get_submodule(item.name)
        assert isinstance(sub, PolicySequential)
        if all(isinstance(op.op, GeometricAugmentationBase2D) for op in sub.children()):
            keep.append(item)
    return keep


def apply_params(ra: RandAugment, x: Tensor, params: list[ParamItem]) -> Tensor:
    """Apply a (possibly filtered) RandAugment draw to (N, C, H, W); no-op for an empty draw."""
    if not params:
        return x
    return ra(x, params=params)


def rand_box(
    h: int, w: int, scale: tuple[float, float], ratio: tuple[float, float]
) -> tuple[int, int, int, int]:
    """torchvision RandomResizedCrop's box (top, left, height, width) drawn from torch's global RNG.

    Ten tries at a random area fraction in `scale` and log-uniform aspect ratio in `ratio`, falling
    back to the central crop with the ratio clamped into `ratio`.
    """
    area = h * w
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target = area * float(torch.empty(1).uniform_(scale[0], scale[1]))
        aspect = float(torch.exp(torch.empty(1).uniform_(float(log_ratio[0]), float(log_ratio[1]))))
        cw = int(round((target * aspect) ** 0.5))
        ch = int(round((target / aspect) ** 0.5))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (1,)))
            left = int(torch.randint(0, w - cw + 1, (1,)))
            return top, left, ch, cw
    in_ratio = w / h
    if in_ratio < min(ratio):
        cw, ch = w, int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        ch, cw = h, int(round(h * max(ratio)))
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def random_resized_crop(
    x: Tensor, size: int, mode: str, scale: tuple[float, float], ratio: tuple[float, float]
) -> Tensor:
    """(N, C, H, W) -> (N, C, size, size): one random box (same for all N rows and channels), resized.

    The box is drawn like torchvision's; the resize is antialiased (kornia's RandomResizedCrop is not,
    which aliases badly when a large photo is shrunk to 224).
    """
    top, left, ch, cw = rand_box(x.shape[-2], x.shape[-1], scale, ratio)
    return resize(x[..., top : top + ch, left : left + cw], (size, size), mode)


def maybe_flip(x: Tensor, p: float) -> Tensor:
    """Flip (..., W) horizontally with probability `p` (one draw for the whole tensor)."""
    return x.flip(-1) if float(torch.rand(())) < p else x
