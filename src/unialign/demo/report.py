"""Self-contained demo report: results tables and figures as ``report.html`` and ``report.md``.

``report.html`` embeds every figure as a base64 PNG and carries its CSS inline (no external URL, opens
offline); ``report.md`` holds the same content with the figures saved as PNG files in ``figures/`` next
to it. Figures are drawn with matplotlib's Agg canvas directly (no pyplot, no global backend switch);
matplotlib is the optional ``demo`` extra. Scores and accuracies are fractions in [0, 1], shown in %.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unialign.demo.render_check import PROBE_SCRIPT

_CSS = """body{font-family:system-ui,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.2em}th,td{border:1px solid #ccc;padding:3px 9px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}figure{margin:.8em 0}
figcaption{font-size:.9em;color:#555}img{max-width:100%}.pass{color:#1a7f37}.fail{color:#c62828}
pre{background:#f6f6f6;padding:.6em;white-space:pre-wrap}"""
_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "h", "<", ">", "p")
_EXTENSIONS = (  # modality guessed from the file when the gallery entry names an unknown one
    ("image", (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")), ("point", (".npy", ".npz", ".ply", ".obj",
    ".off", ".stl", ".xyz")), ("audio", (".wav", ".flac", ".mp3", ".ogg")), ("video", (".mp4", ".avi", ".mkv",
    ".mov", ".webm")), ("text", (".txt",)),
)


@dataclass
class DemoResults:
    """Everything one demo run reports; each section is skipped when its field is empty."""

    title: str = "UniAlign demo report"
    #: modality -> {"top1", "top5", "chance" (fractions), "num_classes", "num_samples", "dataset"};
    #: ``chance`` defaults to 1 / num_classes.
    zero_shot: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    #: a modality passes when its top-1 is at least ``pass_ratio`` x chance.
    pass_ratio: float = 3.0
    #: (query modality, gallery modality) -> {"R@1", "R@5", "R@10"} (fractions).
    retrieval: dict[tuple[str, str], Mapping[str, float]] = field(default_factory=dict)
    #: a training ``metrics.jsonl``: lines {"step", "loss", "<modality>/<term>_loss[/<teacher>]": value, ...}.
    metrics_jsonl: Path | None = None
    #: modality -> (confusion matrix (C, C) ints, rows = true class, columns = predicted; classnames (C,)).
    confusion: dict[str, tuple[np.ndarray, Sequence[str]]] = field(default_factory=dict)
    #: queries {"modality", "label", "file", "results": [{"modality", "label", "file", "score"}, ...]};
    #: a text item may give "text" instead of "file"; "kind" overrides how an item is drawn.
    gallery: list[Mapping[str, Any]] = field(default_factory=list)
    #: composed queries {"inputs": [{"modality", "label", "file", "weight"}, ...], "results": [...]}.
    composed: list[Mapping[str, Any]] = field(default_factory=list)
    #: (embeddings (N, E), modality of each row (N,), class of each row (N,)) -> a 2-D PCA scatter.
    embedding_map: tuple[np.ndarray, Sequence[str], Sequence[str]] | None = None
    #: ablation tables {"name", "rows": [{column: value}], "note"}.
    ablations: list[Mapping[str, Any]] = field(default_factory=list)
    #: free text (Markdown in report.md, paragraphs split on blank lines in report.html).
    notes: str = ""
    #: run facts such as {"wall time (s)": 812.4, "steps": 2000, "trainable parameters": 1234567}.
    facts: dict[str, Any] = field(default_factory=dict)


def _fmt(v: Any) -> str:
    """A table cell: ints with thousands separators, floats with 4 significant digits."""
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


def _md(text: str) -> str:
    """Text for Markdown: angle brackets escaped so that "<run>" is not taken for an HTML tag."""
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _pct(v: Any) -> str:
    """A fraction in [0, 1] as a percentage with one decimal."""
    return "–" if v is None else f"{100.0 * float(v):.1f}"


class _Doc:
    """The report being written, as parallel HTML and Markdown parts plus the figures' PNG bytes."""

    def __init__(self, fig_dir: Path) -> None:
        self.fig_dir = fig_dir
        self.html: list[str] = []
        self.md: list[str] = []
        self.count = 0

    def heading(self, text: str, level: int = 2) -> None:
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")
        self.md.append(f"{'#' * level} {_md(text)}\n")

    def para(self, text: str) -> None:
        self.html.append(f"<p>{html.escape(text)}</p>")
        self.md.append(f"{_md(text)}\n")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]], classes: Sequence[str] = ()) -> None:
        """A table; ``classes[i]`` (if given) is a CSS class for row i's last cell (pass/fail)."""
        cells = [[_fmt(c) for c in r] for r in rows]
        out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
        for i, r in enumerate(cells):
            cls = [""] * len(r)
            if i < len(classes) and classes[i]:
                cls[-1] = f' class="{html.escape(classes[i])}"'
            out.append("<tr>" + "".join(f"<td{k}>{html.escape(c)}</td>" for k, c in zip(cls, r)) + "</tr>")
        self.html.append("".join(out) + "</table>")

        def md_cell(c: str) -> str:
            return _md(c).replace("|", "\\|").replace("\n", " ")

        self.md.append("| " + " | ".join(md_cell(h) for h in header) + " |")
        self.md.append("|" + "|".join(["---"] * len(header)) + "|")
        self.md.extend("| " + " | ".join(md_cell(c) for c in r) + " |" for r in cells)
        self.md.append("")

    def figure(self, fig: Any, name: str, caption: str) -> None:
        """Save a matplotlib Figure as PNG: embedded in the HTML, written to ``fig_dir`` for the Markdown."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        png = buf.getvalue()
        self.count += 1
        fname = f"{self.count:02d}_{re.sub(r'[^A-Za-z0-9_-]+', '_', name)}.png"
        self.fig_dir.mkdir(parents=True, exist_ok=True)
        (self.fig_dir / fname).write_bytes(png)
        src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        self.html.append(f'<figure><img src="{src}" alt="{html.escape(caption)}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        alt = _md(caption).replace("[", "(").replace("]", ")").replace("\n", " ")
        self.md.append(f"![{alt}]({self.fig_dir.name}/{fname})\n\n*{alt}*\n")


def _new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure (imported lazily so the package works without the ``demo`` extra)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the demo report needs matplotlib: pip install 'unialign[demo]'") from exc
    return Figure(figsize=(width, height), layout="constrained")


# ---------------------------------------------------------------------------------------- thumbnails


def _kind(item: Mapping[str, Any]) -> str:
    """How to draw an item: its "kind", else its modality when known, else guessed from the extension."""
    kind = str(item.get("kind") or item.get("modality", ""))
    if kind in ("image", "depth", "point", "audio", "video", "text"):
        return kind
    suffix = Path(str(item.get("file", ""))).suffix.lower()
    return next((k for k, exts in _EXTENSIONS if suffix in exts), kind)


def _video_strip(path: Path, count: int = 4) -> np.ndarray:
    """`count` evenly spaced frames of a video side by side -> (H, count * W + gaps, 3) uint8."""
    from unialign.preprocess.video import _scan, read_frames  # the library's own robust decoder

    pts = _scan(path)
    idx = sorted({round(float(i)) for i in np.linspace(0, max(len(pts) - 1, 0), count)})
    clip = read_frames(path, [idx], len(pts), pts)[0]  # (T, 3, H, W) in [0, 1]
    frames = (clip.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    gap = np.full((frames.shape[1], max(2, frames.shape[2] // 30), 3), 255, np.uint8)
    parts = [p for f in frames for p in (f, gap)][:-1]
    return np.concatenate(parts, axis=1)


def _draw_item(ax: Any, item: Mapping[str, Any]) -> None:
    """Draw one gallery item's content into `ax` by its modality."""
    kind, path = _kind(item), Path(str(item.get("file", "")))
    if kind == "image":
        from unialign.preprocess.image import open_rgb

        im = open_rgb(path)
        im.thumbnail((160, 160))
        ax.imshow(np.asarray(im))
    elif kind == "depth":
        from unialign.preprocess.depth import DepthPreprocess, read_disparity

        disp = read_disparity(path, DepthPreprocess())[0, 0].numpy()  # (H, W) in [0, 1], invalid 0
        valid = disp > 0
        lo, hi = np.percentile(disp[valid], [2, 98]) if valid.any() else (0.0, 1.0)
        shown = np.ma.masked_where(~valid, np.clip((disp - lo) / max(hi - lo, 1e-9), 0, 1))
        ax.imshow(shown, cmap="magma", vmin=0, vmax=1)
        ax.set_facecolor("black")
    elif kind == "point":
        from unialign.preprocess.pointcloud import read_points

        xyz = read_points(path).xyz
        if len(xyz) > 2048:
            xyz = xyz[np.linspace(0, len(xyz) - 1, 2048).astype(int)]
        az, el = math.radians(35), math.radians(20)  # a fixed oblique view for a 3-D impression
        rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
        rx = np.array([[1, 0, 0], [0, math.cos(el), -math.sin(el)], [0, math.sin(el), math.cos(el)]])
        p = (xyz - xyz.mean(0)) @ (rx @ rz).T
        order = np.argsort(p[:, 1])[::-1]  # far points first so near ones are drawn on top
        ax.scatter(p[order, 0], p[order, 2], c=-p[order, 1], s=3, cmap="viridis", linewidths=0)
        ax.set_aspect("equal", adjustable="datalim")
    elif kind == "audio":
        import torch

        from unialign.ops.fbank import fbank
        from unialign.preprocess.audio import read_audio

        wav, rate = read_audio(path)
        wav = wav[: int(rate * 10)]
        if len(wav) < int(rate * 0.025) + 1:  # shorter than one 25 ms frame
            wav = torch.nn.functional.pad(wav, (0, int(rate * 0.025) + 1 - len(wav)))
        mel = fbank(wav.double(), rate, num_mel_bins=64).numpy()  # (frames, 64)
        ax.imshow(mel.T, origin="lower", aspect="auto", cmap="magma")
    elif kind == "video":
        ax.imshow(_video_strip(path))
    else:  # text, or anything else: its words
        text = str(item.get("text") or (path.read_text()[:200] if path.is_file() else item.get("label", "")))
        ax.text(0.5, 0.5, textwrap.fill(text, 18), ha="center", va="center", fontsize=8, wrap=True)
        ax.set_xlim(0, 1), ax.set_ylim(0, 1)


