"""Plots of an SMC run (matplotlib). Each function returns the figure and, given ``path``, writes it.

======================================  ==============================================================
``unmasking_order(result, b)``          heatmap ``[N particles x L positions]`` of the step at which
                                        each generated position was committed (fixed positions blank)
``ess_trace(result)``                   ESS after reweighting at every step, one line per prompt;
                                        resampling events marked
``genealogy(result, b)``                ancestor lines across steps (particle ``i`` after step ``t``
                                        joined to its parent); the lineages of the final particles
                                        drawn darker
``weight_distribution(result)``         final normalised weights per prompt
``frontier(rows)``                      a metric against compute (e.g. accuracy vs NFE) with
                                        intervals, one point per method
======================================  ==============================================================

The figures use the non-interactive Agg backend unless another backend is
already active; nothing here opens a window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import ConfigError

__all__ = ["unmasking_order", "ess_trace", "genealogy", "weight_distribution", "frontier", "ORDER_CMAP"]

ORDER_CMAP = "viridis"


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, path: str | Path | None):
    if path is not None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(p, dpi=110)
    return fig


def _check_prompt(result, b: int) -> None:
    n_prompts = result.sequences.shape[0]
    if not isinstance(b, (int, np.integer)) or isinstance(b, bool) or not 0 <= b < n_prompts:
        raise ConfigError(f"b must be a prompt index in [0, {n_prompts - 1}]; got {b!r}")


def unmasking_order(result, b: int = 0, path: str | Path | None = None, title: str | None = None):
    """Heatmap of ``result.commit_step[b]`` (``[N, L]``, generated positions only).

    Cell ``(i, j)`` is coloured by the 1-based step at which particle ``i``
    committed position ``j`` (colour map :data:`ORDER_CMAP`, normalised to
    ``[1, max step]``); prompt, padding and template positions are left blank.
    The image's array (``fig.axes[0].images[0].get_array()``) is exactly the
    masked commit steps.
    """
    _check_prompt(result, b)
    plt = _plt()
    steps = result.commit_step[b].cpu().numpy()
    free = result.free_positions()[b].cpu().numpy()
    cols = np.flatnonzero(free)
    data = np.ma.masked_less(steps[:, cols], 1)
    fig, ax = plt.subplots(figsize=(min(14, 2 + 0.12 * len(cols)), 1.2 + 0.35 * steps.shape[0]))
    vmax = max(1, int(data.max()) if data.count() else 1)
    im = ax.imshow(data, aspect="auto", interpolation="nearest", cmap=ORDER_CMAP, vmin=1, vmax=vmax)
    ax.set_xlabel("generated position (canvas order)")
    ax.set_ylabel("particle")
    ax.set_yticks(range(steps.shape[0]))
    fig.colorbar(im, ax=ax, label="commit step")
    ax.set_title(title or f"unmasking order, prompt {b}")
    fig.tight_layout()
    return _finish(fig, path)


def ess_trace(result, path: str | Path | None = None, prompts: Sequence[int] | None = None, title: str | None = None):
    """ESS after reweighting at every step (``result.ess_trace``), one line per prompt; a marker where
    that prompt resampled. Line ``k`` of the axes holds ``(steps 1..T, ess_trace[:, prompts[k]])``."""
    plt = _plt()
    ess = result.ess_trace.cpu().numpy()
    res = result.resampled.cpu().numpy()
    prompts = list(range(ess.shape[1])) if prompts is None else list(prompts)
    for b in prompts:
        _check_prompt(result, b)
    n = result.sequences.shape[1]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = np.arange(1, ess.shape[0] + 1)
    for b in prompts:
        (line,) = ax.plot(x, ess[:, b], lw=1.2, label=f"prompt {b}")
        hit = np.flatnonzero(res[:, b])
        ax.scatter(x[hit], ess[hit, b], marker="v", s=28, color=line.get_color(), zorder=3)
    ax.axhline(n, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("step")
    ax.set_ylabel("ESS (after reweighting)")
    ax.set_ylim(0, n * 1.05)
    ax.set_title(title or f"ESS over steps (N = {n}; triangles: resampled)")
    if len(prompts) <= 10:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _finish(fig, path)


def genealogy(result, b: int = 0, path: str | Path | None = None, title: str | None = None):
    """Particle genealogy of prompt ``b``: a segment from ``(t, parent)`` to ``(t + 1, i)`` for every
    step ``t`` and particle ``i`` (``T * N`` segments in ``fig.axes[0].collections[0]``); the
    ancestral lines of the final particles in ``collections[1]``."""
    _check_prompt(result, b)
    plt = _plt()
    from matplotlib.collections import LineCollection

    anc = result.genealogy.ancestors[:, b].cpu().numpy()  # [T, N]
    t_steps, n = anc.shape
    segs = [((t, anc[t, i]), (t + 1, i)) for t in range(t_steps) for i in range(n)]
    lin = result.genealogy.lineage()[:, b].cpu().numpy()  # [T + 1, N]
    live = [list(zip(range(t_steps + 1), lin[:, i])) for i in range(n)]
    fig, ax = plt.subplots(figsize=(min(14, 3 + 0.08 * t_steps), 1.5 + 0.3 * n))
    ax.add_collection(LineCollection(segs, colors="0.8", linewidths=0.6))
    ax.add_collection(LineCollection(live, colors="C0", linewidths=1.4))
    ax.set_xlim(-0.5, t_steps + 0.5)
    ax.set_ylim(-0.5, n - 0.5)
    ax.set_xlabel("step")
    ax.set_ylabel("particle index")
    ax.set_title(title or f"genealogy, prompt {b} (blue: ancestors of the final particles)")
    fig.tight_layout()
    return _finish(fig, path)


def weight_distribution(result, path: str | Path | None = None, title: str | None = None):
    """Final normalised weights: one group of ``N`` bars per prompt (bar heights are
    ``result.normalized_weights`` in row-major order)."""
    plt = _plt()
    w = result.normalized_weights.cpu().numpy()
    b, n = w.shape
    fig, ax = plt.subplots(figsize=(min(14, 2 + 0.25 * b * n), 3.2))
    for k in range(b):
        ax.bar(k * (n + 1) + np.arange(n), w[k], color=f"C{k % 10}", width=0.9)
    ax.set_xticks([k * (n + 1) + (n - 1) / 2 for k in range(b)])
    ax.set_xticklabels([f"prompt {k}" for k in range(b)], fontsize=8)
    ax.set_ylabel("normalised weight")
    ax.set_ylim(0, 1)
    ax.set_title(title or "final particle weights")
    fig.tight_layout()
    return _finish(fig, path)


def frontier(rows: Sequence[Mapping[str, Any]], x: str = "nfe", y: str = "accuracy", path: str | Path | None = None,
             xlabel: str | None = None, ylabel: str | None = None, title: str | None = None, logx: bool = False):
    """A metric against compute: one point per row, ``row[x]`` vs ``row[y]``, labelled ``row["label"]``,
    with an interval ``row["lo"], row["hi"]`` on ``y`` when present. Points on the upper-left
    frontier (no other point has less ``x`` and more ``y``) are joined by a line."""
    if not rows:
        raise ConfigError("frontier needs at least one row")
    for k, r in enumerate(rows):
        for key in ("label", x, y):
            if key not in r:
                raise ConfigError(f"rows[{k}] has no {key!r}; it has {sorted(r)}")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    xs = np.array([float(r[x]) for r in rows])
    ys = np.array([float(r[y]) for r in rows])
    for k, r in enumerate(rows):
        if "lo" in r and "hi" in r:
            ax.errorbar(xs[k], ys[k], yerr=[[ys[k] - float(r["lo"])], [float(r["hi"]) - ys[k]]], fmt="o",
                        color=f"C{k % 10}", capsize=3, label=str(r["label"]))
        else:
            ax.plot(xs[k], ys[k], "o", color=f"C{k % 10}", label=str(r["label"]))
    order = np.lexsort((-ys, xs))
    front, best = [], -np.inf
    for k in order:
        if ys[k] > best:
            front.append(k)
            best = ys[k]
    ax.plot(xs[front], ys[front], "-", color="0.5", lw=0.8, zorder=0)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    ax.set_title(title or f"{y} against {x}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _finish(fig, path)
