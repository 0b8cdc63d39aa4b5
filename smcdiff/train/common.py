"""Pieces shared by the training commands: resumable RNG state, atomic checkpoints, the LR schedule."""

from __future__ import annotations

import math
import random
import shutil
from pathlib import Path

import numpy as np
import torch

__all__ = ["start_run", "rng_state", "set_rng_state", "atomic_save", "lr_schedule", "pyplot", "save_figure",
           "publish_curve"]


def start_run(out: str | Path, seed: int, threads: int) -> tuple[Path, Path, Path, Path, torch.Generator]:
    """Common start of a training command: torch threads, the run directory, every RNG seeded.

    Returns ``(run directory, last.pt, curve.csv, curve.png, the loop's own generator)``.
    """
    torch.set_num_threads(threads)
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return d, d / "last.pt", d / "curve.csv", d / "curve.png", torch.Generator().manual_seed(seed)


def rng_state(gen: torch.Generator) -> dict:
    """Every RNG a training loop draws from (torch global, its own generator, numpy, python)."""
    return {
        "torch": torch.get_rng_state(),
        "gen": gen.get_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def set_rng_state(st: dict, gen: torch.Generator) -> None:
    torch.set_rng_state(st["torch"])
    gen.set_state(st["gen"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary name, then rename: a cut-off run never leaves a torn checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def lr_schedule(step: int, lr: float, warmup: int, decay_steps: int = 0, decay_from: int = 0,
                min_lr: float = 0.0) -> float:
    """Linear warm-up to ``lr`` over ``warmup`` steps; with ``decay_steps > 0`` a cosine decay from
    ``lr`` to ``min_lr`` over ``decay_steps`` steps starting at ``decay_from`` (then ``min_lr``)."""
    out = lr * min(1.0, (step + 1) / max(1, warmup))
    if decay_steps > 0 and step >= decay_from:
        frac = min(1.0, (step - decay_from) / decay_steps)
        out = min(out, min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * frac)))
    return out


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (training runs headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, png_path: Path) -> None:
    """Write ``fig`` to ``png_path`` through a temporary file (a reader never sees a half-written PNG) and close it."""
    tmp = png_path.with_name(png_path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    pyplot().close(fig)
    tmp.replace(png_path)


def publish_curve(plot, csv_path: Path, png_path: Path, docs: str, stem: str) -> None:
    """Redraw the training curve with ``plot(csv_path, png_path)`` and copy the CSV and PNG to
    ``docs/<stem>.csv|.png`` (``docs=''``: no copy). A failure is printed, never raised: plotting
    must not stop training."""
    try:
        plot(csv_path, png_path)
        if docs:
            d = Path(docs)
            d.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(csv_path, d / f"{stem}.csv")
            shutil.copyfile(png_path, d / f"{stem}.png")
    except Exception as e:
        print(f"[warn] plot failed: {e}", flush=True)
