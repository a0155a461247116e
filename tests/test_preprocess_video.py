"""Video loader: mp4 files written here with one constant grey level per frame, so the sampled frame
indices can be read back from the output; eval views, seeded training, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

av = pytest.importorskip("av")

from unialign.config import load_model_config  # noqa: E402
from unialign.preprocess.base import LoadContext, PreprocessError, make_generator  # noqa: E402
from unialign.preprocess.video import eval_starts, load_video, window  # noqa: E402

CFG = load_model_config("unialign-test-tiny")
S = CFG.clip.vision.image_size
MEAN = torch.tensor(CFG.clip.preprocess.mean).view(1, 3, 1, 1, 1)
STD = torch.tensor(CFG.clip.preprocess.std).view(1, 3, 1, 1, 1)
# Frame k is a constant colour encoding k: red 8 * (k % 32), green 32 * (k // 32) (robust to lossy coding).


def ctx(train: bool = False, seed: int = 0, num_frames: int = 4, **preprocess) -> LoadContext:
    return LoadContext(config=CFG, modality="video", tokenizer={"num_frames": num_frames, "tubelet": 2},
                       preprocess=preprocess, train=train, seed=seed, generator=make_generator(seed))


def write_video(path: Path, frames: int, w: int = 48, h: int = 32, codec: str = "libx264", gop: int = 10) -> Path:
    """An mp4 whose frame k has the constant colour `colour(k)` (B-frames, keyframes every `gop`)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"crf": "4"}  # near-lossless
        for k in range(frames):
            arr = np.full((h, w, 3), colour(k), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def colour(k: int) -> tuple[int, int, int]:
    return (8 * (k % 32), 32 * (k // 32), 128)


def frame_ids(x: torch.Tensor) -> torch.Tensor:
    """(V, 3, T, S, S) normalised -> (V, T) frame index read back from the colour."""
    rgb = (x * STD + MEAN).mean(dim=(3, 4)) * 255  # (V, 3, T)
    return (rgb[:, 0] / 8).round().long() + 32 * (rgb[:, 1] / 32).round().long()


def test_window_and_starts_helpers() -> None:
    assert window(0, 4, 8, 100) == [0, 8, 16, 24]
    assert window(3, 4, 8, 20) == [3, 11, 19, 19]  # clamped to the last frame
    assert eval_starts(100, 4, 8, 3) == [0, 34, 68]
    assert eval_starts(10, 4, 8, 2) == [0, 0]


def test_eval_samples_evenly_spaced_windows_at_stride(tmp_path: Path) -> None:
    path = write_video(tmp_path / "long.mp4", 120)
    x = load_video(path, ctx())
    assert x.shape == (2 * 3, 3, 4, S, S) and x.dtype == torch.float32
    # 2 clips, starts 0 and 120 - 32 = 88, frames at stride 8; every crop of a clip is the same frames.
    expected = torch.tensor([[0, 8, 16, 24]] * 3 + [[88, 96, 104, 112]] * 3)
    assert torch.equal(frame_ids(x), expected)


def test_eval_values_on_constant_frames_are_normalised(tmp_path: Path) -> None:
    path = write_video(tmp_path / "c.mp4", 20)
    x = load_video(path, ctx(clips=1, crops=1, num_frames=2, stride=1))
    assert x.shape == (1, 3, 2, S, S)
    # clips=1 takes the centred window: start (20 - 2) // 2 = 9 -> frames 9, 10
    expected = torch.tensor([colour(9), colour(10)], dtype=torch.float32).T.reshape(1, 3, 2, 1, 1) / 255.0
    torch.testing.assert_close(x * STD + MEAN, expected.expand_as(x), atol=3 / 255, rtol=0)


def test_short_video_three_clips_documented_shape_and_clamping(tmp_path: Path) -> None:
    path = write_video(tmp_path / "short.mp4", 10, w=32, h=48)  # portrait; 10 < 4 * 8 frames
    x = load_video(path, ctx(clips=3, crops=3))
    assert x.shape == (9, 3, 4, S, S)
    assert torch.equal(frame_ids(x), torch.tensor([[0, 8, 9, 9]] * 9))


def test_three_crops_are_start_centre_end_of_long_side(tmp_path: Path) -> None:
    # 96 x 32 landscape: resized to S x 3S exactly, so the three crops are the three thirds.
    path = tmp_path / "thirds.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 32, "yuv444p"
        arr = np.zeros((32, 96, 3), np.uint8)
        arr[:, :32], arr[:, 32:64], arr[:, 64:] = 30, 120, 210
        for _ in range(4):
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    x = load_video(path, ctx(clips=1, stride=1)) * STD + MEAN
    centre = x[:, :, :, 8:-8, 8:-8].mean(dim=(1, 2, 3, 4)) * 255
    torch.testing.assert_close(centre, torch.tensor([30.0, 120.0, 210.0]), atol=3.0, rtol=0)


def test_train_one_view_seeded(tmp_path: Path) -> None:
    path = write_video(tmp_path / "t.mp4", 60)
    a = load_video(path, ctx(train=True, seed=1))
    assert a.shape == (1, 3, 4, S, S) and a.dtype == torch.float32
    assert torch.equal(a, load_video(path, ctx(train=True, seed=1)))
    assert not torch.equal(a, load_video(path, ctx(train=True, seed=2)))


def test_train_window_at_stride_without_colour_augmentation(tmp_path: Path) -> None:
    path = write_video(tmp_path / "t.mp4", 60)
    starts = set()
    for seed in range(6):
        x = load_video(path, ctx(train=True, seed=seed, rand_augment_p=0.0, erasing=0.0))
        ids = frame_ids(x)[0]
        assert torch.equal(ids - ids[0], torch.tensor([0, 8, 16, 24]))
        assert 0 <= ids[0] <= 60 - 32
        starts.add(int(ids[0]))
    assert len(starts) > 1  # the start is random


def test_train_randaugment_is_the_same_on_every_frame(tmp_path: Path) -> None:
    # All frames equal: with RandAugment always on, every frame of the output must still be equal.
    path = tmp_path / "static.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv444p"
        arr = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
        for _ in range(8):
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    for seed in range(4):
        x = load_video(path, ctx(train=True, seed=seed, stride=1, rand_augment_p=1.0))
        first = x[:, :, :1].expand_as(x)
        assert (x - first).abs().max() < 0.1  # lossy coding differs slightly between frames


def _broken(tmp_path: Path, kind: str) -> Path:
    if kind == "garbage":
        path = tmp_path / "garbage.mp4"
        path.write_bytes(b"\x00\x01definitely not a video" * 50)
    elif kind == "truncated":
        full = write_video(tmp_path / "full.mp4", 30)
        path = tmp_path / "truncated.mp4"
        path.write_bytes(full.read_bytes()[:300])
    elif kind == "audio_only":
        path = tmp_path / "audio_only.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("aac", rate=16000)
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    elif kind == "zero_frames":
        path = tmp_path / "zero_frames.avi"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("mpeg4", rate=25)
            stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
            container.start_encoding()  # header only
            for packet in stream.encode():
                container.mux(packet)
    else:
        path = write_video(tmp_path / "single_frame.mp4", 1)
    return path


@pytest.mark.parametrize(
    "kind, problem",
    [
        ("garbage", "cannot decode video"),
        ("truncated", "cannot decode video|zero frames|single frame"),
        ("audio_only", "no video stream"),
        ("zero_frames", "zero frames"),
        ("single_frame", "single frame"),
    ],
)
def test_bad_videos_raise_preprocess_error_naming_file(tmp_path: Path, kind: str, problem: str) -> None:
    path = _broken(tmp_path, kind)
    with pytest.raises(PreprocessError, match=problem) as info:
        load_video(path, ctx())
    assert path.name in str(info.value)


def test_bad_options_and_extension(tmp_path: Path) -> None:
    path = write_video(tmp_path / "ok.mp4", 12)
    with pytest.raises(PreprocessError, match="ok.mp4.*crops"):
        load_video(path, ctx(crops=2))
    other = tmp_path / "clip.flv"
    other.write_bytes(path.read_bytes())
    with pytest.raises(PreprocessError, match="clip.flv.*extension"):
        load_video(other, ctx())
