"""Pieces shared by the training commands: resumable RNG state, atomic checkpoints, the LR schedule."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import torch

__all__ = ["rng_state", "set_rng_state", "atomic_save", "lr_schedule"]


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
