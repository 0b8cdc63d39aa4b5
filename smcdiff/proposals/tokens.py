"""Token samplers: how the candidate clean token at each masked position is drawn.

Every sampler reports, for the drawn (or given) token ``x`` at each position,

* ``model``: ``log softmax(logits)[x]``, the untempered model log-probability
  (LLaDA's confidence and the SR-SMC potential use this), and
* ``proposal``: the log-probability of ``x`` under the distribution the sampler
  actually draws from (tempered and possibly truncated); ``0``/``-inf`` for the
  point mass of greedy decoding.

All log-probabilities are float64. Logits may be float32 (real models) or
float64 (toy models); the sampling distribution is accumulated in float64 so
that the tail of a large vocabulary is not lost to rounding (the concern behind
LLaDA's float64 Gumbel noise).

Samplers
--------
:class:`Categorical` (default) draws exactly from ``softmax(logits / T)`` by
inverse-CDF with one uniform per position. :class:`GumbelMax` draws from the
same distribution as ``argmax(logits / T + Gumbel noise)`` with float64 noise
over the whole vocabulary, exactly as ML-GSAI/LLaDA ``add_gumbel_noise`` does;
use it to reproduce upstream noise streams. :class:`Greedy` is the ``T = 0``
limit of both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError
from .base import RowRNG

__all__ = ["TokenLogProbs", "TokenSampler", "Greedy", "Categorical", "GumbelMax", "log_softmax_at"]

_CHUNK = 128


@dataclass(frozen=True)
class TokenLogProbs:
    """Log-probabilities of the candidate tokens, each ``[R, Lb]`` float64.

    Attributes:
        model: under the untempered model, ``log softmax(logits)[x]``.
        proposal: under the law the sampler draws from (point mass for greedy).
        tempered: under the sampler's tempered and truncated softmax; for greedy
            decoding (``T = 0``) this is the untempered model probability, as in
            Dream's ``maskgit_plus`` confidence.
    """

    model: Tensor
    proposal: Tensor
    tempered: Tensor


def _chunk_sums(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(m, e, cs)`` for ``z [..., V]``: row max, ``exp(z - m)`` and its sums over chunks of 128.

    ``cs`` has shape ``[..., ceil(V / 128)]`` in the dtype of ``z``; it is combined in
    float64 by the callers, so every token keeps its own relative precision.
    """
    m = z.amax(dim=-1, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = (z - m).exp_()
    v = z.shape[-1]
    full = v // _CHUNK
    if full == 0:
        return m, e, e.sum(dim=-1, keepdim=True)
    cs = e[..., : full * _CHUNK].reshape(*z.shape[:-1], full, _CHUNK).sum(dim=-1)
    if full * _CHUNK < v:
        cs = torch.cat([cs, e[..., full * _CHUNK :].sum(dim=-1, keepdim=True)], dim=-1)
    return m, e, cs


def _lse(z: Tensor) -> Tensor:
    """``logsumexp`` over the last dim, accumulated in float64: ``[...]`` float64."""
    m, _, cs = _chunk_sums(z)
    total = cs.to(torch.float64).cumsum(dim=-1)[..., -1]
    return m.squeeze(-1).to(torch.float64) + torch.log(total)


def log_softmax_at(logits: Tensor, tokens: Tensor, lse: Tensor | None = None) -> Tensor:
    """``log softmax(logits)[tokens]`` in float64 for ``logits [..., V]`` and ``tokens [...]``."""
    if lse is None:
        lse = _lse(logits)
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).to(torch.float64)
    return picked - lse


def _check_temperature(t: float) -> float:
    t = float(t)
    if not (t >= 0.0) or t != t:
        raise ConfigError(f"temperature must be >= 0; got {t}")
    return t


