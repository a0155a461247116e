"""``unialign embed | index | search | classify``: typed commands over :mod:`unialign.inference` and
:mod:`unialign.retrieval`.

Wire into the main parser with :func:`add_parsers` and hand parsed arguments whose ``command`` is in
:data:`COMMANDS` to :func:`dispatch`. Exit codes: 0 ok, 1 some inputs failed, 2 usage or config error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from unialign.errors import InputError, UniAlignError
from unialign.inference import (
    default_templates, embed_cli, encode_files, encode_labels, encode_texts, expand_paths, report_failures,
)
from unialign.retrieval import EmbeddingIndex, classify, compose

if TYPE_CHECKING:
    from unialign.model import UniAlign

COMMANDS = ("embed", "index", "search", "classify")


def _load_model(checkpoint: str | Path, base: str | Path | None, device: str | None) -> "UniAlign":
    """The checkpoint's model in eval mode."""
    from unialign.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint, base=base, device=device).eval()


def cmd_index(embeddings: Sequence[str | Path], out: str | Path, backend: str = "auto") -> int:
    """Merge embeddings files (any modalities) into one index file."""
    index = EmbeddingIndex.from_files(embeddings, backend=backend)
    index.save(out)
    counts = ", ".join(f"{n} {m}" for m, n in sorted(index.modality_counts().items()))
    print(f"wrote an index of {len(index)} item(s) ({counts}), width {index.dim}, to {out}")
    return 0


def parse_weights(text: str | None, n: int) -> list[float]:
    """``"w1,w2,..."`` -> n floats (default: all 1)."""
    if text is None:
        return [1.0] * n
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        raise InputError(f"--weights must be comma-separated numbers, got {text!r}") from None
    if len(weights) != n:
        raise InputError(f"--weights has {len(weights)} value(s) but there are {n} query input(s)")
    return weights


def cmd_search(index: str | Path, checkpoint: str | Path, queries: Sequence[tuple[str, str]],
               weights: str | None = None, k: int = 10, modality: str | None = None, as_json: bool = False,
               base: str | Path | None = None, device: str | None = None) -> int:
    """Search an index with the composed query of `queries` ((kind, value): ``("file", "MOD:PATH")`` or
    ``("text", "...")``, in command-line order, weighted by `weights`). Returns 1 if a query file failed.
    """
    if not queries:
        raise InputError("give at least one --query-file MODALITY:PATH or --query-text TEXT")
    w = parse_weights(weights, len(queries))
    idx = EmbeddingIndex.load(index)
    model = _load_model(checkpoint, base, device)
    parts, described = [], []
    for kind, value in queries:
        if kind == "text":
            parts.append(encode_texts(model, [value])[0])
            described.append({"text": value})
            continue
        mod, sep, path = value.partition(":")
        if not sep or not mod or not path:
            raise InputError(f"--query-file takes MODALITY:PATH, got {value!r}")
        result = encode_files(model, mod, [path], batch_size=1, progress=False)
        if result.failures:
            report_failures(result.failures, 1)
            print("unialign: error: a query input failed; no search was run", file=sys.stderr)
            return 1
        parts.append(result.embeddings[0])
        described.append({"modality": mod, "file": path})
    for d, wi in zip(described, w):
        d["weight"] = wi
    hits = idx.search_batch(compose(parts, w), k=k, modality=modality)[0]
    if as_json:
        print(json.dumps({"query": described, "results": [h._asdict() for h in hits]}, indent=2))
    else:
        for rank, h in enumerate(hits, 1):
            print(f"{rank:3d}  {h.score:.4f}  {h.modality:<8s}  {h.id}")
    return 0


def parse_labels(text: str) -> list[str]:
    """``"a,b,c"`` -> ["a", "b", "c"]; empty names fail."""
    labels = [s.strip() for s in text.split(",")]
    if not labels or any(not s for s in labels):
        raise InputError(f"--labels must be comma-separated non-empty names, got {text!r}")
    if len(set(labels)) != len(labels):
        raise InputError(f"--labels has duplicates: {text!r}")
    return labels


def cmd_classify(checkpoint: str | Path, modality: str, labels: str, files: Sequence[str | Path],
                 templates: str | None = None, top_k: int = 5, as_json: bool = False, batch_size: int = 16,
                 base: str | Path | None = None, device: str | None = None, progress: bool = True) -> int:
    """Zero-shot classify files over `labels`: print each file's top labels with probabilities."""
    names = parse_labels(labels)
    paths = expand_paths(files)
    if not paths:
        raise InputError("no input files (empty folders?)")
    model = _load_model(checkpoint, base, device)
    if modality not in model.modalities:
        raise InputError(f"unknown modality {modality!r}; the checkpoint encodes {model.modalities}")
    label_emb = encode_labels(model, names, templates or default_templates(model, modality))  # (C, E)
    result = encode_files(model, modality, paths, batch_size=batch_size, progress=progress)
    report_failures(result.failures, len(paths))
    if result.ids:
        tops = classify(result.embeddings, label_emb, names, logit_scale=float(model.logit_scale)).top(top_k)
        if as_json:
            print(json.dumps([{"id": i, "top": [{"label": lab, "prob": p} for lab, p in top]}
                              for i, top in zip(result.ids, tops)], indent=2))
        else:
            for i, top in zip(result.ids, tops):
                print(f"{i}: " + ", ".join(f"{lab} ({p:.3f})" for lab, p in top))
    return 1 if result.failures else 0


