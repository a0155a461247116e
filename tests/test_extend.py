"""Adding a modality is one new file plus a config entry, with no edit of the model class."""

from __future__ import annotations

import torch

import toy_modality  # noqa: F401  (the one new file: registers "toy-sensor")
import unialign


def test_toy_modality_encodes_trains_and_is_listed() -> None:
    assert "toy-sensor" in unialign.list_modalities()
    model = unialign.create_model(
        "unialign-test-tiny", modalities={"imu": {"type": "toy-sensor", "channels": 6, "max_steps": 20}}
    )
    assert "imu" in model.modalities and "imu" in model.moe[0].lora_A
    x = torch.randn(3, 20, 6)
    emb = model.encode("imu", x)
    assert emb.shape == (3, 32) and torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
    emb.sum().backward()
    assert model.tokenizers["imu"].embed.weight.grad.abs().sum() > 0
    assert model.moe[0].lora_B["imu"].grad.abs().sum() > 0
    # its options are validated like any other modality's
    try:
        unialign.create_model("unialign-test-tiny", modalities={"imu": {"type": "toy-sensor", "chanels": 6}})
    except unialign.ConfigError as exc:
        assert "modalities.imu" in str(exc) and "chanels" in str(exc)
    else:
        raise AssertionError("a misspelt option was accepted")
