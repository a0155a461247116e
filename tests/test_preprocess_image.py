"""Image loader: real files written here (PNG, JPEG, GIF, ...), eval numerics, seeded training, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unialign.config import load_model_config
from unialign.preprocess import augment as A
from unialign.preprocess.base import LoadContext, PreprocessError, make_generator
from unialign.preprocess.image import ImagePreprocess, load_image, open_rgb

CFG = load_model_config("unialign-test-tiny")
S = CFG.clip.vision.image_size
MEAN = torch.tensor(CFG.clip.preprocess.mean).view(1, 3, 1, 1)
STD = torch.tensor(CFG.clip.preprocess.std).view(1, 3, 1, 1)


def ctx(train: bool = False, seed: int = 0, **preprocess) -> LoadContext:
    return LoadContext(config=CFG, modality="image", preprocess=preprocess, train=train, seed=seed,
                       generator=make_generator(seed))


def write(path: Path, arr: np.ndarray, **kw) -> Path:
    Image.fromarray(arr).save(path, **kw)
    return path


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".webp", ".gif", ".tiff"])
def test_constant_image_eval_is_normalised_constant(tmp_path: Path, suffix: str) -> None:
    rgb = (200, 100, 50)
    path = write(tmp_path / f"c{suffix}", np.full((40, 70, 3), rgb, np.uint8))
    x = load_image(path, ctx())
    assert x.shape == (1, 3, S, S) and x.dtype == torch.float32
    expected = (torch.tensor(rgb).view(1, 3, 1, 1) / 255.0 - MEAN) / STD
    tol = 0.05 if suffix in (".jpg", ".webp", ".gif") else 1e-5  # lossy / palette formats
    torch.testing.assert_close(x, expected.expand_as(x), atol=tol, rtol=0)


def test_eval_resizes_short_side_and_centre_crops(tmp_path: Path) -> None:
    # Landscape 20 x 80: left quarter red, middle half green, right quarter blue. After the short side
    # becomes S (width 4S), the centre crop holds only the green middle.
    arr = np.zeros((20, 80, 3), np.uint8)
    arr[:, :20, 0] = 255
    arr[:, 20:60, 1] = 255
    arr[:, 60:, 2] = 255
    x = load_image(write(tmp_path / "bands.png", arr), ctx()) * STD + MEAN
    torch.testing.assert_close(x[0, :, :, 2:-2].mean(dim=(1, 2)), torch.tensor([0.0, 1.0, 0.0]), atol=1e-3, rtol=0)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Stored as 30 wide x 60 tall, red top half; EXIF orientation 6 (rotate 90 deg CW to display) makes it
    # 60 wide x 30 tall with red on the right.
    arr = np.zeros((60, 30, 3), np.uint8)
    arr[:30, :, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rot.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    im = open_rgb(path)
    assert im.size == (60, 30)
    red = np.asarray(im)[:, :, 0].astype(float)
    assert red[:, 45:].mean() > 200 and red[:, :15].mean() < 50


def test_alpha_is_composited_on_white(tmp_path: Path) -> None:
    arr = np.zeros((8, 8, 4), np.uint8)
    arr[:, :4] = (255, 0, 0, 255)  # opaque red left, fully transparent black right
    im = open_rgb(write(tmp_path / "a.png", arr))
    out = np.asarray(im)
    assert (out[:, :4] == (255, 0, 0)).all() and (out[:, 4:] == 255).all()
    grey_alpha = np.zeros((4, 4, 2), np.uint8)  # LA fully transparent -> white
    assert (np.asarray(open_rgb(write(tmp_path / "la.png", grey_alpha))) == 255).all()


def test_train_same_seed_identical_and_seeds_differ(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = write(tmp_path / "n.png", rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    state = torch.get_rng_state()
    a = load_image(path, ctx(train=True, seed=7))
    b = load_image(path, ctx(train=True, seed=7))
    c = load_image(path, ctx(train=True, seed=8))
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    assert a.shape == (1, 3, S, S) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, load_image(path, ctx()))


def test_train_without_augmentation_is_crop_of_constant(tmp_path: Path) -> None:
    # With RandAugment, jitter and erasing off, any crop/flip of a constant image is that constant.
    path = write(tmp_path / "c.png", np.full((30, 50, 3), (10, 20, 30), np.uint8))
    x = load_image(path, ctx(train=True, seed=3, rand_augment_n=0, color_jitter=0.0, erasing=0.0))
    expected = (torch.tensor([10, 20, 30]).view(1, 3, 1, 1) / 255.0 - MEAN) / STD
    torch.testing.assert_close(x, expected.expand_as(x), atol=1e-4, rtol=0)


def test_shared_randaugment_params_same_on_every_row() -> None:
    ra = A.rand_augment(2, 9)
    x = torch.rand(1, 3, 16, 16).expand(5, -1, -1, -1).contiguous()
    for seed in range(5):
        with A.seeded(seed):
            y = A.apply_params(ra, x, A.shared_params(ra, x))
        assert torch.allclose(y, y[:1].expand_as(y), atol=1e-6)


@pytest.mark.parametrize(
    "name, content, problem",
    [
        ("missing.png", None, "not found"),
        ("empty.png", b"", "empty"),
        ("garbage.png", b"this is not an image at all", "not a readable image"),
        ("truncated.png", "truncate", "cannot decode"),
        ("image.xyz", b"abc", "unknown extension"),
    ],
)
def test_bad_files_raise_preprocess_error_naming_file(tmp_path: Path, name: str, content, problem: str) -> None:
    path = tmp_path / name
    if content == "truncate":
        full = write(tmp_path / "full.png", np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
        path.write_bytes(full.read_bytes()[:200])
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(PreprocessError, match=problem) as info:
        load_image(path, ctx())
    assert name in str(info.value)


def test_unknown_option_fails_naming_file(tmp_path: Path) -> None:
    path = write(tmp_path / "ok.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(PreprocessError, match="ok.png.*bogus"):
        load_image(path, ctx(bogus=1))
    with pytest.raises(PreprocessError, match="ok.png.*magnitude"):
        load_image(path, ctx(train=True, rand_augment_m=12.0))


def test_options_defaults_match_table1() -> None:
    o = ImagePreprocess()
    assert (o.hflip, o.rand_augment_n, o.rand_augment_m, o.color_jitter, o.erasing) == (0.5, 2, 9.0, 0.4, 0.25)
