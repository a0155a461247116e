"""Video files -> normalised RGB clips (V, 3, T, S, S) for the tubelet video tokenizer (PyAV decoding).

Frames: T = the tokenizer's ``num_frames`` (default 8), taken every ``stride`` frames (default 8,
supplement §3.2), i.e. frame indices ``start + stride * i`` for i < T, a window of T*stride frames.
When the video is shorter than the window, indices past the end are clamped to the last frame (the
clip then ends on a repeated frame rather than being padded with black).

Eval (V = clips * crops): ``clips`` windows with evenly spaced starts over [0, N - T*stride] (the
first starts at frame 0, the last ends at the end); for each, the short side is resized to S and
``crops`` square crops are taken (3: start / centre / end along the long side, as ImageBind does;
1: centre). Views are clip-major: view ``c * crops + k`` is clip c, crop k.

Training (V = 1, supplement Table 1 video row): one window at a uniformly random start; short side
scaled to an integer drawn from U[256, 340] * S / 224; one random S x S crop; horizontal flip (p=0.5);
with probability 0.3, RandAugment(m=9, n=2) with the *same* ops and magnitudes on every frame; then
normalisation and RandomErasing (p=0.25, the same rectangle on every frame). All draws are seeded by
the load's seed.

Decoding: one demux pass without decoding counts the frames and reads their timestamps; the needed
frames are then decoded after seeking to the keyframe before the first of them (when every frame has
a distinct timestamp), else by decoding from the start. Only the needed frames are kept in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from unialign.preprocess import augment as A
from unialign.preprocess.base import LOADERS, LoadContext, PreprocessError, check_file, parse_options
from unialign.preprocess.image import random_erasing

VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mkv", ".mov")


@dataclass(frozen=True)
class VideoPreprocess:
    """``preprocess:`` options of a ``video`` modality (T itself is the tokenizer's ``num_frames``)."""

    stride: int = 8  # frames between sampled frames (supplement §3.2: 8 frames at stride 8)
    clips: int = 2  # eval: evenly spaced temporal windows per video
    crops: int = 3  # eval: spatial crops per window, 1 (centre) or 3 (start / centre / end)
    short_side: tuple[int, int] = (256, 340)  # train: short-side scale range at S=224 (scaled by S/224)
    hflip: float = 0.5  # train: horizontal flip probability
    rand_augment_p: float = 0.3  # train: probability of applying RandAugment to the clip
    rand_augment_n: int = 2  # train: RandAugment ops per clip
    rand_augment_m: float = 9.0  # train: RandAugment magnitude on timm's 0-10 scale
    erasing: float = 0.25  # train: RandomErasing probability (value 0 = mean colour after normalising)

    def __post_init__(self) -> None:
        if self.stride < 1 or self.clips < 1:
            raise ValueError(f"stride and clips must be >= 1, got stride={self.stride}, clips={self.clips}")
        if self.crops not in (1, 3):
            raise ValueError(f"crops must be 1 or 3, got {self.crops}")


def window(start: int, num_frames: int, stride: int, total: int) -> list[int]:
    """Frame indices ``start + stride * i`` (i < num_frames), clamped to the last frame ``total - 1``."""
    return [min(start + stride * i, total - 1) for i in range(num_frames)]


def eval_starts(total: int, num_frames: int, stride: int, clips: int) -> list[int]:
    """`clips` evenly spaced window starts in [0, max(0, total - num_frames * stride)]."""
    last = max(0, total - num_frames * stride)
    if clips == 1:
        return [last // 2]
    return [int(round(last * c / (clips - 1))) for c in range(clips)]


def _scan(path: Path) -> list[int | None]:
    """Presentation timestamps of the first video stream's frames, in display order (None if unknown)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise PreprocessError(path, "no video stream")
            stream = container.streams.video[0]
            pts = [p.pts for p in container.demux(stream) if p.size > 0]
    except PreprocessError:
        raise
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise PreprocessError(path, f"cannot decode video: {exc}") from None
    if any(p is None for p in pts) or len(set(pts)) != len(pts):
        return [None] * len(pts)
    return sorted(pts)  # type: ignore[type-var]


def _decode(path: Path, wanted: list[int], pts: list[int | None]) -> dict[int, np.ndarray]:
    """Decode the frames at sorted indices `wanted` -> {index: (H, W, 3) uint8 RGB}.

    Seeks to the keyframe at or before the first wanted frame when timestamps are known, matching
    frames by timestamp; otherwise (or if the seek missed a frame) decodes from the start.
    """
    import av

    def run(seek: bool) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if seek:
                index_of = {p: i for i, p in enumerate(pts)}
                first = pts[wanted[0]]
                if wanted[0] > 0:
                    container.seek(first, stream=stream, backward=True, any_frame=False)
            todo = set(wanted)
            for n, frame in enumerate(container.decode(stream)):
                i = index_of.get(frame.pts, -1) if seek else n
                if i in todo:
                    out[i] = frame.to_ndarray(format="rgb24")
                    todo.discard(i)
                if not todo or i > wanted[-1]:
                    break
        return out

    try:
        frames = run(seek=pts[0] is not None) if pts else {}
        if len(frames) < len(wanted) and pts and pts[0] is not None:
            frames = run(seek=False)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise PreprocessError(path, f"cannot decode video: {exc}") from None
    return frames


def read_frames(path: Path, windows: list[list[int]], total: int, pts: list[int | None]) -> list[Tensor]:
    """Each window's frames as float (T, 3, H, W) in [0, 1]."""
    wanted = sorted({i for w in windows for i in w})
    frames = _decode(path, wanted, pts)
    if not frames:
        raise PreprocessError(path, "cannot decode video: no frame could be decoded")
    got = sorted(frames)
    # A frame the demuxer listed but the decoder never produced: use the nearest earlier decoded one.
    pick = {i: max([g for g in got if g <= i] or [got[0]]) for i in wanted}
    out = []
    for w in windows:
        arr = np.stack([frames[pick[i]] for i in w])  # (T, H, W, 3)
        out.append(torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0))
    return out


def _train_clip(
    x: Tensor, opts: VideoPreprocess, size: int, mode: str, mean: Sequence[float], std: Sequence[float]
) -> Tensor:
    """(T, 3, H, W) in [0, 1] -> augmented, normalised (T, 3, S, S); call inside :func:`A.seeded`."""
    lo, hi = (int(round(v * size / 224)) for v in opts.short_side)
    short = int(torch.randint(max(lo, size), max(hi, size) + 1, (1,)))
    x = A.resize_short(x, short, mode)
    h, w = x.shape[-2:]
    top = int(torch.randint(0, h - size + 1, (1,)))
    left = int(torch.randint(0, w - size + 1, (1,)))
    x = A.maybe_flip(A.crop(x, top, left, size), opts.hflip).clamp(0.0, 1.0)
    if opts.rand_augment_n > 0 and float(torch.rand(())) < opts.rand_augment_p:
        ra = A.rand_augment(opts.rand_augment_n, opts.rand_augment_m)
        x = A.apply_params(ra, x, A.shared_params(ra, x)).clamp(0.0, 1.0)
    return random_erasing(A.normalize(x, mean, std), opts.erasing)


@LOADERS.register("video")
def load_video(path: Path, ctx: LoadContext) -> Tensor:
    """A video file -> normalised clips (V, 3, T, S, S) float32; V = 1 in training, clips*crops at eval."""
    path = check_file(path, VIDEO_SUFFIXES)
    try:
        opts: VideoPreprocess = parse_options(VideoPreprocess, ctx, path)
    except ValueError as exc:
        raise PreprocessError(path, f"bad preprocessing options: {exc}") from None
    clip = ctx.config.clip
    size, mean, std = clip.vision.image_size, clip.preprocess.mean, clip.preprocess.std
    try:
        mode = A.check_interpolation(clip.preprocess.interpolation)
    except ValueError as exc:
        raise PreprocessError(path, str(exc)) from None
    num_frames = int(ctx.tokenizer.get("num_frames", 8))
    pts = _scan(path)
    total = len(pts)
    if total == 0:
        raise PreprocessError(path, "video has zero frames")
    if total == 1:
        raise PreprocessError(path, "video has a single frame; a clip needs at least two")
    span = num_frames * opts.stride
    if ctx.train:
        try:
            with A.seeded(ctx.seed):
                start = int(torch.randint(0, max(0, total - span) + 1, (1,)))
                (x,) = read_frames(path, [window(start, num_frames, opts.stride, total)], total, pts)
                x = _train_clip(x, opts, size, mode, mean, std)
        except PreprocessError:
            raise
        except ValueError as exc:
            raise PreprocessError(path, f"bad preprocessing options: {exc}") from None
        return x.permute(1, 0, 2, 3).unsqueeze(0).contiguous()  # (1, 3, T, S, S)
    starts = eval_starts(total, num_frames, opts.stride, opts.clips)
    windows = [window(s, num_frames, opts.stride, total) for s in starts]
    views = []
    for x in read_frames(path, windows, total, pts):
        x = A.resize_short(x, size, mode).clamp(0.0, 1.0)
        for c in A.spatial_crops(x, size, opts.crops):
            views.append(A.normalize(c, mean, std).permute(1, 0, 2, 3))  # (3, T, S, S)
    return torch.stack(views).contiguous()
