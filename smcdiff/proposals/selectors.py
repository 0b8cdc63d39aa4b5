"""Selectors: which eligible (masked, in-block) positions are committed this step.

A selector sees the position scores ``[R, Lb]``, the eligibility mask
``[R, Lb]`` and the step plan (the schedule's count ``k [R]`` and transfer
probability ``p [R]``) and returns the commit mask ``[R, Lb]`` with the
log-probability of that choice. Deterministic selectors report ``0`` for the
set they pick and ``-inf`` for any other set.

=====================  ===============================================  =============
selector               rule                                             log q
=====================  ===============================================  =============
``TopK``               the k highest scores (LLaDA, Dream)              0 / -inf
``CanvasTopK``         torch.topk over canvas rows (LLaDA as released)  0 / -inf
``RandomK``            a uniform k-subset (LLaDA ``random``)            -log C(m, k)
``Threshold(c)``       score >= c, and always the best (Fast-dLLM)      0 / -inf
``FactorRule(f)``      Fast-dLLM ``get_transfer_index_dynamic``         0 / -inf
``EntropyBound(g)``    EB-sampler: sum H - max H <= g (>= 1 commit)     0 / -inf
``PlackettLuce(T)``    k draws without replacement from softmax(s/T)    Plackett-Luce
``Ancestral``          each position independently with prob p          Bernoulli
=====================  ===============================================  =============

Plackett-Luce records the draw order in ``rank`` (``[R, Lb]``, -1 where not
committed); its log-probability is that of the ordered draw, which is exact on
the extended space of ordered choices (the set probability would need a sum over
``k!`` orders).
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterable

import torch
from torch import Tensor

from ..errors import ConfigError, check_number
from .base import RowRNG

__all__ = [
    "Selector",
    "SelectorDraw",
    "StepPlan",
    "TopK",
    "CanvasTopK",
    "RandomK",
    "Threshold",
    "FactorRule",
    "EntropyBound",
    "PlackettLuce",
    "Ancestral",
    "top_k_mask",
]

NEG_INF = float("-inf")


@dataclass(frozen=True)
class StepPlan:
    """What the schedule asks of this step (per row ``[R]``).

    Attributes:
        k: number of positions to commit (long).
        p: probability that a masked position is committed (float64), for
            ancestral selection; None when the schedule does not define it.
        time: steps the prompt has taken so far divided by the canvas length
            (float64), filled in by the kernel for selectors with ``needs_time``
            (learned policies); None otherwise.
        view: for the same selectors, the whole canvas as ``(confidence [R, L], masked [R, L],
            positions [R, Lb])``: the model's top-1 probability at every position, which
            positions are still masked, and the canvas position of each block slot.
        canvas: for selectors with ``needs_canvas``, ``(L, positions [R, Lb], starts)``: the
            canvas length, the canvas position of each block slot and each row's first unpadded
            position (None without padding).
    """

    k: Tensor
    p: Tensor | None = None
    time: Tensor | None = None
    view: tuple | None = None
    canvas: tuple | None = None


@dataclass(frozen=True)
class SelectorDraw:
    """A selector's choice: ``commit [R, Lb]``, ``log_prob [R]`` and optional ``rank [R, Lb]``."""

    commit: Tensor
    log_prob: Tensor
    rank: Tensor | None = None


def _sorted_order(scores: Tensor, eligible: Tensor) -> Tensor:
    """Eligible positions by descending score (ineligible last), ties to the lower index."""
    s = torch.where(eligible, scores.to(torch.float64), NEG_INF)
    return torch.sort(s, dim=-1, descending=True, stable=True).indices


def _ranks(order: Tensor) -> Tensor:
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(order.shape[-1], device=order.device).expand_as(order).contiguous())
    return ranks


def top_k_mask(scores: Tensor, eligible: Tensor, k: Tensor) -> Tensor:
    """The ``k[r]`` eligible positions of highest score in each row ``[R, Lb]`` (bool).

    Ties are broken towards the lower position index (stable sort), so the
    result is a deterministic function of its inputs. ``k`` is clipped to the
    number of eligible positions.
    """
    ranks = _ranks(_sorted_order(scores, eligible))
    return (ranks < k[:, None]) & eligible


