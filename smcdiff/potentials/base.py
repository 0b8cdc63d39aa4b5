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
``when="step"``: at every step at which the particle moves (the default); a
particle that idles because it finished its block before the other particles of
its prompt is not touched, so its target does not depend on the other particles.
``when="block_end"``: for a particle, at the step at which it completes a block.
``when="final"``: for a particle, at the step at which it becomes fully unmasked.
Elsewhere its factor is one (log 0).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from ..errors import ConfigError, check_number
from ..proposals.base import ProposalStep
from ..state import ParticleState

__all__ = ["Potential", "ProductPotential", "PowerPotential", "TwistPotential", "total_log_potential", "apply_potentials"]

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

    def log_potential_at(self, prev: ParticleState, step: ProposalStep, mask: Tensor) -> Tensor:
        """``log G_t`` where ``mask [B, N]`` is True (other entries are ignored).

        Override to skip work (e.g. reward calls) for particles the potential does
        not apply to; the default evaluates every particle.
        """
        return self.log_potential(prev, step)

    # ------------------------------------------------------------------ evaluation
    def applies(self, step: ProposalStep) -> Tensor:
        """Bool ``[B, N]``: particles whose weight this potential changes at this step."""
        if self.when == "step":
            return step.moved
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
        lg = self.log_potential_at(prev, step, mask).to(torch.float64)
        if lg.shape != step.log_q.shape:
            raise ConfigError(
                f"{type(self).__name__}.log_potential returned shape {tuple(lg.shape)}; expected [B, N] = "
                f"{tuple(step.log_q.shape)}"
            )
        if bool((torch.isnan(lg) & mask).any()) or bool((torch.isposinf(lg) & mask).any()):
            raise ConfigError(f"{type(self).__name__} returned NaN or +inf log potentials")
        return torch.where(mask, lg, torch.zeros_like(lg))

    def apply(self, prev: ParticleState, step: ProposalStep) -> tuple[Tensor, dict[str, Tensor]]:
        """``(contribution [B, N], per-particle extras to store in the new state)``."""
        return self.contribution(prev, step), self.update_state(prev, step)

    def init_state(self, particles: ParticleState) -> ParticleState:
        """Add any per-particle extras this potential keeps (called once by ``SMC.init``)."""
        return particles

    def update_state(self, prev: ParticleState, step: ProposalStep) -> dict[str, Tensor]:
        """The per-particle extras ``[B, N, ...]`` this potential keeps, after this step.

        Stateless potentials keep nothing (the default). A stateful potential adds
        its extras in :meth:`init_state` and returns their new values here; they
        move with the particles on resampling. Wrappers (products, powers, timing,
        twists) forward both methods to the potentials they wrap.
        """
        return {}

    # ------------------------------------------------------------------ algebra
    def __mul__(self, other: "Potential") -> "ProductPotential":
        if not isinstance(other, Potential):
            return NotImplemented
        return ProductPotential((self, other))

    def __pow__(self, beta: float) -> "PowerPotential":
        return PowerPotential(self, beta)

    def at_block_end(self) -> "Potential":
        """This potential, applied only at the step at which a particle completes a block."""
        return _Timed(self, "block_end")

    def final_only(self) -> "Potential":
        """This potential, applied only at the step at which a particle becomes fully unmasked."""
        return _Timed(self, "final")

    def as_twist(self) -> "TwistPotential":
        """Use this potential as a twist: it steers the particles but does not change the target."""
        return TwistPotential(self)


@dataclass(frozen=True)
class _Timed(Potential):
    inner: Potential
    when: str = "step"

    def __post_init__(self) -> None:
        if self.when not in _WHEN:
            raise ConfigError(f"unknown potential timing {self.when!r}; use one of {_WHEN}")
        factors = self.inner.factors if isinstance(self.inner, ProductPotential) else (self.inner,)
        if any(isinstance(f, TwistPotential) for f in factors):
            raise ConfigError("a twist telescopes over every step; it cannot be restricted to block ends or the end")

    def log_potential(self, prev: ParticleState, step: ProposalStep) -> Tensor:
        return self.inner.log_potential(prev, step)

    def log_potential_at(self, prev: ParticleState, step: ProposalStep, mask: Tensor) -> Tensor:
        return self.inner.log_potential_at(prev, step, mask)

    def init_state(self, particles: ParticleState) -> ParticleState:
        return self.inner.init_state(particles)

    def update_state(self, prev: ParticleState, step: ProposalStep) -> dict[str, Tensor]:
        return self.inner.update_state(prev, step)

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
        return step.moved

    def log_potential(self, prev: ParticleState, step: ProposalStep) -> Tensor:
        return self.contribution(prev, step)

    def contribution(self, prev: ParticleState, step: ProposalStep) -> Tensor:
        return self.apply(prev, step)[0]

    def apply(self, prev: ParticleState, step: ProposalStep) -> tuple[Tensor, dict[str, Tensor]]:
        return apply_potentials(self.factors, prev, step)

    def init_state(self, particles: ParticleState) -> ParticleState:
        for f in self.factors:
            particles = f.init_state(particles)
        return particles

    def update_state(self, prev: ParticleState, step: ProposalStep) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for f in self.factors:
            out.update(f.update_state(prev, step))
        return out

    def __repr__(self) -> str:
        return " * ".join(repr(f) for f in self.factors)


