"""unialign.inference and the embed/index/search/classify commands, on real tiny files and a tiny checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from PIL import Image

import unialign
from unialign.inference import encode_files, encode_labels, encode_texts, expand_paths
from unialign.inference_cli import COMMANDS, add_parsers, dispatch, main
from unialign.preprocess import load
from unialign.preprocess.text import class_prompts


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny checkpoint and real files: 3 PNG images, 2 .npy point clouds, 2 WAV tones, in folders."""
    root = tmp_path_factory.mktemp("world")
    torch.manual_seed(0)
    unialign.save_checkpoint(unialign.create_model("unialign-test-tiny"), root / "ckpt")
    rng = np.random.default_rng(0)
    for sub in ("images/nested", "points", "audio"):
        (root / sub).mkdir(parents=True)
    for i, name in enumerate(["a.png", "b.png", "nested/c.png"]):
        pattern = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8) // (i + 1)
        Image.fromarray(pattern.astype(np.uint8)).save(root / "images" / name)
    for i in range(2):
        np.save(root / "points" / f"p{i}.npy", (rng.normal(size=(300, 3)) * (1 + i)).astype(np.float32))
    t = np.arange(12000) / 16000
    for i, freq in enumerate([440, 2500]):
        sf.write(root / "audio" / f"t{i}.wav", (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)
    return {"root": root, "ckpt": root / "ckpt", "images": root / "images", "points": root / "points",
            "audio": root / "audio"}


@pytest.fixture(scope="module")
def model(world: dict[str, Path]) -> unialign.UniAlign:
    return unialign.load(world["ckpt"]).eval()


def test_encode_files_averages_views_keeps_order_and_skips_bad_files(world, model, tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    paths = [world["audio"] / "t0.wav", bad, tmp_path / "missing.wav", world["audio"] / "t1.wav"]
    result = encode_files(model, "audio", paths, batch_size=2, progress=False)
    assert result.ids == [str(paths[0]), str(paths[3])]
    assert [p for p, _ in result.failures] == [str(bad), str(tmp_path / "missing.wav")]
    assert "not found" in result.failures[1][1]
    assert result.embeddings.shape == (2, 32) and result.embeddings.dtype == torch.float32
    assert torch.allclose(result.embeddings.norm(dim=1), torch.ones(2), atol=1e-5)
    # by hand: the file's V views (audio: 3 clips), encoded, averaged, re-normalised
    views = load("audio", paths[3], config=model.config, seed=0)
    assert views.shape[0] == 3
    with torch.no_grad():
        expected = F.normalize(model.encode("audio", views).mean(0), dim=0)
    assert torch.allclose(result.embeddings[1], expected, atol=1e-5)
    # batch size does not change the result; bf16 autocast gives close float32 output
    single = encode_files(model, "audio", paths, batch_size=1, progress=False)
    assert torch.allclose(single.embeddings, result.embeddings, atol=1e-5)
    half = encode_files(model, "audio", paths[:1], progress=False, bf16=True)
    assert half.embeddings.dtype == torch.float32 and float(half.embeddings[0] @ result.embeddings[0]) > 0.9
    with pytest.raises(unialign.InputError, match="unknown modality 'smell'"):
        encode_files(model, "smell", paths, progress=False)


def test_encode_texts_and_labels(model) -> None:
    texts = encode_texts(model, ["a dog", "a cat", "a car"], batch_size=2)
    assert texts.shape == (3, 32) and torch.allclose(texts.norm(dim=1), torch.ones(3), atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(texts, model.encode_text(["a dog", "a cat", "a car"]), atol=1e-5)
    labels = encode_labels(model, ["dog", "race_car"], "audio")
    prompts = class_prompts(["dog", "race_car"], "audio")
    manual = torch.stack([F.normalize(encode_texts(model, p).mean(0), dim=0) for p in prompts])
    assert "race car" in prompts[1][0]
    assert torch.allclose(labels, manual, atol=1e-5)


def test_expand_paths_recurses_and_skips_hidden(world, tmp_path: Path) -> None:
    (world["images"] / ".DS_Store").write_bytes(b"x")
    try:
        found = expand_paths([world["images"], tmp_path / "nope.png"])
    finally:
        (world["images"] / ".DS_Store").unlink()
    assert [p.name for p in found] == ["a.png", "b.png", "c.png", "nope.png"]


def _search_json(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main(["search", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_embed_index_search_finds_each_file_itself(world, tmp_path: Path, capsys) -> None:
    ckpt = str(world["ckpt"])
    outs = []
    for modality, folder in [("image", "images"), ("point", "points"), ("audio", "audio")]:
        out = tmp_path / f"{modality}.npz"
        assert main(["embed", ckpt, str(world[folder]), "--modality", modality, "--out", str(out),
                     "--batch-size", "2", "--no-progress"]) == 0
        with np.load(out, allow_pickle=False) as data:
            assert str(data["modality"]) == modality and data["embeddings"].dtype == np.float32
        outs.append(str(out))
    assert main(["index", *outs, "--out", str(tmp_path / "index.npz")]) == 0
    assert "7 item(s)" in capsys.readouterr().out
    index = str(tmp_path / "index.npz")
    queries = [("image", p) for p in sorted(world["images"].rglob("*.png"))]
    queries += [("point", p) for p in sorted(world["points"].glob("*.npy"))]
    queries += [("audio", p) for p in sorted(world["audio"].glob("*.wav"))]
    for modality, path in queries:
        res = _search_json(capsys, index, "--checkpoint", ckpt, "--query-file", f"{modality}:{path}", "-k", "3")
        top = res["results"][0]
        assert top["id"] == str(path) and top["modality"] == modality
        assert top["score"] == pytest.approx(1.0, abs=1e-4)
    # the modality filter, a composed file + text query with weights, plain text output
    path = world["points"] / "p0.npy"
    res = _search_json(capsys, index, "--checkpoint", ckpt, "--query-file", f"point:{path}", "--modality", "audio")
    assert {r["modality"] for r in res["results"]} == {"audio"} and len(res["results"]) == 2
    res = _search_json(capsys, index, "--checkpoint", ckpt, "--query-text", "a chair", "--query-file",
                       f"point:{path}", "--weights", "0.01,1")
    assert [q.get("text") for q in res["query"]] == ["a chair", None] and res["query"][0]["weight"] == 0.01
    assert res["results"][0]["id"] == str(path)
    assert main(["search", index, "--checkpoint", ckpt, "--query-text", "a chair", "-k", "2"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2


def test_folder_with_bad_files_embeds_the_good_ones(world, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ["a.png", "b.png"]:
        (folder / name).write_bytes((world["images"] / name).read_bytes())
    (folder / "empty.png").write_bytes(b"")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    out = tmp_path / "mixed.npz"
    code = main(["embed", str(world["ckpt"]), str(folder), "--modality", "image", "--out", str(out), "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert "empty.png" in err and "corrupt.png" in err and "2 of 4" in err
    with np.load(out, allow_pickle=False) as data:
        assert [Path(i).name for i in data["ids"]] == ["a.png", "b.png"] and data["embeddings"].shape == (2, 32)
    # nothing usable: exit 1 and no file written
    assert main(["embed", str(world["ckpt"]), str(folder / "empty.png"), "--modality", "image",
                 "--out", str(tmp_path / "none.npz"), "--no-progress"]) == 1
    assert not (tmp_path / "none.npz").exists()


def test_usage_and_config_errors_exit_2(world, tmp_path: Path, capsys) -> None:
    ckpt, img = str(world["ckpt"]), str(world["images"] / "a.png")
    assert main(["embed", ckpt, img, "--modality", "smell", "--out", str(tmp_path / "x.npz")]) == 2
    assert "unknown modality 'smell'" in capsys.readouterr().err
    assert main(["embed", str(tmp_path / "no-ckpt"), img, "--modality", "image", "--out", str(tmp_path / "x.npz")]) == 2
    assert "not a unialign checkpoint" in capsys.readouterr().err
    emb = tmp_path / "e.npz"
    assert main(["embed", ckpt, img, "--modality", "image", "--out", str(emb), "--no-progress"]) == 0
    assert main(["search", str(emb), "--checkpoint", ckpt]) == 2
    assert "at least one" in capsys.readouterr().err
    assert main(["search", str(emb), "--checkpoint", ckpt, "--query-text", "x", "--weights", "1,2"]) == 2
    assert "--weights has 2" in capsys.readouterr().err
    assert main(["search", str(emb), "--checkpoint", ckpt, "--query-file", img]) == 2
    assert "MODALITY:PATH" in capsys.readouterr().err
    assert main(["search", str(emb), "--checkpoint", ckpt, "--query-file", f"image:{tmp_path}/gone.png"]) == 1
    assert "gone.png" in capsys.readouterr().err
    assert main(["index", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "i.npz")]) == 2
    assert main(["classify", ckpt, img, "--modality", "image", "--labels", "a,,b"]) == 2


def test_classify_prints_top_labels(world, tmp_path: Path, capsys) -> None:
    files = [str(world["points"] / "p0.npy"), str(world["points"] / "p1.npy"), str(tmp_path / "missing.npy")]
    capsys.readouterr()
    code = main(["classify", str(world["ckpt"]), *files, "--modality", "point", "--labels", "chair,table,lamp",
                 "--json", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1 and "missing.npy" in captured.err
    out = json.loads(captured.out)
    assert [r["id"] for r in out] == files[:2]
    for r in out:
        assert sorted(t["label"] for t in r["top"]) == ["chair", "lamp", "table"]
        assert sum(t["prob"] for t in r["top"]) == pytest.approx(1.0, abs=1e-5)
        assert [t["prob"] for t in r["top"]] == sorted((t["prob"] for t in r["top"]), reverse=True)
    assert main(["classify", str(world["ckpt"]), files[0], "--modality", "point", "--labels", "chair,table",
                 "--templates", "pointcloud", "--top-k", "1", "--no-progress"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{files[0]}: ") and line.count("(") == 1


def test_dispatch_plugs_into_another_parser(world, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="unialign")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info")
    add_parsers(sub)
    assert set(COMMANDS) <= set(sub.choices)
    args = parser.parse_args(["embed", str(world["ckpt"]), str(world["points"]), "--modality", "point",
                              "--out", str(tmp_path / "p.npz"), "--no-progress"])
    assert args.command in COMMANDS and dispatch(args) == 0
    args = parser.parse_args(["search", str(tmp_path / "p.npz"), "--checkpoint", "c", "--query-text", "t",
                              "--query-file", "point:x.npy", "--query-text", "u"])
    assert args.queries == [("text", "t"), ("file", "point:x.npy"), ("text", "u")]  # command-line order kept


def test_model_method_delegates(tmp_path) -> None:
    import numpy as np

    import unialign

    model = unialign.create_model("unialign-test-tiny").eval()
    good = tmp_path / "a.npy"
    np.save(good, np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32))
    res = model.encode_files("point", [good, tmp_path / "missing.npy"], progress=False)
    assert res.ids == [str(good)] and res.embeddings.shape == (1, 32) and len(res.failures) == 1
