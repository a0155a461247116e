"""Readers of the public audio and video benchmarks (paper §4.5-4.6). Each docstring is the layout.

Every reader takes ``(data_root, split=None, modality_type=None)`` and returns a :class:`Benchmark`.
YouTube-derived sets (AudioSet, AudioCaps) always miss some clips; listed samples without a file are
dropped while reading and counted in ``Benchmark.missing`` (reported as ``missing_files``).
"""

from __future__ import annotations

from pathlib import Path

from unialign.eval.base import (
    SUFFIXES, Benchmark, BenchmarkError, Item, attach_layout, media_index, pick_column, read_csv_rows,
    require_dir, require_file, split_camel, youtube_file,
)
from unialign.preprocess.text import templates_for

_AUDIO_DIRS = ["audio", "audios", "wav", "eval_segments", "test", "."]

AUDIOSET_LAYOUT = """\
  DATA_ROOT/eval_segments.csv        the official list: "# ..." comment lines, then
                                     YTID, start_seconds, end_seconds, "positive_labels" (mids, comma-separated)
  DATA_ROOT/class_labels_indices.csv index,mid,display_name (527 rows; class order = index)
  DATA_ROOT/audio/ (or audios/, wav/, eval_segments/, or DATA_ROOT itself, searched recursively)
      one file per clip named <YTID>.<ext>, Y<YTID>.<ext> or <YTID>_<start>.<ext> (ext: wav flac ogg mp3)"""


def read_audioset(data_root: Path, split: str | None = None, modality_type: str | None = None) -> Benchmark:
    """AudioSet eval (about 20k clips listed, 527 classes; multi-label mAP; paper §4.5).

    Expected files::

    {layout}
    """
    root = Path(data_root)
    seg = require_file(root, ["eval_segments.csv"], "segment list", AUDIOSET_LAYOUT)
    lab = require_file(root, ["class_labels_indices.csv"], "class list", AUDIOSET_LAYOUT)
    classes = read_csv_rows(lab)
    order = sorted(classes, key=lambda r: int(r["index"]))
    names = [r["display_name"] for r in order]
    mid_index = {r["mid"]: i for i, r in enumerate(order)}
    audio = media_index(require_dir(root, _AUDIO_DIRS, "audio", AUDIOSET_LAYOUT), SUFFIXES["audio"])
    with open(seg, encoding="utf-8") as fh:
        lines = [ln for ln in fh if ln.strip() and not ln.lstrip().startswith("#")]
    items, missing = [], 0
    for line in lines:
        ytid, start, _end, labels = (p.strip() for p in line.split(",", 3))
        mids = [m.strip() for m in labels.strip().strip('"').split(",") if m.strip()]
        unknown = [m for m in mids if m not in mid_index]
        if unknown:
            raise BenchmarkError(f"{seg}: clip {ytid} has labels {unknown} not in {lab.name}")
        path = youtube_file(audio, ytid, start)
        if path is None:
            missing += 1
            continue
        items.append(Item(path, labels=tuple(sorted({mid_index[m] for m in mids}))))
    return Benchmark("audioset", split or "eval", "audio", "multilabel", items, names, templates_for("audioset"),
                     missing=missing)


ESC50_LAYOUT = """\
  DATA_ROOT/meta/esc50.csv   filename,fold,target,category,esc10,src_file,take (2,000 rows)
  DATA_ROOT/audio/<filename> the 5-second wav clips"""


