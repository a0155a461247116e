"""Run by tests/test_distributed.py, alone or under torchrun: train a few steps, dump weights and sample ids."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch.distributed as dist
from safetensors.torch import save_file

from unialign.checkpoint import adapter_state_dict
from unialign.train.config import load_train_config
from unialign.train.loop import Trainer


def main(config_json: str, out: str, steps: int) -> None:
    trainer = Trainer(load_train_config(json.loads(Path(config_json).read_text())))
    seen: list[str] = []
    original = trainer.micro_batches

    def recording(plan):  # record which samples this rank trained on
        batches = original(plan)
        seen.extend(f"{mb.dataset}:{i}" for mb in batches for i in mb.ids)
        return batches

    trainer.micro_batches = recording
    trainer.run(max_steps=steps, progress=False)
    rank = trainer.info.rank
    save_file(adapter_state_dict(trainer.model), str(Path(out) / f"rank{rank}.safetensors"))
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(seen))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
