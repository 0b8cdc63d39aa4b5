"""Evaluation harness: methods x task x seeds, with bootstrap intervals, compute columns and a cache.

A :class:`Task` supplies evaluation items, the prompts or templates a sampler
receives, and per-item metrics of the chosen output. A :class:`Method` is a
labelled sampler plus the rule that picks one output per item. :func:`evaluate`
runs every method on every item for every seed and returns a :class:`Report`:

* per method and metric, the mean over (item, seed) pairs with a 95 % percentile
  bootstrap interval (:func:`bootstrap_ci`; items are resampled, all seeds of an
  item travel together);
* compute per item: denoiser calls (``nfe``: batched forward passes),
  ``particle_forwards`` (rows x forward passes: the real compute, what equal-compute
  comparisons hold fixed), reward calls (per prompt, as the result counts them), the
  sampler's wall time (the task's scoring excluded), and the generalised order metric
  GOD averaged over particles.

Seeds: item ``k`` under seed ``s`` is sampled with the per-row seed
``s * 1_000_003 + k``, so a result does not depend on ``batch_size`` or on which
other items share its batch (the engine's batch invariance).

Cache: with ``cache_dir``, each (method key, task name, seed) writes one JSON file
of per-item metrics and compute; a rerun reads what exists and computes the rest,
giving the same report. The key defaults to the label plus a fingerprint of the
sampler's ``repr`` (memory addresses removed); pass ``key=`` when that is not
stable.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

from . import distributed
from .errors import ConfigError
from .metrics import order_metrics

__all__ = ["Task", "Method", "Report", "evaluate", "bootstrap_ci", "select_outputs"]

SEED_STRIDE = 1_000_003


@runtime_checkable
class Task(Protocol):
    """An evaluation task. ``mode`` is ``"run"`` (prompts, prefix generation) or ``"infill"`` (templates)."""

    name: str
    mode: str

    def items(self) -> Sequence[Any]:  # pragma: no cover - protocol
        """The evaluation items, in a fixed order."""

    def inputs(self, model, items: Sequence[Any]) -> list[list[int]]:  # pragma: no cover - protocol
        """Prompts (``mode="run"``) or templates (``mode="infill"``) for ``items``, one token list each."""

    def score(self, model, items: Sequence[Any], outputs: torch.Tensor, result) -> dict[str, Sequence[float]]:
        """Per-item metrics of ``outputs [len(items), L]`` (the chosen particle's full sequence).

        ``result`` is the whole :class:`~smcdiff.results.SMCResult` for metrics that need more.
        """  # pragma: no cover - protocol


@dataclass
class Method:
    """A labelled sampler and its output rule.

    ``select``: ``"weight"`` (largest final weight; an exact tie keeps the lowest
    index), ``"trajectory_confidence"`` (SR-SMC's rule), ``"first"`` (particle 0:
    one sample), or a callable ``result -> LongTensor [B]`` (e.g. best-of-N by a
    score). ``gen_length`` is passed to ``run`` for prefix tasks when given.
    """

    label: str
    sampler: Any
    select: str | Callable = "weight"
    gen_length: int | None = None
    key: str | None = None

    def cache_key(self) -> str:
        if self.key is not None:
            return self.key
        text = re.sub(r" at 0x[0-9a-f]+", "", repr(self.sampler)) + f"|{self.select!r}|{self.gen_length}"
        text = re.sub(r"<function ([\w.<>]+) at 0x[0-9a-f]+>", r"\1", text)
        h = hashlib.sha256(text.encode()).hexdigest()[:12]
        return f"{re.sub(r'[^A-Za-z0-9_.=-]+', '_', self.label)}-{h}"


def select_outputs(result, select: str | Callable) -> torch.Tensor:
    """Indices ``[B]`` of the chosen particle per prompt under a :class:`Method` rule."""
    if callable(select):
        idx = torch.as_tensor(select(result), dtype=torch.long).reshape(-1)
        if idx.numel() != result.sequences.shape[0]:
            raise ConfigError(f"select returned {idx.numel()} indices for {result.sequences.shape[0]} prompts")
        return idx
    if select == "first":
        return torch.zeros(result.sequences.shape[0], dtype=torch.long)
    if select == "weight":
        return result.weights.log_w.argmax(dim=1)  # argmax returns the first maximum
    if select == "trajectory_confidence":
        return result.best("trajectory_confidence")[1]
    raise ConfigError(f"select must be 'weight', 'trajectory_confidence', 'first' or a callable; got {select!r}")


def bootstrap_ci(values, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values [n_items, n_seeds]`` (or ``[n]``) with a percentile
    bootstrap interval that resamples items (rows)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if v.size == 0:
        raise ConfigError("bootstrap_ci needs at least one value")
    if not np.isfinite(v).all():
        raise ConfigError("bootstrap_ci got non-finite values; filter or report them explicitly")
    if not 0 < level < 1:
        raise ConfigError(f"level must be in (0, 1); got {level}")
    rows = v.mean(axis=1)
    n = rows.size
    rng = np.random.default_rng(seed)
    boot = rows[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    a = (1 - level) / 2
    lo, hi = np.quantile(boot, [a, 1 - a])
    return float(rows.mean()), float(lo), float(hi)


@dataclass
class Report:
    """The outcome of :func:`evaluate`.

    ``runs[label][seed]`` holds per-item ``metrics`` (name -> list over items) and
    ``compute`` (``nfe``, ``particle_forwards``, ``reward_calls``, ``wall_s``, ``god``: totals or
    means over items). ``table()`` summarises; ``to_markdown()`` / ``save()`` write it.
    """

    task: str
    seeds: list[int]
    n_items: int
    runs: dict[str, dict[int, dict]] = field(default_factory=dict)

    def metric_names(self) -> list[str]:
        names: list[str] = []
        for per_seed in self.runs.values():
            for rec in per_seed.values():
                for k in rec["metrics"]:
                    if k not in names:
                        names.append(k)
        return names

    def table(self) -> list[dict[str, Any]]:
        rows = []
        for label, per_seed in self.runs.items():
            row: dict[str, Any] = {"method": label}
            for m in self.metric_names():
                vals = np.array([per_seed[s]["metrics"][m] for s in self.seeds if m in per_seed[s]["metrics"]]).T
                if vals.size:
                    mean, lo, hi = bootstrap_ci(vals)
                    row[m] = {"mean": mean, "lo": lo, "hi": hi}
            for c in ("nfe", "particle_forwards", "reward_calls", "wall_s"):
                row[c + "_per_item"] = float(np.mean([per_seed[s]["compute"][c] for s in self.seeds])) / self.n_items
            row["god"] = float(np.mean([per_seed[s]["compute"]["god"] for s in self.seeds]))
            rows.append(row)
        return rows

    def to_markdown(self, digits: int = 3) -> str:
        names = self.metric_names()
        head = ["method"] + names + ["NFE/item", "particle-fwd/item", "reward calls/item", "s/item", "GOD"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.table():
            cells = [r["method"]]
            for m in names:
                v = r.get(m)
                cells.append("–" if v is None else f"{v['mean']:.{digits}f} [{v['lo']:.{digits}f}, {v['hi']:.{digits}f}]")
            cells += [f"{r['nfe_per_item']:.1f}", f"{r['particle_forwards_per_item']:.1f}",
                      f"{r['reward_calls_per_item']:.1f}", f"{r['wall_s_per_item']:.3f}", f"{r['god']:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
        note = (f"\n{self.n_items} items x {len(self.seeds)} seeds ({self.task}); mean with 95 % bootstrap "
                f"interval over items.")
        return "\n".join(lines) + note + "\n"

    def save(self, path: str | Path) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"task": self.task, "seeds": self.seeds, "n_items": self.n_items,
                                 "table": self.table(), "runs": {k: {str(s): v for s, v in d.items()}
                                                                 for k, d in self.runs.items()}}, indent=1) + "\n")


def _run_one(model, task: Task, method: Method, items, seed: int, batch_size: int, bar) -> dict:
    metrics: dict[str, list[float]] = {}
    nfe = pf = 0
    gods: list[float] = []
    calls = 0
    wall = 0.0
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        seeds = [seed * SEED_STRIDE + start + k for k in range(len(chunk))]
        inputs = task.inputs(model, chunk)
        t0 = time.perf_counter()
        if task.mode == "infill":
            res = method.sampler.infill(model, inputs, seed=seeds)
        elif task.mode == "run":
            kw = {} if method.gen_length is None else {"gen_length": method.gen_length}
            res = distributed.run(method.sampler, model, inputs, seed=seeds, **kw)  # sharded when launched
        else:
            raise ConfigError(f"task.mode must be 'run' or 'infill'; got {task.mode!r}")
        wall += time.perf_counter() - t0  # sampling only; the task's scoring is not the method's cost
        idx = select_outputs(res, method.select)
        outputs = res.sequences[torch.arange(len(chunk)), idx]
        scores = task.score(model, chunk, outputs, res)
        for k, v in scores.items():
            v = [float(x) for x in v]
            if len(v) != len(chunk):
                raise ConfigError(f"task {task.name!r} metric {k!r} gave {len(v)} values for {len(chunk)} items")
            metrics.setdefault(k, []).extend(v)
        nfe += int(res.nfe.sum())
        if getattr(res, "particle_forwards", None) is not None:
            pf += int(res.particle_forwards.sum())
        else:
            pf += int(sum(int(r.nfe.sum()) for r in res.records)) * res.sequences.shape[1]
        if getattr(res, "reward_calls", None) is not None:
            calls += int(res.reward_calls.sum())
        gods.extend(order_metrics(res)["god"].mean(axis=1).tolist())
        if bar is not None:
            bar.update(len(chunk))
            first = next(iter(metrics), None)
            if first is not None:
                bar.set_postfix({first: f"{np.mean(metrics[first]):.3f}"})
    return {"metrics": metrics,
            "compute": {"nfe": nfe, "particle_forwards": pf, "reward_calls": calls,
                        "wall_s": wall, "god": float(np.mean(gods)) if gods else math.nan}}


def evaluate(model, task: Task, methods: Sequence[Method], seeds: Sequence[int] = (0,), batch_size: int = 16,
             cache_dir: str | Path | None = None, progress: bool = True, n_items: int | None = None) -> Report:
    """Run every method on the task's items (the first ``n_items``) for every seed; see the module doc."""
    if not isinstance(task, Task):
        raise ConfigError(f"task must have name, mode, items(), inputs() and score(); got {type(task).__name__}")
    labels = [m.label for m in methods]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"method labels must be distinct; got {labels}")
    seeds = list(seeds)
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        raise ConfigError(f"seeds must be a non-empty list of ints >= 0; got {seeds!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an int >= 1; got {batch_size!r}")
    items = list(task.items())
    if n_items is not None:
        items = items[:n_items]
    if not items:
        raise ConfigError(f"task {task.name!r} has no items")
    report = Report(task=task.name, seeds=seeds, n_items=len(items))
    cache = Path(cache_dir) if cache_dir is not None else None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(methods) * len(seeds) * len(items), desc=task.name, unit="item")
    for m in methods:
        report.runs[m.label] = {}
        for s in seeds:
            path = None if cache is None else cache / task.name / f"{m.cache_key()}-seed{s}-n{len(items)}.json"
            if path is not None and path.exists():
                rec = json.loads(path.read_text())
                if bar is not None:
                    bar.update(len(items))
            else:
                if bar is not None:
                    bar.set_description(f"{task.name}: {m.label} seed {s}")
                rec = _run_one(model, task, m, items, s, batch_size, bar)
                if path is not None and distributed.world()[0] == 0:  # every rank has the record; rank 0 writes
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(".tmp")
                    tmp.write_text(json.dumps(rec) + "\n")
                    tmp.replace(path)
            report.runs[m.label][s] = rec
    if bar is not None:
        bar.close()
    return report

