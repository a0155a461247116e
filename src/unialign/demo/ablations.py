"""``unialign demo --ablations``: the paper's Tables 8-11 in miniature, on the demo world.

Every row is one UniAlign run (:func:`unialign.demo.train.train_and_evaluate`) from the same base,
teacher cache, seed and step count; only the ablated setting changes. The paper reports SUN-D (depth)
and ModelNet40 (point cloud); the demo's analogues are ``scenes`` (depth) and ``shapes`` (point), and
every table here also lists the other modalities' zero-shot top-1.

=====  ==================================  ==============================================================
table  paper                               demo rows
=====  ==================================  ==============================================================
8      MoE strategy                        grouped (own expert set per modality) vs global routing
9      top-k / experts / init              (1,1,rand) (1,1,CLIP) (1,2,rand) (1,2,CLIP) (2,2,rand) (2,2,CLIP)
10     objectives                          NCE; + soft binding; + anchor distillation; + model distillation
11     modality scaling (NCE only, then    I+D+P (shapes + scenes with their image anchors); + T (pictures:
       all objectives *)                   image-name pairs); + V (clips); + A (sounds); the last with all
                                           four objectives (*)
=====  ==================================  ==============================================================

The row shared by all tables (grouped, 2 experts, top-2, all objectives, all datasets) is trained once.
Single seed, a few hundred samples per class: differences of a few points are within run-to-run noise,
and :func:`run_ablations` says so next to each table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from unialign.demo.train import ALL_OBJECTIVES, RunResult, TrainSetup, train_and_evaluate

#: the paper's datasets of Tables 8-11 → the demo modality standing in for them
TABLES = (8, 9, 10, 11)
PAPER_COLUMNS = {"depth": "SUN-D", "point": "ModelNet40"}
NCE_ONLY = {"nce": 1.0, "soft_bind": 0.0, "anchor_distil": 0.0, "model_distil": 0.0}
SCALING = (("I + D + P", ["shapes", "scenes"]), ("I + T + D + P", ["shapes", "scenes", "pictures"]),
           ("I + T + D + P + V", ["shapes", "scenes", "pictures", "clips"]),
           ("I + T + D + P + V + A", ["shapes", "scenes", "pictures", "clips", "sounds"]))


def _spec(moe: dict[str, Any] | None = None, loss: dict[str, float] | None = None,
          datasets: list[str] | None = None) -> dict[str, Any]:
    return {"moe": moe or {}, "loss": loss or {}, "datasets": datasets}


def table_specs(default_moe: dict[str, Any]) -> list[dict[str, Any]]:
    """The four tables: name, paper finding, rows of (label columns, run spec). ``default_moe`` is the
    demo model's own MoE section: the shared reference row uses it unchanged."""
    ref_init = default_moe.get("init", "random")
    ref = _spec()
    t9 = []
    for k, n in ((1, 1), (1, 2), (2, 2)):
        for init in ("random", "clip"):
            same = k == default_moe.get("top_k", 2) and n == default_moe.get("experts_per_modality", 2) \
                and init == ref_init
            t9.append(({"top-k": k, "experts": n, "init": "CLIP" if init == "clip" else "rand"},
                       ref if same else _spec(moe={"top_k": k, "experts_per_modality": n, "init": init})))
    t10 = [({"NCE": "✓", "soft bind": "✓" if w["soft_bind"] else "×", "anchor distil": "✓" if w["anchor_distil"]
             else "×", "model distil": "✓" if w["model_distil"] else "×"},
            ref if w == ALL_OBJECTIVES else _spec(loss=w))
           for w in (NCE_ONLY, {**NCE_ONLY, "soft_bind": 1.0}, {**NCE_ONLY, "soft_bind": 1.0, "anchor_distil": 1.0},
                     ALL_OBJECTIVES)]
    t11 = [({"pre-training modalities": name}, _spec(loss=NCE_ONLY, datasets=ds)) for name, ds in SCALING]
    t11.append(({"pre-training modalities": SCALING[-1][0] + " *"}, ref))
    return [
        {"name": "Table 8 · modality-aware MoE strategy", "paper": "expert grouping beats global routing "
         "(SUN-D 45.8 vs 45.0, ModelNet40 55.9 vs 55.3)",
         "rows": [({"strategy": "expert grouping"}, ref), ({"strategy": "global routing"},
                                                            _spec(moe={"routing": "global"}))]},
        {"name": "Table 9 · expert network (top-k, experts per modality, init)", "paper": "more experts, "
         "top-2 and CLIP init each help a little (SUN-D 45.0 → 45.8, ModelNet40 54.8 → 55.9)", "rows": t9},
        {"name": "Table 10 · training objectives", "paper": "each objective adds: SUN-D 40.4 → 41.8 → 42.3 "
         "→ 45.8, ModelNet40 38.6 → 40.1 → 40.9 → 55.9 (model distillation the largest step)", "rows": t10},
        {"name": "Table 11 · modality scaling (NCE only; * = all four objectives)", "paper": "with NCE only, "
         "adding modalities changes SUN-D/ModelNet40 little; the four objectives (*) lift both the most",
         "rows": t11},
    ]