def _sample_inverse_cdf(z: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """Draw one index per row of ``z [R, V]`` from ``softmax(z)`` using ``u [R]`` in [0, 1).

    Returns ``(index [R], lse [R] float64)``; ``lse`` is bit-identical to
    ``_lse(z)``. The chunk containing ``u * total`` is found on the float64
    cumulative chunk sums and then scanned in float64. Zero-probability entries
    are never returned.
    """
    r, v = z.shape
    m, e, cs = _chunk_sums(z)
    chunk = _CHUNK if v >= _CHUNK else v
    ccs = cs.to(torch.float64).cumsum(dim=-1)
    n_chunks = ccs.shape[1]
    total = ccs[:, -1:]
    target = u.reshape(r, 1).to(torch.float64) * total
    ci = torch.searchsorted(ccs, target, right=True).clamp_(max=n_chunks - 1)
    prev = torch.where(ci > 0, ccs.gather(1, (ci - 1).clamp(min=0)), torch.zeros_like(target))
    ar = torch.arange(chunk, device=z.device)[None, :]
    idx = ci * chunk + ar
    valid = idx < v
    vals = e.gather(1, idx.clamp(max=v - 1)).to(torch.float64) * valid
    within = vals.cumsum(dim=-1) + prev
    # the last positive entry of the chunk absorbs rounding slack at its top
    last_pos = torch.where(vals > 0, ar, -1).amax(dim=-1, keepdim=True).clamp(min=0)
    wi = torch.minimum(torch.searchsorted(within, target, right=True), last_pos)
    tok = (ci * chunk + wi).squeeze(-1)
    lse = m.squeeze(-1).to(torch.float64) + torch.log(total.squeeze(-1))
    return tok, lse


class TokenSampler(ABC):
    """Draws candidate tokens ``[R, Lb]`` from block logits ``[R, Lb, V]``."""

    temperature: float = 1.0

    @abstractmethod
    def draw(self, logits: Tensor, rng: RowRNG) -> tuple[Tensor, TokenLogProbs]:
        """Draw a token at every block position; return it with its log-probabilities."""

    @abstractmethod
    def log_prob(self, logits: Tensor, tokens: Tensor) -> TokenLogProbs:
        """Log-probabilities of given tokens (``-inf`` where the sampler cannot draw them)."""

    @property
    def is_deterministic(self) -> bool:
        return False


@dataclass(frozen=True)
class Greedy(TokenSampler):
    """The most likely token (``argmax``; first index on ties). ``proposal`` is 0 / -inf."""

    temperature: float = 0.0

    @property
    def is_deterministic(self) -> bool:
        return True

    def draw(self, logits: Tensor, rng: RowRNG) -> tuple[Tensor, TokenLogProbs]:
        tok = logits.argmax(dim=-1)
        lp = log_softmax_at(logits, tok)
        return tok, TokenLogProbs(model=lp, proposal=torch.zeros_like(lp), tempered=lp)

    def log_prob(self, logits: Tensor, tokens: Tensor) -> TokenLogProbs:
        lp = log_softmax_at(logits, tokens)
        best = logits.argmax(dim=-1)
        prop = torch.where(tokens == best, 0.0, float("-inf")).to(torch.float64)
        return TokenLogProbs(model=lp, proposal=prop, tempered=lp)


@dataclass(frozen=True)
class Categorical(TokenSampler):
    """Exact draws from ``softmax(logits / temperature)`` (inverse CDF, one uniform per position).

    ``temperature = 0`` is greedy decoding. Uses one float64 uniform per
    particle and block position from the prompt's generator.
    """

    temperature: float = 1.0

    def __post_init__(self) -> None:
        _check_temperature(self.temperature)

    @property
    def is_deterministic(self) -> bool:
        return self.temperature == 0.0

    def _tempered(self, logits: Tensor) -> Tensor:
        return logits if self.temperature == 1.0 else logits / self.temperature

    def draw(self, logits: Tensor, rng: RowRNG) -> tuple[Tensor, TokenLogProbs]:
        if self.temperature == 0.0:
            return Greedy().draw(logits, rng)
        r, lb, v = logits.shape
        u = rng.uniform(lb).reshape(r * lb)
        z = self._tempered(logits).reshape(r * lb, v)
        tok, lse_z = _sample_inverse_cdf(z, u)
        tok = tok.reshape(r, lb)
        lse_z = lse_z.reshape(r, lb)
        prop = log_softmax_at(self._tempered(logits), tok, lse_z)
        model = prop if self.temperature == 1.0 else log_softmax_at(logits, tok)
        return tok, TokenLogProbs(model=model, proposal=prop, tempered=prop)

    def log_prob(self, logits: Tensor, tokens: Tensor) -> TokenLogProbs:
        if self.temperature == 0.0:
            return Greedy().log_prob(logits, tokens)
        model = log_softmax_at(logits, tokens)
        prop = model if self.temperature == 1.0 else log_softmax_at(self._tempered(logits), tokens)
        return TokenLogProbs(model=model, proposal=prop, tempered=prop)


@dataclass(frozen=True)
class GumbelMax(TokenSampler):
    """``argmax(logits / T + g)`` with ``g`` standard Gumbel noise in float64 over the whole vocabulary.

    This is the sampler of ML-GSAI/LLaDA (``add_gumbel_noise``): the same law as
    :class:`Categorical` but ``V`` uniforms per position, so it is slower; use it
    to reproduce upstream noise. ``temperature = 0`` is greedy and draws nothing.
    """

    temperature: float = 1.0

    def __post_init__(self) -> None:
        _check_temperature(self.temperature)

    @property
    def is_deterministic(self) -> bool:
        return self.temperature == 0.0

    def gumbel_argmax(self, logits: Tensor, u: Tensor) -> Tensor:
        """The token chosen by uniforms ``u`` (same shape as ``logits``), as LLaDA computes it.

        LLaDA's ``exp(logits) / (-log u)^T`` has the same argmax as
        ``logits - T * log(-log u)``; the log form is used to avoid overflow.
        """
        noisy = logits.to(torch.float64) - self.temperature * torch.log(-torch.log(u))
        return noisy.argmax(dim=-1)

    def draw(self, logits: Tensor, rng: RowRNG) -> tuple[Tensor, TokenLogProbs]:
        if self.temperature == 0.0:
            return Greedy().draw(logits, rng)
        r, lb, v = logits.shape
        u = rng.uniform(lb, v)
        tok = self.gumbel_argmax(logits, u)
        return tok, self.log_prob(logits, tok)

    def log_prob(self, logits: Tensor, tokens: Tensor) -> TokenLogProbs:
        if self.temperature == 0.0:
            return Greedy().log_prob(logits, tokens)
        model = log_softmax_at(logits, tokens)
        prop = model if self.temperature == 1.0 else log_softmax_at(logits / self.temperature, tokens)
        return TokenLogProbs(model=model, proposal=prop, tempered=prop)
