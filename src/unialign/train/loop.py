"""The one-phase training loop (paper §3.2-3.3): every step holds micro-batches of all datasets.

For each optimizer step the mixed sampler hands every dataset (one modality each) its share of the
global batch. *Modality-aware gradient accumulation*: each micro-batch is encoded, its losses computed
and back-propagated on its own (gradients accumulate); the optimizer steps once after all of them.
Per micro-batch of modality m with samples x, paired texts t (label prompts or captions), optional
paired images i (rendered views / RGB) and cached teacher features:

    L = L_NCE(x, t) [+ L_NCE(x, i)]                                   CLIP InfoNCE
      + a1 * sum_{d' of another modality} KL(S(y, Y_d') || S(x, Y_d'))  Eq. 11, this dataset's half
      + a2 * L_anch_distil(x, t, i)                                   Eq. 12
      + a3 * (lam * L_feat_align + L_modal_align)                     Eq. 13-15, per teacher of m

(L_modal_align needs the teacher's features of the paired anchor, cached as ``"<teacher>:anchor"``;
without them only the feature alignment of Eq. 13 is used.)

Datasets come from JSONL manifests (``data:``, drawn by the mixed-modality sampler) or tar shards
(``shards:``, streamed); one weight split of the global batch covers both. Resume is exact for manifest
datasets; shard streams restart at their first epoch (webdataset-style), since a tar stream has no index.

Both halves of Eq. 11 appear once each dataset's micro-batch is processed, so the step's total equals
Eq. 16 summed over datasets. Multi-process (torchrun): embeddings are all-gathered with gradient, so
every rank computes the global batch's loss, and trainable gradients are summed over ranks once per step.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from unialign.checkpoint import ADAPTERS, load_train_state, resolve_checkpoint, save_checkpoint
from unialign.config import to_dict
from unialign.errors import UniAlignError
from unialign.factory import create_model
from unialign.losses import anchor_distil_loss, model_distil_loss, nce_loss, soft_bind_term
from unialign.train.config import TrainConfig
from unialign.train.distributed import (
    DistInfo, all_gather_with_grad, any_rank, average_buffers, init_distributed, sum_gradients,
)
from unialign.train.optim import build_optimizer, build_scheduler


class TrainingError(UniAlignError, RuntimeError):
    """Training cannot go on (e.g. too many non-finite losses in a row)."""


class Trainer:
    """Builds model, data, optimizer and schedule from a :class:`TrainConfig` and runs the loop."""

    def __init__(self, cfg: TrainConfig, info: DistInfo | None = None) -> None:
        from unialign.data import MixedModalitySampler, build_datasets, build_shard_datasets, split_batch

        self.cfg = cfg
        self.info = info or init_distributed(cfg.train.collective_timeout_s)
        torch.manual_seed(cfg.train.seed)
        self.model = create_model(
            cfg.model, base=cfg.base or None, grad_checkpointing=cfg.train.grad_checkpointing
        ).to(self.info.device)
        self.datasets = build_datasets(cfg.data, self.model.config)
        self.shard_sets = build_shard_datasets(
            cfg.shards, self.model.config, seed=cfg.train.seed, rank=self.info.rank, world_size=self.info.world_size
        )
        self.sources = {**self.datasets, **self.shard_sets}  # every dataset by name
        if not self.sources:
            raise TrainingError("the training config lists no datasets under 'data:' or 'shards:'")
        # one weight split of the global batch over manifest and shard datasets alike
        names = list(self.datasets) + list(self.shard_sets)
        weights = [self.datasets[n].cfg.weight if n in self.datasets else self.shard_sets[n].weight for n in names]
        sizes = dict(zip(names, split_batch(weights, cfg.train.global_batch, self.info.world_size)))
        self.shard_local = {n: sizes[n] // self.info.world_size for n in self.shard_sets}
        self._shard_streams = {n: self._stream(ds) for n, ds in self.shard_sets.items()}
        self.sampler = None
        if self.datasets:
            self.sampler = MixedModalitySampler.from_datasets(
                self.datasets, sum(sizes[n] for n in self.datasets), seed=cfg.train.seed,
                rank=self.info.rank, world_size=self.info.world_size, aug_views=cfg.train.aug_views,
            )
        self.params = self.model.trainable_parameters()
        self.opt = build_optimizer(self.model, cfg.optim)
        self.sched = build_scheduler(self.opt, cfg.optim, cfg.train.steps)
        self.cache = None
        if cfg.teachers_cache:
            from unialign.data import TeacherCache

            self.cache = TeacherCache(cfg.teachers_cache)
            cached = set(self.cache.teachers())
            self.cached_teachers = {m: [t for t, c in self.model.config.teachers.items()
                                        if c.modality == m and t in cached] for m in self.model.config.modalities}
            if not cached & set(self.model.config.teachers):
                raise TrainingError(f"teacher cache {cfg.teachers_cache} holds none of the model's teachers "
                                    f"{sorted(self.model.config.teachers)} (found {sorted(cached)})")
        self.label_bank = self._label_bank()
        self.step, self.bad_streak, self.skipped_steps = 0, 0, 0
        self.out = Path(cfg.out)
        self._sampler_iter = None

    # ------------------------------------------------------------------ set-up helpers

    @torch.no_grad()
    def _label_bank(self) -> dict[str, Tensor]:
        """Per dataset with classes: template-averaged, re-normalised text embeddings of its labels (N, E)."""
        from unialign.eval.zeroshot import class_embeddings

        bank = {}
        for name, ds in self.sources.items():
            if ds.classnames:
                bank[name] = class_embeddings(self.model, ds.classnames, ds.templates).to(self.info.device)
        return bank

    def _kind(self, modality: str) -> str:
        """The tokenizer type of a modality name (datasets of one type count as one modality)."""
        return self.model.config.modalities[modality].get("type", modality)

    def _autocast(self):  # noqa: ANN202
        if not self.cfg.train.bf16:
            return nullcontext()
        return torch.autocast(self.info.device.type, dtype=torch.bfloat16)

    # ------------------------------------------------------------------ losses

    def micro_batch_losses(self, mb: Any) -> dict[str, Tensor]:
        """Named loss terms of one dataset's micro-batch (see the module docstring)."""
        lc, info, model = self.cfg.loss, self.info, self.model
        kind = self._kind(mb.modality)
        inputs = mb.inputs.to(info.device)
        with self._autocast():
            x = model.encode(mb.modality, inputs).float()  # (b, E) unit-norm, with grad
        xg = all_gather_with_grad(x, info)  # (B, E): the whole step's micro-batch of this dataset
        with torch.no_grad():
            t = all_gather_with_grad(model.encode_text(mb.texts).float(), info)
        has_labels = bool((mb.labels >= 0).all())
        labels = all_gather_with_grad(mb.labels.to(info.device), info) if has_labels else None
        scale = model.logit_scale.detach()
        terms: dict[str, Tensor] = {}
        if lc.nce:
            terms["nce_loss"] = lc.nce * nce_loss(xg, t, scale, labels=labels)["nce_loss"]
        img = None
        if mb.anchors is not None and kind != "image":
            with torch.no_grad(), model.disable_adapters():  # the frozen CLIP image space is the anchor
                img = all_gather_with_grad(model.encode("image", mb.anchors.to(info.device)).float(), info)
            if lc.nce and lc.image_anchor_nce:
                terms["nce_image_loss"] = lc.nce * nce_loss(xg, img, scale)["nce_loss"]
            if lc.anchor_distil:
                terms["anchor_distil_loss"] = lc.anchor_distil * anchor_distil_loss(
                    xg, t, img, temperature=lc.temperature, direction=lc.direction
                )["anchor_distil_loss"]
        if lc.soft_bind and has_labels and mb.dataset in self.label_bank:
            own = self.label_bank[mb.dataset][labels]  # (B, E) text embedding of each sample's label
            others = [
                bank for name, bank in self.label_bank.items()
                if self._kind(self.sources[name].modality) != kind
            ]
            if others:
                sb = sum(soft_bind_term(xg, own, bank, lc.temperature, lc.direction) for bank in others)
                terms["soft_bind_loss"] = lc.soft_bind * sb / len(others)
        if lc.model_distil and mb.teacher:
            terms.update(self._model_distil(mb, x, xg, t))
        return terms

    def _model_distil(self, mb: Any, x: Tensor, xg: Tensor, t: Tensor) -> dict[str, Tensor]:
        """Eq. 13-15 for each configured teacher of this modality whose features the cache supplied."""
        lc, info, out = self.cfg.loss, self.info, {}
        for name, tcfg in self.model.config.teachers.items():
            if tcfg.modality != mb.modality or name not in mb.teacher:
                continue
            feats = mb.teacher[name].to(info.device).float()  # (b, T) cached teacher features of x
            anchor = mb.teacher.get(f"{name}:anchor")  # (b, T) teacher features of the paired anchor
            proj = self.model.project_to_teacher(name, x)  # (b, T)
            teacher_ext = all_gather_with_grad(feats, info)
            if anchor is not None:  # Eq. 14 needs the teacher's view of the paired anchor too
                s_anchor, t_anchor = t, all_gather_with_grad(anchor.to(info.device).float(), info)
            else:  # only Eq. 13 can be computed; the relation term below is dropped
                s_anchor, t_anchor = xg, teacher_ext
            res = model_distil_loss(
                proj, feats, xg, s_anchor, teacher_ext, t_anchor, lam=lc.lam, temperature=lc.temperature,
                direction=lc.direction,
            )
            # feature alignment is a per-sample mean over this rank's rows: scale so that summing
            # gradients over ranks gives the mean over the global batch
            out[f"feat_align_loss/{name}"] = lc.model_distil * res["feat_align_loss"] / info.world_size
            if anchor is not None:
                out[f"modal_align_loss/{name}"] = lc.model_distil * res["modal_align_loss"]
        return out

    # ------------------------------------------------------------------ one step

    def micro_batches(self, plan: dict[str, list[tuple[int, int]]]) -> list[Any]:
        """Load and collate each dataset's share of a step (joined with cached teacher features)."""
        from unialign.data import collate_samples, join

        out = []
        for name in sorted(plan):
            ds = self.datasets[name]
            mb = collate_samples([ds.get(i, seed, train=True) for i, seed in plan[name]], name, ds.modality)
            if self.cache is not None and self.cached_teachers[ds.modality]:
                join(mb, self.cache, self.cached_teachers[ds.modality])
            out.append(mb)
        for name in sorted(self.shard_sets):
            ds = self.shard_sets[name]
            stream = self._shard_streams[name]
            out.append(collate_samples([next(stream) for _ in range(self.shard_local[name])], name, ds.modality))
        return out

    @staticmethod
    def _stream(ds: Any):  # noqa: ANN205 - endless iterator over a shard dataset, epoch after epoch
        epoch = 0
        while True:
            ds.set_epoch(epoch)
            yield from ds
            epoch += 1

    def accumulate_gradients(self, batches: list[Any]) -> tuple[dict[str, float], bool]:
        """Forward, loss and backward for each micro-batch in turn; gradients accumulate (no step).

        Returns the summed named losses for logging and whether a non-finite loss stopped the pass.
        """
        self.model.train()
        logged: dict[str, float] = {}
        for mb in batches:
            terms = self.micro_batch_losses(mb)
            total = sum(terms.values())
            if not torch.isfinite(total):
                return logged, True
            total.backward()  # modality-aware gradient accumulation: one backward per micro-batch
            for key, value in terms.items():
                logged[f"{mb.modality}/{key}"] = logged.get(f"{mb.modality}/{key}", 0.0) + float(value.detach())
            logged["loss"] = logged.get("loss", 0.0) + float(total.detach())
        return logged, False

    def train_step(self, plan: dict[str, list[tuple[int, int]]]) -> dict[str, float] | None:
        """One optimizer step over the plan's micro-batches; None when it was skipped (non-finite loss)."""
        self.opt.zero_grad(set_to_none=True)
        logged, bad = self.accumulate_gradients(self.micro_batches(plan))
        if any_rank(bad, self.info):
            self.opt.zero_grad(set_to_none=True)
            self.bad_streak += 1
            self.skipped_steps += 1
            if self.bad_streak >= self.cfg.train.max_bad_steps:
                raise TrainingError(
                    f"{self.bad_streak} consecutive steps with a non-finite loss (last at step {self.step}); "
                    "stopping. Lower the learning rate or check the data."
                )
            return None
        self.bad_streak = 0
        sum_gradients(self.params, self.info)
        average_buffers(self.model.tokenizers, self.info)
        if self.cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.optim.grad_clip)
        self.opt.step()
        self.sched.step()
        return logged

    # ------------------------------------------------------------------ checkpoints

    def train_state(self) -> dict[str, Any]:
        return {
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "sampler": self.sampler.state_dict() if self.sampler is not None else {},
            "torch_rng": torch.get_rng_state(),
            "step": self.step,
            "bad_streak": self.bad_streak,
            "skipped_steps": self.skipped_steps,
        }

    def save(self) -> None:
        if self.info.is_main:
            save_checkpoint(self.model, self.out / "checkpoint", self.train_state(), meta={"step": self.step})
        if self.info.world_size > 1:
            torch.distributed.barrier()

    def resume(self) -> bool:
        """Continue from ``OUT/checkpoint`` when it exists (weights, optimizer, schedule, sampler, RNG)."""
        folder = resolve_checkpoint(self.out / "checkpoint")  # survives a kill between the two renames
        state = load_train_state(folder) if (folder / ADAPTERS).is_file() else None
        if state is None:
            return False
        from safetensors.torch import load_file

        self.model.load_state_dict(load_file(str(folder / ADAPTERS)), strict=False)
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        if self.sampler is not None:
            self.sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        self.step, self.bad_streak, self.skipped_steps = state["step"], state["bad_streak"], state["skipped_steps"]
        if self.info.is_main:
            self._trim_metrics()
        return True

    def _trim_metrics(self) -> None:
        """Drop ``metrics.jsonl`` lines logged after the checkpoint's step (a killed run logged steps that
        the resumed run repeats) and a torn last line; rewritten atomically."""
        path = self.out / "metrics.jsonl"
        if not path.is_file():
            return
        keep = []
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # torn by the kill
            if isinstance(row, dict) and int(row.get("step", 0)) <= self.step:
                keep.append(line)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        tmp.replace(path)

    # ------------------------------------------------------------------ the loop

    def run(self, max_steps: int | None = None, progress: bool = True) -> dict[str, Any]:
        """Train until ``train.steps`` (or `max_steps` more steps), logging and checkpointing on the way."""
        run = self.cfg.train
        self.out.mkdir(parents=True, exist_ok=True)
        if self.info.is_main:
            (self.out / "train_config.json").write_text(json.dumps(to_dict(self.cfg), indent=2, default=str))
        stop = run.steps if max_steps is None else min(run.steps, self.step + max_steps)
        writer = self._tensorboard()
        metrics_path = self.out / "metrics.jsonl"
        bar = tqdm(total=stop, initial=self.step, disable=not (progress and self.info.is_main), desc="train")
        steps = self._plans()
        last: dict[str, float] = {}
        while self.step < stop:
            t0 = time.perf_counter()
            logged = self.train_step(next(steps))
            self.step += 1
            if logged is not None:
                last = logged | {"lr": self.sched.get_last_lr()[0], "step_time": time.perf_counter() - t0}
            if self.info.is_main and (self.step % run.log_every == 0 or self.step == stop):
                line = {"step": self.step, "skipped_steps": self.skipped_steps, **last}
                with open(metrics_path, "a") as f:
                    f.write(json.dumps(line) + "\n")
                if writer is not None:
                    for k, v in last.items():
                        writer.add_scalar(k, v, self.step)
            bar.update(1)
            per_modality: dict[str, float] = {}
            for key, value in last.items():
                if "/" in key:
                    per_modality[key.split("/")[0]] = per_modality.get(key.split("/")[0], 0.0) + value
            bar.set_postfix({k: f"{v:.3g}" for k, v in {"loss": last.get("loss", math.nan), **per_modality}.items()})
            if self.step % run.save_every == 0 or self.step == stop:
                self.save()
        bar.close()
        if writer is not None:
            writer.close()
        return {"step": self.step, "skipped_steps": self.skipped_steps, "last": last,
                "loss": last.get("loss", math.nan)}

    def _plans(self):  # noqa: ANN202 - endless iterator over step plans, epoch after epoch
        while True:
            if self.sampler is None:  # shards only: each step's data comes from the shard streams
                yield {}
            else:
                yield from self.sampler

    def _tensorboard(self):  # noqa: ANN202
        if not (self.cfg.train.tensorboard and self.info.is_main):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(str(self.out / "tensorboard"))
