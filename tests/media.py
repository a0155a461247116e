"""Small real files of every modality, shared by tests that need one of each."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import soundfile as sf
from PIL import Image


def write_media_files(folder: Path) -> dict[str, Path]:
    """A PNG image, a 16-bit depth PNG, an .npy cloud, a wav tone and an mpeg4 clip in `folder`."""
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
