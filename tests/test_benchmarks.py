"""Smoke test of the performance suite: ``benchmarks/run_all.py --quick`` on the tiny config (~15 s here).

Checks the machinery (every JSON written with its figures, SUMMARY.md), not the measured values.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
NAMES = ("moe", "preprocess", "train", "backbone", "peak")
FIGURE_KEYS = {"name", "value", "unit", "reference", "goal", "passed", "note"}
MACHINE_KEYS = {"cpu_model", "cpu_cores", "torch_threads", "torch", "device"}


def run_quick(out: Path, *extra: str) -> None:
    """``run_all.py --quick`` into `out` on one torch thread (robust on a busy machine); must exit 0."""
    proc = subprocess.run(
        [sys.executable, str(BENCH_DIR / "run_all.py"), "--quick", "--threads", "1", "--out-dir", str(out), *extra],
        check=False, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole suite, run once in quick mode."""
    out = tmp_path_factory.mktemp("bench")
    run_quick(out)
    return out


def test_quick_suite_writes_every_json(quick_run: Path) -> None:
    for name in NAMES:
        result = json.loads((quick_run / f"{name}.json").read_text())
        assert result["benchmark"] == name and result["quick"] is True
        assert MACHINE_KEYS <= set(result["machine"])
        assert result["command"].startswith(f"python benchmarks/bench_{name}.py")
        if result["skipped"]:  # only the open_clip comparison may skip, and says why
            assert name == "backbone" and "open_clip" in result["message"]
            continue
        assert result["figures"]
        for fig in result["figures"]:
            assert FIGURE_KEYS <= set(fig)
            assert isinstance(fig["value"], float) and fig["reference"]
            assert fig["passed"] in (True, False, None)
            if fig["goal"] is None:
                assert fig["passed"] is None


def test_quick_suite_summary(quick_run: Path) -> None:
    text = (quick_run / "SUMMARY.md").read_text()
    assert text.startswith("# Benchmark summary")
    assert "| figure | measured | reference | goal | result |" in text
    assert f"torch {torch.__version__}" in text and "cores" in text
    for name in NAMES:
        assert f"## {name}:" in text
    peak = json.loads((quick_run / "peak.json").read_text())
    count = next(f for f in peak["figures"] if f["name"].startswith("FLOPs per sample"))
    assert count["passed"] is True  # FlopCounterMode agrees with the analytic count of the config


def test_only_keeps_earlier_results(quick_run: Path) -> None:
    """``--only`` reruns one benchmark; the summary still lists the others from their earlier JSON."""
    run_quick(quick_run, "--only", "backbone")
    text = (quick_run / "SUMMARY.md").read_text()
    assert "--only backbone" in text and "(an earlier run," in text
    for name in NAMES:
        assert f"## {name}:" in text


def test_figure_goals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    from _common import figure

    assert figure("a", 1.02, "ref", at_most=1.03)["passed"] is True
    assert figure("a", 1.04, "ref", at_most=1.03)["passed"] is False
    assert figure("a", 1.04, "ref", at_most=1.03, judged=False)["passed"] is None
    both = figure("a", 0.98, "ref", at_least=0.99, at_most=1.01)
    assert both["passed"] is False and both["goal"] == ">= 0.99 and <= 1.01"
    assert figure("a", 5.0, "ref")["goal"] is None
