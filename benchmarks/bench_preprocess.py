"""Preprocessing throughput vs the model it feeds, measured in one run (not a test).

Writes ``benchmarks/results/preprocess.json``. For each of point cloud, audio and video it measures the
preprocessing rate (samples per second) and the encode rate of the same modality on the tiny test model
and on the paper's ViT-B/16 (random weights, fp32, inference mode), and reports
``preprocess_rate / encode_rate`` (goal: >= 1, i.e. preprocessing is never the bottleneck):

* point cloud: FPS + kNN grouping 8,192 -> 512 x 32 of a batch of 8 (``group_points``);
* audio: filterbank real-time factor on ONE thread, and whole-file loading of a 10 s wav (3 eval clips);
* video: PyAV decode frames per second, and whole-file loading of a 10 s 320x240 mp4 (2 clips x 3 crops).

The goal is stated for the paper model; against the 2-block tiny test model the ratios are informational.
``--quick`` measures against the tiny model only, with one repeat (a smoke test).

    python benchmarks/bench_preprocess.py [--repeats 3] [--archs test-tiny ViT-B-16] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
import soundfile as sf
import torch
from _common import (
    PAPER_ARCH,
    QUICK_ARCH,
    RESULTS_DIR,
    add_common_args,
    figure,
    judged_on,
    parse_args,
    rate,
    write_result,
)

import unialign
from unialign.ops.fbank import fbank
from unialign.ops.pointops import group_points
from unialign.preprocess import load

# Per architecture: the bundled model measured, and one file's eval input of each modality
# (audio: 3 clips of T frames, video: 2 clips x 3 crops of F frames); rates are divided by the views per file.
MODELS = {QUICK_ARCH: "unialign-test-tiny", PAPER_ARCH: "unialign-vitb16"}
ENCODE_SHAPES = {
    QUICK_ARCH: {"point": (8, 8192, 3), "audio": (3, 48, 16), "video": (6, 3, 4, 32, 32)},
    PAPER_ARCH: {"point": (8, 8192, 3), "audio": (3, 498, 128), "video": (6, 3, 8, 224, 224)},
}
VIEWS_PER_FILE = {"point": 1, "audio": 3, "video": 6}
RATIOS = {  # figure key -> (preprocessing rate key, modality)
    "point_grouping_vs_point_encode": ("point_grouping_clouds_per_s", "point"),
    "audio_loading_vs_audio_encode": ("audio_files_per_s", "audio"),
    "video_loading_vs_video_encode": ("video_files_per_s", "video"),
}


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

        def run(modality: str = modality, x: torch.Tensor = x) -> None:
            with torch.inference_mode():
                model.encode(modality, x)

        out[modality] = rate(run, shape[0], repeats)
    return out


def preprocess_rates(repeats: int) -> dict[str, float]:
    """Preprocessing rates: point grouping, filterbank (one thread), whole-file audio/video loads, decoding."""
    paper = unialign.load_model_config("unialign-vitb16")
    points = torch.randn(8, 8192, 3)
    pre = {"point_grouping_clouds_per_s": rate(lambda: group_points(points, 512, 32), 8, repeats)}
    wave = torch.randn(16000 * 10)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    fb_rate = rate(lambda: fbank(wave, 16000, num_mel_bins=128), 10.0, repeats)  # audio seconds / s
    torch.set_num_threads(threads)
    pre["fbank_real_time_factor_1_thread"] = fb_rate
    with tempfile.TemporaryDirectory() as tmp:
        wav, mp4 = write_media(Path(tmp))
        pre["audio_files_per_s"] = rate(lambda: load("audio", wav, config=paper), 1, repeats)
        pre["video_files_per_s"] = rate(lambda: load("video", mp4, config=paper), 1, repeats)

        def decode_all() -> None:
            with av.open(str(mp4)) as c:
                for _ in c.decode(video=0):
                    pass

        pre["video_decode_frames_per_s"] = rate(decode_all, 250, repeats)
    return pre


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure and write ``preprocess.json``; returns what was written."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (default 3; --quick: 1)")
    parser.add_argument("--archs", nargs="+", choices=list(MODELS), default=None,
                        help=f"models to compare with (default: both; --quick: {QUICK_ARCH})")
    add_common_args(parser, RESULTS_DIR / "preprocess.json")
    args, command = parse_args(parser, argv, __file__)
    repeats = args.repeats or (1 if args.quick else 3)
    archs = args.archs or ([QUICK_ARCH] if args.quick else list(MODELS))
    torch.manual_seed(0)
    pre = preprocess_rates(repeats)
    # the paper model's encode is slow (seconds per call), so it is timed once after its warm-up
    enc = {arch: encode_rates(unialign.create_model(MODELS[arch]).eval(), ENCODE_SHAPES[arch],
                              repeats if arch == QUICK_ARCH else 1) for arch in archs}
    for e in enc.values():
        for modality, views in VIEWS_PER_FILE.items():
            e[modality] /= views
    ratios, figures = {}, []
    for arch, e in enc.items():
        judged, note = judged_on(arch)
        ratios[arch] = {key: pre[rate_key] / e[modality] for key, (rate_key, modality) in RATIOS.items()}
        for key, (rate_key, modality) in RATIOS.items():
            figures.append(figure(f"{key.replace('_', ' ')} ({arch})", ratios[arch][key],
                                  f"{modality} encode rate of {arch} (per file: all eval views; fp32)",
                                  at_least=1.0, judged=judged, note=note))
    details = {
        "repeats": repeats, "threads": torch.get_num_threads(), "preprocess": pre, "encode_samples_per_s": enc,
        "ratios_goal_at_least_1": ratios,
        "note": ("point encode includes the tokenizer's own grouping; rates are per file (all eval views). "
                 "fbank real-time factor = seconds of 16 kHz audio processed per second on one thread."),
    }
    return write_result(args.out, "preprocess", figures, details, quick=args.quick, command=command)


if __name__ == "__main__":
    main()
