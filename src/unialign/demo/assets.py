"""Building blocks of the demo world: meshes, a pure-numpy renderer, sounds, emoji and file writers.

Everything here is deterministic given a :class:`numpy.random.Generator`; nothing uses OpenGL or a GPU.

Conventions: world frame x right, y up, z forward (away from the camera); the floor is ``y = 0`` and the
back wall ``z = wall``. Cameras are pinhole cameras (image x right, y down, z forward) placed at
``(0, height, 0)`` and pitched down by ``pitch`` radians. Depth maps hold the camera z-depth in metres
(``inf`` where nothing was hit).
"""

from __future__ import annotations

import colorsys
import shutil
import subprocess
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image, ImageDraw, ImageFont

SAMPLE_RATE = 16000  # Hz of every written audio file
EMOJI_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"  # Debian fonts-noto-color-emoji
EMOJI_FONT_SIZE = 109  # the only size NotoColorEmoji's bitmap strikes render at
MESH_KINDS = ("cube", "sphere", "cylinder", "cone", "torus", "pyramid", "capsule", "ring")
LIGHT = (-0.45, 0.75, -0.5)  # direction towards the light, world frame (up-left, behind the camera)


# ------------------------------------------------------------------------------------------------ meshes


def base_mesh(kind: str) -> trimesh.Trimesh:
    """A unit-size primitive (bounding sphere radius ~1, centred at the origin) of `kind` (MESH_KINDS)."""
    c = trimesh.creation
    if kind == "cube":
        m = c.box(extents=(1.3, 1.3, 1.3))
    elif kind == "sphere":
        m = c.icosphere(subdivisions=2, radius=1.0)
    elif kind == "cylinder":
        m = c.cylinder(radius=0.6, height=1.5, sections=24)
    elif kind == "cone":
        m = c.cone(radius=0.75, height=1.6, sections=24)
        m.apply_translation((0.0, 0.0, -0.8))
    elif kind == "torus":
        m = c.torus(major_radius=0.7, minor_radius=0.28, major_sections=24, minor_sections=12)
    elif kind == "ring":
        m = c.annulus(r_min=0.55, r_max=0.95, height=0.35, sections=32)
    elif kind == "pyramid":
        base = [(-0.8, -0.8, -0.6), (0.8, -0.8, -0.6), (0.8, 0.8, -0.6), (-0.8, 0.8, -0.6), (0.0, 0.0, 1.0)]
        m = trimesh.convex.convex_hull(np.array(base, dtype=float))
    elif kind == "capsule":
        m = c.capsule(height=1.0, radius=0.45, count=(12, 12))
        m.apply_translation(-m.bounds.mean(axis=0))
    else:
        raise ValueError(f"unknown mesh kind {kind!r}; known: {MESH_KINDS}")
    # primitives are built along z; make "up" the y axis so cones/cylinders stand on the floor
    m.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, (1, 0, 0)))
    return m


@dataclass(frozen=True)
class Surface:
    """Points sampled on a mesh surface with their unit normals and a two-tone pattern flag."""

    points: np.ndarray  # (N, 3) float64, body frame
    normals: np.ndarray  # (N, 3) float64 unit normals
    tone: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (N,) 0/1 pattern (stripes), for rotation cues


def sample_surface(mesh: trimesh.Trimesh, n: int, rng: np.random.Generator) -> Surface:
    """`n` area-weighted random surface points of `mesh` (seeded by `rng`), with face normals."""
    tri = np.asarray(mesh.triangles, dtype=np.float64)
    area = np.asarray(mesh.area_faces, dtype=np.float64)
    face = rng.choice(len(tri), size=n, p=area / area.sum())
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    t = tri[face]
    pts = t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])
    normals = np.asarray(mesh.face_normals, dtype=np.float64)[face]
    tone = (np.floor(pts[:, 0] * 2.5 + 10) % 2).astype(np.float64)
    return Surface(pts, normals, tone)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation matrix (from a normalised Gaussian quaternion)."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def rot_y(angle: float) -> np.ndarray:
    """Rotation about the vertical (y) axis by `angle` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_x(angle: float) -> np.ndarray:
    """Rotation about the x axis by `angle` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def transform(surface: Surface, linear: np.ndarray, offset: Sequence[float] = (0.0, 0.0, 0.0)) -> Surface:
    """`surface` mapped by ``x -> linear @ x + offset`` (normals by the inverse transpose, renormalised)."""
    pts = surface.points @ linear.T + np.asarray(offset, dtype=np.float64)
    nrm = surface.normals @ np.linalg.inv(linear)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True) + 1e-12
    return Surface(pts, nrm, surface.tone)


