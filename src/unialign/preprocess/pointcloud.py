"""Point clouds and meshes -> (1, N, C) points for the point-cloud tokenizer (supplement §2.1, §3.2).

Formats: ``.npy`` / ``.npz`` (key ``points``, ``xyz`` or ``pos``, or the only array), ``.xyz`` / ``.txt``
(whitespace- or comma-separated columns, ``#`` comments), and through ``trimesh`` ``.ply`` (ascii and
binary), ``.off``, ``.obj``, ``.stl``. Files with faces are meshes: ``num_points`` points are sampled on
their surface, area-weighted (uniform over the area), with barycentric colour interpolation.

Then: more than N points -> farthest point sampling (start 0 at eval, random at training); fewer -> the
cloud is kept and topped up with randomly chosen duplicates (seeded); centred at the centroid and scaled
into the unit sphere (max norm 1). Training adds the ULIP/PointNet augmentation set: random point
dropout (dropped points replaced by the first point), anisotropic scale, shift, rotation about the up
axis and clipped Gaussian jitter. At eval every random choice (mesh sampling, top-up) uses ``eval_seed``,
so eval input does not depend on the load's seed; at training it uses ``ctx.generator``.

Columns: C = ``in_channels`` of the tokenizer (3: xyz; 6: xyz + rgb in [0, 1]). Array/text layouts are
chosen by the ``layout`` option; colours stored as 0-255 are divided by 255.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from unialign.errors import ConfigError
from unialign.ops.pointops import farthest_point_sample
from unialign.preprocess.base import (
    LOADERS, LoadContext, PreprocessError, check_file, make_generator, parse_options, rand_int, rand_uniform,
)

ARRAY_SUFFIXES = (".npy", ".npz", ".xyz", ".txt")
MESH_SUFFIXES = (".ply", ".off", ".obj", ".stl")
SUFFIXES = ARRAY_SUFFIXES + MESH_SUFFIXES
NPZ_KEYS = ("points", "xyz", "pos")
AXES = {"x": 0, "y": 1, "z": 2}


@dataclass(frozen=True)
class PointCloudPreprocess:
    """The ``preprocess:`` options of a point-cloud modality."""

    num_points: int = 8192  # N points out (supplement §2.1)
    layout: str = "auto"  # array/text columns: "xyz" (first 3, rest ignored), "xyzrgb" (columns 3-5 are
    # colours), "auto" (xyzrgb when there are exactly 6 columns and columns 3-5 are >= 0, else xyz)
    missing_color: float = 0.4  # grey level used for every channel when C = 6 and the file has no colour
    up_axis: str = "y"  # rotation axis of the training augmentation; "y": ULIP's ShapeNet/ModelNet data
    eval_seed: int = 0  # seeds mesh sampling and top-up at eval (eval input independent of the load seed)
    dropout_max: float = 0.875  # training: drop ratio ~ U(0, dropout_max) (PointNet++/ULIP); 0 disables
    scale_low: float = 2.0 / 3.0  # training: per-axis scale ~ U(scale_low, scale_high) (anisotropic)
    scale_high: float = 1.5
    shift: float = 0.2  # training: per-axis translation ~ U(-shift, shift)
    rotate: bool = True  # training: uniform rotation in [0, 2 pi) about up_axis
    jitter_sigma: float = 0.01  # training: Gaussian jitter std per coordinate ...
    jitter_clip: float = 0.05  # ... clipped to [-jitter_clip, jitter_clip]

    def __post_init__(self) -> None:
        if self.num_points < 1:
            raise ConfigError(f"num_points must be >= 1, got {self.num_points}")
        if self.layout not in ("auto", "xyz", "xyzrgb"):
            raise ConfigError(f"layout must be 'auto', 'xyz' or 'xyzrgb', got {self.layout!r}")
        if self.up_axis not in AXES:
            raise ConfigError(f"up_axis must be one of {sorted(AXES)}, got {self.up_axis!r}")
        if not (0.0 <= self.dropout_max < 1.0 and 0.0 < self.scale_low <= self.scale_high):
            raise ConfigError("need 0 <= dropout_max < 1 and 0 < scale_low <= scale_high")
        if min(self.shift, self.jitter_sigma, self.jitter_clip) < 0.0:
            raise ConfigError("shift, jitter_sigma and jitter_clip must be >= 0")


@dataclass
class RawCloud:
    """What a file holds: vertices (P, 3), colours (P, 3) in [0, 1] or None, triangle faces (F, 3) or None."""

    xyz: np.ndarray
    rgb: np.ndarray | None = None
    faces: np.ndarray | None = None


def _colors01(rgb: np.ndarray) -> np.ndarray:
    """Colours scaled to [0, 1] (values above 1 are taken as 0-255)."""
    rgb = rgb.astype(np.float64)
    return rgb / 255.0 if rgb.size and rgb.max() > 1.0 else rgb


def split_columns(path: Path, arr: np.ndarray, layout: str) -> RawCloud:
    """An (P, K) array -> xyz and optional colours by `layout` (see :class:`PointCloudPreprocess`)."""
    arr = np.asarray(arr)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise PreprocessError(path, f"expected a (points, columns) array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise PreprocessError(path, f"expected real numbers, got dtype {arr.dtype}")
    k = arr.shape[1]
    if k < 3:
        raise PreprocessError(path, f"expected at least 3 columns (x y z), got {k}")
    if layout == "xyzrgb" and k < 6:
        raise PreprocessError(path, f"layout 'xyzrgb' needs at least 6 columns, got {k}")
    arr = arr.astype(np.float64)
    if arr.shape[0] and not np.isfinite(arr).all():
        raise PreprocessError(path, "points contain NaN or infinite values")
    with_rgb = layout == "xyzrgb" or (layout == "auto" and k == 6 and (arr[:, 3:6] >= 0).all())
    return RawCloud(arr[:, :3], _colors01(arr[:, 3:6]) if with_rgb else None)


def _read_text(path: Path) -> np.ndarray:
    """Whitespace- or comma-separated rows of numbers -> (P, K); ragged rows fail."""
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as exc:
        raise PreprocessError(path, f"cannot read text ({exc})") from None
    rows = [ln.replace(",", " ").split() for ln in text.splitlines()]
    rows = [r for r in rows if r and not r[0].startswith("#")]
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise PreprocessError(path, f"rows have different column counts {sorted(widths)} (corrupt or truncated)")
    try:
        return np.array(rows, dtype=np.float64).reshape(len(rows), -1 if rows else 3)
    except ValueError as exc:
        raise PreprocessError(path, f"non-numeric value ({exc})") from None


def _read_mesh(path: Path) -> RawCloud:
    """PLY/OFF/OBJ/STL through trimesh (processing off, so vertices stay as stored)."""
    try:
        import trimesh
    except ImportError:
        raise PreprocessError(path, "reading mesh/PLY files needs the 'trimesh' package") from None
    try:
        obj = trimesh.load(str(path), file_type=path.suffix.lower()[1:], process=False)
        if isinstance(obj, trimesh.Scene):
            obj = obj.to_geometry() if obj.geometry else None
    except Exception as exc:  # trimesh raises many types on corrupt or truncated input
        raise PreprocessError(path, f"cannot parse {path.suffix} file ({type(exc).__name__}: {exc})") from None
    if obj is None or not hasattr(obj, "vertices"):
        return RawCloud(np.zeros((0, 3)))
    xyz = np.asarray(obj.vertices, dtype=np.float64)
    if xyz.size and (xyz.ndim != 2 or xyz.shape[1] != 3):
        raise PreprocessError(path, f"vertices must have 3 coordinates, got an array of shape {xyz.shape}")
    xyz = xyz.reshape(-1, 3)
    faces = getattr(obj, "faces", None)
    faces = np.asarray(faces, dtype=np.int64) if faces is not None and len(faces) else None
    colors = None
    if isinstance(obj, trimesh.PointCloud):
        c = np.asarray(obj.colors)
        colors = c[:, :3] if c.ndim == 2 and len(c) == len(xyz) else None
    elif getattr(obj.visual, "kind", None) == "vertex":
        colors = np.asarray(obj.visual.vertex_colors)[:, :3]
    return RawCloud(xyz, _colors01(colors) if colors is not None else None, faces)


def read_points(path: Path, layout: str = "auto") -> RawCloud:
    """Read any supported file into a :class:`RawCloud` (no resampling, no checks on values)."""
    suffix = path.suffix.lower()
    if suffix in MESH_SUFFIXES:
        raw = _read_mesh(path)
        if raw.xyz.size and not np.isfinite(raw.xyz).all():
            raise PreprocessError(path, "points contain NaN or infinite values")
        return raw
    if suffix in (".xyz", ".txt"):
        return split_columns(path, _read_text(path), layout)
    try:
        data = np.load(str(path), allow_pickle=False)
        if suffix == ".npz":
            with data:
                keys = list(data.files)
                key = next((k for k in NPZ_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise PreprocessError(path, f"no array named {list(NPZ_KEYS)} among {keys}")
                data = data[key]
    except PreprocessError:
        raise
    except Exception as exc:  # truncated/corrupt arrays, pickled objects, bad zip archives
        raise PreprocessError(path, f"cannot read array ({type(exc).__name__}: {exc})") from None
    return split_columns(path, data, layout)


def sample_surface(
    xyz: Tensor, faces: Tensor, rgb: Tensor | None, n: int, g: torch.Generator
) -> tuple[Tensor, Tensor | None]:
    """n points uniform over a triangle mesh's area: faces by area, then uniform barycentric coordinates.

    A point ``a + u (b - a) + v (c - a)`` with (u, v) ~ U[0,1]^2 folded into the triangle (u + v > 1 ->
    1 - u, 1 - v). Colours are interpolated with the same weights. Returns (n, 3) and (n, 3) or None.
    """
    tri = xyz[faces]  # (F, 3, 3)
    area = 0.5 * torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).norm(dim=-1)
    if not bool(area.sum() > 0):
        raise ValueError("mesh has zero surface area")
    pick = torch.multinomial(area, n, replacement=True, generator=g)
    uv = torch.rand(n, 2, generator=g, dtype=xyz.dtype)
    fold = uv.sum(-1) > 1
    uv[fold] = 1 - uv[fold]
    w = torch.stack([1 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], dim=-1).unsqueeze(-1)  # (n, 3, 1)
    pts = (tri[pick] * w).sum(1)
    cols = (rgb[faces][pick] * w).sum(1) if rgb is not None else None
    return pts, cols


def augment(pts: Tensor, opt: PointCloudPreprocess, g: torch.Generator | None) -> Tensor:
    """ULIP/PointNet training augmentation of pts (N, C) (xyz in the first 3 columns), seeded by `g`."""
    pts = pts.clone()
    n = pts.shape[0]
    if opt.dropout_max > 0:
        ratio = rand_uniform(g, 0.0, opt.dropout_max)
        drop = torch.rand(n, generator=g) <= ratio
        pts[drop] = pts[0].clone()
    xyz = pts[:, :3]
    scale = opt.scale_low + (opt.scale_high - opt.scale_low) * torch.rand(3, generator=g, dtype=pts.dtype)
    shift = (2 * torch.rand(3, generator=g, dtype=pts.dtype) - 1) * opt.shift
    xyz = xyz * scale + shift
    if opt.rotate:
        angle = rand_uniform(g, 0.0, 2 * math.pi)
        c, s = math.cos(angle), math.sin(angle)
        a = AXES[opt.up_axis]
        i, j = [k for k in range(3) if k != a]
        rot = torch.eye(3, dtype=pts.dtype)
        rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
        xyz = xyz @ rot.T
    if opt.jitter_sigma > 0:
        noise = torch.randn(xyz.shape, generator=g, dtype=pts.dtype) * opt.jitter_sigma
        xyz = xyz + noise.clamp(-opt.jitter_clip, opt.jitter_clip)
    pts[:, :3] = xyz
    return pts


@LOADERS.register("pointcloud")
def load_pointcloud(path: Path, ctx: LoadContext) -> Tensor:
    """Point-cloud or mesh file -> (1, N, C) float32, xyz centred and inside the unit sphere."""
    path = check_file(path, SUFFIXES)
    opt: PointCloudPreprocess = parse_options(PointCloudPreprocess, ctx, path)
    channels = int(ctx.tokenizer.get("in_channels", 3))
    if channels not in (3, 6):
        raise PreprocessError(path, f"in_channels={channels} is not supported; use 3 (xyz) or 6 (xyz+rgb)")
    g = ctx.generator if ctx.train else make_generator(opt.eval_seed)
    if g is None:
        g = make_generator(ctx.seed)
    raw = read_points(path, opt.layout)
    if raw.xyz.shape[0] == 0:
        raise PreprocessError(path, "file holds zero points")
    xyz = torch.from_numpy(raw.xyz).double()
    rgb = torch.from_numpy(raw.rgb).double() if raw.rgb is not None else None
    n = opt.num_points
    if raw.faces is not None:
        faces = torch.from_numpy(raw.faces)
        if faces.ndim != 2 or faces.shape[1] != 3 or int(faces.min()) < 0 or int(faces.max()) >= len(xyz):
            raise PreprocessError(path, f"mesh faces must be triangles indexing {len(xyz)} vertices")
        try:
            xyz, rgb = sample_surface(xyz, faces, rgb, n, g)
        except ValueError as exc:
            raise PreprocessError(path, str(exc)) from None
    if rgb is None and channels == 6:
        rgb = torch.full_like(xyz, opt.missing_color)
    pts = torch.cat([xyz, rgb], dim=1) if channels == 6 else xyz  # (P, C)
    if pts.shape[0] > n:  # farthest point sampling down to n
        start = rand_int(g, 0, pts.shape[0] - 1) if ctx.train else 0
        idx = farthest_point_sample(pts[None, :, :3].float(), n, start)[0]
        pts = pts[idx]
    elif pts.shape[0] < n:  # top up with random duplicates
        extra = torch.randint(0, pts.shape[0], (n - pts.shape[0],), generator=g)
        pts = torch.cat([pts, pts[extra]], dim=0)
    xyz = pts[:, :3].double()
    xyz = xyz / xyz.abs().max().clamp_min(1e-300)  # pre-scale: the mean and norms below cannot overflow
    centred = xyz - xyz.mean(dim=0)
    radius = float(centred.norm(dim=1).max())
    if not radius > 1e-12:
        raise PreprocessError(path, "all points are identical (cannot scale a single location)")
    pts[:, :3] = (centred / radius).to(pts.dtype)
    if not bool(torch.isfinite(pts).all()):
        raise PreprocessError(path, "coordinates are too large to normalise in float32")
    if ctx.train:
        pts = augment(pts, opt, g)
    return pts.float().unsqueeze(0)


__all__ = [
    "PointCloudPreprocess", "RawCloud", "SUFFIXES", "augment", "load_pointcloud", "read_points", "sample_surface",
    "split_columns",
]
