"""Readers of the public image, 3-D and depth benchmarks (paper §4.2-4.4). Each docstring is the layout.

Every reader takes ``(data_root, split=None, modality_type=None)`` and returns a :class:`Benchmark`;
missing index files raise :class:`BenchmarkError` with the expected layout in the message.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from unialign.eval.base import (
    SUFFIXES, Benchmark, BenchmarkError, BenchmarkUnavailable, Item, attach_layout, normalise_label, pick_column,
    read_csv_rows, require_dir, require_file,
)
from unialign.eval.classnames import NYU_DEPTH_V2, NYU_GROUPS, NYU_OTHERS, SCANOBJECTNN, SUN_RGBD
from unialign.preprocess.text import templates_for

IMAGENET_LAYOUT = """\
  DATA_ROOT/LOC_synset_mapping.txt   1000 lines "n01440764 tench, Tinca tinca" (class order = line order;
                                     the class name is the text before the first comma)
  DATA_ROOT/classnames.txt           optional: 1000 lines, one (e.g. CLIP-cleaned) name each, same order
  DATA_ROOT/val/<wnid>/*.JPEG        validation images in synset folders (after the usual valprep.sh), or
  DATA_ROOT/val/*.JPEG + DATA_ROOT/LOC_val_solution.csv   (ImageId,PredictionString; first wnid = label)"""


def read_imagenet(data_root: Path, split: str | None = None, modality_type: str | None = None) -> Benchmark:
    """ImageNet-1K val (50,000 images, 1,000 classes; paper §4.2).

    Expected files::

    {layout}

    The 1,000 class names are not bundled (they cannot be reproduced reliably offline): they come from
    ``LOC_synset_mapping.txt`` (first comma-separated name) or, when present, ``classnames.txt``.
    """
    root = Path(data_root)
    mapping = require_file(root, ["LOC_synset_mapping.txt"], "synset mapping", IMAGENET_LAYOUT)
    wnids, names = [], []
    for line in mapping.read_text(encoding="utf-8").splitlines():
        if line.strip():
            wnid, _, rest = line.strip().partition(" ")
            wnids.append(wnid)
            names.append(rest.split(",")[0].strip() or wnid)
    if (root / "classnames.txt").is_file():
        custom = [ln.strip() for ln in (root / "classnames.txt").read_text(encoding="utf-8").splitlines() if ln.strip()]
        if len(custom) != len(wnids):
            raise BenchmarkError(f"{root / 'classnames.txt'} has {len(custom)} names for {len(wnids)} synsets")
        names = custom
    index = {w: i for i, w in enumerate(wnids)}
    val = require_dir(root, ["val", "ILSVRC/Data/CLS-LOC/val"], "validation image", IMAGENET_LAYOUT)
    items: list[Item] = []
    solution = root / "LOC_val_solution.csv"
    if any((val / w).is_dir() for w in wnids):
        for w in wnids:
            if (val / w).is_dir():
                files = sorted(p for p in (val / w).iterdir() if p.suffix.lower() in SUFFIXES["image"])
                items += [Item(p, label=index[w]) for p in files]
    elif solution.is_file():
        for row in read_csv_rows(solution):
            wnid = row["PredictionString"].split()[0]
            path = next((val / f"{row['ImageId']}{s}" for s in (".JPEG", ".jpeg", ".jpg")
                         if (val / f"{row['ImageId']}{s}").is_file()), val / f"{row['ImageId']}.JPEG")
            items.append(Item(path, label=index[wnid]))
    else:
        raise BenchmarkError(f"{val}: neither synset sub-folders nor {solution}. Expected layout:\n{IMAGENET_LAYOUT}")
    items.sort(key=lambda it: str(it.path))
    return Benchmark("imagenet", split or "val", "image", "classification", items, names, templates_for("imagenet"))


MODELNET40_LAYOUT = """\
  DATA_ROOT/modelnet40_shape_names.txt   40 class names, one per line (class order)
  DATA_ROOT/modelnet40_test.txt          shape ids, one per line, e.g. "airplane_0627"
  DATA_ROOT/<class>/<shape id>.txt|.npy  points (modelnet40_normal_resampled: "x,y,z,nx,ny,nz" rows)
  (DATA_ROOT may also be the folder that contains modelnet40_normal_resampled/)"""


def read_modelnet40(data_root: Path, split: str | None = None, modality_type: str | None = None) -> Benchmark:
    """ModelNet40 test (2,468 shapes, 40 classes; paper §4.3), ULIP / ViT-Lens / PointNet++ layout.

    Expected files::

    {layout}

    The class of a shape id is the id without its trailing ``_NNNN``. Normals in the 4th-6th columns are
    ignored by the point loader (set ``preprocess.layout: xyz`` in the model config to be explicit).
    """
    root = Path(data_root)
    if not (root / "modelnet40_shape_names.txt").is_file() and (root / "modelnet40_normal_resampled").is_dir():
        root = root / "modelnet40_normal_resampled"
    split = split or "test"
    names_file = require_file(root, ["modelnet40_shape_names.txt"], "class list", MODELNET40_LAYOUT)
    ids_file = require_file(root, [f"modelnet40_{split}.txt"], f"{split} list", MODELNET40_LAYOUT)
    classes = [ln.strip() for ln in names_file.read_text(encoding="utf-8").splitlines() if ln.strip()]
    index = {c: i for i, c in enumerate(classes)}
    items, missing = [], 0
    for sid in (ln.strip() for ln in ids_file.read_text(encoding="utf-8").splitlines()):
        if not sid:
            continue
        cls = sid.rsplit("_", 1)[0]
        if cls not in index:
            raise BenchmarkError(f"{ids_file}: shape {sid!r} has class {cls!r}, not in {names_file.name}")
        path = next((root / cls / f"{sid}{s}" for s in (".txt", ".npy", ".npz", ".ply")
                     if (root / cls / f"{sid}{s}").is_file()), None)
        if path is None:
            missing += 1
            continue
        items.append(Item(path, label=index[cls]))
    return Benchmark("modelnet40", split, "pointcloud", "classification", items, classes,
                     templates_for("modelnet40"), missing=missing)


SCANOBJECTNN_LAYOUT = """\
  DATA_ROOT/main_split_nobg/test_objectdataset.h5   split "obj_only" (default, 581 objects)
  DATA_ROOT/main_split/test_objectdataset.h5        split "obj_bg"
  DATA_ROOT/main_split/test_objectdataset_augmentedrot_scale75.h5   split "pb_t50_rs"
  (or the .h5 file directly in DATA_ROOT); datasets "data" (N, P, 3+) float and "label" (N,) int in 0..14"""

_SCANOBJECTNN_FILES = {
    "obj_only": ("main_split_nobg/test_objectdataset.h5", "test_objectdataset.h5"),
    "obj_bg": ("main_split/test_objectdataset.h5", "test_objectdataset.h5"),
    "pb_t50_rs": (
        "main_split/test_objectdataset_augmentedrot_scale75.h5", "test_objectdataset_augmentedrot_scale75.h5",
    ),
}


def read_scanobjectnn(data_root: Path, split: str | None = None, modality_type: str | None = None) -> Benchmark:
    """ScanObjectNN test (paper §4.3: the 581-object variant), from the official HDF5 files.

    Expected files::

    {layout}

    Needs ``h5py`` (``pip install h5py``); without it :class:`BenchmarkUnavailable` says so. The 15 class
    names are bundled (:data:`unialign.eval.classnames.SCANOBJECTNN`, the files' label order).
    """
    try:
        import h5py
    except ImportError:
        raise BenchmarkUnavailable(
            "the ScanObjectNN benchmark reads HDF5 files and needs h5py: pip install h5py"
        ) from None
    split = split or "obj_only"
    if split not in _SCANOBJECTNN_FILES:
        raise BenchmarkError(f"ScanObjectNN split must be one of {sorted(_SCANOBJECTNN_FILES)}, got {split!r}")
    path = require_file(Path(data_root), _SCANOBJECTNN_FILES[split], "HDF5 test file", SCANOBJECTNN_LAYOUT)
    with h5py.File(path, "r") as fh:
        if "data" not in fh or "label" not in fh:
            raise BenchmarkError(f"{path}: needs datasets 'data' and 'label', found {sorted(fh)}")
        labels = np.asarray(fh["label"]).reshape(-1).astype(np.int64)
        if fh["data"].shape[0] != labels.shape[0]:
            raise BenchmarkError(f"{path}: {fh['data'].shape[0]} clouds but {labels.shape[0]} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= len(SCANOBJECTNN)):
        raise BenchmarkError(f"{path}: labels must lie in 0..{len(SCANOBJECTNN) - 1}")
    items = [Item(path, label=int(lab), member=i) for i, lab in enumerate(labels)]
    return Benchmark("scanobjectnn", split, "pointcloud", "classification", items, list(SCANOBJECTNN),
                     templates_for("scanobjectnn"))


def read_archive_member(item: Item, key: str = "data") -> np.ndarray:
    """The array of an archive member item (ScanObjectNN: row ``item.member`` of HDF5 dataset `key`)."""
    import h5py

    with h5py.File(item.path, "r") as fh:
        return np.asarray(fh[key][item.member])


def _depth_listing(root: Path, names: list[str], layout: str) -> list[tuple[Path, str]]:
    """(depth file, label) pairs from a JSON list (or {"data": [...]}) or a CSV with a header."""
    listing = require_file(root, names, "listing of depth files and labels", layout)
    if listing.suffix == ".json":
        data = json.loads(listing.read_text(encoding="utf-8"))
        rows = data.get("data", data.get("items", [])) if isinstance(data, dict) else data
    else:
        rows = read_csv_rows(listing)
    if not rows:
        raise BenchmarkError(f"{listing}: no entries")
    pkey = pick_column(rows[0], ["depth", "depth_path", "disparity", "path"], listing)
    lkey = pick_column(rows[0], ["cleaned_label", "label", "scene", "class"], listing)
    return [((root / str(r[pkey])), str(r[lkey])) for r in rows]


def _depth_format(paths: list[Path], png_format: str) -> dict[str, object]:
    """Loader overrides by file naming: ``*disparity*`` arrays hold disparity; PNGs use `png_format`."""
    first = paths[0]
    if "disparity" in first.name.lower():
        return {"format": "disparity"}
    if first.suffix.lower() == ".png" and png_format != "nyu":
        return {"format": png_format}
    return {}


SUN_RGBD_LAYOUT = """\
  DATA_ROOT/sun_rgbd_test.json | SUN-RGBD_val.json | test.json | test.csv
      JSON: a list (or {"data": [...]}) of {"depth": <path>, "cleaned_label": <scene>} (keys "depth_path",
      "disparity", "path" and "label", "scene", "class" also work); CSV: the same names as columns
  DATA_ROOT/<path>   the depth files, paths relative to DATA_ROOT: SUN RGB-D depth_bfx PNGs (read as
      bit-rotated mm), *_disparity.pt / .npy disparity (ViT-Lens), or other .npy/.pt depth in metres"""


def read_sun_rgbd(data_root: Path, split: str | None = None, modality_type: str | None = None) -> Benchmark:
    """SUN RGB-D depth-only test (4,660 samples, 19 scenes; paper §4.4).

    Expected files::

    {layout}

    Labels are compared case/space-insensitively with the 19 bundled names
    (:data:`unialign.eval.classnames.SUN_RGBD`); an unknown label is an error.
    """
    root = Path(data_root)
    pairs = _depth_listing(root, ["sun_rgbd_test.json", "SUN-RGBD_val.json", "test.json", "test.csv"], SUN_RGBD_LAYOUT)
    index = {c: i for i, c in enumerate(SUN_RGBD)}
    unknown = sorted({lab for _, lab in pairs if normalise_label(lab) not in index})
    if unknown:
        raise BenchmarkError(f"{root}: labels outside the 19 SUN RGB-D scenes: {unknown[:10]}")
    items = [Item(p, label=index[normalise_label(lab)]) for p, lab in pairs]
    return Benchmark("sun-rgbd", split or "test", "depth", "classification", items, list(SUN_RGBD),
                     templates_for("sun-rgbd"), preprocess=_depth_format([p for p, _ in pairs], "sunrgbd"))


NYU_LAYOUT = """\
  DATA_ROOT/nyu_depth_v2_test.json | NYU-Depth-v2_val.json | test.json | test.csv
      same listing format as SUN RGB-D: {"depth": <path>, "cleaned_label": <scene>} per sample (654)
  DATA_ROOT/<path>   16-bit PNG depth in mm, *_disparity.pt/.npy disparity, or .npy/.pt depth in metres"""


def read_nyu_depth_v2(data_root: Path, split: str | None = None, modality_type: str | None = None) -> Benchmark:
    """NYU-Depth v2 depth-only test (654 samples; paper §4.4, supplement §3.1), 10-class scheme.

    Expected files::

    {layout}

    Nine scene classes keep their label; "others" stands for computer room, study, playroom, office
    kitchen, reception room, lobby and study space, and its logit is the max over those seven names.
    As in ViT-Lens, any label that is not one of the nine is counted as "others" (noted in the results).
    """
    root = Path(data_root)
    names = ["nyu_depth_v2_test.json", "NYU-Depth-v2_val.json", "test.json", "test.csv"]
    pairs = _depth_listing(root, names, NYU_LAYOUT)
    index = {c: i for i, c in enumerate(NYU_DEPTH_V2)}
    others = index["others"]
    unlisted = sorted({normalise_label(lab) for _, lab in pairs}
                      - set(NYU_DEPTH_V2) - set(NYU_OTHERS))
    items = [Item(p, label=index.get(normalise_label(lab), others)) for p, lab in pairs]
    notes = [f"labels counted as 'others' though not among its seven members: {unlisted}"] if unlisted else []
    return Benchmark("nyu-depth-v2", split or "test", "depth", "classification", items, list(NYU_DEPTH_V2),
                     templates_for("nyu-depth-v2"), groups=dict(NYU_GROUPS),
                     preprocess=_depth_format([p for p, _ in pairs], "nyu"), notes=notes)


for _fn, _layout in ((read_imagenet, IMAGENET_LAYOUT), (read_modelnet40, MODELNET40_LAYOUT),
                     (read_scanobjectnn, SCANOBJECTNN_LAYOUT), (read_sun_rgbd, SUN_RGBD_LAYOUT),
                     (read_nyu_depth_v2, NYU_LAYOUT)):
    attach_layout(_fn, _layout)
del _fn, _layout

__all__ = [
    "read_archive_member", "read_imagenet", "read_modelnet40", "read_nyu_depth_v2", "read_scanobjectnn",
    "read_sun_rgbd",
]
