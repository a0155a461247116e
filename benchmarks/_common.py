"""Helpers shared by the benchmark scripts: timing, machine facts, result figures and JSON output.

Every benchmark writes one JSON file holding a ``figures`` list; each figure is a ratio measured against a
named reference in the same run::

    {"name": ..., "value": 0.98, "unit": "x", "reference": "frozen base alone", "goal": "<= 1.03",
     "passed": true, "note": ...}

``passed`` is ``null`` when the figure is informational (no goal) or when its goal is stated for another
configuration than the one measured (e.g. the paper's ViT-B/16 goals on the tiny test model of ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PAPER_ARCH = "ViT-B-16"  # the architecture the goals are stated for
QUICK_ARCH = "test-tiny"  # the tiny registered test architecture that --quick uses


# ------------------------------------------------------------------ devices and timing


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else is passed to :class:`torch.device`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def synchronize(device: torch.device | None) -> None:
    """Wait for queued GPU work (no-op on CPU), so wall-clock times cover the whole computation."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, dtype: str) -> AbstractContextManager:
    """``fp32``: no autocast; ``bf16``: bfloat16 autocast on `device`."""
    if dtype == "fp32":
        return nullcontext()
    if dtype == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise ValueError(f"unknown dtype {dtype!r}; expected 'fp32' or 'bf16'")


def bf16_supported(device: torch.device) -> bool:
    """Whether `device` has native bfloat16 matmuls (CUDA: ``is_bf16_supported``; CPU: oneDNN's check)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    check = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


def timed(fn: Callable[[], object], device: torch.device | None = None) -> float:
    """Wall-clock seconds of one call of `fn` (GPU work included)."""
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - t0


def interleaved_medians(
    fns: Mapping[str, Callable[[], object]], repeats: int, device: torch.device | None = None
) -> dict[str, float]:
    """Median seconds of each callable: one warm-up each, then `repeats` rounds calling them in turn.

    Interleaving spreads drifts of a shared machine (other jobs, clock changes) evenly over the contenders.
    """
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn, device))
    return {name: statistics.median(t) for name, t in times.items()}


def side_by_side(
    a: Callable[[], object], b: Callable[[], object], repeats: int, device: torch.device | None = None
) -> dict[str, float]:
    """Median seconds of `a` and of the reference `b` (interleaved) and their ratio a / b."""
    m = interleaved_medians({"a": a, "b": b}, repeats, device)
    return {"seconds": m["a"], "reference_seconds": m["b"], "ratio": m["a"] / m["b"], "runs": repeats}


def rate(fn: Callable[[], object], items: float, repeats: int, device: torch.device | None = None) -> float:
    """Items per second of `fn` (median of `repeats` timed runs after one warm-up)."""
    return items / interleaved_medians({"fn": fn}, repeats, device)["fn"]


# ------------------------------------------------------------------ models


def make_model(arch: str, modalities: Mapping[str, dict] | None = None) -> Any:
    """The paper configuration on CLIP architecture `arch` (random weights, random-init experts, eval mode).

    ``modalities`` replaces the paper's modality set (default: image only). The experts' ``B`` is zero, so
    the adapters cost their full compute but leave the output equal to the frozen base's.
    """
    import unialign

    mods = dict(modalities) if modalities is not None else {"image": {"type": "image"}}
    return unialign.create_model("unialign-vitb16", clip=arch, modalities=mods, moe={"init": "random"}).eval()


# ------------------------------------------------------------------ facts, figures, output


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts(device: torch.device | None = None) -> dict[str, Any]:
    """Where the figures were measured: CPU model and cores, torch version and threads, device, and the
    1-minute load average (other jobs on a shared machine make the timings noisy)."""
    device = device or resolve_device()
    facts: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        facts["device_name"] = torch.cuda.get_device_name(device)
    return facts


def figure(
    name: str,
    value: float,
    reference: str,
    *,
    at_most: float | None = None,
    at_least: float | None = None,
    judged: bool = True,
    unit: str = "x",
    note: str | None = None,
) -> dict[str, Any]:
    """One result entry: `value` measured against `reference`, its goal and whether it was met.

    ``at_most`` / ``at_least`` bound the goal (either or both); without either the figure is informational.
    ``unit`` is ``"x"`` for a ratio of like quantities, ``""`` for a plain fraction.
    ``judged=False`` keeps the goal on record but leaves ``passed`` as ``None`` (goal stated for another
    configuration).
    """
    parts = []
    if at_least is not None:
        parts.append(f">= {at_least:.4g}")
    if at_most is not None:
        parts.append(f"<= {at_most:.4g}")
    goal = " and ".join(parts) or None
    passed = None
    if goal is not None and judged:
        passed = bool((at_least is None or value >= at_least) and (at_most is None or value <= at_most))
    return {"name": name, "value": float(value), "unit": unit, "reference": reference, "goal": goal,
            "passed": passed, "note": note}


def judged_on(arch: str) -> tuple[bool, str | None]:
    """(judged, note) for a goal stated for the paper architecture, measured on `arch`."""
    if arch == PAPER_ARCH:
        return True, None
    return False, f"goal stated for {PAPER_ARCH}; not judged on {arch}"


def parse_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, script: str
) -> tuple[argparse.Namespace, str]:
    """Parse `argv` (default: the process's arguments); returns the namespace and the command that reproduces
    the run (``python benchmarks/<script> <argv>``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return parser.parse_args(args), " ".join(["python", f"benchmarks/{Path(script).name}", *args])


def add_common_args(parser: argparse.ArgumentParser, default_out: Path) -> None:
    """``--out`` (the JSON file) and ``--quick`` (tiny config, few repeats: a smoke test, not a measurement)."""
    parser.add_argument("--out", default=str(default_out), help="JSON file to write (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: the tiny {QUICK_ARCH} config and few repeats")


def write_result(
    path: str | Path,
    benchmark: str,
    figures: Sequence[Mapping[str, Any]],
    details: Mapping[str, Any] | None = None,
    *,
    quick: bool,
    command: str,
    device: torch.device | None = None,
    skipped: bool = False,
    message: str | None = None,
) -> dict[str, Any]:
    """Write one benchmark's JSON (benchmark, quick, skipped, message, command, machine, figures + `details`)."""
    result: dict[str, Any] = {
        "benchmark": benchmark,
        "quick": quick,
        "skipped": skipped,
        "message": message,
        "command": command,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_facts(device),
        "figures": list(figures),
        **(details or {}),
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return result