def _point_mass(expected: Tensor, commit: Tensor) -> Tensor:
    same = (expected == commit).all(dim=-1)
    return torch.where(same, 0.0, NEG_INF).to(torch.float64)


class Selector(ABC):
    """Base class of position selectors."""

    #: True when the commit set is a deterministic function of the scores.
    is_deterministic: bool = True
    #: True when the selector commits exactly the schedule's count ``k``.
    uses_count: bool = True
    #: True when the selector records a draw order (``rank``).
    uses_rank: bool = False
    #: False when the choice ignores the scores (uniform or independent selection).
    uses_scores: bool = True
    #: True when the selector reads ``plan.time`` (the kernel then fills it in).
    needs_time: bool = False
    #: True when the selector reads ``plan.canvas`` (the kernel then fills it in).
    needs_canvas: bool = False

    @abstractmethod
    def draw(self, scores: Tensor, eligible: Tensor, plan: StepPlan, rng: RowRNG) -> SelectorDraw:
        """Pick the commit set."""

    @abstractmethod
    def log_prob(
        self, scores: Tensor, eligible: Tensor, plan: StepPlan, commit: Tensor, rank: Tensor | None = None
    ) -> Tensor:
        """Log-probability ``[R]`` of the given choice (``-inf`` if impossible)."""

    def support(self, m: int, k: int | None) -> Iterable[tuple[tuple[int, ...], tuple[int, ...] | None]]:
        """Candidate choices for exact enumeration with ``m`` eligible positions.

        Yields ``(committed eligible indices, their ranks or None)``; choices of
        probability zero may be included (they are filtered by :meth:`log_prob`).
        """
        sizes = [min(int(k), m)] if (self.uses_count and k is not None) else range(m + 1)
        for s in sizes:
            for sub in itertools.combinations(range(m), s):
                yield sub, None


class _Deterministic(Selector):
    def log_prob(self, scores, eligible, plan, commit, rank=None):
        return _point_mass(self.draw(scores, eligible, plan, None).commit, commit)


@dataclass(frozen=True)
class TopK(_Deterministic):
    """Commit the ``k`` eligible positions with the highest scores (LLaDA, Dream)."""

    def draw(self, scores, eligible, plan, rng):
        commit = top_k_mask(scores, eligible, plan.k)
        return SelectorDraw(commit, torch.zeros(commit.shape[0], dtype=torch.float64, device=commit.device))


