"""``unialign.demo.report.write_report`` on tiny real files of every modality: HTML + Markdown report."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from PIL import Image

from media import write_media_files
from unialign.demo.render_check import PROBE_SCRIPT, check_report, find_browser
from unialign.demo.report import DemoResults, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _write_files(folder: Path) -> dict[str, Path]:
    """One small real file per modality, plus a caption text."""
    files = write_media_files(folder)
    files["text"] = folder / "caption.txt"
    files["text"].write_text("a photo of a dog")
    return files


def _results(folder: Path) -> DemoResults:
    files = _write_files(folder)
    metrics = folder / "metrics.jsonl"
    with open(metrics, "w") as f:
        f.writelines(json.dumps({"step": step, "skipped_steps": 0, "loss": 5.0 / step, "lr": 1e-4,
                                 "image/nce_loss": 2.0 / step, "depth/nce_loss": 2.5 / step,
                                 "depth/anchor_distil_loss": 0.5 / step,
                                 "depth/feat_align_loss/teacher": 0.1 / step}) + "\n" for step in range(1, 6))
        f.write("not json\n")

    def item(mod: str, label: str, score: float | None = None) -> dict:
        out = {"modality": mod, "label": label, "file": str(files[mod])}
        return out if score is None else out | {"score": score}

    mods = ["image", "depth", "point", "audio", "video"]
    gallery = [
        item("text", "dog") | {"results": [item(m, "dog" if i % 2 == 0 else "cat", 0.9 - 0.1 * i)
                                           for i, m in enumerate(mods)]},
        item("audio", "cat") | {"results": [item(m, "cat", 0.5) for m in mods[::-1]]},
    ]
    broken = {"modality": "image", "label": "cat", "file": str(folder / "missing.png"), "score": 0.1}
    composed = [{"inputs": [item("image", "dog") | {"weight": 0.7}, item("audio", "bark") | {"weight": 0.3}],
                 "results": [item("video", "dog", 0.8), item("point", "dog", 0.6), broken]}]
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(24, 16))
    return DemoResults(
        title="Demo <run>",
        zero_shot={"image": {"top1": 0.42, "top5": 0.81, "chance": 0.1, "num_classes": 10, "num_samples": 50,
                             "dataset": "toy-images"},
                   "depth": {"top1": 0.2, "top5": 0.55, "num_classes": 10, "num_samples": 40, "dataset": "toy-d"}},
        retrieval={("text", "video"): {"R@1": 0.123, "R@5": 0.456, "R@10": 0.789}},
        metrics_jsonl=metrics,
        confusion={"image": (np.array([[3, 1, 0], [0, 4, 1], [1, 0, 5]]), ["dog", "cat", "bird"]),
                   "depth": (np.eye(4, dtype=int) * 2, ["a", "b", "c", "d"])},
        gallery=gallery,
        composed=composed,
        embedding_map=(emb, ["image", "depth", "audio"] * 8, ["dog", "cat"] * 12),
        ablations=[{"name": "no MoE", "rows": [{"variant": "full", "top1": 0.42}, {"variant": "dense", "top1": 0.3771}],
                    "note": "dense | drops"}],
        notes="First paragraph <b>not bold</b>.\n\nSecond paragraph.",
        facts={"wall time (s)": 12.5, "steps": 2000, "trainable parameters": 1234567},
    )


# total loss + 3 loss terms, 2 confusion matrices, 2 gallery rows, 1 composed row, 1 embedding map
EXPECTED_FIGURES = 4 + 2 + 2 + 1 + 1


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("demo")
    return write_report(folder / "out", _results(folder))


def test_html_is_self_contained_with_every_figure(report: tuple[Path, Path]) -> None:
    html_path, _ = report
    text = html_path.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text
    srcs = re.findall(r'<img src="([^"]*)"', text)
    assert len(srcs) == EXPECTED_FIGURES
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png.startswith(PNG_SIGNATURE) and len(png) > 500
    assert html_path.stat().st_size < 3_000_000
    # tables carry the numbers; ratio to chance and pass/fail (image 4.2x passes, depth 2.0x fails)
    for needle in ("42.0", "81.0", "4.20×", "2.00×", "✓ pass", "✗ fail", "12.3", "45.6", "78.9", "toy-images",
                   "1,234,567", "0.3771", "text → video"):
        assert needle in text, needle
    # everything user-given is escaped
    assert "<b>not bold</b>" not in text and "&lt;b&gt;not bold&lt;/b&gt;" in text
    assert "Demo &lt;run&gt;" in text
    # the missing file became a marked tile and is listed, not a crash
    assert "Rendering problems" in text and "missing.png" in text


def test_markdown_links_existing_pngs(report: tuple[Path, Path]) -> None:
    _, md_path = report
    md = md_path.read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == EXPECTED_FIGURES
    for link in links:
        target = md_path.parent / link
        assert target.is_file() and target.read_bytes().startswith(PNG_SIGNATURE), link
    assert "| image | toy-images | 10 | 50 | 42.0 |" in md
    assert "dense | drops" in md  # an ablation's note is a paragraph, not a table cell
    assert "# Demo &lt;run&gt;" in md  # angle brackets do not become HTML tags
    assert "http://" not in md and "https://" not in md


@pytest.mark.skipif(find_browser() is None, reason="no Chromium to render the HTML (apt-get install "
                    "chromium-headless-shell; make demo installs it when run as root)")
def test_chromium_renders_report_with_every_image(report: tuple[Path, Path], tmp_path: Path) -> None:
    html_path, _ = report
    check = check_report(html_path, screenshot=tmp_path / "out.png")
    assert check.ok, check.problem
    assert check.images == check.expected == html_path.read_text().count("<img ") > 5 and check.broken == 0
    with Image.open(check.screenshot) as im:
        arr = np.asarray(im.convert("L"))
    assert arr.shape == (4000, 1280) and arr.std() > 5  # not a blank page


@pytest.mark.skipif(find_browser() is None, reason="no Chromium")
def test_chromium_check_catches_a_broken_image(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text('<html><body><img src="data:image/png;base64,bm90IGEgcG5n">'
                    f"<script>{PROBE_SCRIPT}</script></body></html>")
    check = check_report(page)
    assert not check.ok and check.broken == 1 and "1 of 1 images failed" in check.problem


def test_render_check_without_browser_says_so(report: tuple[Path, Path], tmp_path: Path) -> None:
    check = check_report(report[0], browser=str(tmp_path / "no-such-chromium"))
    assert not check.ok and "no-such-chromium exited 127" in check.problem and "could not start" in check.problem
