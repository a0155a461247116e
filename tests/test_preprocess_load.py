"""``unialign.preprocess.load`` end to end: a real file of every modality -> tensor -> model embedding."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

import unialign
from unialign.preprocess import PreprocessError, collate, load


def _write_files(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    files = {}
    files["image"] = folder / "img.png"
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(files["image"])
    files["depth"] = folder / "depth.png"
    Image.fromarray(rng.integers(500, 4000, (40, 50), dtype=np.uint16)).save(files["depth"])
    files["point"] = folder / "cloud.npy"
    np.save(files["point"], rng.normal(size=(300, 3)).astype(np.float32))
    files["audio"] = folder / "tone.wav"
    t = np.arange(8000) / 16000
    sf.write(files["audio"], (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    files["video"] = folder / "clip.mp4"
    with av.open(str(files["video"]), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for i in range(20):
            frame = np.full((32, 48, 3), i * 10, dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))
    return files


@pytest.mark.parametrize("train", [False, True])
def test_every_modality_loads_and_encodes(tmp_path: Path, train: bool) -> None:
    model = unialign.create_model("unialign-test-tiny").eval()
    files = _write_files(tmp_path)
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