def read_esc50(data_root: Path, split: str | None = None, modality_type: str | None = None) -> Benchmark:
    """ESC-50 (2,000 clips, 50 classes, 5 folds; paper §4.5, supplement §3.1).

    Expected files::

    {layout}

    Class names come from the ``category`` column (class order = ``target``). Zero-shot accuracy is
    reported for each fold's 400 clips and averaged; ``split="fold3"`` evaluates one fold only.
    """
    root = Path(data_root)
    meta = require_file(root, ["meta/esc50.csv", "esc50.csv"], "metadata", ESC50_LAYOUT)
    rows = read_csv_rows(meta)
    audio_dir = require_dir(root, ["audio"], "audio", ESC50_LAYOUT)
    names: dict[int, str] = {}
    for r in rows:
        names[int(r["target"])] = r["category"]
    if sorted(names) != list(range(len(names))):
        raise BenchmarkError(f"{meta}: targets must be 0..{len(names) - 1} without gaps")
    folds = sorted({int(r["fold"]) for r in rows})
    if split and split not in ("all", "test"):
        if not split.startswith("fold") or not split[4:].isdigit() or int(split[4:]) not in folds:
            raise BenchmarkError(f"ESC-50 split must be 'all' or one of {[f'fold{f}' for f in folds]}, got {split!r}")
        folds = [int(split[4:])]
    items = [Item(audio_dir / r["filename"], label=int(r["target"]), fold=int(r["fold"]))
             for r in rows if int(r["fold"]) in folds]
    return Benchmark("esc50", split or "all", "audio", "classification", items,
                     [names[i] for i in range(len(names))], templates_for("esc50"), folds=tuple(folds))


AUDIOCAPS_LAYOUT = """\
  DATA_ROOT/test.csv   audiocap_id,youtube_id,start_time,caption (one row per caption; 5 per clip)
  DATA_ROOT/audio/ (or audios/, wav/, test/, or DATA_ROOT itself, searched recursively)
      one file per clip named <youtube_id>.<ext>, Y<youtube_id>.<ext> or <youtube_id>_<start_time>.<ext>"""


def read_audiocaps(data_root: Path, split: str | None = None, modality_type: str | None = None) -> Benchmark:
    """AudioCaps test (paper §4.5: 813 clips after removing VGGSound overlaps); text<->audio retrieval.

    Expected files::

    {layout}

    Rows of the same clip (youtube_id, start_time) are grouped: one audio item with all its captions.
    Clips listed but absent are dropped (counted as missing), so restrict ``test.csv`` to the clips
    you evaluate on (e.g. the paper's 813) for a comparable number.
    """
    root = Path(data_root)
    split = split or "test"
    table = require_file(root, [f"{split}.csv"], "caption table", AUDIOCAPS_LAYOUT)
    rows = read_csv_rows(table)
    if not rows:
        raise BenchmarkError(f"{table}: no rows")
    idk = pick_column(rows[0], ["youtube_id", "ytid", "YTID"], table)
    capk = pick_column(rows[0], ["caption", "sentence", "text"], table)
    startk = "start_time" if "start_time" in rows[0] else None
    audio = media_index(require_dir(root, _AUDIO_DIRS, "audio", AUDIOCAPS_LAYOUT), SUFFIXES["audio"])
    clips: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        clips.setdefault((r[idk], r[startk] if startk else ""), []).append(r[capk])
    items, missing = [], 0
    for (ytid, start), caps in clips.items():
        path = youtube_file(audio, ytid, start or None)
        if path is None:
            missing += 1
            continue
        items.append(Item(path, captions=tuple(caps)))
    return Benchmark("audiocaps", split, "audio", "retrieval", items, missing=missing)


MSRVTT_LAYOUT = """\
  DATA_ROOT/MSRVTT_JSFUSION_test.csv | msrvtt_test_1k.csv | test.csv
      a CSV with a header holding columns video_id and sentence (other columns ignored; 1,000 rows for 1K-A)
  DATA_ROOT/videos/ (or videos/all/, MSRVTT/videos/all/)   <video_id>.mp4 (any video extension)"""