def random_color(rng: np.random.Generator) -> tuple[float, float, float]:
    """A saturated random RGB colour in [0, 1]."""
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.45, 0.9), rng.uniform(0.6, 0.95))
    return (r, g, b)


# ------------------------------------------------------------------------------------------------ render


@dataclass(frozen=True)
class Camera:
    """A pinhole camera at ``(0, height, 0)`` pitched down by `pitch` radians, `size` x `size` pixels."""

    size: int = 64
    fov: float = np.deg2rad(60.0)  # horizontal = vertical field of view
    height: float = 0.0
    pitch: float = 0.0

    @property
    def focal(self) -> float:
        """Focal length in pixels."""
        return 0.5 * self.size / np.tan(0.5 * self.fov)

    @property
    def axes(self) -> np.ndarray:
        """3x3 matrix whose columns are the camera x (right), y (down), z (forward) axes in world coordinates."""
        c, s = np.cos(self.pitch), np.sin(self.pitch)
        return np.array([[1.0, 0.0, 0.0], [0.0, -c, -s], [0.0, -s, c]]).T

    def rays(self) -> np.ndarray:
        """(S, S, 3) world-frame ray directions with unit camera z (so the ray parameter is the z-depth)."""
        px = (np.arange(self.size) + 0.5 - 0.5 * self.size) / self.focal
        xs, ys = np.meshgrid(px, px)
        d = np.stack([xs, ys, np.ones_like(xs)], axis=-1)
        return d @ self.axes.T


@dataclass(frozen=True)
class Room:
    """A floor (y = 0) and a back wall (z = `wall`) with their colours."""

    wall: float = 3.5
    wall_color: tuple[float, float, float] = (0.82, 0.8, 0.74)
    floor_color: tuple[float, float, float] = (0.55, 0.42, 0.3)
    tile: float = 0.5  # checker size of the floor (m)


def background(camera: Camera, room: Room | None, color: tuple[float, float, float] = (0.93, 0.93, 0.95)
               ) -> tuple[np.ndarray, np.ndarray]:
    """RGB (S, S, 3) in [0, 1] and z-depth (S, S) of an empty room (or a plain backdrop at depth inf)."""
    s = camera.size
    if room is None:
        ramp = np.linspace(1.0, 0.85, s)[:, None, None]
        return np.broadcast_to(np.asarray(color) * ramp, (s, s, 3)).copy(), np.full((s, s), np.inf)
    d = camera.rays()
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(d[..., 1] < -1e-6, -camera.height / d[..., 1], np.inf)
        t_wall = np.where(d[..., 2] > 1e-6, room.wall / d[..., 2], np.inf)
    depth = np.minimum(t_floor, t_wall)
    on_floor = t_floor <= t_wall
    hit = d * np.where(np.isfinite(depth), depth, 0.0)[..., None] + np.array([0.0, camera.height, 0.0])
    checker = (np.floor(hit[..., 0] / room.tile) + np.floor(hit[..., 2] / room.tile)) % 2
    floor = np.asarray(room.floor_color) * (0.8 + 0.2 * checker)[..., None]
    wall = np.asarray(room.wall_color) * (0.85 + 0.15 * np.clip(hit[..., 1] / 2.0, 0, 1))[..., None]
    rgb = np.where(on_floor[..., None], floor, wall)
    rgb = rgb * np.clip(1.15 - 0.08 * depth, 0.6, 1.0)[..., None]  # mild distance fall-off
    return rgb, depth


