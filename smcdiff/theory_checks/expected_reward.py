"""Expected-reward results for reward weighting (RWS, arXiv 2509.00707, Theorem 2), reconstructed.

* **T2a (tilting)** — for ``q ∝ p w(R)`` with ``w >= 0`` non-decreasing in ``R``:
  ``E_q[R] - E_p[R] = Cov_p(R, w) / E_p[w] >= 0`` (Chebyshev's association
  inequality); for the exponential tilt ``q_beta ∝ p e^{beta R}``,
  ``d/dbeta E_beta[R] = Var_beta(R) >= 0``.
* **T2b (logit scaling)** — if the reward of token ``v`` is a non-decreasing
  function of its logit ``z_v`` (reward and model rank tokens alike), then
  ``g(r) = E_{softmax(r z)}[R]`` is non-decreasing, with
  ``g'(r) = Cov_{softmax(r z)}(z, R) >= 0``. Without that precondition sharpening
  can lower the expected reward.

These are our formalisations of the paper's claim, not verbatim statements.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy.special import softmax

__all__ = [
    "tilted_expectation",
    "tilt_gain",
    "exp_tilt_expectation",
    "exp_tilt_derivative",
    "logit_scaling_expectation",
    "logit_scaling_derivative",
    "is_comonotone",
    "is_non_decreasing_in",
]


def _pr(p: Sequence[float], R: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    if p.shape != R.shape or p.ndim != 1:
        raise ValueError("p and R must be vectors of the same length")
    if np.any(p < 0) or not np.isclose(p.sum(), 1.0):
        raise ValueError("p must be a probability vector")
    return p, R


def tilted_expectation(p, R, w) -> float:
    """``E_q[R]`` for ``q ∝ p * w`` (``w`` a vector or a function of R)."""
    p, R = _pr(p, R)
    wv = np.asarray(w(R) if callable(w) else w, dtype=np.float64)
    if np.any(wv < 0) or (p * wv).sum() <= 0:
        raise ValueError("w must be non-negative with E_p[w] > 0")
    return float((p * wv * R).sum() / (p * wv).sum())


def tilt_gain(p, R, w) -> tuple[float, float]:
    """``(E_q[R] - E_p[R], Cov_p(R, w) / E_p[w])``: the two sides of T2a (equal)."""
    p, R = _pr(p, R)
    wv = np.asarray(w(R) if callable(w) else w, dtype=np.float64)
    ew = (p * wv).sum()
    cov = (p * wv * R).sum() - ew * (p * R).sum()
    return tilted_expectation(p, R, wv) - float((p * R).sum()), float(cov / ew)


def exp_tilt_expectation(p, R, beta: float) -> float:
    """``E_beta[R]`` for ``q_beta ∝ p e^{beta R}``."""
    p, R = _pr(p, R)
    with np.errstate(divide="ignore"):
        q = softmax(np.log(p) + beta * R)
    return float((q * R).sum())


def exp_tilt_derivative(p, R, beta: float) -> float:
    """``d/dbeta E_beta[R] = Var_beta(R)``."""
    p, R = _pr(p, R)
    with np.errstate(divide="ignore"):
        q = softmax(np.log(p) + beta * R)
    m = (q * R).sum()
    return float((q * (R - m) ** 2).sum())


def logit_scaling_expectation(z, R, r: float) -> float:
    """``g(r) = E_{softmax(r z)}[R]``."""
    z = np.asarray(z, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    q = softmax(r * z)
    return float((q * R).sum())


def logit_scaling_derivative(z, R, r: float) -> float:
    """``g'(r) = Cov_{softmax(r z)}(z, R)``."""
    z = np.asarray(z, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    q = softmax(r * z)
    return float((q * z * R).sum() - (q * z).sum() * (q * R).sum())


def is_comonotone(z, R) -> bool:
    """True when ``R`` is a non-decreasing function of ``z`` (``z_u < z_v`` implies ``R_u <= R_v``;
    equal logits must have equal rewards)."""
    z = np.asarray(z, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    for u in range(len(z)):
        for v in range(len(z)):
            if z[u] < z[v] and R[u] > R[v]:
                return False
            if z[u] == z[v] and R[u] != R[v]:
                return False
    return True


def is_non_decreasing_in(R, w: Callable | Sequence[float]) -> bool:
    """True when ``w`` (values per outcome, or a function of R) is a non-decreasing function of ``R``."""
    R = np.asarray(R, dtype=np.float64)
    wv = np.asarray(w(R) if callable(w) else w, dtype=np.float64)
    for u in range(len(R)):
        for v in range(len(R)):
            if R[u] < R[v] and wv[u] > wv[v]:
                return False
            if R[u] == R[v] and wv[u] != wv[v]:
                return False
    return True
