"""Reliability: fuzzed bad input never escapes as anything but PreprocessError, never hangs.

Every loader (image .png/.jpg, video .mp4, depth .png/.npy, point .npy/.ply/.off/.obj/.xyz, audio
.wav/.flac) is fed random bytes, truncated prefixes and byte-corrupted copies of a valid file of its
format (the valid files are generated here), and extreme arrays/shapes. The only exception allowed is
:class:`unialign.preprocess.PreprocessError`; a successful load must return a finite float tensor. Each
load runs in a daemon thread with a join timeout, so a hang fails the test instead of blocking the run.
Finally ``embed_cli`` over a folder mixing good and bad files embeds the good ones and exits 1.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from unialign.config import load_model_config  # noqa: E402
from unialign.preprocess import PreprocessError, load  # noqa: E402

CFG = load_model_config("unialign-test-tiny")
LOAD_TIMEOUT_S = 30.0  # one load of a tiny file takes well under a second; 30 s means a hang
# UNIALIGN_FUZZ_EXAMPLES=N runs N random (not derandomized) examples per test, for a longer local hunt
_EXAMPLES = int(os.environ.get("UNIALIGN_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_EXAMPLES or 25, deadline=None, database=None, derandomize=not _EXAMPLES,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# (modality, suffix) of every loader/format under test
FORMATS = [
    ("image", ".png"), ("image", ".jpg"), ("video", ".mp4"), ("depth", ".png"), ("depth", ".npy"),
    ("point", ".npy"), ("point", ".ply"), ("point", ".off"), ("point", ".obj"), ("point", ".xyz"),
    ("audio", ".wav"), ("audio", ".flac"),
]
IDS = [f"{m}{s}" for m, s in FORMATS]
TRUNCATED = [pytest.param(m, s, id=f"{m}{s}") for m, s in FORMATS]


# ---------------------------------------------------------------------------------------------- helpers


def guarded_load(modality: str, path: Path, train: bool = False, seed: int = 0) -> torch.Tensor | None:
    """``load`` in a daemon thread: the tensor, or None for a PreprocessError; anything else fails."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                box["value"] = load(modality, path, train, config=CFG, seed=seed)
        except BaseException as exc:  # noqa: BLE001 - judged below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name=f"load-{path.name}")
    thread.start()
    thread.join(LOAD_TIMEOUT_S)
    if thread.is_alive():
        pytest.fail(f"load({modality!r}, {path.name}, train={train}) hung for more than {LOAD_TIMEOUT_S} s")
    if "error" in box:
        err = box["error"]
        if isinstance(err, PreprocessError):
            assert str(path) in str(err) or path.name in str(err), f"message does not name the file: {err}"
            return None
        raise AssertionError(
            f"load({modality!r}, {path.name}, train={train}) raised {type(err).__name__}, not PreprocessError: {err}"
        ) from err
    x = box["value"]
    assert isinstance(x, torch.Tensor) and x.is_floating_point(), f"{path.name}: not a float tensor: {type(x)}"
    assert x.dim() >= 2 and x.shape[0] >= 1 and x.numel() > 0, f"{path.name}: unusable shape {tuple(x.shape)}"
    assert bool(torch.isfinite(x).all()), f"{path.name}: loaded tensor holds NaN/inf"
    return x


def _png(w: int = 40, h: int = 30, seed: int = 0) -> bytes:
    from PIL import Image

    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _jpg() -> bytes:
    from PIL import Image

    arr = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _mp4(path: Path, frames: int = 12, w: int = 32, h: int = 32) -> bytes:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.gop_size = 4
        for k in range(frames):
            arr = np.full((h, w, 3), (8 * k % 256, 64, 128), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


def _depth_png() -> bytes:
    from PIL import Image

    arr = (np.random.default_rng(2).integers(500, 5000, (24, 32))).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


CUBE_V = [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1)]
CUBE_F = [(0, 2, 1), (0, 3, 2), (4, 5, 6), (4, 6, 7), (0, 1, 5), (0, 5, 4), (2, 3, 7), (2, 7, 6),
          (1, 2, 6), (1, 6, 5), (0, 4, 7), (0, 7, 3)]


