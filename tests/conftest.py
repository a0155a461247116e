"""Shared fixtures: deterministic seeds and the tiny registered model."""

from __future__ import annotations

import pytest
import torch

import unialign


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def tiny() -> unialign.UniAlign:
    """The registered tiny model (2 blocks, width 64) with every modality, random CLIP weights."""
    return unialign.create_model("unialign-test-tiny")


def tiny_batch(modality: str, batch: int = 2) -> torch.Tensor:
    """A random input of the tiny model's shape for `modality`."""
    shapes = {
        "image": (batch, 3, 32, 32),
        "video": (batch, 3, 4, 32, 32),
        "depth": (batch, 1, 32, 32),
        "point": (batch, 64, 3),
        "audio": (batch, 40, 16),
    }
    return torch.randn(shapes[modality])
