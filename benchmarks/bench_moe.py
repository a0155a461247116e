"""MoE-LoRA overhead and modality scaling, measured side by side in one run (not a test).

Writes ``benchmarks/results/moe.json`` with, for the chosen architecture (default: the paper's ViT-B/16):

* ``moe_overhead``: image encode with the untrained MoE-LoRA vs the frozen base alone (the same model
  with adapters disabled), fp32 and bf16 autocast. Goal: ratio <= 1.03.
* ``modality_scaling``: one modality's encode on a model with 24 registered expert sets vs 2. Goal: <= 1.02.

A and B are interleaved, each timed ``--repeats`` times after a warm-up; the ratio uses medians.
``--quick`` runs the tiny test architecture with 3 repeats (a smoke test: goals are not judged there).

    python benchmarks/bench_moe.py [--arch ViT-B-16] [--batch 8] [--repeats 5] [--quick]
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
    figure,
    judged_on,
    make_model,
    parse_args,
    side_by_side,
    write_result,
)

import unialign


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure and write ``moe.json``; returns what was written."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default=None, help=f"CLIP architecture (default {PAPER_ARCH}; --quick: {QUICK_ARCH})")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per contender (default 5; --quick: 3)")
    add_common_args(parser, RESULTS_DIR / "moe.json")
    args, command = parse_args(parser, argv, __file__)
    arch = args.arch or (QUICK_ARCH if args.quick else PAPER_ARCH)
    repeats = args.repeats or (3 if args.quick else 5)
    judged, note = judged_on(arch)
    device = torch.device("cpu")
    torch.manual_seed(0)
    size = unialign.config.get_clip_config(arch).vision.image_size
    x = torch.randn(args.batch, 3, size, size)

    two = {"image": {"type": "image"}, "audio": {"type": "audio"}}
    model = make_model(arch, two)
    figures = []
    overhead = {}
    for dtype in ("fp32", "bf16"):

        def with_moe(dtype: str = dtype) -> None:
            with torch.inference_mode(), autocast(device, dtype):
                model.encode("image", x)

        def base_only(dtype: str = dtype) -> None:
            with torch.inference_mode(), autocast(device, dtype), model.disable_adapters():
                model.encode("image", x)

        overhead[dtype] = {**side_by_side(with_moe, base_only, repeats), "reference": "frozen base alone",
                           "goal_ratio_max": 1.03}
        figures.append(figure(f"encode time with untrained MoE-LoRA, {dtype}", overhead[dtype]["ratio"],
                              "the same model with adapters disabled (frozen base alone)", at_most=1.03,
                              judged=judged, note=note))
        print(f"MoE-LoRA overhead {dtype}: {overhead[dtype]['ratio']:.4f}")

    many = dict(two) | {f"extra{i}": {"type": "image"} for i in range(22)}
    big = make_model(arch, many)
    big.load_state_dict(model.state_dict(), strict=False)

    def on_two() -> None:
        with torch.inference_mode():
            model.encode("image", x)

    def on_many() -> None:
        with torch.inference_mode():
            big.encode("image", x)

    scaling = side_by_side(on_many, on_two, repeats)
    scaling |= {"reference": "the same modality on a model with 2 expert sets", "sets": [len(two), len(many)],
                "goal_ratio_max": 1.02,
                "trainable_params_per_added_modality_moe": sum(
                    p.numel() for n, p in big.named_trainable_parameters() if n.startswith("moe.") and ".extra0" in n)}
    figures.append(figure("one modality's encode time with 24 registered expert sets", scaling["ratio"],
                          "the same modality on a model with 2 expert sets", at_most=1.02, judged=judged, note=note))
    print(f"24 vs 2 expert sets: {scaling['ratio']:.4f}")
    details = {"arch": arch, "batch": args.batch, "repeats": repeats, "moe_overhead": overhead,
               "modality_scaling": scaling}
    return write_result(args.out, "moe", figures, details, quick=args.quick, command=command, device=device)


if __name__ == "__main__":
    main()