def _ply(n: int = 60) -> bytes:
    xyz = np.random.default_rng(3).normal(size=(n, 3)).astype(np.float32)
    header = "\n".join(["ply", "format binary_little_endian 1.0", f"element vertex {n}", "property float x",
                        "property float y", "property float z", "end_header"]) + "\n"
    return header.encode() + b"".join(struct.pack("<3f", *p) for p in xyz)


def _off() -> bytes:
    lines = ["OFF", f"{len(CUBE_V)} {len(CUBE_F)} 0"] + [" ".join(map(str, v)) for v in CUBE_V]
    return ("\n".join(lines + [f"3 {a} {b} {c}" for a, b, c in CUBE_F]) + "\n").encode()


def _obj() -> bytes:
    lines = [f"v {x} {y} {z}" for x, y, z in CUBE_V] + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in CUBE_F]
    return ("# cube\n" + "\n".join(lines) + "\n").encode()


def _xyz(n: int = 40) -> bytes:
    pts = np.random.default_rng(4).normal(size=(n, 3))
    return "".join(f"{a:.6f} {b:.6f} {c:.6f}\n" for a, b, c in pts).encode()


def _audio(fmt: str, seconds: float = 0.3, rate: int = 16000) -> bytes:
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    wav = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, wav, rate, format=fmt, subtype="PCM_16")
    return buf.getvalue()


class ValidFiles(dict):
    """(modality, suffix) -> bytes of a valid file, with a short repr for hypothesis' failure reports."""

    def __repr__(self) -> str:
        return f"<valid files: {sorted(self)}>"


@pytest.fixture(scope="module")
def valid(tmp_path_factory: pytest.TempPathFactory) -> ValidFiles:
    """Bytes of one valid file per (modality, suffix); each is checked to load."""
    root = tmp_path_factory.mktemp("valid")
    files = ValidFiles({
        ("image", ".png"): _png(), ("image", ".jpg"): _jpg(), ("video", ".mp4"): _mp4(root / "v.mp4"),
        ("depth", ".png"): _depth_png(),
        ("depth", ".npy"): _npy(np.random.default_rng(5).uniform(0.5, 4.0, (24, 32)).astype(np.float32)),
        ("point", ".npy"): _npy(np.random.default_rng(6).normal(size=(300, 3)).astype(np.float32)),
        ("point", ".ply"): _ply(), ("point", ".off"): _off(), ("point", ".obj"): _obj(), ("point", ".xyz"): _xyz(),
        ("audio", ".wav"): _audio("WAV"), ("audio", ".flac"): _audio("FLAC"),
    })
    for (modality, suffix), data in files.items():
        path = root / f"ok{suffix}"
        path.write_bytes(data)
        assert guarded_load(modality, path) is not None, f"the valid {modality}{suffix} file does not load"
    return files


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _write(scratch: Path, suffix: str, data: bytes) -> Path:
    path = scratch / f"case{suffix}"
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------------- bytes


@pytest.mark.parametrize(("modality", "suffix"), FORMATS, ids=IDS)
@FUZZ
@given(data=st.binary(min_size=0, max_size=2048), train=st.booleans())
def test_random_bytes_raise_only_preprocess_error(scratch: Path, modality: str, suffix: str, data: bytes,
                                                  train: bool) -> None:
    guarded_load(modality, _write(scratch, suffix, data), train)


@pytest.mark.parametrize(("modality", "suffix"), TRUNCATED)
@FUZZ
@given(cut=st.floats(min_value=0.0, max_value=1.0, exclude_max=True), train=st.booleans())
def test_truncated_valid_files_raise_only_preprocess_error(valid, scratch: Path, modality: str, suffix: str,
                                                           cut: float, train: bool) -> None:
    good = valid[(modality, suffix)]
    guarded_load(modality, _write(scratch, suffix, good[: int(cut * len(good))]), train)


