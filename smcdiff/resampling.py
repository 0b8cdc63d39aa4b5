"""Resampling schemes, batched over prompts, with one random generator per prompt.

Each scheme maps normalised weights ``W [B, N]`` (float64, rows sum to one) to
ancestor indices ``A [B, M]``. All schemes here are *unbiased*: the expected
number of copies of particle ``i`` is ``M * W_i``. They differ in variance:

==============  ==========================================================
``multinomial`` M independent draws from ``W``.
``stratified``  one uniform in each of the M strata ``[k/M, (k+1)/M)``;
                ``|count_i - M W_i| < 2``.
``systematic``  one uniform shared by all strata; counts are always
                ``floor(M W_i)`` or ``ceil(M W_i)``.
``residual``    ``floor(M W_i)`` deterministic copies, the rest multinomial on
                the residual weights; counts are at least ``floor(M W_i)``.
==============  ==========================================================

Particles of weight zero are never selected. Randomness for row ``b`` comes
only from ``generators[b]``, so the ancestors of a prompt do not depend on which
other prompts share the batch. New schemes are added with :func:`register_scheme`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

from .errors import AllParticlesDeadError, ConfigError

__all__ = [
    "Scheme",
    "register_scheme",
    "get_scheme",
    "available_schemes",
    "resample",
    "counts_from_ancestors",
    "inverse_cdf",
]


@dataclass(frozen=True)
class Scheme:
    """A resampling scheme.

    Attributes:
        name: registry name.
        n_uniforms: ``M -> number of U(0,1) draws per row``.
        fn: ``(W [B, N] float64, U [B, n_uniforms] float64, M) -> ancestors [B, M] int64``.
    """

    name: str
    n_uniforms: Callable[[int], int]
    fn: Callable[[Tensor, Tensor, int], Tensor]


_REGISTRY: dict[str, Scheme] = {}


def _n_required(fn: Callable) -> int | None:
    """Number of required positional parameters of ``fn`` (None if it cannot be told)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    return sum(1 for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def register_scheme(
    name: str,
    n_uniforms: Callable[[int], int] | None = None,
    fn: Callable[[Tensor, Tensor, int], Tensor] | None = None,
):
    """Register ``fn(W, U, M) -> ancestors`` as a resampling scheme called ``name``.

    Two forms, both checked when called:

    * as a decorator, ``@register_scheme("name", n_uniforms=lambda m: m)`` above ``def fn(W, U, M)``;
    * directly, ``register_scheme("name", n_uniforms, fn)``.

    ``n_uniforms(M)`` is the number of ``U(0, 1)`` draws a row needs for ``M`` ancestors
    (one argument); ``fn`` takes ``(W [B, N] float64, U [B, n_uniforms(M)] float64, M)``.
    Raises :class:`ConfigError` for a name that is not a non-empty string (e.g. a bare
    ``@register_scheme`` without arguments), an ``n_uniforms`` that is not a one-argument
    function (e.g. the scheme function passed in its place, which would otherwise
    register nothing), or a name already registered.
    """
    if not isinstance(name, str) or not name:
        bare = callable(name)
        raise ConfigError(
            f"register_scheme: name must be a non-empty string; got {name!r}"
            + (
                " (a function: use @register_scheme('my_scheme', n_uniforms=lambda m: m), with arguments)"
                if bare
                else ""
            )
        )
    if n_uniforms is None:
        raise ConfigError(
            f"register_scheme({name!r}): n_uniforms is required, a function M -> number of U(0,1) draws per row "
            f"(e.g. n_uniforms=lambda m: m)"
        )
    if not callable(n_uniforms):
        raise ConfigError(
            f"register_scheme: n_uniforms must be a function M -> number of uniforms per row; got {n_uniforms!r}"
        )
    req = _n_required(n_uniforms)
    if req is not None and req != 1:
        raise ConfigError(
            f"register_scheme: n_uniforms must take one argument (M, the number of ancestors) and return the number "
            f"of uniforms per row; got {getattr(n_uniforms, '__name__', n_uniforms)!r} with {req} required "
            f"arguments. If that is the scheme itself, call register_scheme({name!r}, n_uniforms, fn) or decorate "
            f"it with @register_scheme({name!r}, n_uniforms=lambda m: m)"
        )
    if name in _REGISTRY:
        raise ConfigError(f"register_scheme: a resampling scheme named {name!r} is already registered")

    def deco(fn: Callable[[Tensor, Tensor, int], Tensor]):
        if not callable(fn):
            raise ConfigError(f"register_scheme: the scheme must be a function fn(W, U, M); got {fn!r}")
        req_fn = _n_required(fn)
        if req_fn is not None and req_fn != 3:
            raise ConfigError(
                f"register_scheme: the scheme function must take (W, U, M); {getattr(fn, '__name__', fn)!r} has "
                f"{req_fn} required arguments"
            )
        if name in _REGISTRY:
            raise ConfigError(f"register_scheme: a resampling scheme named {name!r} is already registered")
        _REGISTRY[name] = Scheme(name, n_uniforms, fn)
        return fn

    if fn is not None:
        deco(fn)
        return fn
    return deco


def available_schemes() -> list[str]:
    return sorted(_REGISTRY)


def get_scheme(name: str | Scheme) -> Scheme:
    if isinstance(name, Scheme):
        return name
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown resampling scheme {name!r}; known schemes: {', '.join(available_schemes())}"
        ) from None