def _tile(ax: Any, item: Mapping[str, Any], title: str, colour: str, problems: list[str]) -> None:
    """One framed thumbnail with a title; a file that cannot be drawn shows (and records) why."""
    try:
        _draw_item(ax, item)
    except Exception as exc:  # noqa: BLE001 - a broken file should cost one tile, not the whole report
        msg = f"{item.get('file', '?')}: {type(exc).__name__}: {exc}"
        problems.append(msg)
        ax.text(0.5, 0.5, textwrap.fill(f"cannot draw\n{type(exc).__name__}", 16), ha="center", va="center",
                fontsize=7, color="#c62828", transform=ax.transAxes)
    ax.set_xticks([]), ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour), spine.set_linewidth(3)
    ax.set_title(title, fontsize=8)


def _row_figure(lead: Sequence[tuple[Mapping[str, Any], str]], results: Sequence[Mapping[str, Any]],
                labels: set[str], problems: list[str]) -> Any:
    """A row: the query item(s) framed blue, then results framed green (label matches) or red."""
    widths = [2.0 if _kind(item) == "video" else 1.0 for item in [x for x, _ in lead] + list(results)]
    fig = _new_figure(1.75 * sum(widths), 2.1)
    axes = np.atleast_1d(fig.subplots(1, len(widths), width_ratios=widths))  # a video strip gets 2 columns
    for ax, (item, title) in zip(axes, lead):
        _tile(ax, item, title, "#1f5fbf", problems)
    for rank, (ax, r) in enumerate(zip(axes[len(lead):], results), start=1):
        ok = str(r.get("label")) in labels
        title = f"#{rank} {r.get('modality', '')} {float(r.get('score', math.nan)):.2f}\n{r.get('label', '')}"
        _tile(ax, r, title, "#2e9d44" if ok else "#d23b3b", problems)
    return fig


