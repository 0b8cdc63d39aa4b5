"""Log-space particle weights, batched over prompts.

A :class:`Weights` object holds unnormalised log weights ``log_w`` of shape
``[B, N]`` (B prompts, N particles per prompt) in float64. It is immutable:
every operation returns a new object. Each row (prompt) is an independent
particle system; nothing is ever normalised across rows.

Conventions
-----------
* NaN log weights are refused (:class:`~smcdiff.errors.ConfigError` naming the
  prompts): a NaN is a bug upstream, not a zero weight; give ``-inf`` for weight zero.
* ``+inf`` log weights are rejected: they make every normalisation undefined.
* A row whose particles all have log weight ``-inf`` is *dead*. Its ``log_mean``
  is ``-inf`` and its ``ess`` is reported as ``0``; asking for its normalised
  weights raises :class:`~smcdiff.errors.AllParticlesDeadError` unless
  ``allow_dead=True`` (then the row is all zeros, never NaN).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .errors import AllParticlesDeadError, ConfigError, check_int

__all__ = ["Weights", "log_mean_exp", "ess_from_log_weights"]


def log_mean_exp(log_w: Tensor, dim: int = -1) -> Tensor:
    """``log(mean(exp(log_w)))`` along ``dim``, stable, ``-inf`` for an all ``-inf`` slice."""
    n = log_w.shape[dim]
    return torch.logsumexp(log_w, dim=dim) - math.log(n)


def ess_from_log_weights(log_w: Tensor) -> Tensor:
    """Effective sample size ``(sum w)^2 / sum w^2`` per row of ``log_w [..., N]``.

    Computed in log space as ``exp(2 lse(log_w) - lse(2 log_w))``; invariant to
    adding a constant to a row. Live rows give a value in ``[1, N]``; dead rows
    (all ``-inf``) give ``0``.
    """
    lse1 = torch.logsumexp(log_w, dim=-1)
    lse2 = torch.logsumexp(2.0 * log_w, dim=-1)
    dead = torch.isneginf(lse1)
    ess = torch.exp(2.0 * lse1 - torch.where(dead, torch.zeros_like(lse2), lse2))
    n = log_w.shape[-1]
    ess = ess.clamp(1.0, float(n))
    return torch.where(dead, torch.zeros_like(ess), ess)


class Weights:
    """Immutable unnormalised log weights ``[B, N]`` in float64.

    Args:
        log_w: tensor of shape ``[B, N]`` (any real dtype; stored as float64); finite
            values or ``-inf`` (weight zero). NaN and ``+inf`` raise ``ConfigError``.

    Derived quantities (all per row, shape ``[B]`` unless stated):
        ``log_sum``: ``log sum_i w_i``; ``log_mean``: ``log (1/N) sum_i w_i`` (the
        factor an SMC step contributes to ``log Z``); ``ess``; ``dead``;
        ``normalized()``: ``W_i = w_i / sum_j w_j`` of shape ``[B, N]``.
    """

    __slots__ = ("_log_w",)

    def __init__(self, log_w: Tensor) -> None:
        if not isinstance(log_w, Tensor):
            log_w = torch.as_tensor(log_w)
        if log_w.dim() != 2:
            raise ConfigError(
                f"log weights must have shape [B, N] (prompts x particles); got shape {tuple(log_w.shape)}"
            )
        if log_w.shape[1] < 1:
            raise ConfigError("log weights need at least one particle per prompt (N >= 1)")
        if log_w.dtype.is_complex or log_w.dtype == torch.bool:
            raise ConfigError(f"log weights must be real numbers; got dtype {log_w.dtype}")
        lw = log_w.to(torch.float64)
        if torch.isnan(lw).any():
            rows = torch.nonzero(torch.isnan(lw).any(dim=1)).flatten().tolist()
            raise ConfigError(
                f"log weights of prompt(s) {rows[:8]} contain NaN; a log weight must be a finite number or -inf "
                f"(weight zero). A NaN comes from a bug upstream (a potential or proposal); it is not read as zero"
            )
        if torch.isposinf(lw).any():
            rows = torch.nonzero(torch.isposinf(lw).any(dim=1)).flatten().tolist()
            raise ConfigError(f"log weights of prompt(s) {rows} contain +inf; weights must be finite or -inf")
        self._log_w = lw

    # ------------------------------------------------------------------ constructors
    @classmethod
    def uniform(cls, batch: int, n_particles: int, device: torch.device | str | None = None) -> "Weights":
        """All log weights zero: ``[batch, n_particles]``."""
        n_particles = check_int("n_particles", n_particles, minimum=1)
        batch = check_int("batch", batch, minimum=0)
        return cls(torch.zeros(batch, n_particles, dtype=torch.float64, device=device))

    # ------------------------------------------------------------------ views
    @property
    def log_w(self) -> Tensor:
        """The unnormalised log weights ``[B, N]`` (float64). Do not modify in place."""
        return self._log_w

    @property
    def shape(self) -> torch.Size:
        return self._log_w.shape

    @property
    def batch_size(self) -> int:
        return self._log_w.shape[0]

    @property
    def n_particles(self) -> int:
        return self._log_w.shape[1]

    @property
    def log_sum(self) -> Tensor:
        """``log sum_i w_i`` per row ``[B]``."""
        return torch.logsumexp(self._log_w, dim=1)

    @property
    def log_mean(self) -> Tensor:
        """``log mean_i w_i`` per row ``[B]``; ``-inf`` for a dead row."""
        return log_mean_exp(self._log_w, dim=1)

    @property
    def dead(self) -> Tensor:
        """Bool ``[B]``: rows whose particles all have weight zero."""
        return torch.isneginf(self._log_w).all(dim=1)

    @property
    def ess(self) -> Tensor:
        """Effective sample size per row ``[B]``: in ``[1, N]`` for live rows, ``0`` for dead rows."""
        return ess_from_log_weights(self._log_w)

    def normalized(self, allow_dead: bool = False) -> Tensor:
        """Normalised weights ``[B, N]`` (each live row sums to one).

        Raises:
            AllParticlesDeadError: if a row is dead and ``allow_dead`` is False. With
                ``allow_dead=True`` dead rows are returned as zeros.
        """
        dead = self.dead
        if dead.any() and not allow_dead:
            raise AllParticlesDeadError(
                torch.nonzero(dead).flatten().tolist(),
                hint="Use normalized(allow_dead=True) to get zeros for those rows, or leave them out (Weights.dead).",
            )
        lse = torch.logsumexp(self._log_w, dim=1, keepdim=True)
        safe = torch.where(torch.isneginf(lse), torch.zeros_like(lse), lse)
        w = torch.exp(self._log_w - safe)
        return torch.where(dead[:, None], torch.zeros_like(w), w)

    # ------------------------------------------------------------------ updates
    def add(self, delta: Tensor) -> "Weights":
        """Return ``Weights(log_w + delta)``; ``delta`` broadcasts to ``[B, N]``.

        ``-inf + x`` stays ``-inf`` for any finite or ``-inf`` x (never NaN).
        """
        d = torch.as_tensor(delta, dtype=torch.float64, device=self._log_w.device)
        if bool(torch.isnan(d).any()):
            raise ConfigError(
                "the log-weight increment (delta) contains NaN; increments must be numbers or -inf (weight zero)"
            )
        new = self._log_w + d
        # -inf + -inf = -inf already; guard the only NaN source (-inf + inf is rejected upstream).
        new = torch.where(torch.isneginf(self._log_w) | torch.isneginf(d.expand_as(new)), -math.inf, new)
        return Weights(new)

    def reset(self, rows: Tensor | None = None) -> "Weights":
        """Set the log weights of ``rows`` (bool ``[B]``; all rows if None) to zero."""
        if rows is None:
            return Weights(torch.zeros_like(self._log_w))
        return Weights(torch.where(rows[:, None], torch.zeros_like(self._log_w), self._log_w))

    def __repr__(self) -> str:
        return f"Weights(shape={tuple(self.shape)}, ess={self.ess.tolist()})"
