"""Image encode against the physical limit: the fraction of this machine's matmul rate it reaches (not a test).

Writes ``benchmarks/results/peak.json``. In one run it measures

* the machine's matmul rate: FLOP/s of a square ``torch.matmul`` of each ``--sizes`` (median of ``--repeats``
  after a warm-up), fp32 and, when the device has native bf16 matmuls, bf16; the best size is the reference;
* the FLOPs of one image encode per sample (paper configuration with untrained MoE-LoRA, i.e. what
  ``model.encode("image", x)`` computes), twice: with ``torch.utils.flop_counter.FlopCounterMode`` (attention
  forced onto the math SDPA kernel, whose matmuls the counter sees) and analytically from the config (patch
  embedding, QKV, attention scores and weighted sum, output projection, MLP, MoE router and experts, final
  projection; 2 FLOPs per multiply-add, element-wise work not counted, as the counter does);
* the encode throughput (samples/s, same batch, fp32 and bf16 autocast).

Figures: counted / analytic FLOPs (goal: 1 +- 1%), and the fraction of peak =
FLOPs per sample x samples/s / matmul FLOP/s of the same dtype (goal for ViT-B/16: >= 0.5, i.e. the encode
runs at least half as fast as the machine's own large matmul; informational for the tiny test model).
``--quick``: the tiny test architecture, 512/1024 matmuls, 3 repeats (a smoke test).

    python benchmarks/bench_peak.py [--archs test-tiny ViT-B-16] [--batch 8] [--repeats 5] [--sizes 2048 4096] [--quick]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import torch
from _common import (
    PAPER_ARCH,
    QUICK_ARCH,
    RESULTS_DIR,
    add_common_args,
    autocast,
    bf16_supported,
    figure,
    interleaved_medians,
    judged_on,
    make_model,
    parse_args,
    resolve_device,
    write_result,
)
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from unialign.config import ModelConfig

FRACTION_OF_PEAK_MIN = 0.5
COUNT_TOLERANCE = 0.01
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def matmul_flops_per_s(n: int, dtype: str, device: torch.device, repeats: int) -> float:
    """FLOP/s (2 n^3 per product) of an n x n by n x n ``torch.matmul`` in `dtype` (median of `repeats`)."""
    a = torch.randn(n, n, device=device, dtype=DTYPES[dtype])
    b = torch.randn(n, n, device=device, dtype=DTYPES[dtype])
    seconds = interleaved_medians({"mm": lambda: torch.matmul(a, b)}, repeats, device)["mm"]
    return 2 * n**3 / seconds


def analytic_flops(cfg: ModelConfig, adapters: bool = True) -> dict[str, int]:
    """FLOPs per sample of one image encode, by part, from the config (2 per multiply-add, matmuls only)."""
    v, moe = cfg.clip.vision, cfg.moe
    d, hidden = v.width, int(v.width * v.mlp_ratio)
    patches = (v.image_size // v.patch_size) ** 2
    n = patches + 1  # + class token
    parts = {
        "patch_embedding": 2 * patches * d * 3 * v.patch_size**2,
        "qkv": v.layers * 2 * n * d * 3 * d,
        "attention_matmuls": v.layers * 2 * 2 * n * n * d,  # Q K^T and A V over all heads
        "attention_out_proj": v.layers * 2 * n * d * d,
        "mlp": v.layers * 2 * 2 * n * d * hidden,
        "final_projection": 2 * d * cfg.clip.embed_dim,  # class token only
    }
    if adapters:
        experts = moe.experts_per_modality * (1 if moe.routing == "grouped" else len(cfg.modalities))
        parts["moe_router"] = v.layers * 2 * n * d * experts
        parts["moe_experts"] = v.layers * 2 * 2 * n * d * experts * moe.rank  # A then B, all experts (dense)
    return parts


def counted_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs per sample of ``model.encode("image", x)`` counted by ``FlopCounterMode`` (math SDPA kernel)."""
    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model.encode("image", x)
    return counter.get_total_flops() // x.shape[0]