# ------------------------------------------------------------------------------------------- sections


def _zero_shot(doc: _Doc, res: DemoResults) -> None:
    rows, marks = [], []
    for mod, z in res.zero_shot.items():
        chance = float(z.get("chance") or 1.0 / max(int(z.get("num_classes", 1)), 1))
        top1 = float(z.get("top1", math.nan))
        ratio = top1 / chance if chance > 0 else math.nan
        ok = ratio >= res.pass_ratio
        rows.append([mod, z.get("dataset", ""), z.get("num_classes"), z.get("num_samples"), _pct(top1),
                     _pct(z.get("top5")), _pct(chance), f"{ratio:.2f}×", "✓ pass" if ok else "✗ fail"])
        marks.append("pass" if ok else "fail")
    doc.heading("Zero-shot classification")
    doc.para(f"Top-1 / top-5 accuracy in %; a modality passes when top-1 ≥ {res.pass_ratio:g}× chance.")
    doc.table(["modality", "dataset", "classes", "samples", "top-1 %", "top-5 %", "chance %", "top-1 / chance",
               "result"], rows, marks)


def _curves(doc: _Doc, path: Path) -> None:
    """The total loss, then one figure per loss term with a line per modality (and their per-step sum)."""
    series: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(rec, dict) or "step" not in rec:
            continue
        for key, value in rec.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            modality, _, term = key.partition("/")
            if key == "loss":
                series.setdefault("total loss", {}).setdefault("total", []).append((rec["step"], value))
            elif term and "_loss" in term:
                series.setdefault(term, {}).setdefault(modality, []).append((rec["step"], value))
    if not series:
        return
    doc.heading("Training curves")
    doc.para(f"From {path.name}: {len(series)} figure(s).")
    for term, lines in series.items():
        fig = _new_figure(5.0, 2.6)
        ax = fig.subplots()
        total: dict[float, float] = {}
        for mod, pts in sorted(lines.items()):
            xs, ys = zip(*pts)
            ax.plot(xs, ys, label=mod, lw=1.4)
            for x, y in pts:
                total[x] = total.get(x, 0.0) + y
        if len(lines) > 1:
            xs, ys = zip(*sorted(total.items()))
            ax.plot(xs, ys, "k--", label="sum", lw=1.2)
        ax.set_xlabel("step"), ax.set_ylabel(term), ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        doc.figure(fig, f"curve_{term}", f"Training: {term} per modality" if term != "total loss"
                   else "Training: total loss")


