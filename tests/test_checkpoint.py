"""Checkpoints: round trip, atomic replacement, safe loading, clear errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

import unialign
from conftest import tiny_batch
from unialign.checkpoint import ADAPTERS, TRAIN_STATE, load_train_state


def _trained(model: unialign.UniAlign) -> unialign.UniAlign:
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.train()
    model.encode("point", tiny_batch("point", 4))  # moves BatchNorm running stats
    return model.eval()


def test_round_trip_restores_every_adapter_tensor(tmp_path: Path, tiny) -> None:
    model = _trained(tiny)
    opt = torch.optim.AdamW(model.trainable_parameters())
    unialign.save_checkpoint(model, tmp_path / "ck", train_state={"optimizer": opt.state_dict(), "step": 7})
    loaded = unialign.load(tmp_path / "ck").eval()
    for m in ["image", "point", "audio"]:
        x = tiny_batch(m)
        assert torch.equal(loaded.encode(m, x), model.encode(m, x)), m
    assert load_train_state(tmp_path / "ck")["step"] == 7
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob(".old-*"))


def test_overwrite_is_atomic_replacement(tmp_path: Path, tiny) -> None:
    unialign.save_checkpoint(tiny, tmp_path / "ck")
    model = _trained(tiny)
    unialign.save_checkpoint(model, tmp_path / "ck")
    x = tiny_batch("audio")
    assert torch.equal(unialign.load(tmp_path / "ck").eval().encode("audio", x), model.encode("audio", x))


def test_malicious_train_state_is_refused_without_running(tmp_path: Path, tiny) -> None:
    unialign.save_checkpoint(tiny, tmp_path / "ck")
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):  # noqa: D105 - executed by an unsafe unpickler only
            return (Path.touch, (marker,))

    with open(tmp_path / "ck" / TRAIN_STATE, "wb") as f:
        pickle.dump({"x": Payload()}, f)
    with pytest.raises(unialign.CheckpointError, match="train_state.pt"):
        load_train_state(tmp_path / "ck")
    assert not marker.exists()


def test_errors(tmp_path: Path, tiny) -> None:
    with pytest.raises(unialign.CheckpointError, match="not a unialign checkpoint"):
        unialign.load(tmp_path)
    unialign.save_checkpoint(tiny, tmp_path / "ck")
    (tmp_path / "ck" / ADAPTERS).write_bytes(b"garbage")
    with pytest.raises(unialign.CheckpointError, match="adapters.safetensors"):
        unialign.load(tmp_path / "ck")
    with pytest.raises(unialign.CheckpointError, match="missing"):
        unialign.load(tmp_path / "ck", base=tmp_path / "no-clip-here")
