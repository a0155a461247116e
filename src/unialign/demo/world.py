"""The built-in multimodal demo world: five datasets, one modality each, each with its own vocabulary.

=========  ==========  ==========================================  ==========================================
dataset    modality    files (real / generated)                    anchor
=========  ==========  ==========================================  ==========================================
shapes     point       .npy 1024x3 surface samples of trimesh      rendered RGB view (.png)
                       primitives (generated)
scenes     depth       16-bit PNG (mm) of an object in a room      the RGB render of the same view (.png)
                       (generated)
clips      video       8-frame .mp4 of a moving object (generated) the middle frame (.png)
sounds     audio       1 s 16 kHz .wav: spoken words (espeak-ng /   none
                       flite, real TTS) or synthetic sound classes
pictures   image       .png: Noto Color Emoji glyphs named by      none
                       Unicode (real) or rendered coloured shapes
=========  ==========  ==========================================  ==========================================

Generation is seeded per sample (``numpy.random.default_rng([seed, dataset, split, index])``), so a
sample does not depend on how many others are made; train and eval samples come from different streams
(eval: fresh instances, no extra noise/augmentation; real sources also hold out voices). A ``world.json``
stamp records the parameters: :func:`build_world` returns at once when the stamp matches.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unialign.demo import assets as A

WORLD_VERSION = 2  # bump when generation changes: stamps of other versions are rebuilt
SIZES = {"small": (3, 2), "full": (64, 12)}  # size -> (train, eval) samples per class
IMAGE_SIZE = 64  # rendered images, depth maps and video frames (pixels)
NUM_POINTS = 1024  # points per point cloud
NUM_FRAMES = 8  # frames per video
MODALITY_TYPES = {"image": "image", "video": "video", "depth": "depth", "point": "pointcloud", "audio": "audio"}

SHAPE_CLASSES = ("cube", "sphere", "cylinder", "cone", "torus", "pyramid")
SCENE_OBJECTS = {"box": "cube", "ball": "sphere", "cylinder": "cylinder"}
SCENE_PLACES = ("near the camera", "by the wall")
CLIP_CLASSES = ("a spinning cube", "a spinning torus", "a ball rolling across the floor", "a ball bouncing",
                "a cylinder moving closer", "a cylinder moving away")
GENERATED_SOUNDS = ("rising chirp", "falling chirp", "low hum", "high beep", "noise burst", "ball bouncing",
                    "bell ringing")
SPOKEN_WORDS = ("cube", "sphere", "ball", "box", "cone", "ring", "bell", "drum", "cylinder", "pyramid")
PICTURE_SHAPES = {"cube": "cube", "ball": "sphere", "cone": "cone", "ring": "torus"}
PICTURE_COLORS = {"red": (0.85, 0.12, 0.1), "blue": (0.12, 0.25, 0.85), "green": (0.1, 0.65, 0.2),
                  "yellow": (0.95, 0.8, 0.1)}
EMOJI = ("\u26bd", "\u26be", "\U0001F3C0", "\U0001F3C8", "\U0001F3BE", "\U0001F3D0", "\U0001F3B1", "\U0001F3B2",
         "\U0001F9CA", "\U0001F4E6", "\U0001F381", "\U0001F514", "\U0001F941", "\U0001F3BA", "\U0001F3B8",
         "\U0001F3B9", "\U0001F3A4", "\U0001F4E2", "\U0001F50A", "\U0001F53A", "\U0001F537", "\U0001F536",
         "\U0001F7E5", "\U0001F7E6", "\U0001F7E2", "\U0001F534", "\U0001F535", "\U0001F369", "\U0001F6DE",
         "\U0001F48D", "\U0001F96B", "\U0001F388", "\U0001F310", "\U0001F9F1", "\u26fa", "\U0001F56F")

TEMPLATES = {
    "shapes": ["a point cloud of a {}.", "a 3d model of a {}.", "a 3d shape of a {}.", "a {} made of points."],
    "scenes": ["a depth map of a {}.", "a depth image of a {}.", "a room with a {}."],
    "clips": ["a video of {}.", "a short clip of {}.", "footage of {}."],
    "sounds_generated": ["the sound of a {}.", "a recording of a {}.", "a {} sound."],
    "sounds_spoken": ["someone saying the word {}.", "a voice saying {}.", "the spoken word {}."],
    "pictures_emoji": ["an emoji of a {}.", "an icon of a {}.", "a picture of a {}."],
    "pictures_generated": ["an icon of a {}.", "a picture of a {}.", "a drawing of a {}."],
}
DATASET_MODALITY = {"shapes": "point", "scenes": "depth", "clips": "video", "sounds": "audio", "pictures": "image"}


@dataclass(frozen=True)
class WorldDataset:
    """One dataset of the world: its manifests (JSONL, paths relative to their folder) and vocabulary."""

    name: str
    modality: str  # model modality name: image | video | depth | point | audio
    train: Path  # train manifest
    eval: Path  # held-out eval manifest (disjoint samples)
    classnames: list[str]
    templates: list[str]
    source: str  # "real (...)" or "generated (...)"
    anchor: str = ""  # what the anchor files are ("" = no anchors)
    train_count: int = 0
    eval_count: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable form (paths as strings)."""
        d = asdict(self)
        d["train"], d["eval"] = str(self.train), str(self.eval)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> WorldDataset:
        """Inverse of :meth:`to_json`."""
        return cls(**{**d, "train": Path(d["train"]), "eval": Path(d["eval"])})


