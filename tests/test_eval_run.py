"""End to end: the tiny model's checkpoint evaluated on tiny fixtures of every benchmark layout."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import unialign
from test_eval_readers import (
    png, write_audiocaps, write_audioset, write_depth_listing, write_esc50, write_imagenet, write_modelnet40,
    write_msrvtt, write_scanobjectnn, write_ucf101,
)
from unialign.checkpoint import checkpoint_digest
from unialign.eval import add_parser, cmd_eval, evaluate, read_benchmark
from unialign.eval.run import resolve_modality
from unialign.eval.zeroshot import ZeroShotClassifier
from unialign.preprocess import load

RESULT_KEYS = {
    "benchmark", "split", "task", "modality", "modality_type", "metrics", "num_samples", "num_listed",
    "num_skipped", "skipped_files", "missing_files", "model", "checkpoint", "checkpoint_digest",
    "unialign_version", "wall_time_s", "notes",
}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = unialign.create_model("unialign-test-tiny")
    return unialign.save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "tiny")


def test_cmd_eval_esc50_writes_results_and_skips_a_bad_file(ckpt: Path, tmp_path: Path) -> None:
    data = write_esc50(tmp_path / "ESC-50-master", bad=True)
    out = tmp_path / "res" / "results.json"
    assert cmd_eval(ckpt, "esc50", data, out=out, batch_size=2, progress=False) == 0
    res = json.loads(out.read_text())
    assert RESULT_KEYS <= set(res) and res["benchmark"] == "esc50" and res["model"] == "unialign-test-tiny"
    assert res["checkpoint_digest"] == checkpoint_digest(ckpt) and res["unialign_version"] == unialign.__version__
    assert res["num_listed"] == 4 and res["num_samples"] == 3 and res["num_skipped"] == 1
    assert res["skipped_files"][0]["path"].endswith("2-10003-A-1.wav") and res["skipped_files"][0]["error"]
    assert set(res["per_fold"]) == {"fold1", "fold2"}
    for k in ("acc1", "acc5", "mean_per_class_recall"):
        folds = [res["per_fold"][f][k] for f in ("fold1", "fold2")]
        assert res["metrics"][k] == pytest.approx(sum(folds) / 2)
    assert res["metrics"]["acc5"] == 1.0  # 2 classes
    assert res["modality"] == "audio" and res["wall_time_s"] >= 0


def test_evaluate_matches_a_manual_zero_shot_pass(tmp_path: Path) -> None:
    model = unialign.create_model("unialign-test-tiny").eval()
    for i, cls in enumerate(["cat", "cat", "dog", "red_fox", "dog"]):
        png(tmp_path / "data" / cls / f"{i}.png", i)
    bench = read_benchmark("folder", tmp_path / "data")
    res = evaluate(model, bench, batch_size=2, progress=False)
    clf = ZeroShotClassifier.from_text(model, bench.classnames, bench.templates)
    with torch.no_grad():
        x = torch.stack([F.normalize(model.encode("image", load("image", it.path, config=model.config, seed=0))
                                     .mean(0), dim=0) for it in bench.items])
    logits = 100 * x @ clf.weights.T
    targets = torch.tensor([it.label for it in bench.items])
    acc1 = float((logits.argmax(1) == targets).float().mean())
    recalls = [float((logits.argmax(1)[targets == c] == c).float().mean()) for c in range(3)]
    assert res["metrics"]["acc1"] == pytest.approx(acc1)
    assert res["metrics"]["mean_per_class_recall"] == pytest.approx(sum(recalls) / 3)
    assert res["checkpoint"] is None and res["num_classes"] == 3


WRITERS = {
    "imagenet": write_imagenet,
    "modelnet40": write_modelnet40,
    "scanobjectnn": write_scanobjectnn,
    "sun-rgbd": lambda r: write_depth_listing(r, "test.json", ["bedroom", "office", "kitchen"]),
    "nyu-depth-v2": lambda r: write_depth_listing(r, "test.json", ["bedroom", "lobby", "kitchen"]),
    "audioset": write_audioset,
    "audiocaps": write_audiocaps,
    "msrvtt": write_msrvtt,
    "ucf101": write_ucf101,
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_every_benchmark_runs_end_to_end(name: str, tmp_path: Path) -> None:
    model = unialign.create_model("unialign-test-tiny").eval()
    bench = read_benchmark(name, WRITERS[name](tmp_path / name))
    res = evaluate(model, bench, batch_size=2, progress=False)
    json.dumps(res)  # serialisable
    assert res["num_skipped"] == 0 and res["num_samples"] == len(bench.items)
    metrics = res["metrics"]
    if bench.task == "classification":
        assert set(metrics) == {"acc1", "acc5", "mean_per_class_recall"}
    elif bench.task == "multilabel":
        assert set(metrics) == {"mAP", "num_classes_with_positives"} and metrics["num_classes_with_positives"] == 3
    else:
        kind = bench.modality_type
        assert set(metrics) == {f"{d}_retrieval_recall@{k}" for d in (kind, "text") for k in (1, 5, 10)}
        assert metrics[f"{kind}_retrieval_recall@5"] == 1.0  # only 2 gallery items
    assert all(0.0 <= v <= 1.0 for k, v in metrics.items() if k != "num_classes_with_positives")


def test_max_items_and_modality_choice(tmp_path: Path) -> None:
    model = unialign.create_model("unialign-test-tiny").eval()
    bench = read_benchmark("esc50", write_esc50(tmp_path))
    res = evaluate(model, bench, max_items=2, progress=False)
    assert res["num_listed"] == 2 and list(res["per_fold"]) == ["fold1"] and "first 2 items only" in res["notes"]
    assert resolve_modality(model.config, "pointcloud") == "point"
    with pytest.raises(unialign.InputError, match="type 'image'"):
        resolve_modality(model.config, "audio", "image")


def test_every_file_failing_is_an_error(tmp_path: Path) -> None:
    model = unialign.create_model("unialign-test-tiny").eval()
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.wav").write_bytes(b"junk")
    bench = read_benchmark("folder", tmp_path, modality_type="audio")
    with pytest.raises(unialign.UniAlignError, match="none of the 1 files"):
        evaluate(model, bench, progress=False)


def test_add_parser_wires_the_eval_command(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser(prog="unialign")
    add_parser(parser.add_subparsers(dest="command"))
    data = write_audiocaps(tmp_path / "audiocaps")
    args = parser.parse_args(["eval", str(ckpt), "--benchmark", "audiocaps", "--data-root", str(data),
                              "--modality", "audio", "--no-progress"])
    assert args.func(args) == 0
    res = json.loads(capsys.readouterr().out)  # no --out: JSON on stdout
    assert res["task"] == "retrieval" and res["num_captions"] == 3 and res["missing_files"] == 1