class PowerPotential(Potential):
    """``G ** beta`` for ``beta >= 0`` (``0 ** 0 = 1``), keeping ``G``'s timing."""

    def __init__(self, inner: Potential, beta: float) -> None:
        self.beta = check_number("the exponent of a tempered potential (beta)", beta, low=0.0)
        self.inner = inner
        self.when = inner.when

    def applies(self, step: ProposalStep) -> Tensor:
        return self.inner.applies(step)

    def log_potential(self, prev: ParticleState, step: ProposalStep) -> Tensor:
        return self.log_potential_at(prev, step, torch.ones_like(step.log_q, dtype=torch.bool))

    def log_potential_at(self, prev: ParticleState, step: ProposalStep, mask: Tensor) -> Tensor:
        lg = self.inner.log_potential_at(prev, step, mask).to(torch.float64)
        if self.beta == 0.0:
            return torch.zeros_like(lg)
        return self.beta * lg

    def apply(self, prev: ParticleState, step: ProposalStep) -> tuple[Tensor, dict[str, Tensor]]:
        # the inner potential's own step (same timing), scaled: its state advances exactly once
        inc, extras = self.inner.apply(prev, step)
        inc = inc.to(torch.float64)
        return (torch.zeros_like(inc) if self.beta == 0.0 else self.beta * inc), extras

    def init_state(self, particles: ParticleState) -> ParticleState:
        return self.inner.init_state(particles)

    def update_state(self, prev: ParticleState, step: ProposalStep) -> dict[str, Tensor]:
        return self.inner.update_state(prev, step)

    def __repr__(self) -> str:
        return f"({self.inner!r}) ** {self.beta}"


class TwistPotential(Potential):
    """A telescoping twist ``psi_t`` built from a potential (llamppl-style ``twist`` / ``untwist``).

    At each step at which a particle moves its log weight changes by
    ``log psi_t - log psi_{t-1}`` (``log psi_0 = 0``), and at the step at which the
    particle becomes fully unmasked by ``-log psi_{t-1}``: the twist is removed, so
    the product over a whole trajectory is exactly one. A twist therefore changes
    which particles survive resampling but neither the target nor its normalising
    constant. ``log psi_t`` is the inner potential's ``log_potential`` at that
    step; its last value is kept per particle (and moves with resampling).
    """

    def __init__(self, inner: Potential) -> None:
        if isinstance(inner, TwistPotential):
            raise ConfigError("a twist of a twist is not defined")
        factors = inner.factors if isinstance(inner, ProductPotential) else (inner,)
        if any(getattr(f, "when", "step") != "step" for f in factors):
            raise ConfigError(
                "a twist is evaluated at every step; build it from a potential without at_block_end()/final_only()"
            )
        self.inner = inner
        self.key = f"twist:{id(self)}"

    def init_state(self, particles: ParticleState) -> ParticleState:
        z = torch.zeros(particles.tokens.shape[:2], dtype=torch.float64, device=particles.device)
        return self.inner.init_state(particles.with_extras(**{self.key: z}))

    def log_potential(self, prev: ParticleState, step: ProposalStep) -> Tensor:
        return self.apply(prev, step)[0]

    def update_state(self, prev: ParticleState, step: ProposalStep) -> dict[str, Tensor]:
        # the twist's value lives in its state; only wrappers call this (the engine uses apply)
        return self.apply(prev, step)[1]

    def apply(self, prev: ParticleState, step: ProposalStep) -> tuple[Tensor, dict[str, Tensor]]:
        if self.key not in prev.extras:
            raise ConfigError("the twist's state is missing; run it through SMC (which calls init_state)")
        old = prev.extras[self.key]
        active = step.moved  # only particles that take a kernel step; idle ones keep their twist
        inner_state = self.inner.update_state(prev, step)
        if not bool(active.any()):
            return torch.zeros_like(old), {**inner_state, self.key: old}
        cur = self.inner.log_potential_at(prev, step, active).to(torch.float64)
        cur = torch.where(active, cur, 0.0)
        if bool((torch.isnan(cur) | torch.isposinf(cur))[active].any()):
            raise ConfigError(f"{type(self.inner).__name__} returned NaN or +inf as a twist value")
        done = step.completed
        new = torch.where(active & ~done, cur, torch.where(done, torch.zeros_like(old), old))
        inc = torch.where(done, -old, cur - old)
        inc = torch.where(torch.isneginf(cur) & ~done, float("-inf"), inc)
        return torch.where(active, inc, torch.zeros_like(inc)), {**inner_state, self.key: new}

    def __repr__(self) -> str:
        return f"({self.inner!r}).as_twist()"


def apply_potentials(
    potentials: Sequence[Potential], prev: ParticleState, step: ProposalStep
) -> tuple[Tensor, dict[str, Tensor]]:
    """Summed contributions ``[B, N]`` and the extras to store, for a list of potentials."""
    out = torch.zeros(step.log_q.shape, dtype=torch.float64, device=step.log_q.device)
    extras: dict[str, Tensor] = {}
    for p in potentials:
        inc, ex = p.apply(prev, step)
        out = _add_log(out, inc)
        extras.update(ex)
    return out, extras


def _add_log(a: Tensor, b: Tensor) -> Tensor:
    s = a + b
    return torch.where(torch.isneginf(a) | torch.isneginf(b), float("-inf"), s)


def total_log_potential(potentials: Sequence[Potential], prev: ParticleState, step: ProposalStep) -> Tensor:
    """Sum of the contributions of ``potentials`` at this step, ``[B, N]`` float64."""
    return apply_potentials(potentials, prev, step)[0]