def _query(kind: str) -> Callable[[str], tuple[str, str]]:
    """An argparse ``type`` that tags each value with its option's kind, so that two options appending to
    one list keep their command-line order."""

    def tag(value: str) -> tuple[str, str]:
        return (kind, value)

    return tag


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add the embed, index, search and classify subcommands to a ``unialign`` subparsers object."""
    p = subparsers.add_parser("embed", help="embed files of one modality into an .npz")
    p.add_argument("checkpoint", help="checkpoint directory")
    p.add_argument("files", nargs="+", help="files or folders (searched recursively)")
    p.add_argument("--modality", required=True, help="modality of the files, e.g. image, point, audio")
    p.add_argument("--out", required=True, help="output .npz (ids, embeddings, modality)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")

    p = subparsers.add_parser("index", help="merge embeddings files into one searchable index")
    p.add_argument("embeddings", nargs="+", help=".npz files from `unialign embed` (or earlier indexes)")
    p.add_argument("--out", required=True, help="output index .npz")

    p = subparsers.add_parser("search", help="search an index with a (composed) query")
    p.add_argument("index", help="index .npz from `unialign index` (or an embeddings .npz)")
    p.add_argument("--checkpoint", required=True, help="checkpoint directory that made the embeddings")
    p.add_argument("--query-file", dest="queries", action="append", type=_query("file"), default=[],
                   metavar="MODALITY:PATH", help="a file as (part of) the query; repeatable")
    p.add_argument("--query-text", dest="queries", action="append", type=_query("text"), default=[],
                   metavar="TEXT", help="a text as (part of) the query; repeatable")
    p.add_argument("--weights", help="w1,w2,...: one per query input in command-line order (default equal)")
    p.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--modality", help="only return items of this modality")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = subparsers.add_parser("classify", help="zero-shot classify files over text labels")
    p.add_argument("checkpoint", help="checkpoint directory")
    p.add_argument("files", nargs="+", help="files or folders (searched recursively)")
    p.add_argument("--modality", required=True, help="modality of the files")
    p.add_argument("--labels", required=True, help="comma-separated label names, e.g. cat,dog,car")
    p.add_argument("--templates", help="prompt template set (image, video, depth, pointcloud, audio, default, "
                                       "or a dataset name); default: the modality's set")
    p.add_argument("--top-k", type=int, default=5, help="labels printed per file (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON")

    for name in ("embed", "search", "classify"):
        sp = subparsers.choices[name]
        sp.add_argument("--base", help="frozen CLIP weights, if not where the checkpoint says")
        sp.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cpu)")
    for name in ("embed", "classify"):
        sp = subparsers.choices[name]
        sp.add_argument("--batch-size", type=int, default=16, help="files per forward pass (default 16)")
        sp.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run(args: argparse.Namespace) -> int:
    if args.command == "embed":
        return embed_cli(args.checkpoint, args.modality, args.files, args.out, base=args.base,
                         batch_size=args.batch_size, progress=not args.no_progress, device=args.device,
                         bf16=args.bf16)
    if args.command == "index":
        return cmd_index(args.embeddings, args.out)
    if args.command == "search":
        return cmd_search(args.index, args.checkpoint, args.queries, weights=args.weights, k=args.k,
                          modality=args.modality, as_json=args.json, base=args.base, device=args.device)
    if args.command == "classify":
        return cmd_classify(args.checkpoint, args.modality, args.labels, args.files, templates=args.templates,
                            top_k=args.top_k, as_json=args.json, batch_size=args.batch_size, base=args.base,
                            device=args.device, progress=not args.no_progress)
    raise InputError(f"not an inference command: {args.command!r}")


def dispatch(args: argparse.Namespace) -> int:
    """Run a parsed ``embed``/``index``/``search``/``classify`` command -> exit code (errors: message, 2)."""
    try:
        return _run(args)
    except UniAlignError as exc:
        print(f"unialign: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # unwritable --out, unreadable folder, ...
        print(f"unialign: error: {exc}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (``python -m unialign.inference_cli``) until the main CLI wires these in."""
    parser = argparse.ArgumentParser(prog="unialign")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    return dispatch(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
