"""Kaldi-compatible log-mel filterbank (``compute-fbank``) and a band-limited resampler, in pure torch.

:func:`fbank` follows Kaldi's ``FbankComputer`` (``feat/feature-fbank.cc``, ``feat/feature-window.cc``,
``feat/mel-computations.cc``), the semantics ``torchaudio.compliance.kaldi.fbank`` reproduces:

1. framing: ``window_size = int(sr * frame_length_ms / 1000)``, ``shift = int(sr * frame_shift_ms / 1000)``;
   with ``snip_edges`` there are ``1 + (N - window_size) // shift`` frames (0 when N < window_size),
   otherwise ``(N + shift // 2) // shift`` frames centred on ``i * shift + shift // 2`` with the signal
   reflected at both ends (``s < 0 -> -s - 1``, ``s >= N -> 2N - 1 - s``);
2. per frame: optional Gaussian dither, DC removal, raw log-energy, pre-emphasis
   ``x[j] -= a * x[j - 1]`` (``x[0] -= a * x[0]``), window, zero padding to a power of two;
3. power spectrum ``|rfft|^2`` times triangular mel filters on the HTK mel scale
   ``mel(f) = 1127 ln(1 + f / 700)``, equally spaced in mel between ``low_freq`` and ``high_freq``
   (``high_freq <= 0`` means Nyquist + high_freq), evaluated at FFT bin centres ``k * sr / n_fft``;
4. ``log(max(E, eps))`` with ``eps = float32 machine epsilon``; optional log-energy column.

Scale: Kaldi's binaries read int16 samples, so Kaldi-style pipelines that start from floats in [-1, 1]
sometimes multiply by 32768 first (that adds ``2 ln 32768 ~= 20.79`` to every log-mel value). Scaling is
the caller's business; the audio loader, like ImageBind/ViT-Lens, feeds floats in [-1, 1].

Unlike kaldi-native-fbank, many mel bins for a small FFT (128 bins at 16 kHz, 512-point FFT) are allowed,
as in torchaudio: the narrowest low filters may then cover no FFT bin and read ``log(eps)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

EPS = torch.finfo(torch.float32).eps  # Kaldi's std::numeric_limits<float>::epsilon()
WINDOWS = ("hamming", "hanning", "povey", "rectangular", "blackman")


def mel_scale(freq: Tensor | float) -> Tensor:
    """HTK mel scale ``1127 ln(1 + f / 700)`` of frequencies in Hz."""
    return 1127.0 * torch.log1p(torch.as_tensor(freq, dtype=torch.float64) / 700.0)


def frame_window(kind: str, size: int, blackman_coeff: float = 0.42, dtype: torch.dtype = torch.float64) -> Tensor:
    """Kaldi's analysis window of `size` samples (``FeatureWindowFunction``), shape (size,).

    hanning ``0.5 - 0.5 cos(2 pi n / (N - 1))``; hamming ``0.54 - 0.46 cos(.)``; povey = hanning ** 0.85;
    blackman ``c - 0.5 cos(a n) + (0.5 - c) cos(2 a n)`` with ``a = 2 pi / (N - 1)``; rectangular = ones.
    """
    n = torch.arange(size, dtype=torch.float64)
    a = 2.0 * math.pi / (size - 1)
    if kind == "hanning":
        w = 0.5 - 0.5 * torch.cos(a * n)
    elif kind == "hamming":
        w = 0.54 - 0.46 * torch.cos(a * n)
    elif kind == "povey":
        w = (0.5 - 0.5 * torch.cos(a * n)).pow(0.85)
    elif kind == "rectangular":
        w = torch.ones(size, dtype=torch.float64)
    elif kind == "blackman":
        w = blackman_coeff - 0.5 * torch.cos(a * n) + (0.5 - blackman_coeff) * torch.cos(2 * a * n)
    else:
        raise ValueError(f"unknown window {kind!r}; expected one of {WINDOWS}")
    return w.to(dtype)


def mel_banks(num_bins: int, n_fft: int, sample_rate: float, low_freq: float, high_freq: float) -> Tensor:
    """Triangular mel filters (num_bins, n_fft // 2 + 1), Kaldi's ``MelBanks`` (no VTLN); last column 0."""
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if num_bins < 3:
        raise ValueError(f"num_mel_bins must be >= 3, got {num_bins}")
    if not (0.0 <= low_freq < nyquist and 0.0 < high_freq <= nyquist and low_freq < high_freq):
        raise ValueError(f"bad mel range low_freq={low_freq}, high_freq={high_freq} for nyquist {nyquist}")
    mel_low, mel_high = float(mel_scale(low_freq)), float(mel_scale(high_freq))
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = torch.arange(num_bins, dtype=torch.float64).unsqueeze(1)
    left, centre, right = mel_low + b * delta, mel_low + (b + 1) * delta, mel_low + (b + 2) * delta
    mel = mel_scale(torch.arange(n_fft // 2, dtype=torch.float64) * (sample_rate / n_fft)).unsqueeze(0)
    up = (mel - left) / (centre - left)
    down = (right - mel) / (right - centre)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)  # (num_bins, n_fft // 2)
    return torch.nn.functional.pad(banks, (0, 1))  # the Nyquist bin gets no weight, as in Kaldi


def _frame_indices(n: int, size: int, shift: int, snip_edges: bool) -> Tensor:
    """Sample indices (frames, size) of every frame, reflected at the edges when not snipping."""
    if snip_edges:
        frames = 0 if n < size else 1 + (n - size) // shift
        starts = torch.arange(frames) * shift
    else:
        frames = (n + shift // 2) // shift
        starts = torch.arange(frames) * shift + shift // 2 - size // 2
    idx = starts.unsqueeze(1) + torch.arange(size).unsqueeze(0)
    while bool(((idx < 0) | (idx >= n)).any()):  # Kaldi reflects repeatedly until in range
        idx = torch.where(idx < 0, -idx - 1, idx)
        idx = torch.where(idx >= n, 2 * n - 1 - idx, idx)
    return idx


def fbank(
    waveform: Tensor,
    sample_rate: float,
    num_mel_bins: int = 128,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    window: str = "hamming",
    dither: float = 0.0,
    preemphasis: float = 0.97,
    remove_dc_offset: bool = True,
    round_to_power_of_two: bool = True,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    use_energy: bool = False,
    snip_edges: bool = True,
    energy_floor: float = 1.0,
    raw_energy: bool = True,
    htk_compat: bool = False,
    use_power: bool = True,
    use_log_fbank: bool = True,
    blackman_coeff: float = 0.42,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Log-mel filterbank of waveform (..., N) -> (..., frames, num_mel_bins [+ 1 with use_energy]).

    Defaults are torchaudio's ``kaldi.fbank`` defaults (dither 0, energy_floor 1.0) except 128 bins and the
    Hamming window of the paper (ImageBind/ViT-Lens use "hanning"). Computed in float64 for float64 input,
    else float32; the result has that dtype. ``generator`` drives the dither noise.
    """
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r}; expected one of {WINDOWS}")
    if not 0.0 <= preemphasis <= 1.0:
        raise ValueError(f"preemphasis must lie in [0, 1], got {preemphasis}")
    size = int(sample_rate * frame_length_ms * 0.001)
    shift = int(sample_rate * frame_shift_ms * 0.001)
    n = waveform.shape[-1]
    if size < 2 or shift < 1:
        raise ValueError(f"frame of {size} samples with shift {shift} is too short")
    if n < size and snip_edges:
        raise ValueError(f"waveform of {n} samples is shorter than one frame ({size} samples)")
    n_fft = 1 << (size - 1).bit_length() if round_to_power_of_two else size
    dtype = torch.float64 if waveform.dtype == torch.float64 else torch.float32
    x = waveform.to(dtype)
    frames = x[..., _frame_indices(n, size, shift, snip_edges).to(x.device)]  # (..., T, size)
    if dither != 0.0:
        noise = torch.randn(frames.shape, generator=generator, dtype=dtype).to(frames.device)
        frames = frames + dither * noise
    if remove_dc_offset:
        frames = frames - frames.mean(dim=-1, keepdim=True)
    log_energy = None
    if use_energy and raw_energy:
        log_energy = frames.pow(2).sum(-1).clamp_min(EPS).log()
    if preemphasis != 0.0:
        prev = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = frames - preemphasis * prev
    frames = frames * frame_window(window, size, blackman_coeff, dtype).to(frames.device)
    if use_energy and not raw_energy:
        log_energy = frames.pow(2).sum(-1).clamp_min(EPS).log()
    spectrum = torch.fft.rfft(frames, n=n_fft, dim=-1).abs()  # zero-pads to n_fft: (..., T, n_fft/2 + 1)
    if use_power:
        spectrum = spectrum.pow(2)
    banks = mel_banks(num_mel_bins, n_fft, sample_rate, low_freq, high_freq).to(dtype=dtype, device=frames.device)
    mel = spectrum @ banks.T  # (..., T, num_mel_bins)
    if use_log_fbank:
        mel = mel.clamp_min(EPS).log()
    if log_energy is not None:
        if energy_floor > 0.0:
            log_energy = log_energy.clamp_min(math.log(energy_floor))
        cols = [mel, log_energy.unsqueeze(-1)] if htk_compat else [log_energy.unsqueeze(-1), mel]
        mel = torch.cat(cols, dim=-1)
    return mel


def num_frames(num_samples: int, sample_rate: float, frame_length_ms: float = 25.0,
               frame_shift_ms: float = 10.0, snip_edges: bool = True) -> int:
    """Frames :func:`fbank` yields for `num_samples` samples (498 for 5 s at 16 kHz with the defaults)."""
    size = int(sample_rate * frame_length_ms * 0.001)
    shift = int(sample_rate * frame_shift_ms * 0.001)
    if snip_edges:
        return 0 if num_samples < size else 1 + (num_samples - size) // shift
    return (num_samples + shift // 2) // shift


def resample(
    waveform: Tensor, orig_rate: int, new_rate: int, zeros: int = 16, rolloff: float = 0.945, beta: float = 8.6
) -> Tensor:
    """Band-limited resampling of waveform (..., N) -> (..., ceil(N * new / orig)), polyphase windowed sinc.

    With ``L = new / g`` and ``M = orig / g`` (g = gcd), output sample m sits at input time ``t = m M / L``
    and is ``sum_i x[i] h(t - i)``, where ``h(t) = 2 fc sinc(2 fc t) w(t)``, ``fc = rolloff / 2 * min(1, L / M)``
    cycles per input sample (the anti-aliasing low-pass), and ``w`` is a Kaiser window (``beta``) spanning
    ``zeros`` sinc zero crossings each side. The L phases form the output channels of one strided conv1d;
    samples outside the signal count as zero.
    """
    if orig_rate <= 0 or new_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} -> {new_rate}")
    if orig_rate == new_rate:
        return waveform
    g = math.gcd(int(orig_rate), int(new_rate))
    up, down = int(new_rate) // g, int(orig_rate) // g
    fc = 0.5 * rolloff * min(1.0, up / down)
    half = zeros / (2.0 * fc)  # half-width of h in input samples
    w = int(math.ceil(half)) + 1
    phase = torch.arange(up, dtype=torch.float64).unsqueeze(1) * (down / up)  # (L, 1) fractional offsets
    r = torch.arange(-w, w + down, dtype=torch.float64).unsqueeze(0)  # taps relative to q * M
    t = phase - r  # (L, 2w + M): h is evaluated at t_m - i
    inside = t.abs() <= half
    kaiser = torch.special.i0(beta * torch.sqrt(torch.clamp(1.0 - (t / half) ** 2, min=0.0))) / torch.special.i0(
        torch.tensor(beta, dtype=torch.float64)
    )
    kernel = torch.where(inside, 2.0 * fc * torch.sinc(2.0 * fc * t) * kaiser, torch.zeros_like(t))
    dtype = waveform.dtype if waveform.dtype in (torch.float32, torch.float64) else torch.float32
    shape = waveform.shape
    x = waveform.reshape(-1, 1, shape[-1]).to(dtype)
    n = shape[-1]
    out_len = -(-n * up // down)  # ceil(N L / M)
    blocks = -(-out_len // up)
    right = max(0, (blocks - 1) * down + 2 * w + down - (n + w))
    x = torch.nn.functional.pad(x, (w, right))
    y = torch.nn.functional.conv1d(x, kernel.to(dtype=dtype, device=x.device).unsqueeze(1), stride=down)
    y = y[..., :blocks].transpose(1, 2).reshape(x.shape[0], -1)[:, :out_len]  # (B, Q, L) -> interleave phases
    return y.reshape(*shape[:-1], out_len)


__all__ = ["EPS", "WINDOWS", "fbank", "frame_window", "mel_banks", "mel_scale", "num_frames", "resample"]