@dataclass(frozen=True)
class CanvasTopK(Selector):
    """``torch.topk`` over whole canvas rows, as ML-GSAI/LLaDA ``generate`` selects.

    Upstream builds, per row, the confidence of every canvas position (``-inf``
    outside the masked positions up to the block end) in the confidence's own
    dtype and calls ``torch.topk(row, k)``. Ties (frequent with bfloat16
    confidences) then fall as ``torch.topk`` orders them for that row length,
    dtype and device, which is not documented and differs from :class:`TopK`'s
    "lower index first". This selector rebuilds the same row and calls the same
    function, so on the same device its choice is upstream's.

    ``random=True`` is upstream's ``remasking="random"``: the scores are float32
    uniforms drawn over the whole canvas (``torch.rand((1, L))`` from the
    prompt's generator, after the token noise), the law of :class:`RandomK`
    (``log q = -log C(m, k)``) with upstream's stream.
    """

    random: bool = False
    needs_canvas = True

    @property
    def is_deterministic(self) -> bool:  # type: ignore[override]
        return not self.random

    @property
    def uses_scores(self) -> bool:  # type: ignore[override]
        return not self.random

    def _rows(self, scores: Tensor, eligible: Tensor, plan: StepPlan) -> tuple[Tensor, Tensor]:
        if plan.canvas is None:
            raise ConfigError("CanvasTopK needs the canvas layout (plan.canvas); only UnmaskingKernel provides it")
        length, pos = int(plan.canvas[0]), plan.canvas[1]
        # only eligible slots are written (slots past a template's end may repeat a position); the rest go to
        # an extra last column that is dropped
        rows = torch.full((scores.shape[0], length + 1), NEG_INF, dtype=scores.dtype, device=scores.device)
        rows.scatter_(1, torch.where(eligible, pos, length), torch.where(eligible, scores, NEG_INF).to(scores.dtype))
        return rows[:, :length], pos

    def _select(self, rows: Tensor, pos: Tensor, eligible: Tensor, k: Tensor, starts=None) -> Tensor:
        """Upstream's ``torch.topk`` on each row, over the row's own canvas (from its first unpadded position,
        as the prompt alone would have it, so that ties fall the same way with and without padding)."""
        picked = torch.zeros_like(rows, dtype=torch.bool)
        for r in range(rows.shape[0]):
            kk = min(int(k[r]), int(eligible[r].sum()))
            if kk > 0:
                s0 = 0 if starts is None else int(starts[r])
                picked[r, torch.topk(rows[r, s0:], kk).indices + s0] = True
        return picked.gather(1, pos) & eligible

    def draw(self, scores, eligible, plan, rng):
        if self.random:
            if rng is None:
                raise ConfigError("CanvasTopK(random=True) draws; it has no deterministic choice")
            if plan.canvas is None:
                raise ConfigError("CanvasTopK needs the canvas layout (plan.canvas); only UnmaskingKernel provides it")
            u = rng.canvas_uniform(dtype=torch.float32, at=plan.canvas[1])
            rows, pos = self._rows(u, eligible, plan)
            commit = self._select(rows, pos, eligible, plan.k, plan.canvas[2])
            return SelectorDraw(commit, self.log_prob(scores, eligible, plan, commit))
        rows, pos = self._rows(scores, eligible, plan)
        commit = self._select(rows, pos, eligible, plan.k, None if plan.canvas is None else plan.canvas[2])
        return SelectorDraw(commit, torch.zeros(commit.shape[0], dtype=torch.float64, device=commit.device))

    def log_prob(self, scores, eligible, plan, commit, rank=None):
        if self.random:
            return RandomK().log_prob(scores, eligible, plan, commit)
        return _point_mass(self.draw(scores, eligible, plan, None).commit, commit)


@dataclass(frozen=True)
class RandomK(Selector):
    """Commit ``k`` eligible positions chosen uniformly at random (LLaDA ``remasking='random'``).

    The commit set has probability ``1 / C(m, k)`` where ``m`` is the number of
    eligible positions. Draws ``Lb`` uniforms per particle.
    """

    is_deterministic = False
    uses_scores = False

    def draw(self, scores, eligible, plan, rng):
        u = rng.uniform(scores.shape[-1])
        commit = top_k_mask(u, eligible, plan.k)
        return SelectorDraw(commit, self.log_prob(scores, eligible, plan, commit))

    def log_prob(self, scores, eligible, plan, commit, rank=None):
        m = eligible.sum(dim=-1)
        kk = torch.minimum(plan.k.to(m.dtype), m)
        ok = (commit.sum(dim=-1) == kk) & ~(commit & ~eligible).any(dim=-1)
        mf, kf = m.to(torch.float64), kk.to(torch.float64)
        log_binom = torch.lgamma(mf + 1) - torch.lgamma(kf + 1) - torch.lgamma(mf - kf + 1)
        return torch.where(ok, -log_binom, NEG_INF)


@dataclass(frozen=True)
class Threshold(_Deterministic):
    """Commit every eligible position whose score is at least ``threshold``, and always the best one.

    This is Fast-dLLM's parallel decoding rule (``get_transfer_index`` with a
    threshold; NVlabs/Fast-dLLM): the top-1 position is committed even below the
    threshold, so every step commits at least one position. The schedule's count
    is ignored.
    """

    threshold: float = 0.9
    uses_count = False

    def __post_init__(self) -> None:
        check_number("threshold", self.threshold)

    def draw(self, scores, eligible, plan, rng):
        ranks = _ranks(_sorted_order(scores, eligible))
        commit = ((scores.to(torch.float64) >= float(self.threshold)) | (ranks == 0)) & eligible
        return SelectorDraw(commit, torch.zeros(commit.shape[0], dtype=torch.float64, device=commit.device))