@dataclass
class World:
    """The generated world under `root`: dataset name -> :class:`WorldDataset`."""

    root: Path
    size: str
    seed: int
    use_real_assets: bool
    datasets: dict[str, WorldDataset] = field(default_factory=dict)
    build_seconds: float = 0.0  # wall time of the build that made the files (0 when not timed)

    def data_config(self, split: str = "train") -> dict[str, dict[str, Any]]:
        """The training config's ``data:`` mapping (DatasetConfig fields) over the `split` manifests."""
        if split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
        return {
            name: {"manifest": str(ds.train if split == "train" else ds.eval), "modality": ds.modality,
                   "classnames": list(ds.classnames), "templates": list(ds.templates), "anchor_modality": "image"}
            for name, ds in self.datasets.items()
        }

    def eval_sets(self) -> dict[str, Any]:
        """Dataset name -> a zero-shot classification :class:`~unialign.eval.base.Benchmark` of its eval split."""
        from unialign.eval.base import Benchmark, Item

        out: dict[str, Any] = {}
        for name, ds in self.datasets.items():
            index = {c: i for i, c in enumerate(ds.classnames)}
            rows = [json.loads(line) for line in ds.eval.read_text().splitlines() if line.strip()]
            items = [Item(ds.eval.parent / r["path"], label=index[r["label"]]) for r in rows]
            out[name] = Benchmark(f"demo-{name}", "eval", MODALITY_TYPES[ds.modality], "classification", items,
                                  list(ds.classnames), tuple(ds.templates))
        return out

    def to_json(self) -> dict[str, Any]:
        """The stamp written to ``world.json``."""
        return {"version": WORLD_VERSION, "params": _params(self.size, self.seed, self.use_real_assets),
                "build_seconds": round(self.build_seconds, 3),
                "datasets": {k: v.to_json() for k, v in self.datasets.items()}}


def available_assets(use_real_assets: bool = True) -> list[str]:
    """The real-asset sources installed now (speech tools, the emoji font): part of the world's stamp, so
    installing one later rebuilds the datasets that use it."""
    if not use_real_assets:
        return []
    return A.speech_tools() + (["noto-color-emoji"] if Path(A.EMOJI_FONT).is_file() else [])


def _params(size: str, seed: int, use_real_assets: bool) -> dict[str, Any]:
    return {"size": size, "seed": int(seed), "use_real_assets": bool(use_real_assets),
            "assets": available_assets(use_real_assets)}


# ---------------------------------------------------------------------------------------------- helpers


def _rng(seed: int, dataset: str, split: str, index: int) -> np.random.Generator:
    key = sorted(DATASET_MODALITY).index(dataset)
    return np.random.default_rng([int(seed), key, 0 if split == "train" else 1, int(index)])


def _samples(per_class: tuple[int, int], classes: list[str]) -> Iterator[tuple[str, int, int, str]]:
    """(split, global index, index within class, class) for every sample of both splits."""
    for split, n in (("train", per_class[0]), ("eval", per_class[1])):
        k = 0
        for i in range(n):
            for c in classes:
                yield split, k, i, c
                k += 1


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text.lower()).strip("_")


