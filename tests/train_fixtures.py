"""A tiny generated multimodal world for training tests: four datasets, four modalities, own vocabularies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def _png(path: Path, color: tuple[int, int, int], rng: np.random.Generator) -> str:
    arr = np.clip(np.array(color)[None, None] + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path.name


def _manifest(folder: Path, records: list[dict]) -> str:
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def write_world(root: Path, per_class: int = 2) -> dict[str, dict]:
    """Write the files and manifests; return the ``data:`` mapping of a training config."""
    rng = np.random.default_rng(0)
    data: dict[str, dict] = {}

    d = root / "imgs"
    d.mkdir(parents=True)
    recs = [{"id": f"img{c}{i}", "path": _png(d / f"{c}{i}.png", COLORS[c], rng), "label": f"{c} square"}
            for c in COLORS for i in range(per_class)]
    data["imgs"] = {"manifest": _manifest(d, recs), "modality": "image",
                    "classnames": [f"{c} square" for c in COLORS], "templates": ["a photo of a {}."]}

    d = root / "sounds"
    d.mkdir()
    recs = []
    for name, hz in (("low hum", 200), ("high whistle", 2000)):
        for i in range(per_class):
            t = np.arange(8000) / 16000
            sf.write(d / f"{hz}_{i}.wav", (0.3 * np.sin(2 * np.pi * hz * (1 + 0.05 * i) * t)).astype(np.float32), 16000)
            recs.append({"id": f"snd{hz}{i}", "path": f"{hz}_{i}.wav", "label": name})
    data["sounds"] = {"manifest": _manifest(d, recs), "modality": "audio",
                      "classnames": ["low hum", "high whistle"], "templates": ["the sound of a {}."]}

    d = root / "shapes"
    d.mkdir()
    recs = []
    for name, color in (("red cube", "red"), ("blue ball", "blue")):
        for i in range(per_class):
            pts = rng.uniform(-1, 1, (300, 3)) if "cube" in name else rng.normal(size=(300, 3))
            if "ball" in name:
                pts /= np.linalg.norm(pts, axis=1, keepdims=True)
            np.save(d / f"{color}{i}.npy", pts.astype(np.float32))
            recs.append({"id": f"pc{color}{i}", "path": f"{color}{i}.npy", "label": name,
                         "anchor": _png(d / f"{color}{i}_view.png", COLORS[color], rng)})
    data["shapes"] = {"manifest": _manifest(d, recs), "modality": "point",
                      "classnames": ["red cube", "blue ball"], "templates": ["a 3d model of a {}."]}

    d = root / "scenes"
    d.mkdir()
    recs = []
    for name, mm, color in (("near wall", 800, "green"), ("far wall", 4000, "blue")):
        for i in range(per_class):
            depth = np.full((32, 32), mm, np.uint16) + rng.integers(0, 50, (32, 32)).astype(np.uint16)
            Image.fromarray(depth).save(d / f"{mm}_{i}.png")
            recs.append({"id": f"dp{mm}{i}", "path": f"{mm}_{i}.png", "label": name,
                         "anchor": _png(d / f"{mm}_{i}_rgb.png", COLORS[color], rng)})
    data["scenes"] = {"manifest": _manifest(d, recs), "modality": "depth",
                      "classnames": ["near wall", "far wall"], "templates": ["a depth map of a {}."]}
    return data


def train_config(data: dict[str, dict], out: Path, steps: int = 4, batch: int = 8, **train: object) -> dict:
    """A training-config mapping over `data` (from :func:`write_world`) for the tiny model."""
    return {
        "model": "unialign-test-tiny",
        "data": data,
        "optim": {"lr": 1e-3, "warmup_steps": 1},
        "train": {"steps": steps, "global_batch": batch, "log_every": 1, "save_every": 1000,
                  "tensorboard": False, **train},
        "out": str(out),
    }
