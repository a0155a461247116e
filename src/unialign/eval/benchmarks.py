"""The benchmark registry: name -> reader of that benchmark's public-release layout under ``--data-root``.

=============== ============ ============== ==================================================
name            modality     task           paper
=============== ============ ============== ==================================================
imagenet        image        classification §4.2, ImageNet-1K val, top-1/top-5
modelnet40      pointcloud   classification §4.3, ModelNet40 test, top-1/top-5
scanobjectnn    pointcloud   classification §4.3, ScanObjectNN test (581), top-1/top-5 (needs h5py)
sun-rgbd        depth        classification §4.4, SUN RGB-D depth-only test, 19 scenes, top-1
nyu-depth-v2    depth        classification §4.4, NYU-D test (654), 10 classes with grouped "others"
audioset        audio        multilabel     §4.5, AudioSet eval, mAP
esc50           audio        classification §4.5, ESC-50, top-1 per fold and mean
audiocaps       audio        retrieval      §4.5, AudioCaps test, R@1/5/10 both directions
msrvtt          video        retrieval      §4.6, MSR-VTT 1K-A, R@1/5/10 both directions
ucf101          video        classification §4.6, UCF101 testlist01, top-1/top-5
folder          any          classification class sub-folders of your own files
manifest        any          any            a JSONL manifest of your own files
=============== ============ ============== ==================================================

Each reader's docstring (``help(unialign.eval.benchmarks.BENCHMARKS["esc50"])``) lists exactly which
files it expects; ``describe(name)`` returns that text.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping

from unialign.eval.base import Benchmark, BenchmarkError
from unialign.eval.generic import read_folder, read_manifest
from unialign.eval.readers_av import read_audiocaps, read_audioset, read_esc50, read_msrvtt, read_ucf101
from unialign.eval.readers_visual import (
    read_imagenet, read_modelnet40, read_nyu_depth_v2, read_scanobjectnn, read_sun_rgbd,
)

Reader = Callable[..., Benchmark]  # (data_root, split=None, modality_type=None) -> Benchmark

BENCHMARKS: Mapping[str, Reader] = MappingProxyType({
    "imagenet": read_imagenet,
    "modelnet40": read_modelnet40,
    "scanobjectnn": read_scanobjectnn,
    "sun-rgbd": read_sun_rgbd,
    "nyu-depth-v2": read_nyu_depth_v2,
    "audioset": read_audioset,
    "esc50": read_esc50,
    "audiocaps": read_audiocaps,
    "msrvtt": read_msrvtt,
    "ucf101": read_ucf101,
    "folder": read_folder,
    "manifest": read_manifest,
})

_ALIASES: Mapping[str, str] = MappingProxyType({
    "imagenet1k": "imagenet", "imagenet-1k": "imagenet", "scanobjectnn-test": "scanobjectnn",
    "sunrgbd": "sun-rgbd", "sun-d": "sun-rgbd", "nyud": "nyu-depth-v2", "nyu-d": "nyu-depth-v2",
    "nyuv2": "nyu-depth-v2", "esc-50": "esc50", "msr-vtt": "msrvtt", "msrvtt-1k": "msrvtt",
})


def list_benchmarks() -> list[str]:
    """Registered benchmark names, in the paper's order."""
    return list(BENCHMARKS)


def get_reader(name: str) -> Reader:
    """The reader registered as `name` (case-insensitive; a few common aliases accepted)."""
    key = name.lower()
    key = _ALIASES.get(key, key)
    if key not in BENCHMARKS:
        raise BenchmarkError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[key]


def describe(name: str) -> str:
    """The reader's docstring: what the benchmark is and exactly which files it expects."""
    return get_reader(name).__doc__ or ""


def read_benchmark(
    name: str, data_root: str | Path, split: str | None = None, modality_type: str | None = None
) -> Benchmark:
    """Read benchmark `name` from `data_root` (see :func:`describe` for the layout each expects)."""
    root = Path(data_root).expanduser()
    if not root.exists():
        raise BenchmarkError(f"data root {root} does not exist")
    return get_reader(name)(root, split=split, modality_type=modality_type)


__all__ = ["BENCHMARKS", "Reader", "describe", "get_reader", "list_benchmarks", "read_benchmark"]
