"""Helper processes for the reliability tests (run as ``python tests/reliability_worker.py MODE ...``).

Modes:
    saver OUT TAG            save the tiny model to OUT/checkpoint over and over; save number i has every
                             floating adapter tensor filled with TAG * 1000 + i, meta/train_state step the
                             same, plus a 16 MB tensor in the training state (a long write window); after
                             each completed save one line "TAG*1000+i" is appended to OUT/saves.log
    die-between-renames OUT  save once, then save again and SIGKILL itself right after save_checkpoint has
                             moved the old checkpoint aside (before the new one is renamed into place)
    ddp-fault CONFIG         ``unialign train CONFIG`` (under torchrun) with Trainer.micro_batch_losses
                             patched: the rank UNIALIGN_FAIL_RANK (default 1) raises a RuntimeError at step
                             UNIALIGN_FAIL_STEP (1-based, default 2)
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import torch


def _fill(model, value: float) -> None:
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if not key.startswith("base.") and tensor.is_floating_point():
                tensor.fill_(value)


def saver(out: Path, tag: int) -> None:
    import unialign

    model = unialign.create_model("unialign-test-tiny")
    blob = torch.randn(4 * 1024 * 1024)  # 16 MB of training state: widens the window a kill can land in
    log = out / "saves.log"
    i = 0
    while True:
        i += 1
        step = tag * 1000 + i
        _fill(model, float(step))
        unialign.save_checkpoint(model, out / "checkpoint", {"step": step, "blob": blob}, meta={"step": step})
        with open(log, "a") as f:
            f.write(f"{step}\n")
            f.flush()
            os.fsync(f.fileno())


def die_between_renames(out: Path) -> None:
    import unialign
    import unialign.checkpoint as ck

    model = unialign.create_model("unialign-test-tiny")
    _fill(model, 1.0)
    unialign.save_checkpoint(model, out / "checkpoint", {"step": 1}, meta={"step": 1})
    real_replace = os.replace

    def replace_then_die(src, dst) -> None:  # noqa: ANN001
        real_replace(src, dst)
        if Path(dst).name.startswith(".old-"):  # the old checkpoint was just moved aside
            os.kill(os.getpid(), signal.SIGKILL)

    ck.os.replace = replace_then_die  # type: ignore[attr-defined]
    _fill(model, 2.0)
    unialign.save_checkpoint(model, out / "checkpoint", {"step": 2}, meta={"step": 2})
    raise SystemExit("not reached")


def ddp_fault(config: Path) -> int:
    """The real ``unialign train`` command with Trainer.micro_batch_losses patched to fail on one rank."""
    from unialign import cli
    from unialign.train.loop import Trainer

    fail_rank = int(os.environ.get("UNIALIGN_FAIL_RANK", "1"))
    fail_step = int(os.environ.get("UNIALIGN_FAIL_STEP", "2"))
    original = Trainer.micro_batch_losses

    def faulty(self, mb):  # noqa: ANN001, ANN202
        if self.info.rank == fail_rank and self.step + 1 == fail_step:
            print(f"FAULT_AT {time.time():.3f}", file=sys.stderr, flush=True)
            raise RuntimeError(f"injected fault on rank {self.info.rank} at step {fail_step}")
        return original(self, mb)

    Trainer.micro_batch_losses = faulty
    return cli.main(["train", str(config)])


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "saver":
        saver(Path(sys.argv[2]), int(sys.argv[3]))
    elif mode == "die-between-renames":
        die_between_renames(Path(sys.argv[2]))
    elif mode == "ddp-fault":
        sys.exit(ddp_fault(Path(sys.argv[2])))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
