"""Image files -> normalised RGB views (1, 3, S, S) for the frozen CLIP image tokenizer.

S is ``config.clip.vision.image_size``; mean, std and interpolation come from ``config.clip.preprocess``.

Eval is CLIP's own preprocessing: the shortest side resized to S with PIL (bicubic, antialiased), the
central S x S crop, [0, 1] scaling, per-channel normalisation.

Training follows supplement Table 1 (image row), timm's order: RandomResizedCrop(S) -> horizontal flip
(p=0.5) -> RandAugment(m=9, n=2) -> ColorJitter(0.4) -> normalise -> RandomErasing(p=0.25). RandAugment,
ColorJitter and RandomErasing are kornia's; the crop box is drawn as torchvision draws it and resized
with an antialiased torch resize (kornia's crop does not antialias, which aliases on large photos).
Every draw comes from torch's RNG seeded with the load's seed (see :func:`augment.seeded`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from unialign.preprocess import augment as A
from unialign.preprocess.base import LOADERS, LoadContext, PreprocessError, check_file, parse_options

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")

_PIL_FILTERS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                "bicubic": Image.Resampling.BICUBIC}


@dataclass(frozen=True)
class ImagePreprocess:
    """``preprocess:`` options of an ``image`` modality (training augmentation; eval has none)."""

    scale: tuple[float, float] = (0.08, 1.0)  # RandomResizedCrop area fraction range (torchvision default)
    ratio: tuple[float, float] = (0.75, 4 / 3)  # RandomResizedCrop aspect-ratio range (torchvision default)
    hflip: float = 0.5  # probability of a horizontal flip
    rand_augment_n: int = 2  # RandAugment: ops per image (0 disables RandAugment)
    rand_augment_m: float = 9.0  # RandAugment magnitude on timm's 0-10 scale (kornia gets 3*m)
    color_jitter: float = 0.4  # brightness = contrast = saturation strength, hue 0 (timm); 0 disables
    erasing: float = 0.25  # RandomErasing probability (area 2-33 %, filled with 0 = the mean colour)
    background: tuple[int, int, int] = (255, 255, 255)  # RGB that transparent pixels are composited on


def open_rgb(path: Path, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Decode `path` to an RGB PIL image: EXIF orientation applied, first frame of a GIF/multi-page
    TIFF, transparency (alpha or palette transparency) composited onto `background` (white by default:
    a transparent logo or product shot is shown on white, as browsers show it).
    """
    try:
        with Image.open(path) as im:
            im.seek(0)
            im = ImageOps.exif_transpose(im)
            im.load()
            if im.mode in ("I;16", "I;16L", "I;16B", "I", "F"):  # 16/32-bit grey: rescale, don't clip
                arr = np.asarray(im, dtype=np.float64)
                top = 65535.0 if arr.max() > 255 else 255.0
                im = Image.fromarray((np.clip(arr / top, 0, 1) * 255 + 0.5).astype(np.uint8), mode="L")
            if im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")
            if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
                rgba = im.convert("RGBA")
                canvas = Image.new("RGBA", rgba.size, tuple(background) + (255,))
                im = Image.alpha_composite(canvas, rgba)
            return im.convert("RGB")
    except UnidentifiedImageError:
        raise PreprocessError(path, "not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise PreprocessError(path, f"cannot decode image: {exc}") from None


def to_tensor(im: Image.Image) -> Tensor:
    """RGB PIL image -> float32 (1, 3, H, W) in [0, 1]."""
    arr = np.asarray(im, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def eval_image(im: Image.Image, size: int, interpolation: str) -> Tensor:
    """CLIP eval transform without normalisation: PIL short-side resize, centre crop -> (1, 3, S, S)."""
    h, w = A.short_side_size(im.height, im.width, size)
    if (h, w) != (im.height, im.width):
        im = im.resize((w, h), _PIL_FILTERS[interpolation])
    return A.center_crop(to_tensor(im), size)


def train_rgb(
    x: Tensor, opts: ImagePreprocess, size: int, interpolation: str, extra: Tensor | None = None
) -> tuple[Tensor, Tensor | None]:
    """Table 1 image augmentation before normalisation, inside an already-seeded block.

    Args:
        x: RGB (1, 3, H, W) in [0, 1].
        extra: optional maps (1, C, H, W) (a paired disparity) that get the same crop, flip and
            RandAugment warps (rotate/shear/translate) but no colour ops.
    Returns:
        RGB (1, 3, S, S) in [0, 1], and `extra` as (1, C, S, S) (or None).
    """
    stacked = x if extra is None else torch.cat([x, extra], dim=1)
    stacked = A.random_resized_crop(stacked, size, interpolation, opts.scale, opts.ratio)
    stacked = A.maybe_flip(stacked, opts.hflip)
    x, extra = (stacked, None) if extra is None else (stacked[:, :3], stacked[:, 3:])
    x = x.clamp(0.0, 1.0)
    if opts.rand_augment_n > 0:
        ra = A.rand_augment(opts.rand_augment_n, opts.rand_augment_m)
        params = ra.forward_parameters(x.shape)
        x = A.apply_params(ra, x, params)
        if extra is not None:
            extra = A.apply_params(ra, extra, A.geometric_params(ra, params))
    if opts.color_jitter > 0:
        import kornia.augmentation as K

        cj = opts.color_jitter
        x = K.ColorJitter(cj, cj, cj, 0.0, p=1.0)(x)
    return x.clamp(0.0, 1.0), extra


def random_erasing(x: Tensor, p: float) -> Tensor:
    """kornia RandomErasing (area 2-33 %, ratio 0.3-3.3, value 0) on normalised (N, C, H, W); one
    rectangle shared by all N rows and channels."""
    if p <= 0:
        return x
    import kornia.augmentation as K

    return K.RandomErasing(p=p, value=0.0, same_on_batch=True)(x)


@LOADERS.register("image")
def load_image(path: Path, ctx: LoadContext) -> Tensor:
    """An image file -> normalised RGB (1, 3, S, S) float32 (one view; augmented when ``ctx.train``)."""
    path = check_file(path, IMAGE_SUFFIXES)
    opts: ImagePreprocess = parse_options(ImagePreprocess, ctx, path)
    clip = ctx.config.clip
    size = clip.vision.image_size
    try:
        interpolation = A.check_interpolation(clip.preprocess.interpolation)
    except ValueError as exc:
        raise PreprocessError(path, str(exc)) from None
    im = open_rgb(path, opts.background)
    if not ctx.train:
        return A.normalize(eval_image(im, size, interpolation), clip.preprocess.mean, clip.preprocess.std)
    try:
        with A.seeded(ctx.seed):
            x, _ = train_rgb(to_tensor(im), opts, size, interpolation)
            x = A.normalize(x, clip.preprocess.mean, clip.preprocess.std)
            x = random_erasing(x, opts.erasing)
    except ValueError as exc:  # bad augmentation options (e.g. RandAugment magnitude out of range)
        raise PreprocessError(path, f"bad preprocessing options: {exc}") from None
    return x.contiguous()
