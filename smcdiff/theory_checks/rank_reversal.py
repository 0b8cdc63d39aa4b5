"""Rank reversal under reward-weighted logit scaling (RWS, arXiv 2509.00707, Theorem 1).

These are our reconstructed statements (the paper's exact ones are not
available); every statement here is proved or checked numerically in the tests.

For a position with logits ``z`` (arg-max ``v*``) let ``d_v = z_{v*} - z_v >= 0``.
Under a logit scale ``r > 0`` the confidence (top probability) is

    c(r) = max_v softmax(r z)_v = 1 / S(r),   S(r) = sum_v exp(-r d_v).

* **Lemma 0** — the arg-max is the same for every ``r > 0``; ``c`` is
  non-decreasing in ``r``; ``c -> 1/V`` as ``r -> 0`` and ``c -> 1/m`` as
  ``r -> inf`` (``m`` tied maxima).
* **Proposition 1 (small r)** — ``S(r) = V - r D + O(r^2)`` with
  ``D = sum_v d_v = V (max z - mean z)``: for small ``r`` the position with the
  larger ``D`` has the larger confidence.
* **Proposition 2 (large r)** — ``S(r) = m + n e^{-r Delta} + o(e^{-r Delta})``
  with ``m`` tied maxima, ``Delta`` the top-1 minus top-2 margin and ``n`` the
  runners-up at it: for large ``r`` fewer tied maxima win, then the larger margin,
  then fewer runners-up.
* **Proposition 3 (two-level model)** — a position with its top token and ``m``
  alternatives at gap ``d`` has ``c(r) = 1 / (1 + m e^{-r d})``; two such curves
  cross at most once, at ``r* = ln(m_j / m_i) / (d_j - d_i)``, and exactly one of
  three cases holds (reversal above ``r* > 1``, below ``r* < 1``, or never).

Comparisons never go through ``c`` or ``S`` in float64, which saturate (``c``
rounds to 1 once ``r * Delta > ~37``; ``log S = log(m + T)`` stops resolving ``T``
once ``r * Delta > ~745``). They split ``S = m + T(r)`` into the number ``m`` of
tied maxima and ``log T(r) = logsumexp(-r d_v, d_v > 0)``: positions with the same
``m`` are ordered by ``log T`` alone, which stays exact for any ``r``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import brentq
from scipy.special import logsumexp

__all__ = [
    "gaps",
    "log_S",
    "confidence",
    "log_one_minus_confidence",
    "compare",
    "total_gap",
    "margin",
    "small_r_winner",
    "large_r_winner",
    "two_level_confidence",
    "two_level_crossing",
    "two_level_case",
    "crossings",
    "rws_select",
    "TwoLevelCase",
]


def _z(z: Sequence[float]) -> np.ndarray:
    a = np.asarray(z, dtype=np.float64).reshape(-1)
    if a.size < 1 or not np.all(np.isfinite(a)):
        raise ValueError("logits must be a non-empty vector of finite numbers")
    return a


def gaps(z: Sequence[float]) -> np.ndarray:
    """``d_v = max(z) - z_v`` (float64)."""
    a = _z(z)
    return a.max() - a


def log_S(z: Sequence[float], r: float) -> float:
    """``log S(r) = log sum_v exp(-r d_v)``; ``c(r) = exp(-log S(r))``."""
    if not r > 0:
        raise ValueError(f"the scale r must be > 0; got {r}")
    return float(logsumexp(-r * gaps(z)))


def confidence(z: Sequence[float], r: float = 1.0) -> float:
    """``max_v softmax(r z)_v``."""
    return math.exp(-log_S(z, r))


def log_one_minus_confidence(z: Sequence[float], r: float) -> float:
    """``log(1 - c(r))`` computed without cancellation (``-inf`` for V = 1)."""
    d = np.sort(gaps(z))[1:]  # drop one maximum
    if d.size == 0:
        return -math.inf
    return float(logsumexp(-r * d)) - log_S(z, r)


def _order_key(z: Sequence[float], r: float) -> tuple[float, int, float]:
    """A sort key, increasing as the confidence at scale ``r`` decreases: ``(S, m, log T)``.

    ``S = m + T`` decides when it resolves the difference; equal float ``S`` with
    equal ``m`` falls back to ``log T``, which never saturates.
    """
    if not r > 0:
        raise ValueError(f"the scale r must be > 0; got {r}")
    d = gaps(z)
    m = int(np.sum(d == 0))
    rest = d[d > 0]
    log_t = float(logsumexp(-r * rest)) if rest.size else -math.inf
    return (m + math.exp(log_t), m, log_t)


def compare(zi: Sequence[float], zj: Sequence[float], r: float) -> int:
    """+1 if position i is more confident than j at scale r, -1 if less, 0 on a tie.

    Exact for any ``r > 0`` (see the module docstring): large scales do not turn
    a strict preference into a tie.
    """
    a, b = _order_key(zi, r), _order_key(zj, r)
    return 0 if a == b else (1 if a < b else -1)


def total_gap(z: Sequence[float]) -> float:
    """``D = sum_v d_v = V (max z - mean z)`` (Proposition 1)."""
    return float(gaps(z).sum())


def margin(z: Sequence[float]) -> tuple[float, int]:
    """``(Delta, n)``: the smallest positive gap and how many tokens sit at it (Proposition 2).

    ``(inf, 0)`` when every token is tied with the maximum.
    """
    d = gaps(z)
    pos = d[d > 0]
    if pos.size == 0:
        return math.inf, 0
    delta = float(pos.min())
    return delta, int(np.sum(np.isclose(d, delta, rtol=0, atol=1e-12)))


def small_r_winner(zi: Sequence[float], zj: Sequence[float]) -> int:
    """Which position wins for all small enough r (Proposition 1): +1 (i), -1 (j) or 0 (undecided).

    Requires equal vocabulary sizes.
    """
    if len(_z(zi)) != len(_z(zj)):
        raise ValueError("Proposition 1 compares positions with the same vocabulary size")
    di, dj = total_gap(zi), total_gap(zj)
    return 0 if math.isclose(di, dj, rel_tol=0, abs_tol=1e-12) else (1 if di > dj else -1)


def large_r_winner(zi: Sequence[float], zj: Sequence[float]) -> int:
    """Which position wins for all large enough r (Proposition 2): +1 (i), -1 (j) or 0.

    Fewer tied maxima win first (``c -> 1/m``, Lemma 0); among equal ``m``, the
    larger margin ``Delta``, then fewer runners-up ``n`` at it.
    """
    mi, mj = int(np.sum(gaps(zi) == 0)), int(np.sum(gaps(zj) == 0))
    if mi != mj:
        return 1 if mi < mj else -1
    (ai, ni), (aj, nj) = margin(zi), margin(zj)
    if ai != aj:
        return 1 if ai > aj else -1
    if ni != nj:
        return 1 if ni < nj else -1
    return 0


def two_level_confidence(m: float, d: float, r: float) -> float:
    """``1 / (1 + m exp(-r d))``."""
    return 1.0 / (1.0 + m * math.exp(-r * d))


def two_level_crossing(m_i: float, d_i: float, m_j: float, d_j: float) -> float:
    """``r* = ln(m_j / m_i) / (d_j - d_i)`` (``nan`` when ``d_i == d_j``)."""
    if d_i == d_j:
        return math.nan
    return math.log(m_j / m_i) / (d_j - d_i)


@dataclass(frozen=True)
class TwoLevelCase:
    """Outcome of Proposition 3 for a baseline (r = 1) preference of i over j.

    ``kind`` is ``"above"`` (reversal iff r > r*, and r* > 1), ``"below"``
    (reversal iff r < r*, and r* < 1) or ``"never"``.
    """

    kind: str
    r_star: float


def two_level_case(m_i: float, d_i: float, m_j: float, d_j: float) -> TwoLevelCase:
    """Classify a pair of two-level positions; the baseline must prefer i."""
    if not m_i * math.exp(-d_i) < m_j * math.exp(-d_j):
        raise ValueError("the baseline (r = 1) must prefer position i: m_i e^-d_i < m_j e^-d_j")
    r_star = two_level_crossing(m_i, d_i, m_j, d_j)
    if d_j > d_i and m_j > m_i:
        return TwoLevelCase("above", r_star)
    if d_j < d_i and m_j < m_i:
        return TwoLevelCase("below", r_star)
    return TwoLevelCase("never", r_star)


def crossings(zi: Sequence[float], zj: Sequence[float], r_min: float = 1e-3, r_max: float = 50.0, n_grid: int = 4000) -> list[float]:
    """All scales in ``[r_min, r_max]`` where the two confidences cross (root-found on ``log S_i - log S_j``).

    A log-spaced grid brackets sign changes, refined with Brent's method to 1e-12.
    For general vocabularies there can be more than one crossing (uniqueness holds
    only in the two-level model).
    """

    def f(r: float) -> float:
        return log_S(zi, r) - log_S(zj, r)

    grid = np.geomspace(r_min, r_max, n_grid)
    vals = np.array([f(r) for r in grid])
    roots = []
    for a, b, fa, fb in zip(grid[:-1], grid[1:], vals[:-1], vals[1:]):
        if fa == 0.0:
            roots.append(float(a))
        elif fa * fb < 0:
            roots.append(float(brentq(f, a, b, xtol=1e-12)))
    return roots


def rws_select(positions: Sequence[Sequence[float]], k: int, r: float) -> tuple[list[int], list[float]]:
    """One RWS step on explicit logits: the ``k`` most confident positions at scale ``r`` (ties to the left).

    Returns ``(committed positions, confidences)``; the committed tokens are the
    arg-max tokens, whatever ``r > 0`` is (Lemma 0).
    """
    keys = [_order_key(z, r) for z in positions]
    order = sorted(range(len(positions)), key=lambda i: (keys[i], i))
    return sorted(order[:k]), [confidence(z, r) for z in positions]
