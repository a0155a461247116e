"""``unialign.preprocess.load`` end to end: a real file of every modality -> tensor -> model embedding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import unialign
from media import write_media_files
from unialign.preprocess import PreprocessError, collate, load


@pytest.mark.parametrize("train", [False, True])
def test_every_modality_loads_and_encodes(tmp_path: Path, train: bool) -> None:
    model = unialign.create_model("unialign-test-tiny").eval()
    files = write_media_files(tmp_path)
    for modality, path in files.items():
        x = collate([load(modality, path, train=train, config=model.config, seed=3)] * 2)  # (B, V, ...)
        b, v = x.shape[:2]
        with torch.no_grad():
            emb = model.encode(modality, x.flatten(0, 1)).view(b, v, -1).mean(1)
        assert emb.shape == (2, 32) and torch.isfinite(emb).all(), modality
        again = load(modality, path, train=train, config=model.config, seed=3)
        assert torch.equal(again, x[0]), f"{modality}: the same seed must give the same tensor"


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(PreprocessError, match="empty.wav.*empty"):
        load("audio", empty, config="unialign-test-tiny")
    with pytest.raises(unialign.InputError, match="unknown modality 'smell'"):
        load("smell", empty, config="unialign-test-tiny")
    odd = tmp_path / "cloud.xyzw"
    odd.write_text("1 2 3")
    with pytest.raises(PreprocessError, match="cloud.xyzw.*extension"):
        load("point", odd, config="unialign-test-tiny")