@dataclass(frozen=True)
class FactorRule(_Deterministic):
    """Fast-dLLM's factor rule (``get_transfer_index_dynamic``).

    With the eligible scores sorted in decreasing order ``c_0 >= c_1 >= ...``
    (``M`` of them) and thresholds ``t_0 = -1``, ``t_r = 1 - factor / (r + 2)``,
    let ``r*`` be the first rank with ``c_r < t_r`` (``M - 1`` if none). The
    number committed is ``r*``, except that it is ``r* + 1`` when ``r*`` is 0 or
    ``M - 1``, exactly as upstream (so a failure at the last rank still commits
    everything). At least one position is committed.
    """

    factor: float = 1.0
    uses_count = False

    def __post_init__(self) -> None:
        check_number("factor", self.factor, low=0.0, low_open=True)

    def draw(self, scores, eligible, plan, rng):
        order = _sorted_order(scores, eligible)
        s_sorted = torch.gather(torch.where(eligible, scores.to(torch.float64), NEG_INF), 1, order)
        lb = scores.shape[-1]
        r = torch.arange(lb, device=scores.device, dtype=torch.float64)
        thr = 1.0 - float(self.factor) / (r + 2.0)
        thr[0] = -1.0
        m = eligible.sum(dim=-1)  # [R]
        valid = r[None, :] < m[:, None]
        fail = (s_sorted < thr[None, :]) & valid
        first = torch.where(fail.any(dim=-1), fail.to(torch.int64).argmax(dim=-1), (m - 1).clamp(min=0))
        count = torch.where((first == 0) | (first == m - 1), first + 1, first)
        count = torch.minimum(count, m)
        commit = (_ranks(order) < count[:, None]) & eligible
        return SelectorDraw(commit, torch.zeros(commit.shape[0], dtype=torch.float64, device=commit.device))


@dataclass(frozen=True)
class EntropyBound(_Deterministic):
    """EB-sampler (Ben-Hamu et al., arXiv 2505.24857): an entropy budget per step.

    Scores are read as negative error proxies (use :class:`~smcdiff.proposals.scores.NegEntropy`
    for the entropy). Sorting positions by increasing entropy ``H``, the largest
    prefix ``U`` with ``sum_{U} H - max_{U} H <= gamma`` is committed, and at
    least one position.
    """

    gamma: float = 0.1
    uses_count = False

    def __post_init__(self) -> None:
        check_number("gamma", self.gamma, low=0.0)

    def draw(self, scores, eligible, plan, rng):
        order = _sorted_order(scores, eligible)
        h = -torch.gather(scores.to(torch.float64), 1, order)  # increasing error proxy
        m = eligible.sum(dim=-1)
        valid = torch.arange(scores.shape[-1], device=scores.device)[None, :] < m[:, None]
        h = torch.where(valid, h, 0.0)
        acc = torch.cumsum(h, dim=-1)
        cmax = torch.cummax(h, dim=-1).values
        ok = ((acc - cmax) <= float(self.gamma)) & valid
        count = torch.minimum(ok.sum(dim=-1).clamp(min=1), m)
        commit = (_ranks(order) < count[:, None]) & eligible
        return SelectorDraw(commit, torch.zeros(commit.shape[0], dtype=torch.float64, device=commit.device))


