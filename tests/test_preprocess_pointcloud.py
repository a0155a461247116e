"""The point-cloud loader on tiny files written here: npy/npz/xyz/txt, PLY ascii + binary, OFF, OBJ."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from unialign.config import ModelConfig
from unialign.preprocess.base import LoadContext, PreprocessError, make_generator
from unialign.ops.pointops import farthest_point_sample
from unialign.preprocess.pointcloud import load_pointcloud

CUBE_V = [(x, y, z) for x in (0.0, 1.0) for y in (0.0, 1.0) for z in (0.0, 1.0)]
CUBE_F = [(0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1),
          (2, 3, 7), (2, 7, 6), (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3)]


def ctx(train: bool = False, seed: int = 0, channels: int = 3, **preprocess: Any) -> LoadContext:
    preprocess.setdefault("num_points", 256)
    return LoadContext(
        config=ModelConfig(), modality="point", tokenizer={"in_channels": channels}, preprocess=preprocess,
        train=train, seed=seed, generator=make_generator(seed),
    )


def write_off(path: Path) -> Path:
    lines = ["OFF", f"{len(CUBE_V)} {len(CUBE_F)} 0"] + [" ".join(map(str, v)) for v in CUBE_V]
    path.write_text("\n".join(lines + [f"3 {a} {b} {c}" for a, b, c in CUBE_F]) + "\n")
    return path


def write_obj(path: Path) -> Path:
    lines = [f"v {x} {y} {z}" for x, y, z in CUBE_V] + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in CUBE_F]
    path.write_text("# cube\n" + "\n".join(lines) + "\n")
    return path


def write_ply(path: Path, xyz: np.ndarray, rgb: np.ndarray | None = None, binary: bool = False) -> Path:
    """A vertex-only PLY by hand (float xyz, optional uchar rgb), ascii or binary little-endian."""
    props = ["property float x", "property float y", "property float z"]
    if rgb is not None:
        props += ["property uchar red", "property uchar green", "property uchar blue"]
    fmt = "binary_little_endian" if binary else "ascii"
    header = "\n".join(["ply", f"format {fmt} 1.0", f"element vertex {len(xyz)}", *props, "end_header"]) + "\n"
    with open(path, "wb") as f:
        f.write(header.encode())
        for i, p in enumerate(xyz):
            c = [] if rgb is None else [int(v) for v in rgb[i]]
            if binary:
                f.write(struct.pack("<3f", *p) + bytes(c))
            else:
                f.write((" ".join(f"{v:.9g}" for v in p) + "".join(f" {v}" for v in c) + "\n").encode())
    return path


def cloud(n: int = 500, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3)) * [1.0, 2.0, 0.5] + [3.0, -1.0, 2.0]


def check_normalised(out: torch.Tensor, n: int = 256, c: int = 3) -> None:
    assert out.shape == (1, n, c) and out.dtype == torch.float32
    xyz = out[0, :, :3]
    torch.testing.assert_close(xyz.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    assert abs(float(xyz.norm(dim=1).max()) - 1.0) < 1e-5


@pytest.mark.parametrize("kind", ["npy", "npz", "npz_key", "xyz", "txt_csv", "ply_ascii", "ply_binary"])
def test_point_formats_round_trip(tmp_path: Path, kind: str) -> None:
    pts = cloud(300).astype(np.float32)
    if kind == "npy":
        np.save(tmp_path / "p.npy", pts.astype(np.float32))
        path = tmp_path / "p.npy"
    elif kind == "npz":
        np.savez(tmp_path / "p.npz", pts)
        path = tmp_path / "p.npz"
    elif kind == "npz_key":
        np.savez(tmp_path / "p.npz", labels=np.arange(3), xyz=pts)
        path = tmp_path / "p.npz"
    elif kind == "xyz":
        np.savetxt(tmp_path / "p.xyz", pts)
        path = tmp_path / "p.xyz"
    elif kind == "txt_csv":  # ModelNet-style x,y,z,nx,ny,nz (normals have negatives -> read as xyz)
        normals = np.random.default_rng(1).normal(size=(300, 3))
        np.savetxt(tmp_path / "p.txt", np.hstack([pts, normals]), delimiter=",")
        path = tmp_path / "p.txt"
    else:
        path = write_ply(tmp_path / "p.ply", pts.astype(np.float32), binary=kind == "ply_binary")
    out = load_pointcloud(path, ctx())
    check_normalised(out)
    # Expected: FPS from index 0 (the separately tested pointops routine), then centre and scale.
    src = torch.from_numpy(pts).float()
    sub = src[farthest_point_sample(src[None], 256, 0)[0]].double()
    sub -= sub.mean(0)
    sub /= sub.norm(dim=1).max()
    torch.testing.assert_close(out[0], sub.float(), atol=1e-5, rtol=0)


def test_fewer_points_are_topped_up_with_duplicates(tmp_path: Path) -> None:
    np.save(tmp_path / "few.npy", cloud(40))
    out = load_pointcloud(tmp_path / "few.npy", ctx(num_points=100))[0]
    assert out.shape == (100, 3)
    assert len(torch.unique(out, dim=0)) == 40  # the 40 originals, every extra is a copy
    again = load_pointcloud(tmp_path / "few.npy", ctx(num_points=100, seed=123))[0]
    assert torch.equal(out, again)  # eval output does not depend on the load seed


@pytest.mark.parametrize("fmt", ["off", "obj"])
def test_unit_cube_mesh_is_sampled_on_its_surface(tmp_path: Path, fmt: str) -> None:
    path = write_off(tmp_path / "cube.off") if fmt == "off" else write_obj(tmp_path / "cube.obj")
    out = load_pointcloud(path, ctx(num_points=2000))
    check_normalised(out, 2000)
    xyz = out[0].double()
    # On the surface of an axis-aligned cube: each point's largest |offset| from the box centre is the half-side.
    lo, hi = xyz.min(0).values, xyz.max(0).values
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    torch.testing.assert_close(half, half.mean().expand(3), atol=1e-3, rtol=0)  # still a cube
    assert float(((xyz - centre).abs().max(dim=1).values / half.mean() - 1).abs().max()) < 1e-5
    assert float(centre.norm()) < 0.03  # centroid of a symmetric surface sample ~ the cube centre
    xyz = xyz - centre
    # Area-weighted: the six faces get about 1/6 of the points each.
    face = xyz.abs().argmax(dim=1) * 2 + (xyz.gather(1, xyz.abs().argmax(1, keepdim=True))[:, 0] > 0).long()
    counts = torch.bincount(face, minlength=6).double() / 2000
    assert float((counts - 1 / 6).abs().max()) < 0.04


def test_colours_in_unit_range_and_grey_when_missing(tmp_path: Path) -> None:
    pts = cloud(50).astype(np.float32)
    rgb = np.random.default_rng(2).integers(0, 256, size=(50, 3))
    path = write_ply(tmp_path / "c.ply", pts, rgb, binary=True)
    out = load_pointcloud(path, ctx(channels=6, num_points=50))[0]
    assert out.shape == (50, 6)
    got = {tuple(np.round(r[3:].numpy() * 255).astype(int)) for r in out}
    assert got == {tuple(c) for c in rgb}
    np.save(tmp_path / "plain.npy", pts)
    grey = load_pointcloud(tmp_path / "plain.npy", ctx(channels=6, num_points=50))[0]
    assert torch.all(grey[:, 3:] == 0.4)
    np.save(tmp_path / "six.npy", np.hstack([pts, rgb / 255.0]))
    six = load_pointcloud(tmp_path / "six.npy", ctx(channels=6, num_points=50))[0]
    assert float(six[:, 3:].max()) <= 1.0 and float(six[:, 3:].min()) >= 0.0


def test_training_is_seeded_and_augments(tmp_path: Path) -> None:
    np.save(tmp_path / "p.npy", cloud(400))
    a = load_pointcloud(tmp_path / "p.npy", ctx(train=True, seed=5))
    b = load_pointcloud(tmp_path / "p.npy", ctx(train=True, seed=5))
    c = load_pointcloud(tmp_path / "p.npy", ctx(train=True, seed=6))
    ev = load_pointcloud(tmp_path / "p.npy", ctx())
    assert a.shape == (1, 256, 3)
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, ev)
    # Rotation about y leaves each point's y (up) coordinate alone: only scale/shift/jitter change it.
    only_up = load_pointcloud(tmp_path / "p.npy", ctx(train=True, seed=5, dropout_max=0.0, scale_low=1.0,
                                                      scale_high=1.0, shift=0.0, jitter_sigma=0.0))
    no_aug = load_pointcloud(tmp_path / "p.npy", ctx(train=True, seed=5, dropout_max=0.0, scale_low=1.0,
                                                     scale_high=1.0, shift=0.0, jitter_sigma=0.0, rotate=False))
    torch.testing.assert_close(only_up[0, :, 1], no_aug[0, :, 1])
    torch.testing.assert_close(only_up[0].norm(dim=1), no_aug[0].norm(dim=1), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(only_up, no_aug)


def test_bad_files_raise_preprocess_error_naming_the_file(tmp_path: Path) -> None:
    np.save(tmp_path / "zero.npy", np.zeros((0, 3)))
    nan = cloud(20)
    nan[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    inf = cloud(20)
    inf[0, 0] = np.inf
    np.savetxt(tmp_path / "inf.xyz", inf)
    np.save(tmp_path / "twocol.npy", np.ones((10, 2)))
    (tmp_path / "ragged.txt").write_text("1 2 3\n4 5\n")
    (tmp_path / "words.xyz").write_text("1 2 three\n")
    np.save(tmp_path / "same.npy", np.tile([[1.0, 2.0, 3.0]], (30, 1)))
    blob = (np.save(tmp_path / "ok.npy", cloud(100)), (tmp_path / "ok.npy").read_bytes())[1]
    (tmp_path / "cut.npy").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not a zip")
    np.savez(tmp_path / "many.npz", a=cloud(5), b=cloud(5))
    (tmp_path / "empty.ply").write_bytes(b"")
    (tmp_path / "bad.off").write_text("OFF\n8 12 0\n0 0 0\n1 1\n")
    ply = write_ply(tmp_path / "full.ply", cloud(50).astype(np.float32), binary=True).read_bytes()
    (tmp_path / "cut.ply").write_bytes(ply[: len(ply) - 100])
    (tmp_path / "p.pcd").write_text("1 2 3\n")
    np.save(tmp_path / "complex.npy", cloud(20) + 1j)
    expect = {
        "complex.npy": "real numbers",
        "zero.npy": "zero points", "nan.npy": "NaN", "inf.xyz": "NaN or infinite", "twocol.npy": "columns",
        "ragged.txt": "column counts", "words.xyz": "non-numeric", "same.npy": "identical",
        "cut.npy": "cannot read", "junk.npz": "cannot read", "many.npz": "no array named", "empty.ply": "empty",
        "bad.off": "cannot parse", "cut.ply": "cannot parse", "p.pcd": "unknown extension", "none.npy": "not found",
    }
    for name, problem in expect.items():
        with pytest.raises(PreprocessError) as err:
            load_pointcloud(tmp_path / name, ctx())
        assert name in str(err.value) and problem in str(err.value), str(err.value)
    with pytest.raises(PreprocessError, match="in_channels"):
        load_pointcloud(tmp_path / "ok.npy", ctx(channels=4))
    with pytest.raises(PreprocessError, match="layout 'xyzrgb'"):
        load_pointcloud(tmp_path / "ok.npy", ctx(layout="xyzrgb"))