def measure_model(
    arch: str, batch: int, repeats: int, peak: dict[str, tuple[str, float]], device: torch.device
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """FLOPs per sample (counted and analytic) and encode throughput of `arch` in each dtype of `peak`, and
    the fraction of `peak` (dtype -> (matmul size, FLOP/s)) reached; returns (details, figures)."""
    model = make_model(arch).to(device)
    size = model.config.clip.vision.image_size
    x = torch.randn(batch, 3, size, size, device=device)
    parts = analytic_flops(model.config)
    analytic, counted = sum(parts.values()), counted_flops(model, x)
    figures = [figure(f"FLOPs per sample, FlopCounterMode vs analytic ({arch})", counted / analytic,
                      "analytic count from the config", at_least=1 - COUNT_TOLERANCE, at_most=1 + COUNT_TOLERANCE)]

    def encode(dtype: str) -> None:
        with torch.inference_mode(), autocast(device, dtype):
            model.encode("image", x)

    med = interleaved_medians({dt: (lambda dt=dt: encode(dt)) for dt in peak}, repeats, device)
    judged, note = judged_on(arch)
    entry: dict[str, Any] = {"flops_per_sample_counted": counted, "flops_per_sample_analytic": analytic,
                             "analytic_parts": parts, "encode_seconds_median": med, "samples_per_s": {},
                             "achieved_flops_per_s": {}, "fraction_of_peak": {}}
    for dt, (n, peak_flops) in peak.items():
        samples = batch / med[dt]
        achieved = counted * samples
        entry["samples_per_s"][dt] = samples
        entry["achieved_flops_per_s"][dt] = achieved
        entry["fraction_of_peak"][dt] = achieved / peak_flops
        figures.append(figure(f"image encode, fraction of matmul peak, {dt} ({arch})", achieved / peak_flops,
                              f"{dt} torch.matmul of this machine, {peak_flops / 1e9:.1f} GFLOP/s (n={n})",
                              at_least=FRACTION_OF_PEAK_MIN, judged=judged, unit="", note=note))
        print(f"{arch} {dt}: {samples:.2f} samples/s x {counted / 1e9:.3f} GFLOP = {achieved / 1e9:.1f} GFLOP/s "
              f"= {achieved / peak_flops:.3f} of peak")
    return entry, figures


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure and write ``peak.json``; returns what was written."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=None,
                        help=f"CLIP architectures (default: {QUICK_ARCH} {PAPER_ARCH}; --quick: {QUICK_ARCH})")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (default 5; --quick: 3)")
    parser.add_argument("--sizes", nargs="+", type=int, default=None,
                        help="square matmul sizes (default 2048 4096; --quick: 512 1024)")
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=list(DTYPES),
                        help="bf16 is skipped where the device has no native bf16 matmul")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    add_common_args(parser, RESULTS_DIR / "peak.json")
    args, command = parse_args(parser, argv, __file__)
    device = resolve_device(args.device)
    archs = args.archs or ([QUICK_ARCH] if args.quick else [QUICK_ARCH, PAPER_ARCH])
    repeats = args.repeats or (3 if args.quick else 5)
    sizes = args.sizes or ([512, 1024] if args.quick else [2048, 4096])
    dtypes = [d for d in args.dtypes if d == "fp32" or bf16_supported(device)]
    torch.manual_seed(0)

    matmul = {dt: {str(n): matmul_flops_per_s(n, dt, device, repeats) for n in sizes} for dt in dtypes}
    peak = {dt: max(rates.items(), key=lambda kv: kv[1]) for dt, rates in matmul.items()}  # (size, FLOP/s)
    for dt, (n, flops) in peak.items():
        print(f"matmul peak {dt}: {flops / 1e9:.1f} GFLOP/s (n={n})")

    figures, models = [], {}
    for arch in archs:
        models[arch], arch_figures = measure_model(arch, args.batch, repeats, peak, device)
        figures += arch_figures
    details = {"batch": args.batch, "repeats": repeats, "dtypes": dtypes,
               "matmul_flops_per_s": matmul, "peak": {dt: {"size": int(n), "flops_per_s": f}
                                                      for dt, (n, f) in peak.items()},
               "models": models,
               "flop_convention": "2 FLOPs per multiply-add; matmuls and convolutions only (as FlopCounterMode)"}
    return write_result(args.out, "peak", figures, details, quick=args.quick, command=command, device=device)


if __name__ == "__main__":
    main()
