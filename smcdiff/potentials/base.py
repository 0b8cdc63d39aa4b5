"""Potentials: non-negative functions that reweight particles.

A potential ``G_t`` is evaluated after each proposal step on the previous state
and the step record and returns ``log G_t`` of shape ``[B, N]`` (float64,
``-inf`` for weight zero). The engine multiplies the particle weights by it, so
the SMC target over trajectories is

    gamma(x_{0:T}) = prod_t K_t(x_t -> x_{t-1}) * prod_t G_t(x_t, x_{t-1}),

where ``K`` is the model's unmasking kernel. Potentials compose: ``p * q`` adds
log potentials, ``p ** beta`` multiplies one by ``beta >= 0`` (tempering), and
``p.at_block_end()`` / ``p.final_only()`` restrict when a potential applies.

When a potential applies
------------------------
``when="step"``: at every step of an active prompt (the default).
``when="block_end"``: for a particle, at the step at which it completes a block.
``when="final"``: for a particle, at the step at which it becomes fully unmasked.
Elsewhere its factor is one (log 0).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Sequence

import torch
from torch import Tensor

from ..errors import ConfigError
from ..proposals.base import ProposalStep
from ..state import ParticleState

__all__ = ["Potential", "ProductPotential", "PowerPotential", "total_log_potential"]

_WHEN = ("step", "block_end", "final")


class Potential(ABC):
    """Base class. Subclasses implement :meth:`log_potential` and set :attr:`when`.

    Contract: ``log_potential(prev, step)`` is a deterministic function of the
    previous state and the step record, shape ``[B, N]``, float64, never NaN and
    never ``+inf``.
    """

    when: str = "step"

    @abstractmethod
    def log_potential(self, prev: ParticleState, step: ProposalStep) -> Tensor:
        """``log G_t`` for every prompt and particle ``[B, N]`` (unmasked by :attr:`when`)."""

    # ------------------------------------------------------------------ evaluation
    def applies(self, step: ProposalStep) -> Tensor:
        """Bool ``[B, N]``: particles whose weight this potential changes at this step."""
        if self.when == "step":
            return step.active[:, None].expand_as(step.log_q)
        if self.when == "block_end":
            return step.block_completed
        if self.when == "final":
            return step.completed
        raise ConfigError(f"unknown potential timing {self.when!r}; use one of {_WHEN}")

    def contribution(self, prev: ParticleState, step: ProposalStep) -> Tensor:
        """``log G_t`` where the potential applies and 0 elsewhere, ``[B, N]`` float64."""
        mask = self.applies(step)
        if not bool(mask.any()):
            return torch.zeros(step.log_q.shape, dtype=torch.float64, device=step.log_q.device)
        lg = self.log_potential(prev, step).to(torch.float64)
        if lg.shape != step.log_q.shape:
            raise ConfigError(
                f"{type(self).__name__}.log_potential returned shape {tuple(lg.shape)}; expected [B, N] = "
                f"{tuple(step.log_q.shape)}"
            )
        if bool((torch.isnan(lg) & mask).any()) or bool((torch.isposinf(lg) & mask).any()):
            raise ConfigError(f"{type(self).__name__} returned NaN or +inf log potentials")
        return torch.where(mask, lg, torch.zeros_like(lg))

    # ------------------------------------------------------------------ algebra
    def __mul__(self, other: "Potential") -> "ProductPotential":
        if not isinstance(other, Potential):
            return NotImplemented
        return ProductPotential((self, other))

    def __pow__(self, beta: float) -> "PowerPotential":
        return PowerPotential(self, float(beta))

    def at_block_end(self) -> "Potential":
        """This potential, applied only at the step at which a particle completes a block."""
        return _Timed(self, "block_end")

    def final_only(self) -> "Potential":
        """This potential, applied only at the step at which a particle becomes fully unmasked."""
        return _Timed(self, "final")


@dataclass(frozen=True)
class _Timed(Potential):
    inner: Potential
    when: str = "step"

    def __post_init__(self) -> None:
        if self.when not in _WHEN:
            raise ConfigError(f"unknown potential timing {self.when!r}; use one of {_WHEN}")

    def log_potential(self, prev: ParticleState, step: ProposalStep) -> Tensor:
        return self.inner.log_potential(prev, step)

    def __repr__(self) -> str:
        return f"{self.inner!r}.{'at_block_end' if self.when == 'block_end' else 'final_only'}()"


class ProductPotential(Potential):
    """``prod_i G_i``: the sum of the factors' log potentials, each with its own timing."""

    def __init__(self, factors: Sequence[Potential]) -> None:
        flat: list[Potential] = []
        for f in factors:
            if not isinstance(f, Potential):
                raise ConfigError(f"a product of potentials takes Potential objects; got {type(f).__name__}")
            flat.extend(f.factors if isinstance(f, ProductPotential) else [f])
        self.factors = tuple(flat)

    def applies(self, step: ProposalStep) -> Tensor:
        return step.active[:, None].expand_as(step.log_q)

    def log_potential(self, prev: ParticleState, step: ProposalStep) -> Tensor:
        return self.contribution(prev, step)

    def contribution(self, prev: ParticleState, step: ProposalStep) -> Tensor:
        out = torch.zeros(step.log_q.shape, dtype=torch.float64, device=step.log_q.device)
        for f in self.factors:
            out = _add_log(out, f.contribution(prev, step))
        return out

    def __repr__(self) -> str:
        return " * ".join(repr(f) for f in self.factors)


class PowerPotential(Potential):
    """``G ** beta`` for ``beta >= 0`` (``0 ** 0 = 1``), keeping ``G``'s timing."""

    def __init__(self, inner: Potential, beta: float) -> None:
        if not (beta >= 0.0) or beta == float("inf"):
            raise ConfigError(f"the exponent of a tempered potential must be finite and >= 0; got {beta}")
        self.inner = inner
        self.beta = float(beta)
        self.when = inner.when

    def applies(self, step: ProposalStep) -> Tensor:
        return self.inner.applies(step)

    def log_potential(self, prev: ParticleState, step: ProposalStep) -> Tensor:
        lg = self.inner.log_potential(prev, step).to(torch.float64)
        if self.beta == 0.0:
            return torch.zeros_like(lg)
        return self.beta * lg

    def __repr__(self) -> str:
        return f"({self.inner!r}) ** {self.beta}"


def _add_log(a: Tensor, b: Tensor) -> Tensor:
    s = a + b
    return torch.where(torch.isneginf(a) | torch.isneginf(b), float("-inf"), s)


def total_log_potential(potentials: Sequence[Potential], prev: ParticleState, step: ProposalStep) -> Tensor:
    """Sum of the contributions of ``potentials`` at this step, ``[B, N]`` float64."""
    out = torch.zeros(step.log_q.shape, dtype=torch.float64, device=step.log_q.device)
    for p in potentials:
        out = _add_log(out, p.contribution(prev, step))
    return out