def read_msrvtt(data_root: Path, split: str | None = None, modality_type: str | None = None) -> Benchmark:
    """MSR-VTT 1K-A test (1,000 video-sentence pairs; paper §4.6); text<->video retrieval.

    Expected files::

    {layout}

    Several rows of one video become one item with several captions.
    """
    root = Path(data_root)
    table = require_file(root, ["MSRVTT_JSFUSION_test.csv", "msrvtt_test_1k.csv", "test.csv"], "caption table",
                         MSRVTT_LAYOUT)
    rows = read_csv_rows(table)
    if not rows:
        raise BenchmarkError(f"{table}: no rows")
    vk = pick_column(rows[0], ["video_id", "vid", "video"], table)
    ck = pick_column(rows[0], ["sentence", "caption", "text"], table)
    videos = media_index(require_dir(root, ["videos/all", "MSRVTT/videos/all", "videos"], "video", MSRVTT_LAYOUT),
                         SUFFIXES["video"])
    caps: dict[str, list[str]] = {}
    for r in rows:
        caps.setdefault(r[vk], []).append(r[ck])
    items, missing = [], 0
    for vid, cs in caps.items():
        if vid not in videos:
            missing += 1
            continue
        items.append(Item(videos[vid], captions=tuple(cs)))
    return Benchmark("msrvtt", split or "1k-a", "video", "retrieval", items, missing=missing)


UCF101_LAYOUT = """\
  DATA_ROOT/classInd.txt and DATA_ROOT/testlist01.txt (or both under DATA_ROOT/ucfTrainTestlist/)
      classInd.txt: "1 ApplyEyeMakeup" (1-based index, 101 lines); testlist0N.txt: "ApplyEyeMakeup/v_...avi"
  DATA_ROOT/UCF-101/<Class>/v_*.avi  (or DATA_ROOT/videos/<Class>/..., or DATA_ROOT/<Class>/...)"""


def read_ucf101(data_root: Path, split: str | None = None, modality_type: str | None = None) -> Benchmark:
    """UCF101 zero-shot action classification (101 classes; paper §4.6), official split lists.

    Expected files::

    {layout}

    ``split``: ``testlist01`` (default, 3,783 clips), ``testlist02`` or ``testlist03``. Class names are the
    CamelCase ids split into words ("ApplyEyeMakeup" -> "Apply Eye Makeup").
    """
    root = Path(data_root)
    split = split or "testlist01"
    lists = root / "ucfTrainTestlist" if (root / "ucfTrainTestlist" / "classInd.txt").is_file() else root
    ind = require_file(lists, ["classInd.txt"], "class index", UCF101_LAYOUT)
    test = require_file(lists, [f"{split}.txt"], f"{split} list", UCF101_LAYOUT)
    ids: dict[int, str] = {}
    for line in ind.read_text(encoding="utf-8").splitlines():
        if line.strip():
            num, name = line.split()
            ids[int(num)] = name
    order = [ids[k] for k in sorted(ids)]
    index = {c: i for i, c in enumerate(order)}
    vdir = next((root / d for d in ("UCF-101", "UCF101", "videos") if (root / d).is_dir()), root)
    items, missing = [], 0
    for line in test.read_text(encoding="utf-8").splitlines():
        rel = line.strip().split(" ")[0] if line.strip() else ""
        if not rel:
            continue
        cls = rel.split("/")[0]
        if cls not in index:
            raise BenchmarkError(f"{test}: {rel!r} has class {cls!r}, not in {ind.name}")
        path = vdir / rel
        if not path.is_file():
            missing += 1
            continue
        items.append(Item(path, label=index[cls]))
    return Benchmark("ucf101", split, "video", "classification", items, [split_camel(c) for c in order],
                     templates_for("ucf101"), missing=missing)


for _fn, _layout in ((read_audioset, AUDIOSET_LAYOUT), (read_esc50, ESC50_LAYOUT), (read_audiocaps, AUDIOCAPS_LAYOUT),
                     (read_msrvtt, MSRVTT_LAYOUT), (read_ucf101, UCF101_LAYOUT)):
    attach_layout(_fn, _layout)
del _fn, _layout

__all__ = ["read_audiocaps", "read_audioset", "read_esc50", "read_msrvtt", "read_ucf101"]
