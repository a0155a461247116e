"""torchrun --nproc_per_node 2 (gloo, CPU): identical ranks, disjoint samples, equal to one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from train_fixtures import train_config, write_world

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], timeout: int = 240) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), str(HERE)]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_two_ranks_match_one_process(tmp_path: Path) -> None:
    data = write_world(tmp_path / "world", per_class=4)
    data.pop("shapes")  # the point tokenizer's BatchNorm uses per-rank batch statistics
    steps = 3
    results = {}
    for name, launcher in (
        ("single", [sys.executable]),
        ("ddp", [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                 "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]),
    ):
        out = tmp_path / name
        out.mkdir()
        cfg = train_config(data, out / "run", steps=steps, batch=12)
        (out / "cfg.json").write_text(json.dumps(cfg))
        _run(launcher + [str(HERE / "ddp_worker.py"), str(out / "cfg.json"), str(out), str(steps)])
        results[name] = out
    single = load_file(str(results["single"] / "rank0.safetensors"))
    r0 = load_file(str(results["ddp"] / "rank0.safetensors"))
    r1 = load_file(str(results["ddp"] / "rank1.safetensors"))
    for key in single:
        assert torch.equal(r0[key], r1[key]), f"ranks differ at {key}"
        # gradients are summed in another order across processes: float round-off only
        assert torch.allclose(r0[key], single[key], atol=2e-5, rtol=1e-4), key
    seen0 = json.loads((results["ddp"] / "rank0.json").read_text())
    seen1 = json.loads((results["ddp"] / "rank1.json").read_text())
    seen = json.loads((results["single"] / "rank0.json").read_text())
    assert len(seen0) == len(seen1) == len(seen) // 2
    for step in range(steps):  # per step, the two ranks' samples are disjoint and together the single run's
        a, b = seen0[step * 6:(step + 1) * 6], seen1[step * 6:(step + 1) * 6]
        assert not set(a) & set(b) and sorted(a + b) == sorted(seen[step * 12:(step + 1) * 12])