def splat(camera: Camera, surface: Surface, color: tuple[float, float, float], rgb: np.ndarray,
          depth: np.ndarray, radius: int = 1) -> None:
    """Z-buffer `surface` (world frame) into `rgb` / `depth` in place: Lambert shading, back faces culled.

    Each point covers a ``(radius + 1)``-pixel square so sampled surfaces render without holes.
    """
    s, f = camera.size, camera.focal
    cam = camera.axes.T @ (surface.points - np.array([0.0, camera.height, 0.0])).T  # (3, N)
    ncam = camera.axes.T @ surface.normals.T
    keep = (cam[2] > 0.05) & ((ncam * cam).sum(axis=0) < 0)
    if not keep.any():
        return
    x, y, z = cam[:, keep]
    light = np.asarray(LIGHT) / np.linalg.norm(LIGHT)
    lam = np.clip(surface.normals[keep] @ light, 0.0, 1.0)
    tone = surface.tone[keep] if surface.tone.size else np.zeros(keep.sum())
    base = np.asarray(color)[None] * (1.0 - 0.3 * tone)[:, None]
    shade = base * (0.35 + 0.65 * lam)[:, None]
    u = np.floor(f * x / z + 0.5 * s).astype(np.int64)
    v = np.floor(f * y / z + 0.5 * s).astype(np.int64)
    us, vs, zs, cs = [], [], [], []
    for du in range(radius + 1):
        for dv in range(radius + 1):
            us.append(u + du), vs.append(v + dv), zs.append(z), cs.append(shade)
    u, v, z, c = np.concatenate(us), np.concatenate(vs), np.concatenate(zs), np.concatenate(cs)
    ok = (u >= 0) & (u < s) & (v >= 0) & (v < s)
    pix, z, c = v[ok] * s + u[ok], z[ok], c[ok]
    order = np.lexsort((z, pix))  # by pixel, nearest first
    pix, z, c = pix[order], z[order], c[order]
    first = np.ones(len(pix), dtype=bool)
    first[1:] = pix[1:] != pix[:-1]
    pix, z, c = pix[first], z[first], c[first]
    flat_d, flat_c = depth.reshape(-1), rgb.reshape(-1, 3)
    nearer = z < flat_d[pix]
    flat_d[pix[nearer]] = z[nearer]
    flat_c[pix[nearer]] = c[nearer]


def to_uint8(rgb: np.ndarray, rng: np.random.Generator | None = None, noise: float = 0.0) -> np.ndarray:
    """[0, 1] float RGB -> uint8, with optional Gaussian pixel noise (std in [0, 1] units)."""
    if rng is not None and noise > 0:
        rgb = rgb + rng.normal(0.0, noise, rgb.shape)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def save_png(path: Path, array: np.ndarray) -> None:
    """Write a uint8 RGB or uint16 single-channel array as a PNG (deterministic bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG", optimize=False)


def save_depth_mm(path: Path, depth_m: np.ndarray) -> None:
    """Metric depth (m, inf = no return) -> 16-bit PNG in millimetres (0 = invalid)."""
    mm = np.where(np.isfinite(depth_m), np.round(depth_m * 1000.0), 0.0)
    save_png(path, np.clip(mm, 0, 65535).astype(np.uint16))


def save_video(path: Path, frames: Sequence[np.ndarray], fps: int = 8) -> None:
    """Uint8 RGB frames (T, S, S, 3) -> an H.264 (or MPEG-4 part 2) .mp4 via PyAV, single-threaded."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    with av.open(str(path), mode="w", format="mp4") as out:
        try:
            stream = out.add_stream("libx264", rate=fps)
            stream.options = {"crf": "18", "preset": "veryfast", "threads": "1"}
        except (av.FFmpegError, ValueError):  # pragma: no cover - builds without x264
            stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.thread_count = 1
        for arr in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


# ------------------------------------------------------------------------------------------------- audio


def _envelope(n: int, attack: int, release: int) -> np.ndarray:
    env = np.ones(n)
    a, r = max(1, min(attack, n)), max(1, min(release, n))
    env[:a] = np.linspace(0.0, 1.0, a)
    env[n - r:] *= np.linspace(1.0, 0.0, r)
    return env