def _confusions(doc: _Doc, confusion: Mapping[str, tuple[np.ndarray, Sequence[str]]]) -> None:
    doc.heading("Confusion matrices")
    for mod, (matrix, names) in confusion.items():
        m = np.asarray(matrix, dtype=np.int64)
        c = m.shape[0]
        rate = m / np.maximum(m.sum(1, keepdims=True), 1)  # colour = row-normalised recall
        side = min(2.5 + 0.32 * c, 9.0)
        fig = _new_figure(side + 0.8, side)
        ax = fig.subplots()
        im = ax.imshow(rate, cmap="Blues", vmin=0, vmax=1)
        fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of row")
        if c <= 30:
            short = [str(n)[:14] for n in names]
            ax.set_xticks(range(c), short, rotation=90, fontsize=7), ax.set_yticks(range(c), short, fontsize=7)
        if c <= 15:
            for i, j in np.ndindex(c, c):
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rate[i, j] > 0.5 else "black")
        acc = np.trace(m) / max(m.sum(), 1)
        ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title(f"{mod}: accuracy {100 * acc:.1f}%")
        doc.figure(fig, f"confusion_{mod}", f"Confusion matrix, {mod} ({c} classes, {int(m.sum())} samples)")


def _embedding_map(doc: _Doc, emb: np.ndarray, modalities: Sequence[str], classes: Sequence[str]) -> None:
    x = np.asarray(emb, dtype=np.float64)
    x = x - x.mean(0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T if vt.shape[0] >= 2 else np.pad(x @ vt.T, ((0, 0), (0, 2 - vt.shape[0])))
    var = (s[:2] ** 2) / max(float((s**2).sum()), 1e-12)
    mods, cls = list(dict.fromkeys(map(str, modalities))), list(dict.fromkeys(map(str, classes)))
    fig = _new_figure(6.5, 4.5)
    ax = fig.subplots()
    from matplotlib.lines import Line2D

    colours = [f"C{i % 10}" for i in range(len(mods))]
    mod_arr, cls_arr = np.array(list(map(str, modalities))), np.array(list(map(str, classes)))
    for mi, m in enumerate(mods):
        for ci, c in enumerate(cls):
            sel = (mod_arr == m) & (cls_arr == c)
            if sel.any():
                ax.scatter(xy[sel, 0], xy[sel, 1], c=colours[mi], marker=_MARKERS[ci % len(_MARKERS)], s=28,
                           alpha=0.8, linewidths=0)
    handles = [Line2D([], [], color=colours[i], marker="o", ls="", label=m) for i, m in enumerate(mods)]
    legend = ax.legend(handles=handles, title="modality", fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.add_artist(legend)
    handles = [Line2D([], [], color="grey", marker=_MARKERS[i % len(_MARKERS)], ls="", label=c[:16])
               for i, c in enumerate(cls[:20])]
    ax.legend(handles=handles, title="class", fontsize=7, loc="lower left", bbox_to_anchor=(1.01, 0))
    ax.set_xlabel(f"PC1 ({100 * var[0]:.0f}% var.)"), ax.set_ylabel(f"PC2 ({100 * var[-1]:.0f}% var.)")
    ax.grid(alpha=0.3)
    doc.heading("Embedding map")
    doc.figure(fig, "embedding_map", f"PCA of {len(x)} embeddings: colour = modality, marker = class")


def write_report(out_dir: Path, results: DemoResults) -> tuple[Path, Path]:
    """Write ``out_dir/report.html`` (self-contained) and ``out_dir/report.md`` (+ ``out_dir/figures/``).

    Returns (html path, markdown path). Files that cannot be drawn become a marked tile and are listed
    under "Rendering problems" rather than failing the report.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc, res = _Doc(out_dir / "figures"), results
    problems: list[str] = []
    doc.heading(res.title, 1)
    if res.facts:
        doc.heading("Run")
        doc.table(["fact", "value"], [[k, v] for k, v in res.facts.items()])
    if res.zero_shot:
        _zero_shot(doc, res)
    if res.retrieval:
        doc.heading("Cross-modal retrieval")
        doc.table(["query → gallery", "R@1 %", "R@5 %", "R@10 %"],
                  [[f"{q} → {g}"] + [_pct(r.get(k)) for k in ("R@1", "R@5", "R@10")]
                   for (q, g), r in res.retrieval.items()])
    if res.metrics_jsonl is not None and Path(res.metrics_jsonl).is_file():
        _curves(doc, Path(res.metrics_jsonl))
    if res.confusion:
        _confusions(doc, res.confusion)
    if res.gallery:
        doc.heading("Retrieval gallery")
        doc.para("Each query's best match in every modality, best first. Query framed blue; results framed "
                 "green when their label matches the query's, else red (the datasets have their own "
                 "vocabularies, so a cross-modal match is green only where the label words coincide).")
        for i, q in enumerate(res.gallery):
            title = f"query · {q.get('modality', '')}\n{q.get('label', '')}"
            fig = _row_figure([(q, title)], q.get("results", []), {str(q.get("label"))}, problems)
            doc.figure(fig, f"gallery_{i}", f"{q.get('modality', '')} query '{q.get('label', '')}' → top "
                       f"{len(q.get('results', []))}")
    if res.composed:
        doc.heading("Composed queries")
        for i, cq in enumerate(res.composed):
            inputs = list(cq.get("inputs", []))
            lead = [(x, f"× {float(x.get('weight', 1.0)):.2g} · {x.get('modality', '')}\n{x.get('label', '')}")
                    for x in inputs]
            fig = _row_figure(lead, cq.get("results", []), {str(x.get("label")) for x in inputs}, problems)
            parts = " + ".join(f"{float(x.get('weight', 1.0)):.2g}·{x.get('modality', '')} '{x.get('label', '')}'"
                               for x in inputs)
            doc.figure(fig, f"composed_{i}", f"Composed query {parts} → top {len(cq.get('results', []))}")
    if res.embedding_map is not None:
        _embedding_map(doc, *res.embedding_map)
    for ab in res.ablations:
        doc.heading(f"Ablation: {ab.get('name', '')}")
        rows = list(ab.get("rows", []))
        cols = list(dict.fromkeys(k for r in rows for k in r))
        doc.table(cols, [[r.get(c, "") for c in cols] for r in rows])
        if ab.get("note"):
            doc.para(str(ab["note"]))
    if res.notes.strip():
        doc.heading("Notes")
        for para in re.split(r"\n\s*\n", res.notes.strip()):
            doc.html.append(f"<p>{html.escape(para)}</p>")
        doc.md.append(res.notes.strip() + "\n")
    if problems:
        doc.heading("Rendering problems")
        doc.html.append("<pre>" + html.escape("\n".join(problems)) + "</pre>")
        doc.md.append("```\n" + "\n".join(problems) + "\n```\n")
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    html_path.write_text(f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
                         f"{html.escape(res.title)}</title><style>{_CSS}</style></head><body>\n"
                         + "\n".join(doc.html) + f"\n<script>{PROBE_SCRIPT}</script>\n</body></html>\n",
                         encoding="utf-8")
    md_path.write_text("\n".join(doc.md), encoding="utf-8")
    return html_path, md_path