@pytest.mark.parametrize(("modality", "suffix"), FORMATS, ids=IDS)
@FUZZ
@given(edits=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 255)), min_size=1,
                      max_size=8),
       train=st.booleans())
def test_corrupted_valid_files_raise_only_preprocess_error(valid, scratch: Path, modality: str, suffix: str,
                                                           edits: list[tuple[float, int]], train: bool) -> None:
    data = bytearray(valid[(modality, suffix)])
    for pos, byte in edits:  # overwrite a few bytes (headers included) with arbitrary values
        data[int(pos * len(data))] = byte
    guarded_load(modality, _write(scratch, suffix, bytes(data)), train)


# ---------------------------------------------------------------------------------------------- extreme arrays

SHAPES = [(0, 3), (1, 3), (2, 3), (7, 3), (300, 3), (5, 6), (3,), (0,), (2, 2, 2, 2, 3), (1, 1, 4, 3), (4, 2),
          (4, 0), (1, 5, 3)]
FILLS = ["normal", "zeros", "huge", "-huge", "nan", "inf", "tiny", "mixed_huge"]
DTYPES = [np.float32, np.float64, np.float16, np.int64, np.uint8, np.uint64, np.int8]


def _fill(shape: tuple[int, ...], fill: str, dtype: type, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=shape)
    with np.errstate(all="ignore"):
        if fill == "zeros":
            base = np.zeros(shape)
        elif fill == "huge":
            base = base * 1e300
        elif fill == "-huge":
            base = -np.abs(base) * 1e300
        elif fill == "nan" and base.size:
            base.flat[rng.integers(base.size)] = np.nan
        elif fill == "inf" and base.size:
            base.flat[rng.integers(base.size)] = np.inf
        elif fill == "tiny":
            base = base * 1e-310
        elif fill == "mixed_huge" and base.size:
            base.flat[rng.integers(base.size)] = 1e308
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            base = np.clip(np.nan_to_num(base, nan=0.0), info.min, info.max)
        return base.astype(dtype)


@FUZZ
@given(shape=st.sampled_from(SHAPES), fill=st.sampled_from(FILLS), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**16), train=st.booleans())
def test_extreme_point_arrays(scratch: Path, shape, fill: str, dtype, seed: int, train: bool) -> None:
    arr = _fill(shape, fill, dtype, seed)
    x = guarded_load("point", _write(scratch, ".npy", _npy(arr)), train)
    if x is not None:
        assert x.shape == (1, 256, 3)
        if not train:  # eval output is centred and inside the unit sphere
            assert float(x[0].norm(dim=1).max()) <= 1.0 + 1e-4


@FUZZ
@given(points=st.lists(st.tuples(*[st.floats(allow_nan=True, allow_infinity=True, width=32)] * 3), max_size=6),
       fmt=st.sampled_from([".xyz", ".ply", ".obj", ".off"]), train=st.booleans())
def test_extreme_point_text_files(scratch: Path, points, fmt: str, train: bool) -> None:
    """0, 1 or a few points with arbitrary floats (NaN, inf, 3.4e38) in every text/mesh format."""
    rows = [" ".join(repr(float(v)) for v in p) for p in points]
    if fmt == ".xyz":
        text = "\n".join(rows) + "\n"
    elif fmt == ".obj":
        text = "".join(f"v {r}\n" for r in rows) + ("f 1 2 3\n" if len(points) >= 3 else "")
    elif fmt == ".off":
        faces = ["3 0 1 2"] if len(points) >= 3 else []
        text = "\n".join(["OFF", f"{len(points)} {len(faces)} 0", *rows, *faces]) + "\n"
    else:
        text = "\n".join(["ply", "format ascii 1.0", f"element vertex {len(points)}", "property float x",
                          "property float y", "property float z", "end_header", *rows]) + "\n"
    guarded_load("point", _write(scratch, fmt, text.encode()), train)


