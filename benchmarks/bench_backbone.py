"""Image-encode throughput of our CLIP backbone vs open_clip's on the same architecture (not a test).

Writes ``benchmarks/results/backbone.json``. Both models are built for the same architecture (default: the
paper's ViT-B/16): ours through :func:`unialign.create_model` (paper configuration, frozen, random weights,
untrained random-init experts), open_clip's through ``open_clip.create_model(arch, pretrained=None)``
(QuickGELU when ours uses it; architectures open_clip does not bundle, such as the tiny test one, are built
from our config). Our vision weights are copied into ``open_clip``'s ``visual`` tower (the parameter names
are open_clip's), and the two embeddings are checked to agree before anything is timed.

Contenders, interleaved on the same batch and dtype (``--repeats`` medians after one warm-up each):

* ``ours, backbone``: ``model.encode("image", x, normalize=False)`` with the adapters disabled;
* ``ours, with MoE-LoRA``: the same call with the (untrained) adapters, i.e. what ``unialign`` runs;
* ``open_clip``: ``model.encode_image(x)``, the reference.

Figures (throughput ratios, ours / open_clip): backbone goal >= 1.0; with MoE-LoRA goal >= 1/1.03 (the
adapters may cost up to 3%, the goal of ``bench_moe``). Without open_clip installed the JSON says
``skipped: true`` and the script exits 0 (``pip install open_clip_torch`` to compare).

    python benchmarks/bench_backbone.py [--arch ViT-B-16] [--batch 8] [--repeats 5] [--dtypes fp32 bf16] [--quick]
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
    interleaved_medians,
    judged_on,
    make_model,
    parse_args,
    resolve_device,
    write_result,
)
from torch import nn

from unialign.config import ClipConfig

SKIP_MESSAGE = "open_clip not installed: pip install open_clip_torch to compare"
MOE_OVERHEAD_MAX = 1.03  # bench_moe's goal for the untrained adapters' cost
AGREEMENT_RTOL = 1e-3  # fp32 embeddings of the two implementations: max |a - b| <= rtol * max |b|


def build_open_clip(clip: ClipConfig) -> nn.Module:
    """open_clip's CLIP for our architecture `clip`, random weights (``create_model`` when bundled)."""
    import open_clip

    quick_gelu = clip.vision.act == "quick_gelu"
    if clip.name in open_clip.list_models():
        return open_clip.create_model(clip.name, pretrained=None, force_quick_gelu=quick_gelu)
    v, t = clip.vision, clip.text
    vision_cfg = {"image_size": v.image_size, "patch_size": v.patch_size, "width": v.width, "layers": v.layers,
                  "head_width": v.width // v.heads, "mlp_ratio": v.mlp_ratio}
    text_cfg = {"context_length": t.context_length, "vocab_size": t.vocab_size, "width": t.width,
                "heads": t.heads, "layers": t.layers, "mlp_ratio": t.mlp_ratio}
    return open_clip.CLIP(embed_dim=clip.embed_dim, vision_cfg=vision_cfg, text_cfg=text_cfg, quick_gelu=quick_gelu)


def copy_vision_weights(ours: nn.Module, theirs: nn.Module) -> None:
    """Load our frozen image tower's weights into open_clip's ``visual`` (same names; strict)."""
    theirs.visual.load_state_dict(ours.base.visual.state_dict(), strict=True)


@torch.inference_mode()
def check_agreement(ours: nn.Module, theirs: nn.Module, x: torch.Tensor) -> float:
    """Max abs difference of the fp32 unnormalised image embeddings; raises when they do not agree."""
    a = ours.encode("image", x, normalize=False).float()
    b = theirs.encode_image(x).float()
    diff = (a - b).abs().max().item()
    scale = b.abs().max().item()
    if diff > AGREEMENT_RTOL * scale:
        raise RuntimeError(f"our and open_clip's image embeddings differ (max |a - b| = {diff:.3g}, max |b| = "
                           f"{scale:.3g}): the architectures do not match, so their timings are not comparable")
    return diff


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure and write ``backbone.json`` (or a ``skipped`` one without open_clip); returns what was written."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default=None, help=f"CLIP architecture (default {PAPER_ARCH}; --quick: {QUICK_ARCH})")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per contender (default 5; --quick: 3)")
    parser.add_argument("--dtypes", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    add_common_args(parser, RESULTS_DIR / "backbone.json")
    args, command = parse_args(parser, argv, __file__)
    device = resolve_device(args.device)
    try:
        import open_clip
    except ImportError:
        print(SKIP_MESSAGE)
        return write_result(args.out, "backbone", [], quick=args.quick, command=command, device=device,
                            skipped=True, message=SKIP_MESSAGE)
    arch = args.arch or (QUICK_ARCH if args.quick else PAPER_ARCH)
    repeats = args.repeats or (3 if args.quick else 5)
    judged, note = judged_on(arch)
    torch.manual_seed(0)
    ours = make_model(arch).to(device)
    theirs = build_open_clip(ours.config.clip).to(device).eval().requires_grad_(False)
    copy_vision_weights(ours, theirs)
    size = ours.config.clip.vision.image_size
    x = torch.randn(args.batch, 3, size, size, device=device)
    max_diff = check_agreement(ours, theirs, x)

    figures, timings = [], {}
    for dtype in args.dtypes:

        def ours_backbone(dtype: str = dtype) -> None:
            with torch.inference_mode(), autocast(device, dtype), ours.disable_adapters():
                ours.encode("image", x, normalize=False)

        def ours_with_moe(dtype: str = dtype) -> None:
            with torch.inference_mode(), autocast(device, dtype):
                ours.encode("image", x, normalize=False)

        def open_clip_encode(dtype: str = dtype) -> None:
            with torch.inference_mode(), autocast(device, dtype):
                theirs.encode_image(x)

        med = interleaved_medians({"ours_backbone": ours_backbone, "ours_with_moe": ours_with_moe,
                                   "open_clip": open_clip_encode}, repeats, device)
        timings[dtype] = {"median_seconds": med, "images_per_s": {k: args.batch / s for k, s in med.items()}}
        reference = f"open_clip encode_image, {arch}, batch {args.batch}, {dtype}"
        figures.append(figure(f"backbone image throughput, {dtype}", med["open_clip"] / med["ours_backbone"],
                              reference, at_least=1.0, judged=judged, note=note))
        figures.append(figure(f"image throughput with untrained MoE-LoRA, {dtype}",
                              med["open_clip"] / med["ours_with_moe"], reference, at_least=1 / MOE_OVERHEAD_MAX,
                              judged=judged, note=note))
        print(f"{dtype}: " + ", ".join(f"{k} {v:.2f} img/s" for k, v in timings[dtype]["images_per_s"].items()))
    details = {"arch": arch, "batch": args.batch, "repeats": repeats, "open_clip": open_clip.__version__,
               "fp32_max_abs_diff": max_diff, "timings": timings}
    return write_result(args.out, "backbone", figures, details, quick=args.quick, command=command, device=device)


if __name__ == "__main__":
    main()
