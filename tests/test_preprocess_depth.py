"""Depth loader: 16-bit PNG (NYU mm and SUN RGB-D bit-rotated), .npy/.pt metres, disparity numerics,
seeded training, joint RGB-D augmentation, bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unialign.config import load_model_config
from unialign.preprocess.base import LoadContext, PreprocessError, make_generator
from unialign.preprocess.depth import DepthPreprocess, load_depth, load_rgbd

CFG = load_model_config("unialign-test-tiny")
S = CFG.clip.vision.image_size
BF = 0.075 * 518.857901  # default baseline * fx


def ctx(train: bool = False, seed: int = 0, **preprocess) -> LoadContext:
    return LoadContext(config=CFG, modality="depth", preprocess=preprocess, train=train, seed=seed,
                       generator=make_generator(seed))


def expected(depth_m: float, **kw) -> float:
    """The normalised value a constant depth (metres) must give, computed from the documented formula."""
    o = DepthPreprocess(**kw)
    d = min(max(depth_m, o.min_depth), o.max_depth)
    disp = min(max(o.baseline * o.fx / d, o.min_disparity), o.max_disparity) / o.max_disparity
    return (disp - o.mean) / o.std


def png16(path: Path, mm: np.ndarray) -> Path:
    Image.fromarray(mm.astype(np.uint16)).save(path)
    return path


def test_nyu_png_constant_depth_numerics(tmp_path: Path) -> None:
    path = png16(tmp_path / "d.png", np.full((24, 40), 2500))  # 2.5 m
    x = load_depth(path, ctx())
    assert x.shape == (1, 1, S, S) and x.dtype == torch.float32
    assert abs(expected(2.5) - ((BF / 2.5) / 75 - 0.0418) / 0.0295) < 1e-9  # the formula itself
    torch.testing.assert_close(x, torch.full_like(x, expected(2.5)), atol=1e-4, rtol=0)


def test_sunrgbd_bit_rotation(tmp_path: Path) -> None:
    mm = np.full((16, 16), 1800, np.uint32)
    stored = ((mm << 3) | (mm >> 13)) & 0xFFFF  # how SUN RGB-D writes its depth_bfx PNGs
    path = png16(tmp_path / "sun.png", stored)
    x = load_depth(path, ctx(format="sunrgbd"))
    torch.testing.assert_close(x, torch.full_like(x, expected(1.8)), atol=1e-4, rtol=0)
    wrong = load_depth(path, ctx())  # decoding as plain mm gives a different (8x farther) depth
    assert not torch.allclose(wrong, x, atol=1e-2)


def test_npy_and_pt_metres_and_options(tmp_path: Path) -> None:
    np.save(tmp_path / "d.npy", np.full((20, 30), 3.0, np.float32))
    torch.save(torch.full((1, 20, 30), 3.0), tmp_path / "d.pt")
    a = load_depth(tmp_path / "d.npy", ctx())
    b = load_depth(tmp_path / "d.pt", ctx())
    torch.testing.assert_close(a, torch.full_like(a, expected(3.0)), atol=1e-4, rtol=0)
    torch.testing.assert_close(a, b)
    k = [[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]]
    c = load_depth(tmp_path / "d.npy", ctx(baseline=0.095, intrinsics=k))
    torch.testing.assert_close(c, torch.full_like(c, expected(3.0, baseline=0.095, focal_length=600.0)), atol=1e-4,
                               rtol=0)
    near = load_depth(tmp_path / "d.npy", ctx(max_disparity=10.0, mean=0.0, std=1.0))
    torch.testing.assert_close(near, torch.ones_like(near), atol=1e-5, rtol=0)  # BF/3 = 13 > 10 clamps


def test_invalid_pixels_stay_zero_disparity(tmp_path: Path) -> None:
    mm = np.full((32, 32), 2000)
    mm[:, :16] = 0  # left half: no Kinect return
    x = load_depth(png16(tmp_path / "holes.png", mm), ctx(interpolation="nearest"))
    torch.testing.assert_close(x[..., :, :14], torch.full_like(x[..., :, :14], (0 - 0.0418) / 0.0295))
    torch.testing.assert_close(x[..., :, 18:], torch.full_like(x[..., :, 18:], expected(2.0)), atol=1e-4, rtol=0)
    vitlens = load_depth(tmp_path / "holes.png", ctx(interpolation="nearest", keep_invalid_zero=False))
    assert torch.allclose(vitlens[..., :14], torch.tensor((1.0 - 0.0418) / 0.0295))  # ViT-Lens: max disparity


def test_train_seeded_and_different_from_eval(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = png16(tmp_path / "r.png", rng.integers(500, 8000, (40, 56)))
    a = load_depth(path, ctx(train=True, seed=4))
    assert a.shape == (1, 1, S, S) and a.dtype == torch.float32
    assert torch.equal(a, load_depth(path, ctx(train=True, seed=4)))
    assert not torch.equal(a, load_depth(path, ctx(train=True, seed=5)))
    assert not torch.equal(a, load_depth(path, ctx()))


def test_rgbd_eval_and_joint_training_crop(tmp_path: Path) -> None:
    # Left half near (1 m) and red, right half far (4 m) and blue: the RGB and depth edges must coincide
    # after every joint crop / flip / warp.
    mm = np.full((48, 64), 4000)
    mm[:, :32] = 1000
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, :32, 0] = 255
    rgb[:, 32:, 2] = 255
    dpath = png16(tmp_path / "d.png", mm)
    ipath = tmp_path / "rgb.png"
    Image.fromarray(rgb).save(ipath)
    r, d = load_rgbd(dpath, ipath, ctx())
    assert r.shape == (1, 3, S, S) and d.shape == (1, 1, S, S)
    for seed in range(8):
        r, d = load_rgbd(dpath, ipath, ctx(train=True, seed=seed, erasing=0.0, rand_augment_n=0))
        near = d[0, 0] > (expected(2.0))
        red = r[0, 0] > r[0, 2]
        assert (near == red).float().mean() > 0.9
    r1, d1 = load_rgbd(dpath, ipath, ctx(train=True, seed=11))
    r2, d2 = load_rgbd(dpath, ipath, ctx(train=True, seed=11))
    assert torch.equal(r1, r2) and torch.equal(d1, d2)


@pytest.mark.parametrize("kind, problem", [
    ("8bit", "8-bit depth.*expected 16-bit"),
    ("rgb", "8-bit depth.*expected 16-bit"),
    ("zeros", "all zero"),
    ("nan", "NaN or inf"),
    ("inf", "NaN or inf"),
    ("rank", "wrong array rank"),
    ("corrupt_png", "not a readable image|cannot decode"),
    ("corrupt_npy", "cannot read depth array"),
    ("corrupt_pt", "cannot read depth array"),
    ("pt_dict", "expected a tensor"),
])
def test_bad_depth_raises_preprocess_error_naming_file(tmp_path: Path, kind: str, problem: str) -> None:
    if kind == "8bit":
        path = tmp_path / "eight.png"
        Image.fromarray(np.full((8, 8), 100, np.uint8)).save(path)
    elif kind == "rgb":
        path = tmp_path / "colour.png"
        Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(path)
    elif kind == "zeros":
        path = png16(tmp_path / "zeros.png", np.zeros((8, 8)))
    elif kind in ("nan", "inf"):
        arr = np.ones((8, 8), np.float32)
        arr[2, 3] = np.nan if kind == "nan" else np.inf
        path = tmp_path / f"{kind}.npy"
        np.save(path, arr)
    elif kind == "rank":
        path = tmp_path / "rank.npy"
        np.save(path, np.ones((2, 8, 8), np.float32))
    elif kind == "pt_dict":
        path = tmp_path / "dict.pt"
        torch.save({"depth": torch.ones(4, 4)}, path)
    else:
        suffix = {"corrupt_png": ".png", "corrupt_npy": ".npy", "corrupt_pt": ".pt"}[kind]
        path = tmp_path / f"corrupt{suffix}"
        path.write_bytes(b"\x89PNG\r\n\x1a\n garbage bytes" if suffix == ".png" else b"garbage bytes" * 10)
    with pytest.raises(PreprocessError, match=problem) as info:
        load_depth(path, ctx())
    assert path.name in str(info.value)


def test_bad_options_name_file(tmp_path: Path) -> None:
    path = png16(tmp_path / "ok.png", np.full((8, 8), 1000))
    with pytest.raises(PreprocessError, match="ok.png.*format"):
        load_depth(path, ctx(format="kinect"))
    with pytest.raises(PreprocessError, match="ok.png.*intrinsics"):
        load_depth(path, ctx(intrinsics=[[1.0, 0.0], [0.0, 1.0]]))
    np.save(tmp_path / "f.npy", np.ones((8, 8), np.float32))
    with pytest.raises(PreprocessError, match="f.npy.*integer"):
        load_depth(tmp_path / "f.npy", ctx(format="sunrgbd"))
