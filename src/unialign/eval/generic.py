"""Readers for users' own data: a folder of class sub-folders, or a JSONL manifest."""

from __future__ import annotations

import json
from pathlib import Path

from unialign.eval.base import SUFFIXES, Benchmark, BenchmarkError, Item, attach_layout, guess_modality_type
from unialign.preprocess.text import templates_for

FOLDER_LAYOUT = """\
  DATA_ROOT/<class name>/<file>   one sub-folder per class (class order = sorted folder names; the
                                  folder name is the class name, underscores read as spaces); files of
                                  one modality, found recursively
  DATA_ROOT/classnames.txt        optional: "<folder> <name words...>" lines giving prompt names"""


def read_folder(data_root: Path, split: str | None = None, modality_type: str | None = None) -> Benchmark:
    """Zero-shot classification of files sorted into class folders.

    Expected files::

    {layout}

    ``modality_type`` (from ``--modality``) picks which files count; without it the type is guessed from
    the file suffixes (``.png`` reads as image: pass a depth modality for depth maps).
    """
    root = Path(data_root)
    if not root.is_dir():
        raise BenchmarkError(f"{root}: not a folder. Expected layout:\n{FOLDER_LAYOUT}")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise BenchmarkError(f"{root}: no class sub-folders. Expected layout:\n{FOLDER_LAYOUT}")
    all_suffixes = tuple({s for v in SUFFIXES.values() for s in v})
    files = {c: sorted(p for p in (root / c).rglob("*") if p.is_file() and p.suffix.lower() in all_suffixes)
             for c in classes}
    kind = modality_type or guess_modality_type([p for fs in files.values() for p in fs])
    keep = SUFFIXES.get(kind, all_suffixes)
    items = [Item(p, label=i) for i, c in enumerate(classes) for p in files[c] if p.suffix.lower() in keep]
    names = list(classes)
    custom = root / "classnames.txt"
    if custom.is_file():
        pretty = dict(ln.strip().split(maxsplit=1) for ln in custom.read_text(encoding="utf-8").splitlines()
                      if len(ln.split()) >= 2)
        names = [pretty.get(c, c) for c in classes]
    return Benchmark("folder", split or "all", kind, "classification", items, names, templates_for(kind))


MANIFEST_LAYOUT = """\
  DATA_ROOT = a .jsonl file, or a folder holding manifest.jsonl (or <split>.jsonl); one JSON object per
  line, paths relative to the manifest's folder:
      {"path": "a.png", "label": "cat"}                 -> classification (top-1/5, mean per-class recall)
      {"path": "a.wav", "labels": ["dog", "bark"]}      -> multilabel (mAP)
      {"path": "a.mp4", "caption": "..."} or "captions": [...]   -> retrieval (Recall@K both ways)
  optional keys: "fold" (int: metrics per fold and their mean)
  optional DATA_ROOT/classnames.txt (next to the manifest): class order, one label per line"""


def read_manifest(data_root: Path, split: str | None = None, modality_type: str | None = None) -> Benchmark:
    """A JSONL manifest of your own files: classification, multi-label or retrieval by its keys.

    Expected files::

    {layout}

    All lines must use the same kind of target. Without ``classnames.txt`` the classes are the sorted
    distinct labels. ``modality_type`` (from ``--modality``) or the file suffixes give the modality.
    """
    root = Path(data_root)
    if root.is_dir():
        cand = [root / f"{split}.jsonl"] if split else []
        path = next((p for p in cand + [root / "manifest.jsonl"] if p.is_file()), None)
        if path is None:
            raise BenchmarkError(f"{root}: no manifest.jsonl. Expected layout:\n{MANIFEST_LAYOUT}")
    else:
        path = root
    base = path.parent
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BenchmarkError(f"{path}:{n}: not JSON ({exc})") from None
        if not isinstance(row, dict) or "path" not in row:
            raise BenchmarkError(f"{path}:{n}: each line must be an object with a 'path'")
        rows.append(row)
    if not rows:
        raise BenchmarkError(f"{path}: empty manifest")
    kinds = {"retrieval" if ("caption" in r or "captions" in r) else "multilabel" if "labels" in r
             else "classification" if "label" in r else "none" for r in rows}
    if len(kinds) != 1 or "none" in kinds:
        raise BenchmarkError(
            f"{path}: every line needs the same one of label / labels / caption(s); found {sorted(kinds)}"
        )
    task = kinds.pop()
    paths = [base / str(r["path"]) for r in rows]
    kind = modality_type or guess_modality_type(paths)
    folds = [int(r["fold"]) if "fold" in r else None for r in rows]
    if task == "retrieval":
        items = [Item(p, captions=tuple(r["captions"]) if "captions" in r else (str(r["caption"]),), fold=f)
                 for p, r, f in zip(paths, rows, folds)]
        return Benchmark("manifest", split or path.stem, kind, task, items)
    labels = [[str(r["label"])] if task == "classification" else [str(x) for x in r["labels"]] for r in rows]
    names_file = base / "classnames.txt"
    if names_file.is_file():
        classes = [ln.strip() for ln in names_file.read_text(encoding="utf-8").splitlines() if ln.strip()]
    else:
        classes = sorted({lab for labs in labels for lab in labs})
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({lab for labs in labels for lab in labs} - set(index))
    if unknown:
        raise BenchmarkError(f"{path}: labels not in {names_file.name}: {unknown[:10]}")
    if task == "classification":
        items = [Item(p, label=index[ls[0]], fold=f) for p, ls, f in zip(paths, labels, folds)]
    else:
        items = [Item(p, labels=tuple(sorted({index[x] for x in ls})), fold=f)
                 for p, ls, f in zip(paths, labels, folds)]
    fold_ids = tuple(sorted({f for f in folds if f is not None})) if all(f is not None for f in folds) else ()
    return Benchmark("manifest", split or path.stem, kind, task, items, classes, templates_for(kind), folds=fold_ids)


for _fn, _layout in ((read_folder, FOLDER_LAYOUT), (read_manifest, MANIFEST_LAYOUT)):
    attach_layout(_fn, _layout)
del _fn, _layout

__all__ = ["read_folder", "read_manifest"]
