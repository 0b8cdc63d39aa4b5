"""Verifier potentials: penalise constraint violations among the committed tokens.

``count(tokens [R, L]) -> [R]`` counts violations (a non-negative number) of a
partly masked canvas, reading mask ids as blanks; for Sudoku it is
:func:`smcdiff.tasks.sudoku.violations_ids` (conflicting pairs among filled cells).
With ``V_t = count(x_t)`` after step ``t``:

* ``form="increment"`` (default): ``log G_t = -lam * (V_t - V_{t-1})``. Over a whole
  trajectory the product telescopes to ``exp(-lam * (V_T - V_0))``, so the SMC target is
  exactly ``p(x) * exp(-lam * V(x)) / Z`` (``V_0``, the violations among fixed tokens, is a
  constant per prompt). Intermediate weights already see the violations committed so far,
  so resampling removes conflicting particles early.
* ``form="level"``: ``log G_t = -lam * V_t``. As a potential the target becomes
  ``p(x_{0:T}) * exp(-lam * sum_t V_t)``, which also penalises *when* a violation appeared
  (FK steering's "sum" potential). With :meth:`~smcdiff.potentials.Potential.as_twist` it is
  a telescoping twist: it steers resampling by ``exp(-lam * V_t)`` and leaves the target
  ``p`` unchanged.

``lam = inf`` is allowed in the increment form: a step that adds a violation gives
weight zero. For counts that never decrease as tokens are committed (conflicting pairs
among filled cells are such a count) the target is then ``p`` restricted to outputs
without violations beyond those of the fixed tokens.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ..errors import ConfigError
from ..proposals.base import ProposalStep
from ..state import ParticleState
from .base import Potential

__all__ = ["ViolationPotential"]


class ViolationPotential(Potential):
    """``exp(-lam * violations)`` as a potential (increment or level form; see the module docstring).

    Args:
        count: ``count(tokens [R, L] long) -> [R]`` non-negative violation counts (masks are blanks).
        lam: penalty per violation, ``>= 0`` (``inf`` only with ``form="increment"``).
        form: ``"increment"`` or ``"level"``.
    """

    def __init__(self, count: Callable[[Tensor], Tensor], lam: float = 1.0, form: str = "increment") -> None:
        if not callable(count):
            raise ConfigError(f"count must be callable (tokens [R, L] -> [R]); got {type(count).__name__}")
        if form not in ("increment", "level"):
            raise ConfigError(f"form must be 'increment' or 'level'; got {form!r}")
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or math.isnan(lam) or lam < 0:
            raise ConfigError(f"lam must be a number >= 0; got {lam!r}")
        if math.isinf(lam) and form == "level":
            raise ConfigError("lam = inf is only defined for form='increment' (a level of 0 violations "
                              "would give 0 * inf)")
        self.count = count
        self.lam = float(lam)
        self.form = form

    def _counts(self, tokens: Tensor) -> Tensor:
        b, n, l_ = tokens.shape
        v = torch.as_tensor(self.count(tokens.reshape(b * n, l_))).to(torch.float64).reshape(-1)
        if v.numel() != b * n:
            raise ConfigError(f"count returned {v.numel()} values for {b * n} canvases")
        if bool(torch.isnan(v).any()) or bool((v < 0).any()):
            raise ConfigError("count must return non-negative numbers (violations), not NaN or negatives")
        return v.reshape(b, n).to(tokens.device)

    def log_potential(self, prev: ParticleState, step: ProposalStep) -> Tensor:
        now = self._counts(step.state.tokens)
        if self.form == "level":
            return -self.lam * now
        delta = now - self._counts(prev.tokens)
        if math.isinf(self.lam):
            # 0 where nothing was added, -inf where a violation appeared (never inf * 0)
            return torch.where(delta > 0, torch.full_like(delta, -math.inf), torch.zeros_like(delta))
        return -self.lam * delta

    def __repr__(self) -> str:
        name = getattr(self.count, "__qualname__", type(self.count).__name__)
        return f"ViolationPotential({name}, lam={self.lam}, form={self.form!r})"