def _key(spec: dict[str, Any], every: Sequence[str] = ()) -> str:
    """Identity of a run: a dataset list naming every dataset of the world is the default (None)."""
    datasets = spec["datasets"]
    if datasets is not None and set(datasets) == set(every):
        datasets = None
    return repr((sorted(spec["moe"].items()), sorted(spec["loss"].items()), datasets))


def run_ablations(setup: TrainSetup, out: Path, steps: int, *, tables: Sequence[int] = (8, 9, 10, 11),
                  progress: bool = False, reference: RunResult | None = None,
                  log: Callable[[str], None] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train every distinct row of Tables 8-11 once; -> (report sections, JSON-ready results).

    Args:
        out: runs go to ``out/<index>/`` (each its own ``metrics.jsonl`` and ``checkpoint/``).
        tables: which of the paper's tables (8, 9, 10, 11) to run.
        steps: optimizer steps of every row (the reference row included, unless `reference` is given:
            a finished run with the same steps and settings, reused for the shared row).
        log: called with one line per finished run.
    """
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        raise ValueError(f"no ablation table {unknown}; the tables are {TABLES}")
    specs = [t for number, t in zip(TABLES, table_specs(dict(setup.model_cfg.get("moe", {})))) if number in tables]
    runs: dict[str, RunResult] = {}
    if reference is not None:
        runs[_key(_spec())] = reference
    for table in specs:
        for _, spec in table["rows"]:
            key = _key(spec, list(setup.world.datasets))
            if key in runs:
                continue
            res = train_and_evaluate(setup, Path(out) / f"run_{len(runs):02d}", steps, loss=spec["loss"] or None,
                                     moe=spec["moe"] or None, datasets=spec["datasets"], progress=progress)
            runs[key] = res
            if log is not None:
                log(f"ablation run {len(runs)}: {spec} → " + ", ".join(f"{m} {100 * v:.1f}%"
                                                                       for m, v in res.top1.items()))
    sections, data = [], []
    modalities = list(next(iter(runs.values())).top1)
    for table in specs:
        rows, raw = [], []
        for labels, spec in table["rows"]:
            res = runs[_key(spec, list(setup.world.datasets))]
            trained = set(spec["datasets"] or setup.world.datasets)
            cells = {}
            for m in modalities:
                name = PAPER_COLUMNS.get(m, "")
                col = f"{m} top-1 %" + (f" ({name})" if name else "")
                in_run = any(setup.world.datasets[d].modality == m for d in trained)
                cells[col] = f"{100 * res.top1[m]:.1f}" if in_run else "—"
            rows.append({**{k: str(v) for k, v in labels.items()}, **cells})
            raw.append({"labels": labels, "spec": spec, "top1": res.top1, "seconds": round(res.seconds, 1)})
        sections.append({"name": table["name"], "rows": rows, "note": _finding(table, raw, modalities)})
        data.append({"name": table["name"], "paper": table["paper"], "rows": raw})
    return sections, {"steps": steps, "tables": data, "distinct_runs": len(runs)}


def _finding(table: dict[str, Any], raw: list[dict[str, Any]], modalities: list[str]) -> str:
    """Paper finding vs what these runs show: the mean of the depth and point top-1 per row."""
    keys = [m for m in ("depth", "point") if m in modalities]
    means = [sum(r["top1"][m] for m in keys) / len(keys) for r in raw]
    best = max(range(len(raw)), key=lambda i: means[i])
    label = ", ".join(f"{k} {v}" for k, v in raw[best]["labels"].items())
    spread = 100 * (max(means) - min(means))
    return (f"Paper: {table['paper']}. Here (mean of depth and point top-1): best row '{label}' at "
            f"{100 * means[best]:.1f}%; rows span {spread:.1f} points"
            + (" — within the run-to-run noise of a single-seed miniature (a few points), so no ordering "
               "is claimed." if spread < 5 else ".")
            + " Rows: " + "; ".join(f"{100 * m:.1f}" for m in means) + ".")


__all__ = ["NCE_ONLY", "PAPER_COLUMNS", "SCALING", "TABLES", "run_ablations", "table_specs"]
