"""Reliability: a rank that fails mid-training ends the whole torchrun job, quickly and visibly.

Two processes (torchrun, gloo on CPU as in tests/test_distributed.py) run the real ``unialign train``
command; ``tests/reliability_worker.py ddp-fault`` patches ``Trainer.micro_batch_losses`` so that one rank
raises a RuntimeError at step 2, while the other rank is (or soon will be) blocked in a collective. The job
must exit non-zero with the error in its output well within a bound (a hang fails via the subprocess
timeout). The measured time from the fault to the job's exit is printed (``pytest -s``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from train_fixtures import train_config, write_world

HERE = Path(__file__).parent
JOB_TIMEOUT_S = 120  # the whole job, start-up included; a rank left hanging in a collective would take 600 s
EXIT_AFTER_FAULT_S = 60  # bound on fault -> job exit (measured: a few seconds)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    data = write_world(tmp_path_factory.mktemp("world"), per_class=4)
    data.pop("shapes")  # as in test_distributed.py: keep the run small
    return data


@pytest.mark.parametrize("fail_rank", [1, 0])
def test_a_failing_rank_ends_the_whole_job_non_zero_and_fast(world: dict, tmp_path: Path, fail_rank: int) -> None:
    cfg = train_config(world, tmp_path / "run", steps=6, batch=12, save_every=1)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), str(HERE)]),
           "OMP_NUM_THREADS": "1", "UNIALIGN_FAIL_RANK": str(fail_rank), "UNIALIGN_FAIL_STEP": "2"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(HERE / "reliability_worker.py"), "ddp-fault",
           str(tmp_path / "cfg.json")]
    t0 = time.time()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"")[-3000:] if isinstance(exc.stdout, bytes) else (exc.stdout or "")[-3000:]
        pytest.fail(f"the job hung: still running {JOB_TIMEOUT_S} s after start (a rank is stuck in a "
                    f"collective?)\n{out}")
    end = time.time()
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert f"injected fault on rank {fail_rank} at step 2" in output, output[-3000:]
    assert "ChildFailedError" in output or "FAILED" in output, output[-3000:]  # torchrun's failure summary
    fault = re.search(r"FAULT_AT (\d+\.\d+)", output)
    assert fault is not None, output[-3000:]
    to_exit = end - float(fault.group(1))
    print(f"\nfail_rank={fail_rank}: job wall {end - t0:.1f} s, fault -> job exit {to_exit:.1f} s, "
          f"rc {proc.returncode}")
    assert to_exit < EXIT_AFTER_FAULT_S, f"the job took {to_exit:.1f} s to exit after the fault"
    # the surviving rank did not go on training past the fault: step 1 is the last logged/saved step
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 1, steps
