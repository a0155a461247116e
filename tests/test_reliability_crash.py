"""Reliability: SIGKILL during training or during a checkpoint write loses nothing and corrupts nothing.

(a) ``unialign train CONFIG`` runs as a subprocess with a checkpoint every step and is SIGKILLed once a
    (seeded) random step is logged; ``unialign train CONFIG --resume`` then finishes it. The final adapter
    weights equal those of an uninterrupted run bit for bit, and so do the logged losses after the resume.
(b) A worker saves a checkpoint in a loop and is SIGKILLed at random moments, several times in a row over
    the same folder: whenever ``OUT/checkpoint`` exists it loads completely with ``unialign.load`` and
    holds exactly one save (every adapter tensor, the meta step and the training-state step agree);
    leftover ``.tmp-*`` directories are ignored.
(c) Deterministic kills inside ``save_checkpoint``'s replacement step and a stale ``.old-*`` directory
    (regressions for two bugs this file found and that are now fixed).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import unialign
from train_fixtures import train_config, write_world
from unialign.checkpoint import ADAPTERS, META, load_train_state, resolve_checkpoint

HERE = Path(__file__).parent
SEED = int(os.environ.get("UNIALIGN_CRASH_SEED", "20240611"))
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), str(HERE)]), "OMP_NUM_THREADS": "1",
       "TQDM_DISABLE": "1"}
STEPS = 10


def _wait_for(predicate, proc: subprocess.Popen, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the process exited (rc {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def _logged_steps(metrics: Path) -> list[dict]:
    if not metrics.is_file():
        return []
    lines = metrics.read_text().splitlines()
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written right now
            break
    return out


def _train(cfg: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "unialign.cli", "train", str(cfg), *extra], env=ENV,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def test_sigkill_mid_training_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    world = write_world(tmp_path / "world")
    kill_after = random.Random(SEED).randint(2, STEPS - 3)  # a step whose predecessor has been checkpointed
    cfgs = {}
    for name in ("straight", "killed"):
        cfg = train_config(world, tmp_path / name, steps=STEPS, batch=8, save_every=1)
        cfgs[name] = tmp_path / f"{name}.yaml"
        cfgs[name].write_text(json.dumps(cfg))  # JSON is YAML
    # the uninterrupted reference runs beside the victim (2 cores)
    straight = subprocess.Popen([sys.executable, "-m", "unialign.cli", "train", str(cfgs["straight"])], env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = subprocess.Popen([sys.executable, "-m", "unialign.cli", "train", str(cfgs["killed"])], env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        metrics = tmp_path / "killed" / "metrics.jsonl"
        _wait_for(lambda: any(r["step"] >= kill_after for r in _logged_steps(metrics)), victim, 90,
                  f"step {kill_after} to be logged")
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL
    finally:
        if victim.poll() is None:
            victim.kill()
    killed_at = max(r["step"] for r in _logged_steps(metrics))
    assert killed_at < STEPS, "the run finished before the kill landed; nothing was tested"
    out, err = straight.communicate(timeout=120)
    assert straight.returncode == 0, err[-3000:]

    resumed = _train(cfgs["killed"], "--resume")
    assert "resumed from" in resumed.stderr, resumed.stderr[-2000:]
    resumed_from = int(resumed.stderr.split("resumed from", 1)[1].split("at step", 1)[1].split()[0])
    assert 1 <= resumed_from <= killed_at, (resumed_from, killed_at)
    print(f"\nkilled after step {killed_at} logged (target {kill_after}); resumed from step {resumed_from}")

    a = load_file(str(tmp_path / "straight" / "checkpoint" / ADAPTERS))
    b = load_file(str(tmp_path / "killed" / "checkpoint" / ADAPTERS))
    assert a.keys() == b.keys() and len(a) > 10
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs from the uninterrupted run"
    assert load_train_state(tmp_path / "killed" / "checkpoint")["step"] == STEPS
    # every step trained after the resume logged exactly the losses of the uninterrupted run
    ref = {r["step"]: r for r in _logged_steps(tmp_path / "straight" / "metrics.jsonl")}
    after = _logged_steps(metrics)[-(STEPS - resumed_from):]
    assert [r["step"] for r in after] == list(range(resumed_from + 1, STEPS + 1))
    for row in after:
        for key, value in row.items():
            if key != "step_time":
                assert value == ref[row["step"]][key], (row["step"], key)


def _check_checkpoint(folder: Path) -> int:
    """Load `folder` completely; all of it must come from one save. Returns that save's step."""
    model = unialign.load(folder)
    step = json.loads((folder / META).read_text())["step"]
    assert load_train_state(folder)["step"] == step
    for key, tensor in model.state_dict().items():
        if not key.startswith("base.") and tensor.is_floating_point():
            assert bool((tensor == float(step)).all()), f"{folder}: {key} is not from save {step}"
    return step


