"""Run the whole performance suite with one command: ``benchmarks/results/*.json`` and ``SUMMARY.md``.

Each benchmark (``bench_<name>.py``, also runnable on its own) is imported and its ``main(argv)`` called in
turn; each writes ``<out-dir>/<name>.json`` whose ``figures`` are ratios measured against a named
reference in the same run. ``SUMMARY.md`` then gets one table per benchmark (figure, measured value,
reference, goal, result) and the machine facts. A benchmark that raises is reported in the summary and
makes the exit status 1; the others still run. With ``--only``, the benchmarks not run keep their earlier
JSON, which the summary shows with its date.

    python benchmarks/run_all.py                  # full suite (ViT-B/16 where the goals are stated)
    python benchmarks/run_all.py --quick          # smoke test: tiny test config, few repeats (< 1 min)
    python benchmarks/run_all.py --only moe --only peak [--threads 1] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from _common import RESULTS_DIR, machine_facts  # benchmarks/ is sys.path[0] when this file runs as a script

BENCHMARKS = {  # name -> what it measures (the module is bench_<name>)
    "moe": "MoE-LoRA overhead and modality scaling",
    "preprocess": "preprocessing throughput vs the encoder it feeds",
    "train": "training step: activation checkpointing's memory saving and its price",
    "backbone": "image-encode throughput vs open_clip on the same architecture",
    "peak": "image encode against the machine's matmul rate (fraction of peak)",
}
RESULT_WORDS = {True: "PASS", False: "**FAIL**", None: "—"}


def run_benchmark(name: str, out_dir: Path, quick: bool) -> dict[str, Any]:
    """Call ``bench_<name>.main`` writing ``<out_dir>/<name>.json``; on an exception, return an error record."""
    argv = ["--out", str(out_dir / f"{name}.json")] + (["--quick"] if quick else [])
    print(f"=== {name}: {BENCHMARKS[name]}", flush=True)
    try:
        return importlib.import_module(f"bench_{name}").main(argv)
    except Exception as exc:  # noqa: BLE001 - reported in the summary; the other benchmarks still run
        traceback.print_exc()
        return {"benchmark": name, "error": f"{type(exc).__name__}: {exc}", "quick": quick}


def _fmt_value(value: float, unit: str) -> str:
    text = f"{value:.3f}" if abs(value) >= 0.01 else f"{value:.3g}"
    return text + {"x": "×", "": ""}.get(unit, f" {unit}")


def _fmt_goal(goal: str | None) -> str:
    return "—" if goal is None else goal.replace(">=", "≥").replace("<=", "≤")


def benchmark_section(name: str, result: dict[str, Any], fresh: bool) -> list[str]:
    """Markdown lines for one benchmark: a heading, how it was run, and its table of figures."""
    lines = [f"## {name}: {BENCHMARKS[name]}", ""]
    if "error" in result:
        return lines + [f"Error: `{result['error']}` (traceback in the run's output).", ""]
    if "figures" not in result:
        return lines + [f"An earlier JSON without figures (older format): rerun with `--only {name}`.", ""]
    when = "" if fresh else f" (an earlier run, {result.get('finished', '?')})"
    mode = "quick" if result.get("quick") else "full"
    lines += [f"`{result.get('command', '?')}`: {mode} mode{when}.", ""]
    if result.get("skipped"):
        return lines + [f"Skipped: {result.get('message')}", ""]
    lines += ["| figure | measured | reference | goal | result |", "|---|---|---|---|---|"]
    notes: list[str] = []
    for f in result.get("figures", []):
        lines.append(f"| {f['name']} | {_fmt_value(f['value'], f.get('unit', 'x'))} | {f['reference']} | "
                     f"{_fmt_goal(f['goal'])} | {RESULT_WORDS[f['passed']]} |")
        if f.get("note") and f["note"] not in notes:
            notes.append(f["note"])
    lines.append("")
    return lines + [f"* {n}" for n in notes] + ([""] if notes else [])


def summary_markdown(results: dict[str, dict[str, Any]], fresh: set[str], command: str,
                     machine: dict[str, Any]) -> str:
    """SUMMARY.md: how it was run, the machine, the pass/fail counts and a table per benchmark."""
    figures = [f for r in results.values() if not r.get("skipped") for f in r.get("figures", [])]
    count = {k: sum(f["passed"] is k for f in figures) for k in (True, False, None)}
    skipped = [n for n, r in results.items() if r.get("skipped")]
    errors = [n for n, r in results.items() if "error" in r]
    threads = machine["torch_threads"]
    device = machine.get("device_name", machine["device"])
    load = "n/a" if machine["load_average_1min"] is None else f"{machine['load_average_1min']:.2f}"
    lines = [
        "# Benchmark summary",
        "",
        f"Command: `{command}`. Every figure is a ratio measured against the named reference in the same run;",
        "goals stated for the paper's ViT-B/16 are not judged on the tiny test model (`--quick`).",
        "",
        (f"Machine: {machine['cpu_model']}, {machine['cpu_cores']} cores; torch {machine['torch']} "
         f"(threads: {threads}); device {device}; Python {machine['python']}; "
         f"1-minute load average at the start: {load}."),
        "",
        f"Result: {count[True]} passed, {count[False]} failed, {count[None]} not judged"
        + (f"; skipped: {', '.join(skipped)}" if skipped else "")
        + (f"; errors: {', '.join(errors)}" if errors else "") + ".",
        "",
    ]
    for name, result in results.items():
        lines += benchmark_section(name, result, name in fresh)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks, write SUMMARY.md; returns the exit status (1 when a benchmark raised)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny test config and few repeats (a smoke test)")
    parser.add_argument("--only", action="append", choices=list(BENCHMARKS), metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")
    parser.add_argument("--out-dir", default=str(RESULTS_DIR), help="where the JSON files and SUMMARY.md go")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (also OMP_NUM_THREADS for subprocesses); default: torch's choice")
    args = parser.parse_args(argv)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)
    command = " ".join(["python", "benchmarks/run_all.py", *(sys.argv[1:] if argv is None else argv)])
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_facts()
    chosen = args.only or list(BENCHMARKS)
    results: dict[str, dict[str, Any]] = {}
    for name in BENCHMARKS:
        if name in chosen:
            results[name] = run_benchmark(name, out_dir, args.quick)
        elif (out_dir / f"{name}.json").is_file():
            results[name] = json.loads((out_dir / f"{name}.json").read_text())
    summary = out_dir / "SUMMARY.md"
    summary.write_text(summary_markdown(results, set(chosen), command, machine))
    print(f"wrote {summary}")
    return 1 if any("error" in results[n] for n in chosen) else 0


if __name__ == "__main__":
    sys.exit(main())
