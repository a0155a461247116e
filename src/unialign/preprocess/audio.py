"""Audio files -> normalised log-mel clips (V, frames, n_mels) for the audio tokenizer (supplement §2.1, §3.2).

Pipeline: decode with ``soundfile`` (floats in [-1, 1]) -> mono (mean of the channels) -> band-limited
resampling to 16 kHz (:func:`unialign.ops.fbank.resample`, polyphase Kaiser-windowed sinc) -> 5 s clips
(shorter files are repeat-padded; training takes one random crop, eval ``eval_clips`` evenly spaced ones)
-> per-clip mean removal -> Kaldi log-mel filterbank (25 ms Hamming window, 10 ms hop; 498 frames for
5 s) -> ``(x - mean) / std`` with ViT-Lens's AudioSet statistics -> at training, optional Gaussian noise
and SpecAugment (one frequency mask of up to 12 bins, one time mask of up to 48 frames; masked values are
set to 0, the dataset mean after normalisation). Every random choice uses ``ctx.generator``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from unialign.errors import ConfigError
from unialign.ops.fbank import WINDOWS, fbank, num_frames, resample
from unialign.preprocess.base import (
    LOADERS, LoadContext, PreprocessError, check_file, make_generator, parse_options, rand_int,
)

SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3")


@dataclass(frozen=True)
class AudioPreprocess:
    """The ``preprocess:`` options of an audio modality."""

    sample_rate: int = 16000  # every file is resampled to this rate (Hz) before the filterbank
    clip_seconds: float = 5.0  # clip length; 5 s -> 498 frames at the 10 ms hop (supplement §3.2)
    eval_clips: int = 3  # evenly spaced clips per file at eval (views V); training always takes 1
    window: str = "hamming"  # fbank window; the paper's Hamming (ImageBind/ViT-Lens use "hanning")
    frame_length_ms: float = 25.0  # fbank frame length
    frame_shift_ms: float = 10.0  # fbank hop
    mean: float = -4.2677  # log-mel normalisation mean (ViT-Lens's AudioSet statistics)
    std: float = 4.5690  # log-mel normalisation std (ViT-Lens's AudioSet statistics)
    freq_mask: int = 12  # training: widest SpecAugment frequency mask (bins); 0 disables
    time_mask: int = 48  # training: widest SpecAugment time mask (frames); 0 disables
    noise_std: float = 0.0  # training: std of Gaussian noise added to the normalised log-mel; 0 (the
    # paper's recipe lists only spectrogram masking) disables it

    def __post_init__(self) -> None:
        if self.window not in WINDOWS:
            raise ConfigError(f"window must be one of {WINDOWS}, got {self.window!r}")
        if self.sample_rate <= 0 or self.clip_seconds <= 0 or self.eval_clips < 1 or self.std <= 0:
            raise ConfigError("sample_rate, clip_seconds, eval_clips and std must be positive")
        if min(self.freq_mask, self.time_mask) < 0 or self.noise_std < 0:
            raise ConfigError("freq_mask, time_mask and noise_std must be >= 0")


def read_audio(path: Path) -> tuple[Tensor, int]:
    """Decode `path` -> (waveform (N,) float32 mono in [-1, 1], sample rate), or raise PreprocessError.

    Several channels are averaged into one (the channel mean is what a mono downmix plays).
    """
    import soundfile as sf

    if path.suffix.lower() == ".wav" and _wav_truncated(path):
        raise PreprocessError(path, "WAV file is truncated (its data chunk is shorter than its header says)")
    try:
        declared = sf.info(str(path)).frames
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (N, channels)
    except Exception as exc:  # libsndfile reports corrupt/truncated/unsupported data in several ways
        raise PreprocessError(path, f"cannot decode audio ({type(exc).__name__}: {exc})") from None
    if 0 < len(data) < declared - (0.02 * declared + 2304):  # mp3 headers estimate; allow a little slack
        raise PreprocessError(path, f"audio is truncated: decoded {len(data)} of {declared} samples")
    wav = torch.from_numpy(data)
    if wav.numel() == 0:
        raise PreprocessError(path, "audio has no samples")
    if not bool(torch.isfinite(wav).all()):
        raise PreprocessError(path, "audio contains NaN or infinite samples")
    return wav.mean(dim=1), int(rate)


def _wav_truncated(path: Path) -> bool:
    """Whether a RIFF/WAVE file's ``data`` chunk declares more bytes than the file holds.

    libsndfile silently decodes the samples that are present; a short data chunk means a cut-off copy.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return False  # not plain RIFF (e.g. RF64): leave it to libsndfile
        size = path.stat().st_size
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            length = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                return length != 0xFFFFFFFF and pos + 8 + length > size
            pos += 8 + length + (length & 1)  # chunks are word-aligned
    return False


