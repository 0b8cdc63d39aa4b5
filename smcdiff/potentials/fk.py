"""FK steering (Singhal et al., arXiv 2501.06848) as a potential with an exact terminal correction.

At the steps of a window, each particle's reward ``r_t = R(x_hat_t)`` is computed on
its current canvas with the step's candidate tokens filled in (an estimate of the
clean sequence, as :class:`~smcdiff.potentials.reward.RewardPotential` with
``fill="candidates"``), and the particle's weight is multiplied by

* ``"difference"``: ``G_t = exp(lam * (r_t - r_prev))`` (``r_prev``: its previous reward, 0 at first);
* ``"max"``:        ``G_t = exp(lam * max_{s <= t} r_s)`` (over the window's steps so far);
* ``"sum"``:        ``G_t = exp(lam * sum_{s <= t} r_s)``.

At the step at which the particle becomes fully unmasked the potential is
``exp(lam * R(x_0) - A)``, where ``A`` is the sum of the log potentials it already
received. The product over a whole trajectory is therefore exactly
``exp(lam * R(x_0))``: whatever the potential type and window, the SMC target is
``p(x_0) * exp(lam * R(x_0)) / Z`` (checked by exact enumeration in
``tests/test_fk.py``). The intermediate potentials only decide which particles
survive resampling.

Differences from the released code (zacharyhorvitz/Fk-Diffusion-Steering): the
accumulated log potential ``A`` and the running reward statistic are per-particle
state that moves with resampling and is never reset by it (its issue #12: weights
were not carried forward under adaptive resampling, which biases the target); and
the terminal correction is applied always, so "max" and "sum" target the tilted
law exactly instead of a path-dependent one. The window is
``start <= t <= end`` and ``(t - start) % every == 0`` in engine steps ``t``
(1-based, per prompt); outside it no reward is computed. Resampling is the
engine's policy: pair the window with ``EveryKSteps(every)`` to resample where the
potentials change.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from ..errors import ConfigError
from ..proposals.base import ProposalStep
from ..state import ParticleState
from .base import Potential
from .reward import RewardPotential

__all__ = ["FKSteering"]

_KINDS = ("difference", "max", "sum")


def _int(name: str, v, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}; got {v!r}")
    return v


class FKSteering(Potential):
    """FK steering potential with terminal correction (see the module docstring).

    Args:
        reward: object with ``score(prompts, texts) -> Tensor [R]``.
        lam: tilt of the target ``exp(lam * R)``; a finite number.
        potential: ``"difference"``, ``"max"`` or ``"sum"``.
        start: first step at which intermediate rewards are used.
        end: last such step (``None``: no upper limit).
        every: use the reward every ``every`` steps from ``start``.
        decode: as for :class:`~smcdiff.potentials.reward.RewardPotential`.
        pad_id: as for :class:`~smcdiff.potentials.reward.RewardPotential`.
    """

    def __init__(self, reward: Any, lam: float = 1.0, potential: str = "difference", start: int = 1,
                 end: int | None = None, every: int = 1, decode: Callable | None = None,
                 pad_id: int | None = None) -> None:
        if potential not in _KINDS:
            raise ConfigError(f"potential must be one of {_KINDS}; got {potential!r}")
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam):
            raise ConfigError(f"lam must be a finite number; got {lam!r}")
        self.start = _int("start", start, 1)
        self.end = None if end is None else _int("end", end, self.start)
        self.every = _int("every", every, 1)
        self.kind = potential
        self.lam = float(lam)
        self._r = RewardPotential(reward, 1.0, decode=decode, fill="candidates", pad_id=pad_id)
        self.key_acc = f"fk_acc:{id(self)}"
        self.key_run = f"fk_run:{id(self)}"

    def init_state(self, particles: ParticleState) -> ParticleState:
        shape = particles.tokens.shape[:2]
        z = torch.zeros(shape, dtype=torch.float64, device=particles.device)
        run = torch.full(shape, -math.inf, dtype=torch.float64, device=particles.device) if self.kind == "max" else z
        return particles.with_extras(**{self.key_acc: z, self.key_run: run.clone()})

    def in_window(self, t: Tensor) -> Tensor:
        """Bool ``[B]``: prompts whose step ``t [B]`` is in the window."""
        ok = (t >= self.start) & ((t - self.start) % self.every == 0)
        if self.end is not None:
            ok &= t <= self.end
        return ok

    def log_potential(self, prev: ParticleState, step: ProposalStep) -> Tensor:
        return self.apply(prev, step)[0]

    def update_state(self, prev: ParticleState, step: ProposalStep) -> dict[str, Tensor]:
        return self.apply(prev, step)[1]

    def apply(self, prev: ParticleState, step: ProposalStep) -> tuple[Tensor, dict[str, Tensor]]:
        if self.key_acc not in prev.extras:
            raise ConfigError("FKSteering's state is missing; run it through SMC (which calls init_state)")
        acc, run = prev.extras[self.key_acc], prev.extras[self.key_run]
        active, done = step.moved, step.completed
        window = self.in_window(step.state.steps.to(acc.device))[:, None].expand_as(active)
        mid = active & ~done & window
        evaluate = mid | (active & done)
        zero = torch.zeros_like(acc)
        if not bool(evaluate.any()):
            return zero, {self.key_acc: acc, self.key_run: run}
        r = torch.where(evaluate, self._r.log_potential_at(prev, step, evaluate).to(torch.float64), zero)
        lam = self.lam
        if self.kind == "difference":
            new_run = r
            lg_mid = lam * (r - run)
        elif self.kind == "max":
            new_run = torch.maximum(run, r)
            lg_mid = lam * new_run
        else:
            new_run = run + r
            lg_mid = lam * new_run
        inc = torch.where(mid, lg_mid, zero)
        inc = torch.where(active & done, lam * r - acc, inc)
        new_acc = torch.where(mid, acc + lg_mid, torch.where(active & done, zero, acc))
        new_run = torch.where(mid, new_run, run)
        return inc, {self.key_acc: new_acc, self.key_run: new_run}

    def __repr__(self) -> str:
        return (f"FKSteering(reward={self._r.reward!r}, lam={self.lam}, potential={self.kind!r}, start={self.start}, "
                f"end={self.end}, every={self.every})")