class _Writer:
    """Collects the records of one dataset and writes ``train.jsonl``, ``eval.jsonl``, ``classnames.txt``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.records: dict[str, list[dict[str, Any]]] = {"train": [], "eval": []}
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, split: str, sid: str, path: str, label: str, anchor: str | None = None) -> None:
        rec: dict[str, Any] = {"id": sid, "path": path, "label": label}
        if anchor:
            rec["anchor"] = anchor
        self.records[split].append(rec)

    def finish(self, name: str, classnames: list[str], templates: list[str], source: str, anchor: str
               ) -> WorldDataset:
        paths = {}
        for split, recs in self.records.items():
            paths[split] = self.folder / f"{split}.jsonl"
            paths[split].write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in recs))
        (self.folder / "classnames.txt").write_text("".join(c + "\n" for c in classnames))
        return WorldDataset(name, DATASET_MODALITY[name], paths["train"], paths["eval"], list(classnames),
                            list(templates), source, anchor, len(self.records["train"]), len(self.records["eval"]))


def _meshes(kinds: Iterable[str]) -> dict[str, Any]:
    """kind -> unit trimesh primitive, made once per dataset build."""
    return {k: A.base_mesh(k) for k in sorted(set(kinds))}


def _on_floor(body: A.Surface, linear: np.ndarray, x: float, z: float, lift: float = 0.0) -> A.Surface:
    """`body` mapped by `linear`, then moved to (x, z) with its lowest point `lift` m above the floor."""
    moved = A.transform(body, linear)
    return A.transform(moved, np.eye(3), (x, lift - moved.points[:, 1].min(), z))


def _room(rng: np.random.Generator) -> tuple[A.Camera, A.Room]:
    cam = A.Camera(IMAGE_SIZE, height=rng.uniform(0.8, 1.2), pitch=np.deg2rad(rng.uniform(18, 28)))
    wall = rng.uniform(3.2, 4.5)
    tint = lambda base: tuple(np.clip(np.asarray(base) + rng.uniform(-0.08, 0.08, 3), 0, 1))
    room = A.Room(wall=wall, wall_color=tint((0.82, 0.8, 0.74)), floor_color=tint((0.55, 0.42, 0.3)),
                  tile=rng.uniform(0.35, 0.7))
    return cam, room


# --------------------------------------------------------------------------------------------- datasets


def _shapes(folder: Path, seed: int, per_class: tuple[int, int]) -> WorldDataset:
    w, meshes = _Writer(folder), _meshes(SHAPE_CLASSES)
    for split, k, i, c in _samples(per_class, list(SHAPE_CLASSES)):
        rng = _rng(seed, "shapes", split, k)
        # upright, as aligned CAD sets (ModelNet40) are: a random turn about the vertical, a small tilt
        rot = A.rot_x(rng.uniform(-0.25, 0.25)) @ A.rot_y(rng.uniform(0.0, 2 * np.pi))
        stretch = np.diag(rng.uniform(0.85, 1.15, 3)) if split == "train" else np.eye(3)
        linear = rot @ stretch * rng.uniform(0.7, 1.3)
        mesh = meshes[c]
        cloud = A.transform(A.sample_surface(mesh, NUM_POINTS, rng), linear)
        noise = 0.01 if split == "train" else 0.0
        pts = cloud.points + rng.normal(0.0, noise, cloud.points.shape) if noise else cloud.points
        view = A.transform(A.sample_surface(mesh, 6000, rng), linear * 0.6, (0.0, 0.0, 1.8))
        cam = A.Camera(IMAGE_SIZE)
        rgb, depth = A.background(cam, None)
        A.splat(cam, view, A.random_color(rng), rgb, depth)
        sid = f"{split}_{_slug(c)}_{i:03d}"
        np.save(folder / f"{sid}.npy", pts.astype(np.float32))
        A.save_png(folder / f"{sid}_view.png", A.to_uint8(rgb))
        w.add(split, sid, f"{sid}.npy", c, f"{sid}_view.png")
    return w.finish("shapes", list(SHAPE_CLASSES), TEMPLATES["shapes"], "generated (trimesh primitives)",
                    "rendered RGB view")



def _scene_classes() -> list[str]:
    return [f"{obj} {place}" for place in SCENE_PLACES for obj in SCENE_OBJECTS]


def _scenes(folder: Path, seed: int, per_class: tuple[int, int]) -> WorldDataset:
    classes = _scene_classes()
    w, meshes = _Writer(folder), _meshes(SCENE_OBJECTS.values())
    for split, k, i, c in _samples(per_class, classes):
        rng = _rng(seed, "scenes", split, k)
        obj = c.split()[0]
        cam, room = _room(rng)
        mesh = meshes[SCENE_OBJECTS[obj]]
        scale = rng.uniform(0.4, 0.52)
        z = rng.uniform(1.4, 2.0) if c.endswith("camera") else room.wall - rng.uniform(0.45, 0.7)
        x = rng.uniform(-0.25, 0.25) * z
        surf = _on_floor(A.sample_surface(mesh, 5000, rng), A.rot_y(rng.uniform(0, 2 * np.pi)) * scale, x, z)
        rgb, depth = A.background(cam, room)
        A.splat(cam, surf, A.random_color(rng), rgb, depth)
        if split == "train":  # sensor-like noise: a little depth jitter
            depth = depth * (1.0 + rng.normal(0.0, 0.003, depth.shape))
        sid = f"{split}_{_slug(c)}_{i:03d}"
        A.save_depth_mm(folder / f"{sid}_depth.png", depth)
        A.save_png(folder / f"{sid}_rgb.png", A.to_uint8(rgb, rng, 0.01 if split == "train" else 0.0))
        w.add(split, sid, f"{sid}_depth.png", c, f"{sid}_rgb.png")
    return w.finish("scenes", classes, TEMPLATES["scenes"], "generated (rendered rooms)", "RGB render")


def _clip_frames(c: str, rng: np.random.Generator, meshes: dict[str, Any]) -> list[np.ndarray]:
    cam, room = _room(rng)
    color = A.random_color(rng)
    ts = np.linspace(0.0, 1.0, NUM_FRAMES)
    kind = {"cube": "cube", "torus": "torus", "ball": "sphere", "cylinder": "cylinder"}[
        next(w for w in ("cube", "torus", "ball", "cylinder") if w in c)]
    body = A.sample_surface(meshes[kind], 5000, rng)
    scale = rng.uniform(0.38, 0.48)
    x0, z0 = rng.uniform(-0.3, 0.3), rng.uniform(1.6, 2.1)
    spin = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0) * np.pi
    tilt = A.rot_x(np.pi / 2) if kind == "torus" else np.eye(3)  # stand the torus up so its spin shows
    frames = []
    for t in ts:
        lift, x, z, rot = 0.0, x0, z0, A.rot_y(spin * t) @ tilt
        if "rolling" in c:
            x = (-0.6 + 1.2 * t) * np.sign(spin)  # across the view, either way
            roll = -x / scale  # rolling without slipping about the z axis
            rot = np.array([[np.cos(roll), -np.sin(roll), 0.0], [np.sin(roll), np.cos(roll), 0.0], [0.0, 0.0, 1.0]])
        elif "bouncing" in c:
            lift = abs(np.sin(np.pi * 2.0 * t + 0.3)) * 0.5
            rot = np.eye(3)
        elif "closer" in c or "away" in c:
            near, far = 1.2, min(room.wall - 0.4, 3.2)
            z = far + (near - far) * t if "closer" in c else near + (far - near) * t
            rot = A.rot_y(0.3 * spin * t)
        surf = _on_floor(body, rot * scale, x, z, lift)
        rgb, depth = A.background(cam, room)
        A.splat(cam, surf, color, rgb, depth)
        frames.append(A.to_uint8(rgb))
    return frames


def _clips(folder: Path, seed: int, per_class: tuple[int, int]) -> WorldDataset:
    w, meshes = _Writer(folder), _meshes(("cube", "torus", "sphere", "cylinder"))
    for split, k, i, c in _samples(per_class, list(CLIP_CLASSES)):
        rng = _rng(seed, "clips", split, k)
        frames = _clip_frames(c, rng, meshes)
        sid = f"{split}_{_slug(c)}_{i:03d}"
        A.save_video(folder / f"{sid}.mp4", frames)
        A.save_png(folder / f"{sid}_mid.png", frames[NUM_FRAMES // 2])
        w.add(split, sid, f"{sid}.mp4", c, f"{sid}_mid.png")
    return w.finish("clips", list(CLIP_CLASSES), TEMPLATES["clips"], "generated (rendered moving objects)",
                    "middle frame")


def _sounds(folder: Path, seed: int, per_class: tuple[int, int], use_real: bool) -> WorldDataset:
    w = _Writer(folder)
    tools = A.speech_tools() if use_real else []
    voices: list[tuple[tuple[str, str], dict[str, np.ndarray]]] = []
    for tool, voice in A.speech_voices(tools)[: 4 if per_class[0] < 10 else None]:
        said = {word: A.speak(tool, voice, word) for word in SPOKEN_WORDS}
        if all(v is not None for v in said.values()):
            voices.append(((tool, voice), said))  # type: ignore[arg-type]
    if len(voices) >= 2:
        held = voices[-1::-4] if len(voices) >= 4 else voices  # eval voices (held out when there are >= 4)
        train = [v for v in voices if v not in held] or voices
        for split, k, i, c in _samples(per_class, list(SPOKEN_WORDS)):
            rng = _rng(seed, "sounds", split, k)
            pool = train if split == "train" else held
            (_, said) = pool[int(rng.integers(len(pool)))]
            wav = A.augment_speech(said[c], rng, noise=0.005 if split == "train" else 0.0)
            sid = f"{split}_{_slug(c)}_{i:03d}"
            A.save_wav(folder / f"{sid}.wav", wav)
            w.add(split, sid, f"{sid}.wav", c)
        names = sorted({t for (t, _), _ in voices})
        source = f"real ({' + '.join(names)} speech, {len(voices)} voices, {len(held)} held out for eval)"
        return w.finish("sounds", list(SPOKEN_WORDS), TEMPLATES["sounds_spoken"], source, "")
    for split, k, i, c in _samples(per_class, list(GENERATED_SOUNDS)):
        rng = _rng(seed, "sounds", split, k)
        wav = A.synth_sound(c, rng, noise=0.01 if split == "train" else 0.002)
        sid = f"{split}_{_slug(c)}_{i:03d}"
        A.save_wav(folder / f"{sid}.wav", wav)
        w.add(split, sid, f"{sid}.wav", c)
    return w.finish("sounds", list(GENERATED_SOUNDS), TEMPLATES["sounds_generated"],
                    "generated (synthetic tones, chirps, noise)", "")


def _pictures(folder: Path, seed: int, per_class: tuple[int, int], use_real: bool,
              font: str = A.EMOJI_FONT) -> WorldDataset:
    w = _Writer(folder)
    glyphs = A.render_emoji(EMOJI, font) if use_real and Path(font).is_file() else {}
    if len(glyphs) >= 5:
        named = {name: im for name, im in glyphs.values()}
        classes = list(named)
        for split, k, i, c in _samples(per_class, classes):
            rng = _rng(seed, "pictures", split, k)
            arr = A.place_glyph(named[c], IMAGE_SIZE, rng, train=split == "train")
            sid = f"{split}_{_slug(c)}_{i:03d}"
            A.save_png(folder / f"{sid}.png", arr)
            w.add(split, sid, f"{sid}.png", c)
        return w.finish("pictures", classes, TEMPLATES["pictures_emoji"],
                        f"real (Noto Color Emoji, {len(classes)} glyphs, Unicode names)", "")
    classes = [f"{col} {shape}" for i, shape in enumerate(PICTURE_SHAPES) for j, col in enumerate(PICTURE_COLORS)
               if (i + j) % 2 == 0]
    meshes = _meshes(PICTURE_SHAPES.values())
    for split, k, i, c in _samples(per_class, classes):
        rng = _rng(seed, "pictures", split, k)
        col, shape = c.split()
        rot = A.random_rotation(rng) if split == "train" else A.rot_y(rng.uniform(0, 2 * np.pi)) @ A.rot_x(0.5)
        surf = A.transform(A.sample_surface(meshes[PICTURE_SHAPES[shape]], 5000, rng),
                           rot * rng.uniform(0.35, 0.5), (rng.uniform(-0.15, 0.15), rng.uniform(-0.15, 0.15), 1.8))
        cam = A.Camera(IMAGE_SIZE)
        bg = A.random_color(rng) if split == "train" else (0.95, 0.95, 0.95)
        rgb, depth = A.background(cam, None, tuple(0.6 + 0.4 * np.asarray(bg)))
        color = tuple(np.clip(np.asarray(PICTURE_COLORS[col]) + rng.uniform(-0.08, 0.08, 3), 0, 1))
        A.splat(cam, surf, color, rgb, depth)
        sid = f"{split}_{_slug(c)}_{i:03d}"
        A.save_png(folder / f"{sid}.png", A.to_uint8(rgb, rng, 0.02 if split == "train" else 0.0))
        w.add(split, sid, f"{sid}.png", c)
    return w.finish("pictures", classes, TEMPLATES["pictures_generated"], "generated (rendered coloured shapes)", "")


# ------------------------------------------------------------------------------------------------ build


def load_world(root: Path) -> World | None:
    """The world recorded by ``root/world.json``, or None when there is no readable stamp."""
    stamp = Path(root) / "world.json"
    try:
        data = json.loads(stamp.read_text())
        p = data["params"]
        return World(Path(root), p["size"], p["seed"], p["use_real_assets"],
                     {k: WorldDataset.from_json(v) for k, v in data["datasets"].items()},
                     float(data.get("build_seconds", 0.0)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def build_world(root: Path, *, size: str = "full", seed: int = 0, use_real_assets: bool = True) -> World:
    """Generate (or reuse) the demo world under `root` and return it.

    Args:
        root: output folder; one sub-folder per dataset plus the ``world.json`` stamp.
        size: ``"small"`` (3 train + 2 eval samples per class: tests) or ``"full"`` (64 + 12: the demo).
        seed: seeds every sample; the same seed gives byte-identical files.
        use_real_assets: use espeak-ng/flite speech and Noto Color Emoji when installed; otherwise (or
            when absent) the generated fallbacks (see :data:`GENERATED_SOUNDS`, ``PICTURE_*``).

    When ``world.json`` records the same version and parameters and every manifest exists, nothing is
    regenerated. Otherwise the dataset folders are deleted and rebuilt; the stamp is written last, so an
    interrupted build is redone on the next call.
    """
    import time

    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    root = Path(root)
    old = load_world(root)
    if old is not None:
        stamp = json.loads((root / "world.json").read_text())  # the params as built (assets of that time)
        same = stamp.get("version") == WORLD_VERSION and stamp.get("params") == _params(size, seed, use_real_assets)
        if same and all(d.train.is_file() and d.eval.is_file() for d in old.datasets.values()):
            return old
    t0 = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    (root / "world.json").unlink(missing_ok=True)
    per_class = SIZES[size]
    builders: dict[str, Callable[[Path], WorldDataset]] = {
        "shapes": lambda f: _shapes(f, seed, per_class),
        "scenes": lambda f: _scenes(f, seed, per_class),
        "clips": lambda f: _clips(f, seed, per_class),
        "sounds": lambda f: _sounds(f, seed, per_class, use_real_assets),
        "pictures": lambda f: _pictures(f, seed, per_class, use_real_assets),
    }
    datasets = {}
    for name, make in builders.items():
        folder = root / name
        if folder.exists():
            shutil.rmtree(folder)
        datasets[name] = make(folder)
    world = World(root, size, int(seed), bool(use_real_assets), datasets, time.perf_counter() - t0)
    tmp = root / "world.json.tmp"
    tmp.write_text(json.dumps(world.to_json(), indent=2, sort_keys=True) + "\n")
    tmp.replace(root / "world.json")
    return world


def write_world_summary(world: World) -> str:
    """A markdown table of the world's datasets: modality, classes, train/eval counts, anchor, source."""
    real = "on" if world.use_real_assets else "off"
    lines = [f"World `{world.root}` (size {world.size}, seed {world.seed}, real assets {real})", "",
             "| dataset | modality | classes | train | eval | anchor | source |",
             "|---|---|---|---|---|---|---|"]
    for name, ds in world.datasets.items():
        shown = ", ".join(ds.classnames[:6]) + (f", … ({len(ds.classnames)})" if len(ds.classnames) > 6 else "")
        lines.append(f"| {name} | {ds.modality} | {shown} | {ds.train_count} | {ds.eval_count} | "
                     f"{ds.anchor or '-'} | {ds.source} |")
    return "\n".join(lines) + "\n"