def clip_starts(n: int, clip: int, views: int, train: bool, g: torch.Generator | None) -> list[int]:
    """Start samples of the clips: one random start at training, `views` evenly spaced ones at eval.

    A single eval clip is centred; files no longer than a clip always start at 0.
    """
    span = max(n - clip, 0)
    if train:
        return [rand_int(g, 0, span)]
    if views == 1:
        return [span // 2]
    return [round(span * k / (views - 1)) for k in range(views)]


def spec_augment(x: Tensor, max_f: int, max_t: int, g: torch.Generator | None) -> Tensor:
    """SpecAugment (Park et al. 2019) on x (T, F): one frequency and one time mask set to 0.

    Widths are uniform in [0, max] (capped at the axis length); starts uniform over the valid range.
    """
    x = x.clone()
    t, f = x.shape
    width = rand_int(g, 0, min(max_f, f))
    start = rand_int(g, 0, f - width)
    x[:, start : start + width] = 0.0
    width = rand_int(g, 0, min(max_t, t))
    start = rand_int(g, 0, t - width)
    x[start : start + width, :] = 0.0
    return x


@LOADERS.register("audio")
def load_audio(path: Path, ctx: LoadContext) -> Tensor:
    """Audio file -> (V, frames, n_mels) float32; V = 1 at training, ``eval_clips`` at eval.

    ``n_mels`` comes from the tokenizer options (default 128); frames = Kaldi frame count of one clip.
    """
    path = check_file(path, SUFFIXES)
    opt: AudioPreprocess = parse_options(AudioPreprocess, ctx, path)
    n_mels = int(ctx.tokenizer.get("n_mels", 128))
    wav, rate = read_audio(path)
    if wav.numel() < 2:
        raise PreprocessError(path, f"audio has {wav.numel()} sample(s); need at least 2")
    if not bool((wav != 0).any()):
        raise PreprocessError(path, "audio is silent (all samples are zero)")
    if rate != opt.sample_rate:
        wav = resample(wav, rate, opt.sample_rate)
    frame = int(opt.sample_rate * opt.frame_length_ms * 0.001)
    if wav.numel() < frame:
        raise PreprocessError(
            path, f"audio is {wav.numel() / opt.sample_rate * 1000:.1f} ms long, shorter than one "
            f"{opt.frame_length_ms} ms frame"
        )
    clip = int(round(opt.clip_seconds * opt.sample_rate))
    if wav.numel() < clip:  # repeat-pad: tile the whole file until the clip is full
        wav = wav.repeat(-(-clip // wav.numel()))[:clip]
    g = ctx.generator if ctx.generator is not None else make_generator(ctx.seed)
    starts = clip_starts(wav.numel(), clip, opt.eval_clips, ctx.train, g)
    views = []
    for s in starts:
        seg = wav[s : s + clip]
        seg = seg - seg.mean()
        feats = fbank(
            seg, opt.sample_rate, num_mel_bins=n_mels, frame_length_ms=opt.frame_length_ms,
            frame_shift_ms=opt.frame_shift_ms, window=opt.window, dither=0.0,
        )
        feats = (feats - opt.mean) / opt.std
        if ctx.train:
            if opt.noise_std > 0:
                feats = feats + opt.noise_std * torch.randn(feats.shape, generator=g)
            feats = spec_augment(feats, opt.freq_mask, opt.time_mask, g)
        views.append(feats)
    out = torch.stack(views).float()  # (V, T, F)
    expected = num_frames(clip, opt.sample_rate, opt.frame_length_ms, opt.frame_shift_ms)
    assert out.shape[1] == expected, (out.shape, expected)
    if not bool(torch.isfinite(out).all()):  # e.g. float WAV samples far outside [-1, 1] overflow the power
        raise PreprocessError(path, "audio samples are out of range (the filterbank overflows); expected [-1, 1]")
    return out


__all__ = ["AudioPreprocess", "SUFFIXES", "clip_starts", "load_audio", "read_audio", "spec_augment"]
