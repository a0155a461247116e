"""Every benchmark reader on a tiny fixture written in that benchmark's real public-release layout.

The ``write_*`` helpers are reused by ``test_eval_run.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from unialign.eval import BenchmarkError, describe, list_benchmarks, read_benchmark
from unialign.eval.classnames import NYU_DEPTH_V2, SCANOBJECTNN, SUN_RGBD


def png(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (36, 40, 3), dtype=np.uint8)).save(path)
    return path


def depth_png(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(500, 4000, (36, 40), dtype=np.uint16)).save(path)
    return path


def wav(path: Path, freq: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(8000) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)
    return path


def mp4(path: Path, shade: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for i in range(12):
            frame = np.full((32, 48, 3), (shade + i * 10) % 255, dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def write_imagenet(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "LOC_synset_mapping.txt").write_text(
        "n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n"
    )
    png(root / "val/n01440764/ILSVRC2012_val_00000293.JPEG", 1)
    png(root / "val/n01443537/ILSVRC2012_val_00000001.JPEG", 2)
    png(root / "val/n01443537/ILSVRC2012_val_00000002.JPEG", 3)
    return root


def write_modelnet40(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "modelnet40_shape_names.txt").write_text("airplane\nnight_stand\n")
    (root / "modelnet40_test.txt").write_text("airplane_0627\nnight_stand_0201\nnight_stand_0202\n")
    rng = np.random.default_rng(0)
    for sid in ("airplane_0627", "night_stand_0201"):
        cls = sid.rsplit("_", 1)[0]
        (root / cls).mkdir(exist_ok=True)
        rows = np.concatenate([rng.normal(size=(300, 3)), rng.normal(size=(300, 3))], 1)
        (root / cls / f"{sid}.txt").write_text("\n".join(",".join(f"{v:.6f}" for v in r) for r in rows))
    return root  # night_stand_0202 has no file: counted as missing


def write_scanobjectnn(root: Path) -> Path:
    h5py = pytest.importorskip("h5py")
    (root / "main_split_nobg").mkdir(parents=True, exist_ok=True)
    with h5py.File(root / "main_split_nobg/test_objectdataset.h5", "w") as fh:
        fh["data"] = np.random.default_rng(0).normal(size=(3, 300, 3)).astype(np.float32)
        fh["label"] = np.array([0, 4, 14], dtype=np.int64)
    return root


def write_depth_listing(root: Path, name: str, labels: list[str]) -> Path:
    entries = []
    for i, lab in enumerate(labels):
        depth_png(root / f"depth/{i:04d}.png", i)
        entries.append({"depth": f"depth/{i:04d}.png", "cleaned_label": lab, "image": f"rgb/{i:04d}.jpg"})
    (root / name).write_text(json.dumps(entries))
    return root


def write_audioset(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "class_labels_indices.csv").write_text(
        'index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/05zppz,"Male speech, man speaking"\n2,/m/0jbk,"Animal"\n')
    (root / "eval_segments.csv").write_text(
        "# Segments csv created Sun Mar  5 10:54:25 2017\n"
        "# num_ytids=3, num_segs=3, num_unique_labels=3, num_positive_labels=4\n"
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        '--4gqARaEJE, 0.000, 10.000, "/m/09x0r,/m/05zppz"\n'
        '--BfvyPmVMo, 20.000, 30.000, "/m/0jbk"\n'
        '--gone00000, 0.000, 10.000, "/m/0jbk"\n')
    wav(root / "audio/Y--4gqARaEJE.wav", 300)
    wav(root / "audio/--BfvyPmVMo_20.wav", 600)
    return root


def write_esc50(root: Path, bad: bool = False) -> Path:
    (root / "meta").mkdir(parents=True, exist_ok=True)
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    specs = [(1, 0, "dog"), (1, 1, "chirping_birds"), (2, 0, "dog"), (2, 1, "chirping_birds")]
    for n, (fold, target, cat) in enumerate(specs):
        name = f"{fold}-1000{n}-A-{target}.wav"
        rows.append(f"{name},{fold},{target},{cat},True,1000{n},A")
        if bad and n == 3:
            (root / "audio").mkdir(exist_ok=True)
            (root / "audio" / name).write_bytes(b"RIFF not really a wave file")
        else:
            wav(root / "audio" / name, 200 + 150 * n)
    (root / "meta/esc50.csv").write_text("\n".join(rows) + "\n")
    return root


def write_audiocaps(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "test.csv").write_text(
        "audiocap_id,youtube_id,start_time,caption\n"
        "103541,7fmOlUlwoNg,20,Birds chirping in the distance\n"
        "103542,7fmOlUlwoNg,20,Several birds sing outdoors\n"
        "103543,6BJ455B1aAs,0,A man speaks over a crackling radio\n"
        "103544,missing0000,0,Nothing here\n")
    wav(root / "audio/7fmOlUlwoNg.wav", 800)
    wav(root / "audio/Y6BJ455B1aAs.wav", 250)
    return root


def write_msrvtt(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "MSRVTT_JSFUSION_test.csv").write_text(
        ",key,vid_key,video_id,sentence\n0,ret0,msr7579,video7579,a girl wearing red top and black trouser\n"
        "1,ret1,msr7725,video7725,young people sit around the edges of a room\n")
    mp4(root / "videos/all/video7579.mp4", 10)
    mp4(root / "videos/all/video7725.mp4", 120)
    return root


def write_ucf101(root: Path) -> Path:
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 YoYo\n")
    (lists / "testlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\nYoYo/v_YoYo_g01_c01.avi\n")
    for rel, shade in (("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", 0), ("YoYo/v_YoYo_g01_c01.avi", 100)):
        mp4(root / "UCF-101" / rel, shade)
    return root


def test_registry_lists_every_benchmark_and_documents_layouts() -> None:
    names = list_benchmarks()
    for n in ("imagenet", "modelnet40", "scanobjectnn", "sun-rgbd", "nyu-depth-v2", "audioset", "esc50",
              "audiocaps", "msrvtt", "ucf101", "folder", "manifest"):
        assert n in names
        assert "DATA_ROOT/" in describe(n), n
    with pytest.raises(BenchmarkError, match="unknown benchmark"):
        read_benchmark("nope", ".")


def test_imagenet(tmp_path: Path) -> None:
    b = read_benchmark("imagenet", write_imagenet(tmp_path))
    assert (b.task, b.modality_type, b.classnames) == ("classification", "image", ["tench", "goldfish"])
    assert sorted(it.label for it in b.items) == [0, 1, 1]
    with pytest.raises(BenchmarkError, match="LOC_synset_mapping"):
        read_benchmark("imagenet", tmp_path / "val")


def test_modelnet40(tmp_path: Path) -> None:
    b = read_benchmark("modelnet40", write_modelnet40(tmp_path))
    assert b.classnames == ["airplane", "night_stand"] and b.missing == 1
    assert [(it.path.name, it.label) for it in b.items] == [("airplane_0627.txt", 0), ("night_stand_0201.txt", 1)]


def test_scanobjectnn(tmp_path: Path) -> None:
    b = read_benchmark("scanobjectnn", write_scanobjectnn(tmp_path))
    assert b.classnames == list(SCANOBJECTNN) and b.split == "obj_only"
    assert [(it.member, it.label) for it in b.items] == [(0, 0), (1, 4), (2, 14)]


def test_sun_rgbd(tmp_path: Path) -> None:
    write_depth_listing(tmp_path, "sun_rgbd_test.json", ["bedroom", "Living Room", "study_space"])
    b = read_benchmark("sun-rgbd", tmp_path)
    assert len(b.classnames) == 19 and b.classnames == list(SUN_RGBD)
    assert [it.label for it in b.items] == [SUN_RGBD.index("bedroom"), SUN_RGBD.index("living_room"), 18]
    assert b.preprocess == {"format": "sunrgbd"}  # depth_bfx PNGs are bit-rotated
    write_depth_listing(tmp_path, "sun_rgbd_test.json", ["garage"])
    with pytest.raises(BenchmarkError, match="garage"):
        read_benchmark("sun-rgbd", tmp_path)


def test_nyu_depth_v2_groups_others(tmp_path: Path) -> None:
    write_depth_listing(tmp_path, "NYU-Depth-v2_val.json", ["bedroom", "lobby", "study space", "kitchen"])
    b = read_benchmark("nyu-depth-v2", tmp_path)
    assert b.classnames == list(NYU_DEPTH_V2) and len(b.groups["others"]) == 7
    assert [it.label for it in b.items] == [1, 9, 9, 6]
    assert b.preprocess == {} and not b.notes


def test_audioset(tmp_path: Path) -> None:
    b = read_benchmark("audioset", write_audioset(tmp_path))
    assert b.task == "multilabel" and b.classnames[1] == "Male speech, man speaking"
    assert [it.labels for it in b.items] == [(0, 1), (2,)] and b.missing == 1


def test_esc50_folds(tmp_path: Path) -> None:
    write_esc50(tmp_path)
    b = read_benchmark("esc50", tmp_path)
    assert b.folds == (1, 2) and b.classnames == ["dog", "chirping_birds"]
    assert [it.fold for it in b.items] == [1, 1, 2, 2]
    one = read_benchmark("esc50", tmp_path, split="fold2")
    assert one.folds == (2,) and len(one.items) == 2
    with pytest.raises(BenchmarkError, match="fold"):
        read_benchmark("esc50", tmp_path, split="fold9")


def test_audiocaps_groups_captions(tmp_path: Path) -> None:
    b = read_benchmark("audiocaps", write_audiocaps(tmp_path))
    assert b.task == "retrieval" and b.missing == 1
    assert [len(it.captions) for it in b.items] == [2, 1]


def test_msrvtt(tmp_path: Path) -> None:
    b = read_benchmark("msrvtt", write_msrvtt(tmp_path))
    assert b.modality_type == "video" and [it.path.name for it in b.items] == ["video7579.mp4", "video7725.mp4"]


def test_ucf101(tmp_path: Path) -> None:
    b = read_benchmark("ucf101", write_ucf101(tmp_path))
    assert b.classnames == ["Apply Eye Makeup", "Yo Yo"] and [it.label for it in b.items] == [0, 1]


def test_folder_and_manifest(tmp_path: Path) -> None:
    png(tmp_path / "imgs/cat/a.png", 1)
    png(tmp_path / "imgs/red_fox/b.png", 2)
    b = read_benchmark("folder", tmp_path / "imgs")
    assert (b.modality_type, b.classnames) == ("image", ["cat", "red_fox"])
    wav(tmp_path / "snd/a.wav")
    wav(tmp_path / "snd/b.wav", 900)
    lines = [{"path": "a.wav", "caption": "a beep"}, {"path": "b.wav", "captions": ["high beep", "tone"]}]
    (tmp_path / "snd/manifest.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    m = read_benchmark("manifest", tmp_path / "snd")
    assert (m.task, m.modality_type) == ("retrieval", "audio") and m.items[1].captions == ("high beep", "tone")
    lines = [{"path": "a.wav", "labels": ["x", "y"]}, {"path": "b.wav", "labels": ["y"]}]
    (tmp_path / "snd/ml.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    m = read_benchmark("manifest", tmp_path / "snd/ml.jsonl")
    assert m.task == "multilabel" and m.classnames == ["x", "y"] and m.items[0].labels == (0, 1)
