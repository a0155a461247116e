"""Depth files -> normalised disparity (1, 1, S, S) for the depth tokenizer, and joint RGB-D loading.

Formats (option ``format``):

- ``nyu``: a 16-bit single-channel PNG/TIFF (PIL mode ``I;16`` or ``I``) holding depth in millimetres.
- ``sunrgbd``: SUN RGB-D's ``depth_bfx`` PNGs, whose 16-bit values are bit-rotated: the millimetres are
  ``(d >> 3) | (d << 13)`` within 16 bits.
- ``metres``: ``.npy`` (``numpy.load``, no pickles) or ``.pt`` (``torch.load(weights_only=True)``) arrays
  of metric depth in metres, shape (H, W), (1, H, W) or (H, W, 1).
- ``disparity``: an array that already holds disparity ``baseline * focal / depth`` (ViT-Lens's saved
  ``*_disparity.pt``); only the clamping and normalisation below are applied.
- ``auto`` (default): ``nyu`` for images, ``metres`` for arrays. SUN RGB-D PNGs must be named
  explicitly: a bit-rotated PNG decoded as ``nyu`` gives nonsense depths.

Conversion (ViT-Lens, peer-systems §2): depth clamped to [min_depth, max_depth] = [0.01, 50] m,
disparity = baseline * fx / depth (Kinect v1 defaults: baseline 0.075 m, fx 518.857901 px; a 3x3
``intrinsics`` matrix overrides fx with its [0][0]), clamped to [0.01, 75], divided by 75 -> [0, 1].
Invalid pixels (depth 0, i.e. no Kinect return) stay 0 disparity, which is "infinitely far"; ViT-Lens
instead clamps them to 0.01 m, i.e. maximal disparity (set ``keep_invalid_zero: false`` for that).

Eval: the shortest side resized to S (bicubic, antialiased, as ViT-Lens; clamped back into [0, 1]),
the central S x S crop, then (x - 0.0418) / 0.0295. Training (Table 1 depth row): RandomResizedCrop(S),
flip (p=0.5), RandAugment(m=9, n=2) restricted to its geometric ops (rotate, shear, translate: colour
ops mean nothing on disparity), normalisation, RandomErasing (p=0.25). :func:`load_rgbd` applies the
same crop, flip and RandAugment warps to the paired RGB, which alone also gets RandAugment's colour ops.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from unialign.preprocess import augment as A
from unialign.preprocess.base import LOADERS, LoadContext, PreprocessError, check_file, parse_options
from unialign.preprocess.image import (
    IMAGE_SUFFIXES, ImagePreprocess, eval_image, open_rgb, random_erasing, to_tensor, train_rgb,
)

DEPTH_SUFFIXES = (".png", ".tif", ".tiff", ".npy", ".pt")
_ARRAY_SUFFIXES = (".npy", ".pt")
_FORMATS = ("auto", "nyu", "sunrgbd", "metres", "disparity")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I")


@dataclass(frozen=True)
class DepthPreprocess:
    """``preprocess:`` options of a ``depth`` modality."""

    format: str = "auto"  # auto | nyu (16-bit mm) | sunrgbd (bit-rotated mm) | metres | disparity
    baseline: float = 0.075  # stereo baseline in metres (Kinect v1/v2; RealSense/Xtion: 0.095)
    focal_length: float = 518.857901  # fx in pixels (Kinect v1, NYU-D / SUN RGB-D kv1)
    intrinsics: tuple[tuple[float, ...], ...] | None = None  # 3x3 camera matrix; its fx overrides focal_length
    min_depth: float = 0.01  # depth clamp (m) before converting, ViT-Lens
    max_depth: float = 50.0  # depth clamp (m) before converting, ViT-Lens
    min_disparity: float = 0.01  # disparity clamp (valid pixels), ViT-Lens DepthNorm
    max_disparity: float = 75.0  # disparity clamp and divisor, ViT-Lens DepthNorm
    mean: float = 0.0418  # normalisation mean of disparity / max_disparity (ViT-Lens)
    std: float = 0.0295  # normalisation std (ViT-Lens)
    keep_invalid_zero: bool = True  # depth 0 -> disparity 0; false: ViT-Lens (clamped to maximal disparity)
    interpolation: str = "bicubic"  # resize mode: bicubic (ViT-Lens), bilinear or nearest (no blending)
    scale: tuple[float, float] = (0.08, 1.0)  # train: RandomResizedCrop area range
    ratio: tuple[float, float] = (0.75, 4 / 3)  # train: RandomResizedCrop aspect-ratio range
    hflip: float = 0.5  # train: flip probability
    rand_augment_n: int = 2  # train: RandAugment ops (0 disables)
    rand_augment_m: float = 9.0  # train: RandAugment magnitude, timm's 0-10 scale
    erasing: float = 0.25  # train: RandomErasing probability (value 0 = the mean disparity)
    rgb_color_jitter: float = 0.0  # load_rgbd, train: ColorJitter on the RGB (Table 1 depth row: none)

    def __post_init__(self) -> None:
        if self.format not in _FORMATS:
            raise ValueError(f"format must be one of {list(_FORMATS)}, got {self.format!r}")
        if self.intrinsics is not None and (len(self.intrinsics) != 3 or any(len(r) != 3 for r in self.intrinsics)):
            raise ValueError("intrinsics must be a 3x3 matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]")
        if not (0 < self.min_depth < self.max_depth and 0 <= self.min_disparity < self.max_disparity):
            raise ValueError("need 0 < min_depth < max_depth and 0 <= min_disparity < max_disparity")
        A.check_interpolation(self.interpolation)

    @property
    def fx(self) -> float:
        """The focal length in pixels actually used."""
        return float(self.intrinsics[0][0]) if self.intrinsics is not None else self.focal_length


def _read_png(path: Path) -> np.ndarray:
    """A 16-bit single-channel image -> (H, W) uint16/int array."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in _SIXTEEN_BIT_MODES:
                raise PreprocessError(
                    path, f"8-bit depth image (PIL mode {im.mode}); expected 16-bit single-channel depth in mm"
                )
            return np.array(im)
    except UnidentifiedImageError:
        raise PreprocessError(path, "not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise PreprocessError(path, f"cannot decode depth image: {exc}") from None


def _read_array(path: Path) -> np.ndarray:
    """A ``.npy`` / ``.pt`` array -> (H, W) numpy array (singleton channel dims squeezed)."""
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(obj, torch.Tensor):
                raise PreprocessError(path, f"expected a tensor in the .pt file, got {type(obj).__name__}")
            arr = obj.detach().float().numpy() if obj.is_floating_point() else obj.numpy()
    except PreprocessError:
        raise
    except (OSError, ValueError, EOFError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise PreprocessError(path, f"cannot read depth array: {reason}") from None
    if not (np.issubdtype(arr.dtype, np.number) and not np.iscomplexobj(arr)):
        raise PreprocessError(path, f"depth array has non-numeric dtype {arr.dtype}")
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr.reshape(arr.shape[1:] if arr.shape[0] == 1 else arr.shape[:-1])
    if arr.ndim != 2 or min(arr.shape) < 1:
        raise PreprocessError(path, f"wrong array rank: expected a 2-D depth map (H, W), got shape {arr.shape}")
    return arr


def read_disparity(path: Path, opts: DepthPreprocess) -> Tensor:
    """A depth file -> disparity / max_disparity as float32 (1, 1, H, W) in [0, 1]; invalid pixels 0."""
    is_array = path.suffix.lower() in _ARRAY_SUFFIXES
    raw = _read_array(path) if is_array else _read_png(path)
    fmt = opts.format if opts.format != "auto" else ("metres" if is_array else "nyu")
    if fmt == "sunrgbd":
        if not np.issubdtype(raw.dtype, np.integer):
            raise PreprocessError(path, f"format sunrgbd needs integer data, got {raw.dtype}")
        d = raw.astype(np.int64) & 0xFFFF
        raw = ((d >> 3) | (d << 13)) & 0xFFFF
    values = raw.astype(np.float64)
    if not np.isfinite(values).all():
        raise PreprocessError(path, "depth contains NaN or inf values")
    if fmt in ("nyu", "sunrgbd"):
        values = values / 1000.0  # millimetres -> metres
    valid = values > 0
    if not valid.any():
        raise PreprocessError(path, "depth map is all zero (no valid pixel)")
    if fmt == "disparity":
        disp = values
    else:
        depth = values if opts.keep_invalid_zero else np.where(valid, values, opts.min_depth)
        disp = opts.baseline * opts.fx / np.clip(depth, opts.min_depth, opts.max_depth)
    disp = np.clip(disp, opts.min_disparity, opts.max_disparity) / opts.max_disparity
    if opts.keep_invalid_zero:
        disp = np.where(valid, disp, 0.0)
    return torch.from_numpy(disp.astype(np.float32))[None, None]


def _normalize(x: Tensor, opts: DepthPreprocess) -> Tensor:
    return (x - opts.mean) / opts.std


def _options(path: Path, ctx: LoadContext) -> DepthPreprocess:
    try:
        return parse_options(DepthPreprocess, ctx, path)
    except ValueError as exc:
        if isinstance(exc, PreprocessError):
            raise
        raise PreprocessError(path, f"bad preprocessing options: {exc}") from None


def _eval_depth(x: Tensor, size: int, opts: DepthPreprocess) -> Tensor:
    """(1, 1, H, W) in [0, 1] -> normalised (1, 1, S, S): short-side resize, centre crop."""
    x = A.resize_short(x, size, opts.interpolation).clamp(0.0, 1.0)
    return _normalize(A.center_crop(x, size), opts)


def _train_depth(x: Tensor, size: int, opts: DepthPreprocess) -> Tensor:
    """(1, 1, H, W) in [0, 1] -> augmented, normalised (1, 1, S, S); call inside :func:`A.seeded`."""
    x = A.random_resized_crop(x, size, opts.interpolation, opts.scale, opts.ratio)
    x = A.maybe_flip(x, opts.hflip).clamp(0.0, 1.0)
    if opts.rand_augment_n > 0:
        ra = A.rand_augment(opts.rand_augment_n, opts.rand_augment_m, geometric_only=True)
        x = A.apply_params(ra, x, ra.forward_parameters(x.shape)).clamp(0.0, 1.0)
    return random_erasing(_normalize(x, opts), opts.erasing)


@LOADERS.register("depth")
def load_depth(path: Path, ctx: LoadContext) -> Tensor:
    """A depth file -> normalised disparity (1, 1, S, S) float32 (augmented when ``ctx.train``)."""
    path = check_file(path, DEPTH_SUFFIXES)
    opts = _options(path, ctx)
    size = ctx.config.clip.vision.image_size
    x = read_disparity(path, opts)
    if not ctx.train:
        return _eval_depth(x, size, opts).contiguous()
    try:
        with A.seeded(ctx.seed):
            return _train_depth(x, size, opts).contiguous()
    except ValueError as exc:
        raise PreprocessError(path, f"bad preprocessing options: {exc}") from None


def load_rgbd(depth_path: str | Path, rgb_path: str | Path, ctx: LoadContext) -> tuple[Tensor, Tensor]:
    """A depth file and its registered RGB image -> (RGB (1, 3, S, S), disparity (1, 1, S, S)).

    The RGB is normalised with the CLIP mean/std of ``ctx.config``, the disparity with the depth
    options of ``ctx.preprocess``. When the two sizes differ, the disparity is first resized to the
    RGB's size (they are assumed to be registered, as in NYU-D and SUN RGB-D). Eval: both get the
    short-side resize and centre crop. Training: the same RandomResizedCrop box, flip, RandomErasing
    rectangle and RandAugment warps for both, colour ops (and ``rgb_color_jitter``) on the RGB only.
    """
    depth_path = check_file(depth_path, DEPTH_SUFFIXES)
    rgb_path = check_file(rgb_path, IMAGE_SUFFIXES)
    opts = _options(depth_path, ctx)
    clip = ctx.config.clip
    size, mean, std = clip.vision.image_size, clip.preprocess.mean, clip.preprocess.std
    d = read_disparity(depth_path, opts)
    im = open_rgb(rgb_path)
    if tuple(d.shape[-2:]) != (im.height, im.width):
        d = A.resize(d, (im.height, im.width), opts.interpolation).clamp(0.0, 1.0)
    if not ctx.train:
        try:
            mode = A.check_interpolation(clip.preprocess.interpolation)
        except ValueError as exc:
            raise PreprocessError(rgb_path, str(exc)) from None
        rgb = A.normalize(eval_image(im, size, mode), mean, std)
        return rgb.contiguous(), _eval_depth(d, size, opts).contiguous()
    image_opts = replace(
        ImagePreprocess(), scale=opts.scale, ratio=opts.ratio, hflip=opts.hflip, rand_augment_n=opts.rand_augment_n,
        rand_augment_m=opts.rand_augment_m, color_jitter=opts.rgb_color_jitter, erasing=opts.erasing,
    )
    try:
        with A.seeded(ctx.seed):
            rgb, d = train_rgb(to_tensor(im), image_opts, size, opts.interpolation, extra=d)
            assert d is not None
            both = torch.cat([A.normalize(rgb, mean, std), _normalize(d.clamp(0.0, 1.0), opts)], dim=1)
            both = random_erasing(both, opts.erasing)
    except ValueError as exc:
        raise PreprocessError(depth_path, f"bad preprocessing options: {exc}") from None
    return both[:, :3].contiguous(), both[:, 3:].contiguous()
