"""The ``unialign`` command: thin typed commands over the library."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from unialign.config import list_architectures, list_models, load_model_config, parse_overrides
from unialign.errors import UniAlignError


def cmd_info(config: str, overrides: Sequence[str], as_json: bool) -> int:
    """Print parameter counts of a model config (built on the meta device: no weights, no memory)."""
    from unialign.report import build_for_counting, format_report, parameter_report

    cfg = load_model_config(config, parse_overrides(overrides))
    report = parameter_report(build_for_counting(cfg))
    print(json.dumps(report, indent=2) if as_json else format_report(report))
    return 0


def cmd_train(config: str, overrides: Sequence[str], resume: bool, max_steps: int | None) -> int:
    """Train from a YAML config (single process, or one process per GPU/CPU rank under torchrun)."""
    import torch.distributed as dist

    from unialign.train.config import load_train_config
    from unialign.train.loop import Trainer

    cfg = load_train_config(config, parse_overrides(overrides))
    trainer = Trainer(cfg)
    try:
        if resume and trainer.resume() and trainer.info.is_main:
            print(f"resumed from {trainer.out / 'checkpoint'} at step {trainer.step}", file=sys.stderr)
        result = trainer.run(max_steps=max_steps)
        if trainer.info.is_main:
            print(json.dumps({"out": str(trainer.out), **result}, default=float))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def cmd_list() -> int:
    """Print bundled model configs, CLIP architectures and registered modalities."""
    from unialign import list_modalities

    print("models:        " + ", ".join(list_models()))
    print("architectures: " + ", ".join(list_architectures()))
    print("modalities:    " + ", ".join(list_modalities()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unialign", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="parameter counts of a model config")
    p.add_argument("config", help="bundled model name or YAML file (model at top level or under 'model:')")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. moe.top_k=1")
    p.add_argument("--json", action="store_true", help="print JSON")
    sub.add_parser("list", help="bundled models, architectures and modalities")
    p = sub.add_parser("train", help="one-phase training of every modality (torchrun for several processes)")
    p.add_argument("config", help="training YAML (model, base, data, optim, loss, train, out)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.steps=100 optim.lr=1e-4")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint when it exists")
    p.add_argument("--max-steps", type=int, default=None, help="stop (with a checkpoint) after this many steps")
    from unialign import inference_cli
    from unialign.data import teacher_cache

    from unialign import finetune
    from unialign.demo import run as demo_run
    from unialign.eval import run as eval_run

    teacher_cache.add_parser(sub)
    eval_run.add_parser(sub)
    finetune.add_parser(sub)
    demo_run.add_parser(sub)
    inference_cli.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from unialign import inference_cli

    if args.command in inference_cli.COMMANDS:
        return inference_cli.dispatch(args)
    try:
        if args.command == "info":
            return cmd_info(args.config, args.overrides, args.json)
        if args.command == "train":
            return cmd_train(args.config, args.overrides, args.resume, args.max_steps)
        if args.command in ("cache-teacher", "eval", "finetune", "demo"):
            return int(args.func(args) or 0)
        return cmd_list()
    except UniAlignError as exc:
        print(f"unialign: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