def inverse_cdf(W: Tensor, u: Tensor) -> Tensor:
    """Indices ``i`` with ``cdf[i-1] <= u < cdf[i]`` for each ``u`` in ``[0, 1)``.

    Args:
        W: ``[B, N]`` non-negative weights, each row with a positive sum.
        u: ``[B, M]`` points in ``[0, 1)``.

    Zero-weight particles have empty intervals and are never returned; the
    cumulative sum is taken in float64 and renormalised so that its last entry is
    exactly one.
    """
    cdf = torch.cumsum(W.to(torch.float64), dim=1)
    cdf = cdf / cdf[:, -1:]
    idx = torch.searchsorted(cdf, u.to(torch.float64).contiguous(), right=True)
    # a point that rounds to 1.0 lands past the end: give it to the last particle of positive weight
    n = W.shape[1]
    last_pos = torch.where(W > 0, torch.arange(n, device=W.device), -1).amax(dim=1, keepdim=True).clamp_(min=0)
    return torch.minimum(idx, last_pos)


@register_scheme("multinomial", n_uniforms=lambda m: m)
def _multinomial(W: Tensor, U: Tensor, m: int) -> Tensor:
    return inverse_cdf(W, U)


@register_scheme("stratified", n_uniforms=lambda m: m)
def _stratified(W: Tensor, U: Tensor, m: int) -> Tensor:
    k = torch.arange(m, dtype=torch.float64, device=W.device)
    return inverse_cdf(W, (k + U) / m)


@register_scheme("systematic", n_uniforms=lambda m: 1)
def _systematic(W: Tensor, U: Tensor, m: int) -> Tensor:
    k = torch.arange(m, dtype=torch.float64, device=W.device)
    return inverse_cdf(W, (k[None, :] + U[:, :1]) / m)


def _ancestors_from_counts(counts: Tensor, m: int) -> Tensor:
    """``counts [B, N]`` (rows summing to m) -> sorted ancestors ``[B, m]``."""
    cum = torch.cumsum(counts, dim=1)
    pos = torch.arange(m, device=counts.device).expand(counts.shape[0], m).contiguous()
    return torch.searchsorted(cum, pos, right=True)


@register_scheme("residual", n_uniforms=lambda m: m)
def _residual(W: Tensor, U: Tensor, m: int) -> Tensor:
    mw = W * m
    det = torch.floor(mw).to(torch.int64)
    n_rest = m - det.sum(dim=1)  # [B], in [0, m]
    resid = (mw - det.to(torch.float64)).clamp_min(0.0)
    counts = det.clone()
    need = n_rest > 0
    if need.any():
        r = resid[need]
        extra = inverse_cdf(r, U[need])  # [b', m]; only the first n_rest draws count
        keep = torch.arange(m, device=W.device)[None, :] < n_rest[need][:, None]
        add = torch.zeros_like(r, dtype=torch.int64)
        add.scatter_add_(1, extra, keep.to(torch.int64))
        counts[need] += add
    return _ancestors_from_counts(counts, m)


def counts_from_ancestors(ancestors: Tensor, n: int) -> Tensor:
    """Offspring counts ``[B, n]`` from ancestors ``[B, M]``."""
    out = torch.zeros(ancestors.shape[0], n, dtype=torch.int64, device=ancestors.device)
    return out.scatter_add_(1, ancestors, torch.ones_like(ancestors))


def resample(
    W: Tensor,
    generators: Sequence[torch.Generator],
    scheme: str | Scheme = "systematic",
    num: int | None = None,
) -> Tensor:
    """Draw ancestors ``[B, num]`` (default ``num = N``) from normalised weights ``W [B, N]``.

    Args:
        W: normalised weights, float64 ``[B, N]``; each row must have positive mass.
        generators: one ``torch.Generator`` per row, on ``W``'s device. Row ``b``
            draws its uniforms from ``generators[b]`` only.
        scheme: a registered name (see :func:`available_schemes`) or a :class:`Scheme`.
    """
    sch = get_scheme(scheme)
    if W.dim() != 2:
        raise ConfigError(f"weights must have shape [B, N]; got {tuple(W.shape)}")
    b, n = W.shape
    m = n if num is None else int(num)
    if m < 1:
        raise ConfigError(f"the number of resampled particles must be >= 1; got {m}")
    if len(generators) != b:
        raise ConfigError(f"need one generator per prompt: got {len(generators)} generators for {b} prompts")
    if bool(torch.isnan(W).any()) or bool((W < 0).any()) or bool(torch.isinf(W).any()):
        rows = torch.nonzero(torch.isnan(W).any(dim=1) | (W < 0).any(dim=1) | torch.isinf(W).any(dim=1)).flatten()
        raise ConfigError(
            f"resampling weights of prompt(s) {rows.tolist()} contain NaN, infinite or negative entries; "
            f"pass normalised weights (e.g. Weights.normalized())"
        )
    mass = W.sum(dim=1)
    bad = ~(mass > 0)
    if bad.any():
        raise AllParticlesDeadError(
            torch.nonzero(bad).flatten().tolist(),
            "when resampling",
            hint="resample() needs at least one particle of positive weight in every row; leave dead rows out "
            "(Weights.dead marks them).",
        )
    k = sch.n_uniforms(m)
    U = torch.stack(
        [torch.rand(k, generator=g, dtype=torch.float64, device=W.device) for g in generators]
    ) if b > 0 else torch.zeros(0, k, dtype=torch.float64, device=W.device)
    return sch.fn(W.to(torch.float64), U, m)