DEPTH_SHAPES = [(0, 0), (0, 5), (1, 1), (1, 7), (3, 1), (24, 32), (2,), (1, 8, 8), (8, 8, 1), (3, 8, 8),
                (1, 1, 1, 4, 4), (2, 2, 2, 2, 2), ()]


@FUZZ
@given(shape=st.sampled_from(DEPTH_SHAPES), fill=st.sampled_from(FILLS), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**16), train=st.booleans())
def test_extreme_depth_arrays(scratch: Path, shape, fill: str, dtype, seed: int, train: bool) -> None:
    arr = np.abs(_fill(shape, fill, dtype, seed)) if fill != "-huge" else _fill(shape, fill, dtype, seed)
    x = guarded_load("depth", _write(scratch, ".npy", _npy(arr)), train)
    if x is not None:
        assert x.shape == (1, 1, 32, 32)


@FUZZ
@given(w=st.integers(1, 300), h=st.integers(1, 300), mode=st.sampled_from(["RGB", "L", "I;16", "RGBA", "P", "LA", "1"]),
       fmt=st.sampled_from([".png", ".jpg"]), train=st.booleans())
def test_extreme_images(scratch: Path, w: int, h: int, mode: str, fmt: str, train: bool) -> None:
    """Degenerate sizes (1 x N lines, single pixels) and every common mode, as image and as depth."""
    from PIL import Image

    if fmt == ".jpg" and mode not in ("RGB", "L"):
        mode = "L"
    im = Image.new(mode, (w, h))
    buf = io.BytesIO()
    im.save(buf, format="PNG" if fmt == ".png" else "JPEG")
    path = _write(scratch, fmt, buf.getvalue())
    x = guarded_load("image", path, train)
    assert x is not None and x.shape == (1, 3, 32, 32)
    if fmt == ".png":
        guarded_load("depth", path, train)


@FUZZ
@given(frames=st.integers(0, 4), rate=st.sampled_from([1, 8, 400, 8000, 16000, 44100, 192000]),
       channels=st.integers(1, 3), fill=st.sampled_from(["sine", "zeros", "nan", "huge", "full"]),
       fmt=st.sampled_from(["WAV", "FLAC"]), train=st.booleans())