def test_checkpoint_is_never_observed_half_written_under_random_sigkills(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    out = tmp_path / "out"
    out.mkdir()
    log = out / "saves.log"
    seen, missing = [], 0
    for tag in range(1, 5):  # four workers in a row over the same folder, each killed at a random moment
        before = len(log.read_text().splitlines()) if log.is_file() else 0
        worker = subprocess.Popen([sys.executable, str(HERE / "reliability_worker.py"), "saver", str(out), str(tag)],
                                  env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait_for(lambda: log.is_file() and len(log.read_text().splitlines()) > before, worker, 60,
                      f"worker {tag}'s first save")
            time.sleep(rng.uniform(0.0, 0.6))  # lands anywhere in the following saves
            os.kill(worker.pid, signal.SIGKILL)
            assert worker.wait(timeout=30) == -signal.SIGKILL, worker.stderr.read()[-2000:] if worker.stderr else ""
        finally:
            if worker.poll() is None:
                worker.kill()
            if worker.stderr:
                worker.stderr.close()
        completed = [int(x) for x in log.read_text().splitlines()]
        folder = out / "checkpoint"
        if folder.exists():
            step = _check_checkpoint(folder)
            # the checkpoint is the last completed save or the one that was being renamed when killed
            assert step in (completed[-1], completed[-1] + 1), (step, completed[-3:])
            seen.append(step)
        else:  # killed between "move the old one aside" and "rename the new one in": read from .old-* (below)
            missing += 1
            olds = sorted(out.glob(".old-checkpoint-*"))
            assert olds, "no checkpoint at all after a completed save"
            assert _check_checkpoint(olds[-1]) == completed[-1]
    leftovers = sorted(p.name for p in out.glob(".tmp-*"))
    print(f"\ncheckpoint steps seen after kills: {seen}; missing {missing} time(s); leftover tmp dirs: {leftovers}")
    assert seen, "the checkpoint folder was never there after a kill"
    # leftover .tmp-* directories do not disturb a later save or load
    worker = subprocess.run([sys.executable, "-c", (
        "import sys, unialign; m = unialign.create_model('unialign-test-tiny'); "
        "unialign.save_checkpoint(m, sys.argv[1], {'step': 0}, meta={'step': 0})"), str(out / "checkpoint")],
        env=ENV, capture_output=True, text=True, timeout=60)
    assert worker.returncode == 0, worker.stderr[-2000:]
    unialign.load(out / "checkpoint")


def test_kill_between_the_two_renames_keeps_a_resumable_checkpoint(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(HERE / "reliability_worker.py"), "die-between-renames", str(tmp_path)],
                          env=ENV, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert list(tmp_path.glob(".old-checkpoint-*")), "the injection did not fire where intended"
    folder = resolve_checkpoint(tmp_path / "checkpoint")  # what load() and Trainer.resume() read
    assert folder.is_dir(), "no checkpoint: a resume would start over from step 0"
    assert _check_checkpoint(folder) in (1, 2)
    unialign.load(tmp_path / "checkpoint")


def test_stale_old_directory_from_a_killed_process_does_not_break_saving(tmp_path: Path) -> None:
    model = unialign.create_model("unialign-test-tiny")
    unialign.save_checkpoint(model, tmp_path / "checkpoint", meta={"step": 1})
    stale = tmp_path / f".old-checkpoint-{os.getpid()}"  # what a kill during rmtree(old) leaves behind
    stale.mkdir()
    (stale / ADAPTERS).write_bytes(b"partial")
    unialign.save_checkpoint(model, tmp_path / "checkpoint", meta={"step": 2})
    assert json.loads((tmp_path / "checkpoint" / META).read_text())["step"] == 2
