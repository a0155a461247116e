"""The torch Kaldi filterbank against kaldi-native-fbank, hand-checkable properties, and the resampler."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from unialign.ops.fbank import fbank, frame_window, mel_banks, mel_scale, num_frames, resample

# Tolerance vs kaldi-native-fbank, in log-mel units (natural log). Within 60 dB of each frame's peak bin
# the largest difference seen on these signals is 2.6e-4 and we assert 5e-4. Bins more than 60 dB down
# sit at knf's float32 FFT rounding floor (they differ by up to 0.014 there); those get 0.05.
KNF_ATOL = 5e-4
FLOOR_ATOL = 0.05


def assert_close_to_knf(ours: np.ndarray, ref: np.ndarray, msg: str = "") -> None:
    """|ours - ref| <= KNF_ATOL within 60 dB of each frame's peak, <= FLOOR_ATOL elsewhere."""
    assert ours.shape == ref.shape, msg
    strong = ref > ref.max(axis=1, keepdims=True) - math.log(1e6)
    np.testing.assert_allclose(ours[strong], ref[strong], atol=KNF_ATOL, rtol=0, err_msg=msg)
    np.testing.assert_allclose(ours, ref, atol=FLOOR_ATOL, rtol=0, err_msg=msg)


def knf_fbank(x: np.ndarray, sr: int, bins: int, window: str, snip_edges: bool = True) -> np.ndarray:
    """kaldi-native-fbank (independent C++ Kaldi port) log-mel frames (T, bins), no dither."""
    knf = pytest.importorskip("kaldi_native_fbank")
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.samp_freq = float(sr)
    opts.frame_opts.window_type = window
    opts.frame_opts.snip_edges = snip_edges
    opts.mel_opts.num_bins = bins
    opts.mel_opts.is_librosa = False
    opts.use_energy = False
    comp = knf.OnlineFbank(opts)
    comp.accept_waveform(float(sr), x.astype(np.float32).tolist())
    comp.input_finished()
    return np.stack([np.asarray(comp.get_frame(i)) for i in range(comp.num_frames_ready)])


def signals() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    t = torch.arange(12000, dtype=torch.float64) / 16000
    return {
        "noise": 0.3 * torch.randn(12000, generator=g, dtype=torch.float64),
        "noise_int16": (32768 * 0.1 * torch.randn(9000, generator=g, dtype=torch.float64)).round(),
        "tones": 0.5 * torch.sin(2 * math.pi * 440 * t) + 0.2 * torch.sin(2 * math.pi * 3000 * t),
        "chirp": 0.8 * torch.sin(2 * math.pi * (200 + 3000 * t) * t),
    }


@pytest.mark.parametrize("window", ["hamming", "hanning", "povey", "blackman", "rectangular"])
@pytest.mark.parametrize("bins", [80, 64])
def test_matches_kaldi_native_fbank(window: str, bins: int) -> None:
    for name, x in signals().items():
        ref = knf_fbank(x.numpy(), 16000, bins, window)
        ours = fbank(x, 16000, num_mel_bins=bins, window=window).numpy()
        assert_close_to_knf(ours, ref, f"{name}/{window}/{bins}")


def test_matches_kaldi_native_fbank_without_snip_edges_and_at_8khz() -> None:
    x = signals()["noise"][:7000]
    ref = knf_fbank(x.numpy(), 16000, 40, "povey", snip_edges=False)
    ours = fbank(x, 16000, num_mel_bins=40, window="povey", snip_edges=False).numpy()
    assert ours.shape == ref.shape == (num_frames(7000, 16000, snip_edges=False), 40)
    assert_close_to_knf(ours, ref)
    x8 = signals()["tones"][:8000]
    ours8 = fbank(x8, 8000, num_mel_bins=23, window="hamming").numpy()
    assert_close_to_knf(ours8, knf_fbank(x8.numpy(), 8000, 23, "hamming"))


def test_frame_count_and_batching() -> None:
    x = torch.randn(2, 3, 80000)
    out = fbank(x, 16000)
    assert out.shape == (2, 3, 498, 128) and out.dtype == torch.float32
    assert num_frames(80000, 16000) == 498
    torch.testing.assert_close(out[1, 2], fbank(x[1, 2], 16000), atol=1e-4, rtol=1e-5)


def test_pure_tone_peaks_in_its_mel_bin() -> None:
    sr, freq, bins = 16000, 2000.0, 64
    x = torch.sin(2 * math.pi * freq * torch.arange(sr, dtype=torch.float64) / sr)
    out = fbank(x, sr, num_mel_bins=bins, window="hamming", preemphasis=0.0)
    # Filter centres: equally spaced in mel between 20 Hz and Nyquist; the nearest centre must win.
    lo, hi = float(mel_scale(20.0)), float(mel_scale(sr / 2))
    centres = lo + (torch.arange(bins) + 1) * (hi - lo) / (bins + 1)
    expected = int((centres - float(mel_scale(freq))).abs().argmin())
    assert set(out.argmax(dim=-1).tolist()) == {expected}


def test_mel_filters_are_triangles_peaking_at_one() -> None:
    banks = mel_banks(23, 512, 16000, 20.0, 0.0)
    assert banks.shape == (23, 257)
    assert float(banks.min()) == 0.0 and float(banks.max()) <= 1.0 and float(banks[:, -1].abs().sum()) == 0
    assert (banks.max(dim=1).values > 0.8).all()  # every filter is sampled near its apex


def test_windows_by_hand() -> None:
    w = frame_window("hamming", 5)
    torch.testing.assert_close(w, torch.tensor([0.08, 0.54, 1.0, 0.54, 0.08], dtype=torch.float64))
    torch.testing.assert_close(frame_window("povey", 5), frame_window("hanning", 5) ** 0.85)
    with pytest.raises(ValueError, match="unknown window"):
        fbank(torch.randn(1000), 16000, window="kaiser")


def test_int16_scale_shifts_log_mel_by_constant() -> None:
    x = signals()["noise"]
    diff = fbank(32768 * x, 16000, num_mel_bins=40) - fbank(x, 16000, num_mel_bins=40)
    torch.testing.assert_close(diff, torch.full_like(diff, 2 * math.log(32768)), atol=1e-4, rtol=0)


def test_too_short_waveform_fails() -> None:
    with pytest.raises(ValueError, match="shorter than one frame"):
        fbank(torch.randn(399), 16000)


@pytest.mark.parametrize("orig", [44100, 48000, 22050, 8000])
def test_resample_keeps_a_tone(orig: int) -> None:
    n = orig  # 1 s
    x = torch.sin(2 * math.pi * 1000 * torch.arange(n, dtype=torch.float64) / orig)
    y = resample(x, orig, 16000)
    assert y.shape == (16000,)
    ideal = torch.sin(2 * math.pi * 1000 * torch.arange(16000, dtype=torch.float64) / 16000)
    assert float((y - ideal)[1000:-1000].abs().max()) < 1e-3  # away from the zero-padded ends
    spectrum = torch.fft.rfft(y[1000:-1000] * torch.hann_window(14000, dtype=torch.float64)).abs()
    assert abs(int(spectrum.argmax()) * 16000 / 14000 - 1000) < 2


def test_resample_removes_content_above_new_nyquist() -> None:
    x = torch.sin(2 * math.pi * 10000 * torch.arange(48000, dtype=torch.float64) / 48000)  # would alias to 6 kHz
    y = resample(x, 48000, 16000)
    assert float(y[500:-500].abs().max()) < 1e-3
