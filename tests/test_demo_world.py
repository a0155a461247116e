"""The built-in demo world: every dataset loads, splits are disjoint, builds are seeded and stamped."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import unialign
from unialign.data.manifest import build_datasets
from unialign.demo import World, build_world, load_world, write_world_summary
from unialign.demo import assets as A
from unialign.preprocess import load

MODALITIES = {"shapes": "point", "scenes": "depth", "clips": "video", "sounds": "audio", "pictures": "image"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("demo"), size="small", seed=0, use_real_assets=False)


@pytest.fixture(scope="module")
def config() -> unialign.ModelConfig:
    return unialign.load_model_config("unialign-test-tiny")


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_every_dataset_has_disjoint_loadable_splits(world: World, config: unialign.ModelConfig) -> None:
    assert {n: d.modality for n, d in world.datasets.items()} == MODALITIES
    for name, ds in world.datasets.items():
        train, held = _records(ds.train), _records(ds.eval)
        assert len(train) == ds.train_count == 3 * len(ds.classnames)
        assert len(held) == ds.eval_count == 2 * len(ds.classnames)
        assert not {r["id"] for r in train} & {r["id"] for r in held}
        assert not {r["path"] for r in train} & {r["path"] for r in held}
        assert {r["label"] for r in train} == {r["label"] for r in held} == set(ds.classnames)
        for rec in (train[0], held[-1]):
            x = load(ds.modality, ds.train.parent / rec["path"], config=config, seed=0)
            assert x.ndim >= 2 and bool(x.isfinite().all()), name
            if name in ("shapes", "scenes", "clips"):
                a = load("image", ds.train.parent / rec["anchor"], config=config, seed=0)
                assert a.shape == (1, 3, 32, 32), name
            else:
                assert "anchor" not in rec
    for split in ("train", "eval"):  # the manifests parse as DatasetConfigs and their samples load
        for name, dsx in build_datasets(world.data_config(split), config, train=split == "train").items():
            sample = dsx.get(0, seed=3)
            assert sample["label"] >= 0 and sample["text"], name
            assert (sample["anchor"] is not None) == (name in ("shapes", "scenes", "clips"))


def test_files_have_the_promised_formats(world: World) -> None:
    from PIL import Image

    shapes, scenes = world.datasets["shapes"], world.datasets["scenes"]
    pts = np.load(shapes.train.parent / _records(shapes.train)[0]["path"])
    assert pts.shape == (1024, 3) and pts.dtype == np.float32
    with Image.open(scenes.train.parent / _records(scenes.train)[0]["path"]) as im:
        depth = np.asarray(im)
        assert im.mode.startswith("I") and depth.dtype == np.uint16
    assert 500 < depth[depth > 0].min() and depth.max() < 6000  # millimetres of a room a few metres deep
    sounds = world.datasets["sounds"]
    info = sf.info(str(sounds.train.parent / _records(sounds.train)[0]["path"]))
    assert info.samplerate == 16000 and abs(info.duration - 1.0) < 1e-3


def test_vocabularies_differ_but_share_words(world: World) -> None:
    vocab = {n: set(d.classnames) for n, d in world.datasets.items()}
    words = {n: {w for c in v for w in c.split()} for n, v in vocab.items()}
    names = list(vocab)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert vocab[a] != vocab[b]
    assert words["shapes"] & words["clips"] and words["scenes"] & words["clips"]
    assert words["sounds"] & words["clips"] and words["pictures"] & words["scenes"]


def test_eval_sets_and_summary(world: World) -> None:
    sets = world.eval_sets()
    assert set(sets) == set(MODALITIES)
    for name, bench in sets.items():
        assert bench.task == "classification" and bench.classnames == world.datasets[name].classnames
        assert len(bench.items) == world.datasets[name].eval_count and all(it.path.is_file() for it in bench.items)
    table = write_world_summary(world)
    assert table.count("\n| ") == 1 + len(MODALITIES) and "generated" in table


def test_builds_are_seeded_and_stamped(world: World, tmp_path: Path) -> None:
    files = ["shapes/train_cube_000.npy", "scenes/eval_ball_by_the_wall_001_depth.png",
             "sounds/train_low_hum_002.wav", "pictures/train_red_cube_000.png", "clips/train_a_spinning_cube_000.mp4"]
    again = build_world(tmp_path / "a", size="small", seed=0, use_real_assets=False)
    for f in files:
        assert (world.root / f).read_bytes() == (again.root / f).read_bytes(), f
    other = build_world(tmp_path / "b", size="small", seed=1, use_real_assets=False)
    assert all((world.root / f).read_bytes() != (other.root / f).read_bytes() for f in files[:4])
    stamp = world.root / "world.json"
    before = stamp.stat().st_mtime_ns, (world.root / files[0]).stat().st_mtime_ns
    same = build_world(world.root, size="small", seed=0, use_real_assets=False)
    assert (stamp.stat().st_mtime_ns, (world.root / files[0]).stat().st_mtime_ns) == before
    assert same.datasets == world.datasets and load_world(world.root).datasets == world.datasets
    assert json.loads(stamp.read_text())["params"] == {"size": "small", "seed": 0, "use_real_assets": False,
                                                       "assets": []}
    rebuilt = build_world(tmp_path / "b", size="small", seed=2, use_real_assets=False)  # new params: regenerate
    assert rebuilt.seed == 2 and (tmp_path / "b" / files[0]).read_bytes() != (world.root / files[0]).read_bytes()


def test_installing_an_asset_later_rebuilds_the_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import unialign.demo.world as W

    first = build_world(tmp_path, size="small", seed=0, use_real_assets=False)
    stamp = tmp_path / "world.json"
    before = stamp.stat().st_mtime_ns
    assert build_world(tmp_path, size="small", seed=0, use_real_assets=False).datasets == first.datasets
    assert stamp.stat().st_mtime_ns == before  # nothing changed: reused
    monkeypatch.setattr(W, "available_assets", lambda use_real_assets=True: ["espeak-ng"])
    build_world(tmp_path, size="small", seed=0, use_real_assets=False)
    assert stamp.stat().st_mtime_ns != before
    assert json.loads(stamp.read_text())["params"]["assets"] == ["espeak-ng"]


def test_spoken_words_with_a_speech_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    template = tmp_path / "word.wav"
    t = np.arange(8000) / 22050
    sf.write(str(template), (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 22050)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "espeak-ng"  # stands in for espeak-ng: writes the template to the -w path
    fake.write_text('#!/bin/sh\nwhile [ $# -gt 0 ]; do [ "$1" = "-w" ] && out="$2"; shift; done\n'
                    f'cp "{template}" "$out"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    folder = tmp_path / "sounds"
    from unialign.demo.world import SPOKEN_WORDS, _sounds

    ds = _sounds(folder, 0, (2, 1), use_real=True)
    assert ds.classnames == list(SPOKEN_WORDS) and ds.source.startswith("real (espeak-ng")
    assert ds.train_count == 2 * len(SPOKEN_WORDS) and ds.eval_count == len(SPOKEN_WORDS)
    wav, rate = sf.read(str(folder / _records(ds.train)[0]["path"]))
    assert rate == 16000 and np.abs(wav).max() > 0.1


def test_emoji_renderer_skips_missing_glyphs() -> None:
    font = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if not font.is_file():
        pytest.skip("no DejaVu font to stand in for the emoji font")
    got = A.render_emoji(["\u263a", "\u2660", "\U0001F9CA"], font)  # DejaVu has the first two only
    assert [name for name, _ in got.values()] == ["white smiling face", "black spade suit"]
    arr = A.place_glyph(got["\u2660"][1], 64, np.random.default_rng(0), train=False)
    assert arr.shape == (64, 64, 3) and arr.dtype == np.uint8 and arr.min() < 100


def test_trainer_runs_on_the_world(world: World, tmp_path: Path) -> None:
    from train_fixtures import train_config

    from unialign.train.config import load_train_config
    from unialign.train.loop import Trainer

    tr = Trainer(load_train_config(train_config(world.data_config(), tmp_path, steps=2, batch=10)))
    tr.run(progress=False)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and all(np.isfinite(v) for v in lines[-1].values() if isinstance(v, float))