def synth_sound(kind: str, rng: np.random.Generator, seconds: float = 1.0, noise: float = 0.01) -> np.ndarray:
    """A generated ~`seconds` float32 clip at SAMPLE_RATE of class `kind` (see GENERATED_SOUNDS)."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    out = np.zeros(n)
    if kind in ("rising chirp", "falling chirp"):
        lo, hi = rng.uniform(250, 600), rng.uniform(1500, 3200)
        f0, f1 = (lo, hi) if kind == "rising chirp" else (hi, lo)
        dur = rng.uniform(0.5, 0.85)
        m = int(dur * SAMPLE_RATE)
        tt = t[:m]
        phase = 2 * np.pi * f0 * dur * ((f1 / f0) ** (tt / dur) - 1) / np.log(f1 / f0)
        start = int(rng.uniform(0, seconds - dur) * SAMPLE_RATE)
        out[start:start + m] = np.sin(phase) * _envelope(m, 160, 400)
    elif kind == "low hum":
        f = rng.uniform(70, 160)
        vib = 1 + 0.01 * np.sin(2 * np.pi * rng.uniform(3, 6) * t)
        phase = 2 * np.pi * f * np.cumsum(vib) / SAMPLE_RATE
        out = (np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(3 * phase)) / 1.75
        out *= _envelope(n, 800, 800)
    elif kind == "high beep":
        f = rng.uniform(1800, 3500)
        for _ in range(int(rng.integers(1, 4))):
            m = int(rng.uniform(0.1, 0.25) * SAMPLE_RATE)
            start = int(rng.integers(0, n - m))
            out[start:start + m] += np.sin(2 * np.pi * f * t[:m]) * _envelope(m, 80, 80)
    elif kind == "noise burst":
        m = int(rng.uniform(0.15, 0.4) * SAMPLE_RATE)
        start = int(rng.integers(0, n - m))
        k = int(rng.integers(1, 6))
        burst = np.convolve(rng.normal(size=m + k), np.ones(k) / k, mode="valid")[:m]
        out[start:start + m] = burst / (np.abs(burst).max() + 1e-9) * np.exp(-np.arange(m) / (0.3 * m))
    elif kind == "ball bouncing":
        pos, gap = rng.uniform(0.0, 0.15), rng.uniform(0.2, 0.32)
        f, amp = rng.uniform(900, 1800), 1.0
        while pos < seconds - 0.02 and gap > 0.015:
            m = int(0.03 * SAMPLE_RATE)
            i = int(pos * SAMPLE_RATE)
            seg = np.sin(2 * np.pi * f * t[:m]) * np.exp(-t[:m] / 0.006) * amp
            out[i:i + m] += seg[: n - i]
            pos, gap, amp = pos + gap, gap * rng.uniform(0.65, 0.8), amp * 0.85
    elif kind == "bell ringing":
        f = rng.uniform(400, 900)
        start = int(rng.uniform(0, 0.2) * SAMPLE_RATE)
        tt = t[: n - start]
        ring = sum(a * np.sin(2 * np.pi * f * r * tt) * np.exp(-tt / d)
                   for r, a, d in ((1.0, 1.0, 0.5), (2.76, 0.6, 0.3), (5.4, 0.4, 0.15), (8.93, 0.25, 0.08)))
        out[start:] = ring / 2.25
    else:
        raise ValueError(f"unknown generated sound {kind!r}")
    out = out / (np.abs(out).max() + 1e-9) * rng.uniform(0.4, 0.8)
    out = out + rng.normal(0.0, noise, n)
    return np.clip(out, -1, 1).astype(np.float32)


def speech_tools() -> list[str]:
    """The text-to-speech programs on PATH: ``espeak-ng`` and/or ``flite`` (in that order)."""
    return [tool for tool in ("espeak-ng", "flite") if shutil.which(tool)]


def speech_voices(tools: Sequence[str]) -> list[tuple[str, str]]:
    """(tool, voice) pairs to try: espeak-ng accents x variants, then flite's built-in voices."""
    voices: list[tuple[str, str]] = []
    if "espeak-ng" in tools:
        for lang in ("en-us", "en-gb", "en-gb-scotland", "en-029"):
            for variant in ("", "+f3", "+m3"):
                voices.append(("espeak-ng", lang + variant))
    if "flite" in tools:
        voices += [("flite", v) for v in ("kal", "slt", "rms", "awb")]
    return voices


def _resample(x: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    if rate == target or x.size < 2:
        return x
    n = round(x.size * target / rate)
    return np.interp(np.linspace(0, x.size - 1, n), np.arange(x.size), x)


def speak(tool: str, voice: str, word: str, speed: int = 150) -> np.ndarray | None:
    """`word` spoken by `tool` (``espeak-ng`` or ``flite``) with `voice` -> float32 mono at SAMPLE_RATE.

    None when the program fails or writes silence (e.g. an unknown voice).
    """
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "w.wav"
        if tool == "espeak-ng":
            cmd = [tool, "-v", voice, "-s", str(speed), "-w", str(out), word]
        else:
            cmd = [tool, "-voice", voice, "-t", word, "-o", str(out)]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=30)
            wav, rate = sf.read(str(out), dtype="float64", always_2d=True)
        except (OSError, subprocess.SubprocessError, RuntimeError, ValueError):
            return None
    wav = _resample(wav.mean(axis=1), int(rate))
    if wav.size < SAMPLE_RATE // 20 or np.abs(wav).max() < 1e-3:
        return None
    return (wav / np.abs(wav).max()).astype(np.float32)


