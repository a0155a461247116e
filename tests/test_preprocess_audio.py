"""The audio loader on tiny files written here in real formats (wav, flac, ogg, mp3 via soundfile)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from unialign.config import ModelConfig
from unialign.preprocess.base import LoadContext, PreprocessError, make_generator

sf = pytest.importorskip("soundfile")
from unialign.preprocess.audio import load_audio, read_audio  # noqa: E402


def ctx(train: bool = False, seed: int = 0, n_mels: int = 128, **preprocess: Any) -> LoadContext:
    return LoadContext(
        config=ModelConfig(), modality="audio", tokenizer={"n_mels": n_mels}, preprocess=preprocess,
        train=train, seed=seed, generator=make_generator(seed),
    )


def tone(path: Path, freq: float = 1000.0, sr: int = 16000, seconds: float = 2.0, channels: int = 1,
         subtype: str | None = None) -> Path:
    t = np.arange(int(sr * seconds)) / sr
    x = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    data = np.stack([x] * channels, axis=1) if channels > 1 else x
    sf.write(str(path), data, sr, subtype=subtype)
    return path


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg"])
def test_formats_round_trip_to_expected_shape(tmp_path: Path, ext: str) -> None:
    path = tone(tmp_path / f"a.{ext}", sr=22050, seconds=6.0)
    out = load_audio(path, ctx())
    assert out.shape == (3, 498, 128) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_mp3_if_libsndfile_supports_it(tmp_path: Path) -> None:
    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile has no MP3 support")
    out = load_audio(tone(tmp_path / "a.mp3", seconds=3.0), ctx())
    assert out.shape == (3, 498, 128)


def test_tone_at_44k_resampled_keeps_its_frequency(tmp_path: Path) -> None:
    path = tone(tmp_path / "t.wav", freq=1000.0, sr=44100, seconds=1.0, subtype="FLOAT")
    wav, sr = read_audio(path)
    assert sr == 44100
    out = load_audio(path, ctx(n_mels=64))
    # The mel bin holding most energy is the one whose centre is nearest 1 kHz.
    from unialign.ops.fbank import mel_scale

    lo, hi = float(mel_scale(20.0)), float(mel_scale(8000.0))
    centres = lo + (torch.arange(64) + 1) * (hi - lo) / 65
    expected = int((centres - float(mel_scale(1000.0))).abs().argmin())
    assert torch.mode(out[0].argmax(dim=-1)).values.item() == expected
    from unialign.ops.fbank import resample

    y = resample(wav, 44100, 16000)
    spectrum = torch.fft.rfft(y * torch.hann_window(len(y))).abs()
    assert abs(int(spectrum.argmax()) * 16000 / len(y) - 1000) < 2


def test_short_clip_is_repeat_padded_to_498_frames(tmp_path: Path) -> None:
    path = tone(tmp_path / "short.wav", seconds=2.0)
    out = load_audio(path, ctx())
    assert out.shape == (3, 498, 128)
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])  # one padded clip, repeated as views
    # Repeat padding: the steady tone's frames look alike before and after the 2 s seam.
    torch.testing.assert_close(out[0, 50], out[0, 350], atol=0.05, rtol=0)
    single = load_audio(path, ctx(eval_clips=1))
    assert single.shape == (1, 498, 128)


def test_long_file_gives_distinct_evenly_spaced_clips(tmp_path: Path) -> None:
    sr = 16000
    t = np.arange(sr * 15) / sr
    x = (0.5 * np.sin(2 * np.pi * (300 + 200 * t) * t)).astype(np.float32)  # chirp: content changes with time
    sf.write(str(tmp_path / "long.wav"), x, sr)
    out = load_audio(tmp_path / "long.wav", ctx())
    assert out.shape == (3, 498, 128)
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])
    # With 3 clips the middle one is centred, the same span a single eval clip takes.
    centred = load_audio(tmp_path / "long.wav", ctx(eval_clips=1))
    torch.testing.assert_close(centred[0], out[1])


def test_stereo_is_averaged_to_mono(tmp_path: Path) -> None:
    sr = 16000
    left = 0.4 * np.sin(2 * np.pi * 500 * np.arange(sr) / sr)
    sf.write(str(tmp_path / "st.wav"), np.stack([left, -left * 0.5], 1).astype(np.float32), sr, subtype="FLOAT")
    wav, _ = read_audio(tmp_path / "st.wav")
    np.testing.assert_allclose(wav.numpy(), 0.25 * left, atol=1e-6)


def test_normalisation_uses_mean_and_std_options(tmp_path: Path) -> None:
    path = tone(tmp_path / "n.wav", seconds=5.0)
    a = load_audio(path, ctx(eval_clips=1))
    b = load_audio(path, ctx(eval_clips=1, mean=0.0, std=1.0))
    torch.testing.assert_close(a, (b - -4.2677) / 4.5690, atol=1e-5, rtol=1e-5)


def test_training_is_seeded(tmp_path: Path) -> None:
    sr = 16000
    x = np.random.default_rng(0).normal(0, 0.1, sr * 9).astype(np.float32)
    sf.write(str(tmp_path / "n.wav"), x, sr)
    a = load_audio(tmp_path / "n.wav", ctx(train=True, seed=7, noise_std=0.1))
    b = load_audio(tmp_path / "n.wav", ctx(train=True, seed=7, noise_std=0.1))
    c = load_audio(tmp_path / "n.wav", ctx(train=True, seed=8, noise_std=0.1))
    assert a.shape == (1, 498, 128)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_spec_augment_masks_within_limits(tmp_path: Path) -> None:
    path = tone(tmp_path / "m.wav", seconds=5.0)
    clean = load_audio(path, ctx(eval_clips=1))[0]
    widths = []
    for seed in range(5):
        out = load_audio(path, ctx(train=True, seed=seed))[0]  # 5 s file: the crop is the whole file
        changed = out != clean
        assert (out[changed] == 0).all()  # masked values are 0 (the mean after normalisation)
        rows = changed.all(dim=1).nonzero().flatten()  # fully masked frames: the time mask
        cols = changed.all(dim=0).nonzero().flatten()  # fully masked bins: the frequency mask
        assert len(rows) <= 48 and len(cols) <= 12
        for band in (rows, cols):  # each mask is one contiguous band
            assert len(band) == 0 or int(band[-1] - band[0]) + 1 == len(band)
        in_band = torch.zeros_like(changed)
        in_band[rows] = True
        in_band[:, cols] = True
        assert torch.equal(changed, in_band)  # nothing outside the two bands changed
        widths += [len(rows), len(cols)]
    assert max(widths) > 0  # the masks did fire


def test_bad_files_raise_preprocess_error_naming_the_file(tmp_path: Path) -> None:
    good = tone(tmp_path / "good.wav", seconds=1.0)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "garbage.flac").write_bytes(b"not audio at all" * 20)
    blob = good.read_bytes()
    (tmp_path / "cut_header.wav").write_bytes(blob[:30])
    (tmp_path / "cut_data.wav").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "clip.aiff").write_bytes(blob)
    sf.write(str(tmp_path / "silent.wav"), np.zeros(16000, np.float32), 16000)
    sf.write(str(tmp_path / "one_sample.wav"), np.array([0.5], np.float32), 16000)
    sf.write(str(tmp_path / "tiny.wav"), np.full(200, 0.5, np.float32), 16000)  # 12.5 ms < one 25 ms frame
    nan = np.full(16000, 0.1, np.float32)
    nan[100] = np.nan
    sf.write(str(tmp_path / "nan.wav"), nan, 16000, subtype="FLOAT")
    flac = tone(tmp_path / "cut.flac", seconds=3.0).read_bytes()
    (tmp_path / "cut.flac").write_bytes(flac[: len(flac) // 2])
    expect = {
        "empty.wav": "empty", "garbage.flac": "cannot decode", "cut_header.wav": "cannot decode",
        "cut_data.wav": "truncated", "clip.aiff": "unknown extension", "silent.wav": "silent",
        "one_sample.wav": "at least 2", "tiny.wav": "shorter than one", "nan.wav": "NaN", "cut.flac": "cannot decode",
        "missing.wav": "not found",
    }
    for name, problem in expect.items():
        with pytest.raises(PreprocessError) as err:
            load_audio(tmp_path / name, ctx())
        assert name in str(err.value) and problem in str(err.value), str(err.value)


def test_bad_options_raise_preprocess_error(tmp_path: Path) -> None:
    path = tone(tmp_path / "o.wav", seconds=1.0)
    with pytest.raises(PreprocessError, match="o.wav.*unknown key"):
        load_audio(path, ctx(sample_rat=8000))
    with pytest.raises(PreprocessError, match="window"):
        load_audio(path, ctx(window="kaiser"))


def test_tiny_model_sized_output(tmp_path: Path) -> None:
    out = load_audio(tone(tmp_path / "t.wav", seconds=1.0), ctx(n_mels=16, clip_seconds=0.5, eval_clips=2))
    assert out.shape == (2, 48, 16)
    assert math.isfinite(float(out.sum()))
