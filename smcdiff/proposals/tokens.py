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
over the whole vocabulary, as ML-GSAI/LLaDA ``add_gumbel_noise`` does;
``GumbelMax(replay="llada")`` draws that noise over the whole canvas at every
step, exactly as ``generate`` does, to replay upstream's noise stream. :class:`Greedy` is the ``T = 0``
limit of both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError, check_int, check_number
from .base import RowRNG

__all__ = ["TokenLogProbs", "TokenSampler", "Greedy", "Categorical", "GumbelMax", "log_softmax_at", "truncate_logits"]

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
    if isinstance(t, bool) or not isinstance(t, (int, float)) and not hasattr(t, "__float__"):
        raise ConfigError(f"temperature must be a finite number >= 0; got {t!r}")
    t = float(t)
    if not (0.0 <= t < float("inf")):
        raise ConfigError(f"temperature must be finite and >= 0; got {t}")
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


def truncate_logits(z: Tensor, top_p: float | None = None, top_k: int | None = None) -> Tensor:
    """Dream's nucleus and top-k truncation of (already tempered) logits ``z [..., V]``.

    ``top_p``: sort decreasingly, drop every token after the first whose
    cumulative probability exceeds ``top_p`` (the token that crosses it is
    kept). ``top_k``: drop tokens whose logit is below the k-th largest (ties at
    the k-th value are kept). Dropped tokens get ``-inf``. Applied in that
    order, as ``sample_tokens`` in Dream's ``generation_utils.py`` does.
    """
    if top_p is not None and top_p < 1:
        sorted_z, idx = torch.sort(z, dim=-1, descending=True)
        cum = torch.cumsum(torch.softmax(sorted_z.to(torch.float64), dim=-1), dim=-1)
        remove = cum > top_p
        remove[..., 1:] = remove[..., :-1].clone()
        remove[..., 0] = False
        mask = torch.zeros_like(z, dtype=torch.bool).scatter_(-1, idx, remove)
        z = z.masked_fill(mask, float("-inf"))
    if top_k is not None:
        k = min(int(top_k), z.shape[-1])
        kth = torch.topk(z, k, dim=-1).values[..., -1:]
        z = z.masked_fill(z < kth, float("-inf"))
    return z


def _check_truncation(top_p: float | None, top_k: int | None) -> None:
    if top_p is not None:
        check_number("top_p", top_p, low=0.0, high=1.0, low_open=True)
    if top_k is not None:
        check_int("top_k", top_k, minimum=1)


class TokenSampler(ABC):
    """Draws candidate tokens ``[R, Lb]`` from block logits ``[R, Lb, V]``.

    Subclasses define the sampling law through :meth:`tempered_logits` (the
    logits of the law the sampler draws from at positive temperature, or of the
    renormalised truncated law used for Dream-style confidences at temperature 0).
    """

    temperature: float = 1.0
    top_p: float | None = None
    top_k: int | None = None

    @property
    def is_deterministic(self) -> bool:
        return self.temperature == 0.0

    @property
    def truncates(self) -> bool:
        return (self.top_p is not None and self.top_p < 1) or self.top_k is not None

    def tempered_logits(self, logits: Tensor) -> Tensor:
        """``truncate(logits / T)`` (no division at ``T = 0``, as Dream)."""
        z = logits if self.temperature in (0.0, 1.0) else logits / self.temperature
        return truncate_logits(z, self.top_p, self.top_k) if self.truncates else z

    def _greedy(self, logits: Tensor, tokens: Tensor | None = None) -> tuple[Tensor, TokenLogProbs]:
        best = logits.argmax(dim=-1)
        tok = best if tokens is None else tokens
        model = log_softmax_at(logits, tok)
        tempered = log_softmax_at(self.tempered_logits(logits), tok) if self.truncates else model
        prop = torch.where(tok == best, 0.0, float("-inf")).to(torch.float64)
        return tok, TokenLogProbs(model=model, proposal=prop, tempered=tempered)

    def _stochastic_log_probs(self, logits: Tensor, tokens: Tensor, lse_z: Tensor | None = None) -> TokenLogProbs:
        z = self.tempered_logits(logits)
        prop = log_softmax_at(z, tokens, lse_z)
        plain = self.temperature == 1.0 and not self.truncates
        model = prop if plain else log_softmax_at(logits, tokens)
        return TokenLogProbs(model=model, proposal=prop, tempered=prop)

    @abstractmethod
    def draw(self, logits: Tensor, rng: RowRNG) -> tuple[Tensor, TokenLogProbs]:
        """Draw a token at every block position; return it with its log-probabilities."""

    def log_prob(self, logits: Tensor, tokens: Tensor) -> TokenLogProbs:
        """Log-probabilities of given tokens (``-inf`` where the sampler cannot draw them)."""
        if self.temperature == 0.0:
            return self._greedy(logits, tokens)[1]
        return self._stochastic_log_probs(logits, tokens)


