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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "info":
            return cmd_info(args.config, args.overrides, args.json)
        return cmd_list()
    except UniAlignError as exc:
        print(f"unialign: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