@dataclass(frozen=True)
class PlackettLuce(Selector):
    """``k`` positions drawn without replacement from ``softmax(score / temperature)`` (Dream ``alg_temp``).

    The draw is a Gumbel-top-k over ``score / temperature`` (float64 noise), which
    is exactly sequential sampling without replacement. ``log_prob`` is the
    Plackett-Luce probability of the ordered draw,
    ``sum_j [ s_{i_j} - log sum_{l not yet drawn} exp(s_l) ]`` with ``s = score / T``.
    """

    temperature: float = 1.0
    is_deterministic = False
    uses_rank = True

    def __post_init__(self) -> None:
        check_number("the Plackett-Luce temperature (alg_temp)", self.temperature, low=0.0, low_open=True)

    def _logits(self, scores: Tensor, eligible: Tensor) -> Tensor:
        return torch.where(eligible, scores.to(torch.float64) / float(self.temperature), NEG_INF)

    def draw(self, scores, eligible, plan, rng):
        z = self._logits(scores, eligible)
        u = rng.uniform(scores.shape[-1]).clamp_min(1e-300)
        g = -torch.log(-torch.log(u))
        keys = torch.where(eligible & torch.isfinite(z), z + g, NEG_INF)
        order = torch.sort(keys, dim=-1, descending=True, stable=True).indices
        ranks = _ranks(order)
        n_pos = (eligible & torch.isfinite(z)).sum(dim=-1)
        kk = torch.minimum(plan.k, n_pos)
        commit = (ranks < kk[:, None]) & eligible
        rank = torch.where(commit, ranks, -1)
        return SelectorDraw(commit, self.log_prob(scores, eligible, plan, commit, rank), rank)

    def log_prob(self, scores, eligible, plan, commit, rank=None):
        if rank is None:
            raise ConfigError("PlackettLuce.log_prob needs the draw order (rank)")
        z = self._logits(scores, eligible)
        r_rows, lb = z.shape
        n_pos = (eligible & torch.isfinite(z)).sum(dim=-1)
        kk = torch.minimum(plan.k, n_pos)
        ok = (commit.sum(dim=-1) == kk) & ~(commit & ~eligible).any(dim=-1)
        ok &= ((rank >= 0) == commit).all(dim=-1)
        # ranks of committed positions must be exactly 0..k-1
        sorted_ranks = torch.sort(torch.where(commit, rank, lb + 1), dim=-1).values
        ok &= (
            (sorted_ranks == torch.arange(lb, device=z.device)[None, :]) | (sorted_ranks == lb + 1)
        ).all(dim=-1)
        total = torch.zeros(r_rows, dtype=torch.float64, device=z.device)
        remaining = z.clone()
        for j in range(int(kk.max()) if r_rows else 0):
            pick = (rank == j) & commit  # [R, Lb], at most one per row
            has = pick.any(dim=-1)
            zj = torch.where(pick, z, 0.0).sum(dim=-1)
            lse = torch.logsumexp(remaining, dim=-1)
            total = total + torch.where(has, zj - lse, 0.0)
            remaining = torch.where(pick, NEG_INF, remaining)
        total = torch.where(torch.isnan(total), NEG_INF, total)
        return torch.where(ok, total, NEG_INF)

    def support(self, m, k):
        sizes = [min(int(k), m)] if k is not None else range(m + 1)
        for kk in sizes:
            for perm in itertools.permutations(range(m), kk):
                sub = tuple(sorted(perm))
                yield sub, tuple(perm.index(s) for s in sub)


@dataclass(frozen=True)
class Ancestral(Selector):
    """Each eligible position is committed independently with probability ``p`` (MDLM).

    ``p`` comes from the schedule (e.g. ``(alpha_s - alpha_t) / (1 - alpha_t)``
    for an alpha schedule, or Dream's ``1 - s/t``); its log-probability is
    ``|S| log p + (m - |S|) log(1 - p)``. Draws ``Lb`` uniforms per particle.
    """

    is_deterministic = False
    uses_count = False
    uses_scores = False

    def draw(self, scores, eligible, plan, rng):
        if plan.p is None:
            raise ConfigError("Ancestral selection needs a schedule that defines transfer probabilities")
        u = rng.uniform(scores.shape[-1])
        commit = (u < plan.p[:, None]) & eligible
        return SelectorDraw(commit, self.log_prob(scores, eligible, plan, commit))

    def log_prob(self, scores, eligible, plan, commit, rank=None):
        if plan.p is None:
            raise ConfigError("Ancestral selection needs a schedule that defines transfer probabilities")
        p = plan.p.to(torch.float64)
        n = commit.sum(dim=-1).to(torch.float64)
        m = eligible.sum(dim=-1).to(torch.float64)
        lp = torch.where(n > 0, n * torch.log(p), 0.0) + torch.where(m - n > 0, (m - n) * torch.log1p(-p), 0.0)
        bad = (commit & ~eligible).any(dim=-1)
        return torch.where(bad | torch.isnan(lp), NEG_INF, lp)

