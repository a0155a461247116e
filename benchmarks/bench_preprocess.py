"""Preprocessing throughput vs the model it feeds, measured in one run (not a test).

Writes ``benchmarks/results/preprocess.json``. For each of point cloud, audio and video it measures the
preprocessing rate (samples per second) and the encode rate of the same modality on the tiny test model
and on the paper's ViT-B/16 (random weights, fp32, inference mode), and reports
``preprocess_rate / encode_rate`` (goal: >= 1, i.e. preprocessing is never the bottleneck):

* point cloud: FPS + kNN grouping 8,192 -> 512 x 32 of a batch of 8 (``group_points``);
* audio: filterbank real-time factor on ONE thread, and whole-file loading of a 10 s wav (3 eval clips);
* video: PyAV decode frames per second, and whole-file loading of a 10 s 320x240 mp4 (2 clips x 3 crops).

    python benchmarks/bench_preprocess.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import av
import numpy as np
import soundfile as sf
import torch

import unialign
from unialign.ops.fbank import fbank
from unialign.ops.pointops import group_points
from unialign.preprocess import load


def rate(fn: Callable[[], object], items: float, repeats: int) -> float:
    """Items per second of `fn` (median of `repeats` timed runs after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return items / statistics.median(times)


def write_media(folder: Path) -> tuple[Path, Path]:
    """A 10 s 44.1 kHz stereo wav and a 10 s 25 fps 320x240 mp4 of moving noise."""
    rng = np.random.default_rng(0)
    wav = folder / "a.wav"
    t = np.arange(441000) / 44100
    sf.write(wav, np.stack([np.sin(2 * np.pi * 440 * t), rng.normal(0, 0.1, t.size)], 1).astype(np.float32), 44100)
    mp4 = folder / "v.mp4"
    with av.open(str(mp4), "w") as out:
        s = out.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
        base = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        for i in range(250):
            out.mux(s.encode(av.VideoFrame.from_ndarray(np.roll(base, 4 * i, axis=1), format="rgb24")))
        out.mux(s.encode(None))
    return wav, mp4


def encode_rates(model: unialign.UniAlign, shapes: dict[str, tuple[int, ...]], repeats: int) -> dict[str, float]:
    """Samples per second of ``model.encode`` for a batch of each shape."""
    out = {}
    for modality, shape in shapes.items():
        x = torch.randn(shape)

        def run() -> None:
            with torch.inference_mode():
                model.encode(modality, x)

        out[modality] = rate(run, shape[0], repeats)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "preprocess.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    paper = unialign.load_model_config("unialign-vitb16")
    results: dict[str, object] = {"torch": torch.__version__, "threads": torch.get_num_threads()}

    points = torch.randn(8, 8192, 3)
    pre = {"point_grouping_clouds_per_s": rate(lambda: group_points(points, 512, 32), 8, args.repeats)}
    wave = torch.randn(16000 * 10)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    fb_rate = rate(lambda: fbank(wave, 16000, num_mel_bins=128), 10.0, args.repeats)  # audio seconds / s
    torch.set_num_threads(threads)
    pre["fbank_real_time_factor_1_thread"] = fb_rate
    with tempfile.TemporaryDirectory() as tmp:
        wav, mp4 = write_media(Path(tmp))
        pre["audio_files_per_s"] = rate(lambda: load("audio", wav, config=paper), 1, args.repeats)
        pre["video_files_per_s"] = rate(lambda: load("video", mp4, config=paper), 1, args.repeats)

        def decode_all() -> None:
            with av.open(str(mp4)) as c:
                for _ in c.decode(video=0):
                    pass

        pre["video_decode_frames_per_s"] = rate(decode_all, 250, args.repeats)
    results["preprocess"] = pre

    tiny = unialign.create_model("unialign-test-tiny").eval()
    big = unialign.create_model(paper).eval()
    # one file = its eval views: audio 3 clips of 498 frames, video 2 clips x 3 crops of 8 frames
    enc = {
        "tiny": encode_rates(tiny, {"point": (8, 8192, 3), "audio": (3, 48, 16), "video": (6, 3, 4, 32, 32)},
                             args.repeats),
        "ViT-B-16": encode_rates(big, {"point": (8, 8192, 3), "audio": (3, 498, 128), "video": (6, 3, 8, 224, 224)},
                                 1),
    }
    enc["tiny"]["audio"] /= 3
    enc["tiny"]["video"] /= 6
    enc["ViT-B-16"]["audio"] /= 3
    enc["ViT-B-16"]["video"] /= 6
    results["encode_samples_per_s"] = enc
    ratios = {}
    for name, e in enc.items():
        ratios[name] = {
            "point_grouping_vs_point_encode": pre["point_grouping_clouds_per_s"] / e["point"],
            "audio_loading_vs_audio_encode": pre["audio_files_per_s"] / e["audio"],
            "video_loading_vs_video_encode": pre["video_files_per_s"] / e["video"],
        }
    results["ratios_goal_at_least_1"] = ratios
    results["note"] = ("point encode includes the tokenizer's own grouping; rates are per file (all eval views). "
                       "fbank real-time factor = seconds of 16 kHz audio processed per second on one thread.")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