def test_extreme_audio(scratch: Path, frames: int, rate: int, channels: int, fill: str, fmt: str,
                       train: bool) -> None:
    """0-4 samples scaled by powers of ten, odd sample rates (1 Hz - 192 kHz), silence, NaN, clipping."""
    import soundfile as sf

    n = [0, 1, 5, 400, 20000][frames]
    t = np.arange(n) / rate
    wav = np.repeat((0.5 * np.sin(2 * np.pi * 3 * t + 0.1))[:, None], channels, 1)
    if fill == "zeros":
        wav[:] = 0
    elif fill == "nan" and n:
        wav[n // 2] = np.nan
    elif fill == "huge":
        wav = wav * 1e30
    elif fill == "full":
        wav = np.sign(wav + 1e-9)
    suffix = ".wav" if fmt == "WAV" else ".flac"
    subtype = "FLOAT" if fmt == "WAV" else "PCM_16"
    buf = io.BytesIO()
    try:
        sf.write(buf, wav.astype(np.float32), rate, format=fmt, subtype=subtype)
    except Exception:  # noqa: BLE001 - soundfile cannot write it (FLAC: no 1 Hz rate, no NaN): nothing to test
        return
    x = guarded_load("audio", _write(scratch, suffix, buf.getvalue()), train)
    if x is not None:
        assert x.shape[1:] == (48, 16)


@FUZZ
@given(frames=st.integers(0, 3), w=st.sampled_from([2, 4, 16]), h=st.sampled_from([2, 4, 16]), train=st.booleans())
def test_extreme_videos(scratch: Path, frames: int, w: int, h: int, train: bool) -> None:
    """0-3 frame videos with tiny frames: a short video is a PreprocessError or a valid clip."""
    path = scratch / "tiny.mp4"
    path.unlink(missing_ok=True)
    try:
        _mp4(path, frames=frames, w=w, h=h)
    except FileNotFoundError:  # PyAV writes no file for a video without frames: use an empty-but-valid name
        path.write_bytes(b"\x00\x00\x00\x08free")
    x = guarded_load("video", path, train)
    if x is not None:
        assert x.shape[1:] == (3, 4, 32, 32)


@pytest.mark.parametrize("text", [b"# cube\nv 0 0 0\nv 1 0", b"v 0 0\nv 1 0\nv 2 5\n"], ids=["truncated", "two-columns"])
def test_obj_with_two_coordinate_vertices_is_a_preprocess_error(scratch: Path, text: bytes) -> None:
    """A truncated OBJ whose last vertex line has 2 numbers makes trimesh return (P, 2) vertices.

    4 values -> ``reshape(-1, 3)`` raises a bare ValueError; 6 values -> two made-up points
    ``[[0, 0, 1], [0, 2, 5]]`` are returned as if the file were fine. Either way it must be rejected.
    """
    path = _write(scratch, ".obj", text)
    with pytest.raises(PreprocessError):
        load("point", path, config=CFG, seed=0)


@pytest.mark.parametrize("points", [[[1e308, 0.0, 0.0]], [[1e308, 0.0, 0.0], [0.0, 0.0, 0.0]]], ids=["one", "two"])
def test_points_near_float_max_are_rejected_or_finite(scratch: Path, points) -> None:
    guarded_load("point", _write(scratch, ".npy", _npy(np.array(points))))


def test_float_wav_with_out_of_range_samples_is_rejected_or_finite(scratch: Path) -> None:
    import soundfile as sf

    buf = io.BytesIO()
    t = np.arange(8000) / 16000
    sf.write(buf, (1e20 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000, format="WAV", subtype="FLOAT")
    guarded_load("audio", _write(scratch, ".wav", buf.getvalue()))


# ---------------------------------------------------------------------------------------------- embed_cli


def test_embed_cli_embeds_good_files_reports_bad_ones_and_exits_1(valid, tmp_path: Path, capsys) -> None:
    import unialign
    from unialign.inference import embed_cli

    ckpt = unialign.save_checkpoint(unialign.create_model("unialign-test-tiny"), tmp_path / "ckpt")
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = {"a.npy": valid[("point", ".npy")], "b.ply": valid[("point", ".ply")], "c.obj": valid[("point", ".obj")],
            "d.xyz": valid[("point", ".xyz")]}
    bad = {"e.npy": valid[("point", ".npy")][:100], "f.ply": b"ply\nformat ascii 1.0\nelement vertex 9\nend_header\n",
           "g.off": b"\x00" * 64, "h.xyz": b"1 2 3\n4 5\n", "i.npy": _npy(np.full((4, 3), np.nan)),
           "j.txt": b"", "k.png": _png()}
    for name, data in {**good, **bad}.items():
        (folder / name).write_bytes(data)
    out = tmp_path / "emb.npz"
    code = embed_cli(ckpt, "point", [folder], out, progress=False)
    err = capsys.readouterr().err
    assert code == 1
    with np.load(out) as data:
        assert sorted(Path(str(i)).name for i in data["ids"]) == sorted(good)
        emb = data["embeddings"]
        assert emb.shape == (len(good), CFG.clip.embed_dim) and np.isfinite(emb).all()
    for name in bad:
        assert f"skipped {folder / name}" in err, name
    assert f"{len(bad)} of {len(good) + len(bad)} file(s) failed" in err