@dataclass(frozen=True)
class Greedy(TokenSampler):
    """The most likely token (``argmax``; first index on ties). ``proposal`` is 0 / -inf."""

    temperature: float = 0.0

    def __post_init__(self) -> None:
        if self.temperature != 0.0:
            raise ConfigError("Greedy has temperature 0; use Categorical(T) for T > 0")

    def draw(self, logits: Tensor, rng: RowRNG) -> tuple[Tensor, TokenLogProbs]:
        return self._greedy(logits)


@dataclass(frozen=True)
class Categorical(TokenSampler):
    """Exact draws from ``softmax(truncate(logits / temperature))`` by inverse CDF.

    ``temperature = 0`` is greedy decoding. ``top_p`` / ``top_k`` truncate the
    tempered logits as Dream does. One float64 uniform per particle and block
    position, from the prompt's generator.
    """

    temperature: float = 1.0
    top_p: float | None = None
    top_k: int | None = None

    def __post_init__(self) -> None:
        _check_temperature(self.temperature)
        _check_truncation(self.top_p, self.top_k)

    def draw(self, logits: Tensor, rng: RowRNG) -> tuple[Tensor, TokenLogProbs]:
        if self.temperature == 0.0:
            return self._greedy(logits)
        r, lb, v = logits.shape
        u = rng.uniform(lb).reshape(r * lb)
        z = self.tempered_logits(logits)
        tok, lse_z = _sample_inverse_cdf(z.reshape(r * lb, v), u)
        tok = tok.reshape(r, lb)
        return tok, self._stochastic_log_probs(logits, tok, lse_z.reshape(r, lb))


@dataclass(frozen=True)
class GumbelMax(TokenSampler):
    """``argmax(truncate(logits / T) + g)``, ``g`` standard Gumbel noise in float64 over the vocabulary.

    The sampler of ML-GSAI/LLaDA (``add_gumbel_noise``): the same law as
    :class:`Categorical` but ``V`` uniforms per position, so it is slower.
    ``temperature = 0`` is greedy and draws nothing.

    Noise stream. By default each step draws ``[Lb, V]`` uniforms per particle,
    for the current block only. ``replay="llada"`` draws them as ``generate`` does:
    ``[1, L, V]`` float64 uniforms over the *whole* canvas (prompt included) at
    every step, of which the block's rows are used, and picks
    ``argmax(exp(logits) / (-log u)^T)`` in float64, upstream's exact expression.
    With the same seed (upstream ``torch.manual_seed(s)``; here ``seed=[s]`` for
    one prompt, or a generator) the candidates then equal upstream's at any
    temperature, prompt and number of blocks, and so do the tokens where the rest
    of the kernel replays it too (``recipes.llada(faithful=True)``). Replay costs
    ``L / Lb`` times the noise of the default and cannot be combined with
    truncation (upstream has none).
    """

    temperature: float = 1.0
    top_p: float | None = None
    top_k: int | None = None
    replay: str | None = None

    def __post_init__(self) -> None:
        _check_temperature(self.temperature)
        _check_truncation(self.top_p, self.top_k)
        if self.replay not in (None, "llada"):
            raise ConfigError(f"replay must be None or 'llada'; got {self.replay!r}")
        if self.replay is not None and self.truncates:
            raise ConfigError(
                f"replay={self.replay!r} reproduces an untruncated sampler; got top_p={self.top_p}, top_k={self.top_k}"
            )

    def gumbel_argmax(self, logits: Tensor, u: Tensor) -> Tensor:
        """The token chosen by uniforms ``u`` (same shape as ``logits``), as LLaDA computes it.

        LLaDA's ``exp(logits) / (-log u)^T`` has the same argmax as
        ``logits - T * log(-log u)``; the log form avoids overflow. (No truncation.)
        """
        noisy = logits.to(torch.float64) - self.temperature * torch.log(-torch.log(u))
        return noisy.argmax(dim=-1)

    def draw(self, logits: Tensor, rng: RowRNG) -> tuple[Tensor, TokenLogProbs]:
        if self.temperature == 0.0:
            return self._greedy(logits)
        r, lb, v = logits.shape
        if self.replay == "llada":
            if rng.positions is None:
                raise ConfigError("GumbelMax(replay='llada') needs the block positions; only UnmaskingKernel provides them")
            u = rng.canvas_uniform(v, at=rng.positions)
            noisy = logits.to(torch.float64).exp() / (-torch.log(u)) ** self.temperature
            tok = noisy.argmax(dim=-1)
        elif self.truncates:
            u = rng.uniform(lb, v)
            noisy = self.tempered_logits(logits).to(torch.float64) - torch.log(-torch.log(u))
            tok = noisy.argmax(dim=-1)
        else:
            tok = self.gumbel_argmax(logits, rng.uniform(lb, v))
        return tok, self.log_prob(logits, tok)
