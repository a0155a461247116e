"""MoE-LoRA overhead and modality scaling, measured side by side in one run (not a test).

Writes ``benchmarks/results/moe.json`` with, for the chosen architecture (default: the paper's ViT-B/16):

* ``moe_overhead``: image encode with the untrained MoE-LoRA vs the frozen base alone (the same model
  with adapters disabled), fp32 and bf16 autocast. Goal: ratio <= 1.03.
* ``modality_scaling``: one modality's encode on a model with 2 registered expert sets vs 24. Goal: <= 1.02.

A and B are interleaved, each timed ``--repeats`` times after a warm-up; the ratio uses medians.

    python benchmarks/bench_moe.py [--arch ViT-B-16] [--batch 8] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import torch

import unialign


def _time(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def side_by_side(a: Callable[[], object], b: Callable[[], object], repeats: int) -> dict[str, float]:
    """Median seconds of `a` and `b`, interleaved after one warm-up each, and their ratio a / b."""
    a(), b()
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(_time(a))
        tb.append(_time(b))
    ma, mb = statistics.median(ta), statistics.median(tb)
    return {"seconds": ma, "reference_seconds": mb, "ratio": ma / mb, "runs": repeats}


def make_model(arch: str, modalities: dict[str, dict]) -> unialign.UniAlign:
    return unialign.create_model("unialign-vitb16", clip=arch, modalities=modalities, moe={"init": "random"}).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="ViT-B-16")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "moe.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    size = unialign.config.get_clip_config(args.arch).vision.image_size
    x = torch.randn(args.batch, 3, size, size)

    two = {"image": {"type": "image"}, "audio": {"type": "audio"}}
    model = make_model(args.arch, two)
    results: dict[str, object] = {
        "arch": args.arch,
        "batch": args.batch,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
    }
    overhead = {}
    for dtype in ("fp32", "bf16"):
        ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if dtype == "bf16" else nullcontext

        def with_moe() -> None:
            with torch.inference_mode(), ctx():
                model.encode("image", x)

        def base_only() -> None:
            with torch.inference_mode(), ctx(), model.disable_adapters():
                model.encode("image", x)

        overhead[dtype] = {**side_by_side(with_moe, base_only, args.repeats), "reference": "frozen base alone",
                           "goal_ratio_max": 1.03}
        print(f"MoE-LoRA overhead {dtype}: {overhead[dtype]['ratio']:.4f}")
    results["moe_overhead"] = overhead

    many = dict(two) | {f"extra{i}": {"type": "image"} for i in range(22)}
    big = make_model(args.arch, many)
    big.load_state_dict(model.state_dict(), strict=False)

    def on_two() -> None:
        with torch.inference_mode():
            model.encode("image", x)

    def on_many() -> None:
        with torch.inference_mode():
            big.encode("image", x)

    scaling = side_by_side(on_many, on_two, args.repeats)
    scaling |= {"reference": "the same modality on a model with 2 expert sets", "sets": [len(two), len(many)],
                "goal_ratio_max": 1.02,
                "trainable_params_per_added_modality_moe": sum(
                    p.numel() for n, p in big.named_trainable_parameters() if n.startswith("moe.") and ".extra0" in n)}
    results["modality_scaling"] = scaling
    print(f"24 vs 2 expert sets: {scaling['ratio']:.4f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
