"""Training step time and activation memory, with and without activation checkpointing (not a test).

Writes ``benchmarks/results/train.json``. Each configuration (tiny / ViT-B-16 x checkpointing off / on)
runs in its own subprocess: build the model and AdamW over the trainable parameters, take one warm-up
step at batch 1 (allocates the optimizer state), record the resident set size (RSS) as the baseline, then
time ``--steps`` training steps at ``--batch`` (image modality through the MoE-LoRA, CLIP InfoNCE against
fixed text embeddings, backward, optimizer step, bf16 autocast), then one step at 2 x ``--batch``.
Activation memory per sample = (peak at 2 x batch - peak at batch) / batch: the slope, so what does not
grow with the batch (autocast's bf16 weight copies, gradients, optimizer state) cancels. CPUs have no
allocator peak counter: the peak is the RSS high-water mark ``VmHWM``, reset before each measurement, in a
child whose glibc returns freed memory at once (:func:`_child_env`); on CUDA the allocator's peak.
Goal: activation memory per sample with checkpointing <= 1/3 of without (stated for ViT-B/16: on the
2-block tiny model the RSS growth is allocator noise). The step-time ratio is the price, reported without a goal.
``--quick`` runs the tiny model only, 2 steps (a smoke test).

    python benchmarks/bench_train.py [--batch 8] [--steps 3] [--archs test-tiny ViT-B-16] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch
from _common import PAPER_ARCH, QUICK_ARCH, RESULTS_DIR, add_common_args, figure, judged_on, parse_args, write_result


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_rss_mb() -> float:
    """This process's own RSS high-water mark (``VmHWM``). ``ru_maxrss`` is not used: Linux carries it
    over from the parent across fork + exec, so a child of a big parent (run_all.py after ViT-B/16
    benchmarks) reports the parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_env() -> dict[str, str]:
    """The measuring child's environment: glibc serves allocations >= 64 KiB with mmap and returns freed
    memory at once, so RSS follows live tensors (with its defaults, freed activation buffers stay in the
    heap and RSS over-counts: measured here 0.47 instead of 0.24 for ViT-B/16)."""
    return {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def _reset_peak_rss() -> None:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0: ``echo 5 > /proc/self/clear_refs``); best effort."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def one_config(arch: str, checkpointing: bool, batch: int, steps: int, bf16: bool) -> dict:
    """Measure one configuration in this process (called in a fresh subprocess)."""
    import unialign
    from unialign.losses import nce_loss
    from unialign.train.config import OptimConfig
    from unialign.train.optim import build_optimizer

    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = unialign.create_model("unialign-vitb16", clip=arch, moe={"init": "random"},
                                  grad_checkpointing=checkpointing).to(device).train()
    opt = build_optimizer(model, OptimConfig())
    size = model.config.clip.vision.image_size
    text = torch.nn.functional.normalize(torch.randn(2 * batch, model.config.clip.embed_dim, device=device), dim=-1)

    def step(b: int) -> None:
        x = torch.randn(b, 3, size, size, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            emb = model.encode("image", x).float()
        nce_loss(emb, text[:b], model.logit_scale.detach())["nce_loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step(1)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        base = _rss_mb()
        _reset_peak_rss()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
    else:
        peak = _peak_rss_mb()
        _reset_peak_rss()
    step(2 * batch)  # the slope between batch and 2 x batch is the memory per sample: constants cancel
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak2 = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak2 = _peak_rss_mb()
    return {
        "arch": arch, "grad_checkpointing": checkpointing, "batch": batch, "bf16": bf16,
        "device": str(device), "step_seconds_median": sorted(times)[len(times) // 2],
        "baseline_mb": base, "peak_mb": peak, "peak_mb_at_2x_batch": peak2,
        "activation_mb_per_sample": max(peak2 - peak, 0.0) / batch,
        "activation_mb_per_sample_incl_constants": max(peak - base, 0.0) / batch,
        "trainable_params": sum(p.numel() for p in model.trainable_parameters()),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure every configuration (each in a fresh subprocess) and write ``train.json``; returns it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 3; --quick: 2)")
    parser.add_argument("--archs", nargs="+", default=None,
                        help=f"CLIP architectures (default: {QUICK_ARCH} {PAPER_ARCH}; --quick: {QUICK_ARCH})")
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    add_common_args(parser, RESULTS_DIR / "train.json")
    parser.add_argument("--one", nargs=2, metavar=("ARCH", "CKPT"), help=argparse.SUPPRESS)
    args, command = parse_args(parser, argv, __file__)
    steps = args.steps or (2 if args.quick else 3)
    archs = args.archs or ([QUICK_ARCH] if args.quick else [QUICK_ARCH, PAPER_ARCH])
    if args.one:  # child process
        result = one_config(args.one[0], args.one[1] == "1", args.batch, steps, not args.fp32)
        print(json.dumps(result))
        return result
    runs = []
    for arch in archs:
        for ckpt in (False, True):
            cmd = [sys.executable, __file__, "--one", arch, "1" if ckpt else "0", "--batch", str(args.batch),
                   "--steps", str(steps)] + (["--fp32"] if args.fp32 else [])
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=_child_env()).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(runs[-1]))
    summary, figures = {}, []
    for arch in archs:
        off, on = (r for r in runs if r["arch"] == arch)
        summary[arch] = {
            "activation_ratio_with_vs_without_checkpointing": on["activation_mb_per_sample"]
            / max(off["activation_mb_per_sample"], 1e-9),
            "goal_ratio_max": 1 / 3,
            "step_time_ratio_with_vs_without": on["step_seconds_median"] / off["step_seconds_median"],
        }
        judged, note = judged_on(arch)
        figures.append(figure(f"activation memory per sample with checkpointing ({arch})",
                              summary[arch]["activation_ratio_with_vs_without_checkpointing"],
                              "the same training step without activation checkpointing", at_most=1 / 3,
                              judged=judged, note=note))
        figures.append(figure(f"training step time with checkpointing ({arch})",
                              summary[arch]["step_time_ratio_with_vs_without"],
                              "the same training step without activation checkpointing",
                              note="the price of the memory saving; no goal"))
    details = {"batch": args.batch, "steps": steps, "runs": runs, "summary": summary,
               "memory_note": ("activation memory per sample = (peak at 2 x batch - peak at batch) / batch, so "
                               "constants (autocast weight copies, gradients, optimizer state, allocator "
                               "caches) cancel; CPU: peak = VmHWM, reset before each measurement; CUDA: "
                               "the allocator's peak")}
    print(json.dumps(summary, indent=2))
    return write_result(args.out, "train", figures, details, quick=args.quick, command=command,
                        device=torch.device(runs[0]["device"]))


if __name__ == "__main__":
    main()
