"""When to resample.

A policy combines *when* the engine checks (every step, at block ends, every k
steps) with *whether* it resamples at a check (always, when the effective
sample size drops below ``kappa * N``, never). Decisions are per prompt.

The engine consults the policy after each step's reweighting, and not after the
step at which a prompt finishes (unless ``final=True``): resampling the final
population only adds noise to the returned weighted sample.

Any of these policies keeps the SMC estimate of the normalising constant
unbiased, because the decision at a check depends only on the current particle
system (see :mod:`smcdiff.engine`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from .errors import ConfigError, check_int, check_number
from .resampling import get_scheme
from .weights import Weights

__all__ = [
    "CheckEvent",
    "Timing",
    "EveryStep",
    "AtBlockEnd",
    "EveryKSteps",
    "ResamplingPolicy",
    "AdaptiveResampling",
    "AlwaysResample",
    "NeverResample",
]


@dataclass(frozen=True)
class CheckEvent:
    """What happened in the step just taken, per prompt (all tensors ``[B]``).

    Attributes:
        steps: number of steps the prompt has taken so far (this one included).
        block_end: True where every particle of the prompt finished its current
            semi-autoregressive block in this step.
        finished: True where the prompt's particles are now fully unmasked.
        active: True where the prompt took part in this step.
    """

    steps: Tensor
    block_end: Tensor
    finished: Tensor
    active: Tensor


@runtime_checkable
class Timing(Protocol):
    def due(self, event: CheckEvent) -> Tensor:  # pragma: no cover - protocol
        """Bool ``[B]``: prompts at which the policy is checked after this step."""


@dataclass(frozen=True)
class EveryStep:
    """Check after every step."""

    def due(self, event: CheckEvent) -> Tensor:
        return event.active.clone()


@dataclass(frozen=True)
class AtBlockEnd:
    """Check only after a step that completes a semi-autoregressive block."""

    def due(self, event: CheckEvent) -> Tensor:
        return event.active & event.block_end


@dataclass(frozen=True)
class EveryKSteps:
    """Check after every ``k``-th step of each prompt (steps ``k, 2k, ...``)."""

    k: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", check_int("EveryKSteps k", self.k, minimum=1))

    def due(self, event: CheckEvent) -> Tensor:
        return event.active & (event.steps % int(self.k) == 0)


def _timing(when: str | Timing) -> Timing:
    if isinstance(when, str):
        table = {"every_step": EveryStep(), "block_end": AtBlockEnd()}
        if when not in table:
            raise ConfigError(
                f"unknown resampling timing {when!r}; use 'every_step', 'block_end' or EveryKSteps(k)"
            )
        return table[when]
    if not hasattr(when, "due"):
        raise ConfigError(f"resampling timing must be a string or a Timing object; got {when!r}")
    return when


class ResamplingPolicy(Protocol):
    """Protocol: ``decide(weights, event) -> bool [B]`` and a scheme name."""

    scheme: str

    def decide(self, weights: Weights, event: CheckEvent) -> Tensor:  # pragma: no cover - protocol
        ...


def _due(timing: Timing, event: CheckEvent, final: bool) -> Tensor:
    due = timing.due(event) & event.active
    if not final:
        due = due & ~event.finished
    return due


@dataclass(frozen=True)
class AdaptiveResampling:
    """Resample a prompt when ``ESS < kappa * N`` at a check.

    Args:
        kappa: relative ESS threshold in ``(0, 1]`` (default 0.5).
        scheme: resampling scheme name (default ``"systematic"``).
        when: ``"every_step"``, ``"block_end"`` or :class:`EveryKSteps`.
        final: also check after the step at which a prompt finishes.
    """

    kappa: float = 0.5
    scheme: str = "systematic"
    when: str | Timing = "every_step"
    final: bool = False
    _timing: Timing = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_number("kappa", self.kappa, low=0.0, high=1.0, low_open=True)
        get_scheme(self.scheme)
        object.__setattr__(self, "_timing", _timing(self.when))

    def decide(self, weights: Weights, event: CheckEvent) -> Tensor:
        due = _due(self._timing, event, self.final)
        low = weights.ess < float(self.kappa) * weights.n_particles
        return due & low & ~weights.dead


@dataclass(frozen=True)
class AlwaysResample:
    """Resample at every check, whatever the weights (``when`` as above)."""

    scheme: str = "systematic"
    when: str | Timing = "every_step"
    final: bool = False
    _timing: Timing = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        get_scheme(self.scheme)
        object.__setattr__(self, "_timing", _timing(self.when))

    def decide(self, weights: Weights, event: CheckEvent) -> Tensor:
        return _due(self._timing, event, self.final) & ~weights.dead


@dataclass(frozen=True)
class NeverResample:
    """Never resample: N independent importance-sampling particles per prompt."""

    scheme: str = "systematic"

    def decide(self, weights: Weights, event: CheckEvent) -> Tensor:
        return torch.zeros_like(event.active)