def augment_speech(wav: np.ndarray, rng: np.random.Generator, seconds: float = 1.0, noise: float = 0.005
                   ) -> np.ndarray:
    """Place a spoken word in a `seconds` clip: speed perturbation (0.9-1.1), gain, shift, noise."""
    n = int(seconds * SAMPLE_RATE)
    x = _resample(wav.astype(np.float64), int(SAMPLE_RATE * rng.uniform(0.9, 1.1)))
    x = x[:n] * rng.uniform(0.4, 0.9)
    out = np.zeros(n)
    start = int(rng.integers(0, n - x.size + 1))
    out[start:start + x.size] = x
    out += rng.normal(0.0, noise, n)
    return np.clip(out, -1, 1).astype(np.float32)


def save_wav(path: Path, wav: np.ndarray) -> None:
    """Write float32 mono audio at SAMPLE_RATE as 16-bit PCM WAV."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav, SAMPLE_RATE, subtype="PCM_16", format="WAV")


# ------------------------------------------------------------------------------------------------- emoji


def render_emoji(chars: Sequence[str], font_path: str | Path) -> dict[str, tuple[str, Image.Image]]:
    """Emoji -> (lower-case Unicode name, RGBA glyph image cropped to its ink) for glyphs `font_path` has.

    Characters the font lacks (drawn as the same image as an unassigned private-use code point), with
    no ink, or without a Unicode name in this Python are skipped.
    """
    font = ImageFont.truetype(str(font_path), EMOJI_FONT_SIZE)

    def draw(ch: str) -> Image.Image:
        im = Image.new("RGBA", (EMOJI_FONT_SIZE * 2, EMOJI_FONT_SIZE * 2), (0, 0, 0, 0))
        ImageDraw.Draw(im).text((EMOJI_FONT_SIZE // 4, EMOJI_FONT_SIZE // 4), ch, font=font,
                                embedded_color=True, fill=(0, 0, 0, 255))
        return im

    missing = np.asarray(draw("\U000F0000"))
    out: dict[str, tuple[str, Image.Image]] = {}
    for ch in chars:
        name = unicodedata.name(ch, "").lower()
        if not name:
            continue
        im = draw(ch)
        arr = np.asarray(im)
        box = im.getbbox()
        if box is None or arr[..., 3].max() == 0 or np.array_equal(arr, missing):
            continue
        out[ch] = (name, im.crop(box))
    return out


def place_glyph(glyph: Image.Image, size: int, rng: np.random.Generator, train: bool) -> np.ndarray:
    """An RGBA glyph on a square RGB canvas of `size` px.

    Training: random rotation (+-25 deg), scale, position, tinted background and pixel noise. Eval: no
    rotation or noise, a light grey-to-white background and a mild scale/offset change only.
    """
    if train:
        hsv = (rng.random(), rng.uniform(0, 0.3), rng.uniform(0.8, 1))
        g = glyph.rotate(float(rng.uniform(-25, 25)), resample=Image.BICUBIC, expand=True)
        scale = rng.uniform(0.55, 0.9)
    else:
        hsv = (0.0, 0.0, rng.uniform(0.9, 1.0))
        g, scale = glyph, rng.uniform(0.7, 0.85)
    bg = tuple(round(c * 255) for c in colorsys.hsv_to_rgb(*hsv))
    side = max(g.size)
    target = max(4, round(size * scale))
    g = g.resize((max(1, round(g.width * target / side)), max(1, round(g.height * target / side))), Image.LANCZOS)
    canvas = Image.new("RGB", (size, size), bg)
    x, y = int(rng.integers(0, size - g.width + 1)), int(rng.integers(0, size - g.height + 1))
    canvas.paste(g, (x, y), g)
    arr = np.asarray(canvas).astype(np.float64) / 255.0
    return to_uint8(arr, rng if train else None, 0.02)
