"""Schedules: how many positions to commit at each step of a block.

A schedule is validated against the canvas once (:meth:`Schedule.validate`)
and then asked at each step for a :class:`~smcdiff.proposals.selectors.StepPlan`:
the count ``k [R]`` and, where defined, the probability ``p [R]`` that a masked
position is committed (used by :class:`~smcdiff.proposals.selectors.Ancestral`).

==================  ====================================================================
schedule            counts
==================  ====================================================================
``EvenSplit``       LLaDA: ``steps`` split evenly over blocks, masks spread evenly
``FixedCounts``     the given count at each step of every block
``DreamSchedule``   Dream: ``t = linspace(1, eps, steps+1)``, ``k = int(m (1 - s/t))``
``AlphaSchedule``   alpha schedules (MDLM ``loglinear`` / ``cosine``, ZHZisZZ/dllm ``dllm_cosine``)
                    on MDLM's time grid: ``p = (a_s - a_t)/(1 - a_t)``, and rounded expected
                    counts (as ZHZisZZ/dllm) or Binomial counts
==================  ====================================================================

Schedules with random counts (``AlphaSchedule(..., counts="binomial")``)
report the log-probability of the count they drew; all others are
deterministic.

Templates (infilling): the kernel passes a :class:`BlockInfo` with each row's
block index, number of blocks and the number of masked positions its block held
when it started; schedules then count those masks (not ``block_length``), and a
total step budget (``EvenSplit``, ``DreamSchedule``) is split over a row's blocks
with :func:`even_split_counts` (equal to ``steps / blocks`` when that divides).
Without a ``BlockInfo`` (prefix generation) every block holds ``block_length``
masks and the formulas are the prefix ones.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import torch
from torch import Tensor

from ..errors import ConfigError, check_int, check_number
from ..state import Canvas
from .base import RowRNG
from .selectors import StepPlan

__all__ = [
    "Schedule",
    "BlockInfo",
    "PerStep",
    "EvenSplit",
    "FixedCounts",
    "DreamSchedule",
    "AlphaSchedule",
    "AdaptiveSteps",
    "even_split_counts",
    "alpha",
    "move_chance",
    "ALPHA_KINDS",
]


def even_split_counts(n: int, steps: int) -> list[int]:
    """LLaDA's ``get_num_transfer_tokens``: ``n`` masks over ``steps`` steps, the remainder first.

    Each step gets ``n // steps`` and the first ``n % steps`` steps one more; the
    counts sum to ``n``.
    """
    base, rem = divmod(int(n), int(steps))
    return [base + (1 if i < rem else 0) for i in range(int(steps))]


#: The alpha schedules :func:`alpha` knows (``linear`` is another name for ``loglinear``).
ALPHA_KINDS = ("loglinear", "linear", "cosine", "dllm_cosine")


def _check_kind(kind: str) -> None:
    if kind not in ALPHA_KINDS:
        raise ConfigError(f"unknown alpha schedule {kind!r}; use one of {', '.join(map(repr, ALPHA_KINDS))}")


def move_chance(kind: str, t: Tensor) -> Tensor:
    """The masking probability ``1 - alpha(t)`` of the floor-free schedule, in a cancellation-free form.

    ``loglinear`` / ``linear``: ``t``; ``cosine``: ``1 - cos(pi t / 2) = 2 sin^2(pi t / 4)``;
    ``dllm_cosine``: ``cos(pi/2 (1 - t)) = sin(pi t / 2)``.
    """
    _check_kind(kind)
    if kind in ("loglinear", "linear"):
        return t
    if kind == "cosine":
        return 2 * torch.sin((math.pi / 4) * t) ** 2
    return torch.sin((math.pi / 2) * t)


def alpha(kind: str, t: Tensor, floor: float = 0.0) -> Tensor:
    """The signal level ``alpha(t)`` for ``t`` in [0, 1] (``alpha(0) = 1``: clean at ``t = 0``).

    ``alpha(t) = floor + (1 - floor) * (1 - move_chance(kind, t))``:

    * ``loglinear`` (kuleshov-group/mdlm ``LogLinearNoise``, MDLM's default; ``linear``
      is the same schedule): ``1 - (1 - floor) t``;
    * ``cosine`` (kuleshov-group/mdlm ``CosineNoise``): ``floor + (1 - floor) cos(pi t / 2)``;
    * ``dllm_cosine`` (ZHZisZZ/dllm's cosine scheduler): ``1 - cos(pi/2 (1 - t))`` with no floor.

    MDLM's noise classes use ``floor = 1e-3`` (their ``eps``); it cancels in the transfer
    probability ``(alpha_s - alpha_t) / (1 - alpha_t)``, so the schedules below do not need it.
    """
    return floor + (1 - floor) * (1 - move_chance(kind, t))


def _dllm_alpha(kind: str, t: Tensor) -> Tensor:
    """``alpha(t)`` in ZHZisZZ/dllm's arithmetic (``1 - t``; ``1 - cos(pi/2 (1 - t))``), for its rounded counts."""
    if kind == "dllm_cosine":
        return 1 - torch.cos((math.pi / 2) * (1 - t))
    if kind in ("loglinear", "linear"):
        return 1 - t
    return alpha(kind, t)


@dataclass(frozen=True)
class BlockInfo:
    """Per-row block geometry of a template step (``[R]`` long tensors).

    Attributes:
        size: masked positions of the row's current block when the block started.
        index: the block's index among the row's blocks (0-based).
        count: the row's number of blocks.
    """

    size: Tensor
    index: Tensor
    count: Tensor

    def steps_in_block(self, total: int) -> Tensor:
        """``total`` steps split over each row's blocks (:func:`even_split_counts`), for the current block."""
        base = int(total) // self.count
        rem = int(total) % self.count
        return base + (self.index < rem).long()


def _split_counts(size: Tensor, steps: Tensor, block_step: Tensor) -> Tensor:
    """Per row, :func:`even_split_counts` of ``size`` masks over ``steps`` steps, at ``block_step``."""
    steps = steps.clamp(min=1)
    base = size // steps
    rem = size % steps
    k = base + (block_step < rem).long()
    return torch.where(block_step < steps, k, torch.zeros_like(k))


class Schedule(ABC):
    """Base class of per-step commit plans.

    ``plan`` / ``probs`` / ``count_log_prob`` take an optional ``block``
    (:class:`BlockInfo`) for template canvases; None means the prefix layout.
    """

    #: True when the count is random (its log-probability enters ``log q``).
    is_random: bool = False

    @abstractmethod
    def validate(self, canvas: Canvas, block_sizes: Tensor | None = None) -> None:
        """Raise :class:`~smcdiff.errors.ConfigError` if the schedule cannot unmask the canvas.

        ``block_sizes [B, K]`` (templates): the masked positions of each row's windows.
        """

    @abstractmethod
    def plan(
        self, canvas: Canvas, block_step: Tensor, n_eligible: Tensor, rng: RowRNG | None = None, block: BlockInfo | None = None
    ) -> StepPlan:
        """The plan for rows at step ``block_step [R]`` of their block with ``n_eligible [R]`` masks."""

    def probs(self, canvas: Canvas, block_step: Tensor, block: BlockInfo | None = None) -> Tensor | None:
        """Transfer probability ``p [R]`` per row, or None if the schedule does not define one."""
        return None

    def count_log_prob(
        self, canvas: Canvas, block_step: Tensor, n_eligible: Tensor, k: Tensor, block: BlockInfo | None = None
    ) -> Tensor:
        """Log-probability ``[R]`` of drawing count ``k`` (0 for deterministic schedules)."""
        return torch.zeros(k.shape, dtype=torch.float64, device=k.device)

    def steps_per_block(self, canvas: Canvas) -> int | None:
        """Number of steps one block takes, if fixed."""
        return None


@lru_cache(maxsize=256)
def _table(counts: tuple[int, ...]) -> Tensor:
    return torch.tensor(counts + (0,), dtype=torch.long)


def _from_table(counts: Sequence[int], block_step: Tensor, n_eligible: Tensor) -> StepPlan:
    table = _table(tuple(counts)).to(block_step.device)
    idx = block_step.clamp(max=table.numel() - 1)
    return StepPlan(k=torch.minimum(table[idx], n_eligible))


@dataclass(frozen=True)
class AdaptiveSteps(Schedule):
    """No count: for selectors that decide how many to commit (thresholds, EB, factor).

    The plan's ``k`` is the number of eligible positions (unused by such selectors).
    """

    def validate(self, canvas: Canvas, block_sizes: Tensor | None = None) -> None:
        pass

    def plan(self, canvas, block_step, n_eligible, rng=None, block=None):
        return StepPlan(k=n_eligible.clone())


@dataclass(frozen=True)
class EvenSplit(Schedule):
    """LLaDA's schedule: ``steps`` in total, split evenly over the blocks, masks spread evenly.

    ``steps`` must be a multiple of the number of blocks (as ML-GSAI/LLaDA
    asserts). Within a block of ``block_length`` masks and ``s = steps / blocks``
    steps, step ``i`` commits ``block_length // s`` positions plus one for the
    first ``block_length % s`` steps (:func:`even_split_counts`).
    """

    steps: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", check_int("steps", self.steps, minimum=1))

    def steps_per_block(self, canvas: Canvas) -> int:
        if canvas.template:  # an upper bound: rows with fewer windows give each window more steps
            return int(self.steps)
        return int(self.steps) // canvas.num_blocks

    def validate(self, canvas: Canvas, block_sizes: Tensor | None = None) -> None:
        nb = canvas.num_blocks
        if canvas.template:
            if int(self.steps) < nb:
                raise ConfigError(
                    f"steps ({self.steps}) is smaller than the number of blocks of a template row ({nb}); "
                    f"every block needs at least one step"
                )
            return
        if int(self.steps) % nb != 0:
            raise ConfigError(
                f"steps ({self.steps}) must be a multiple of the number of blocks ({nb} = gen_length "
                f"{canvas.gen_length} / block_length {canvas.block_length}), as in LLaDA"
            )

    def plan(self, canvas, block_step, n_eligible, rng=None, block=None):
        if block is None:
            return _from_table(even_split_counts(canvas.block_length, self.steps_per_block(canvas)), block_step, n_eligible)
        k = _split_counts(block.size, block.steps_in_block(int(self.steps)), block_step)
        return StepPlan(k=torch.minimum(k, n_eligible))


@dataclass(frozen=True)
class FixedCounts(Schedule):
    """Commit ``counts_per_step[i]`` positions at step ``i`` of every block.

    The counts must sum to at least ``block_length``; otherwise the sampler would
    leave masks behind and :meth:`validate` raises.
    """

    counts_per_step: Sequence[int]

    def __post_init__(self) -> None:
        if isinstance(self.counts_per_step, (str, bytes)) or not hasattr(self.counts_per_step, "__iter__"):
            raise ConfigError(f"counts_per_step must be a list of integers >= 0; got {self.counts_per_step!r}")
        c = tuple(check_int(f"counts_per_step[{i}]", x, minimum=0) for i, x in enumerate(self.counts_per_step))
        if not c:
            raise ConfigError("FixedCounts needs at least one step")
        if any(x < 0 for x in c):
            raise ConfigError(f"counts must be non-negative; got {list(c)}")
        object.__setattr__(self, "counts_per_step", c)

    def steps_per_block(self, canvas: Canvas) -> int:
        return len(self.counts_per_step)

    def validate(self, canvas: Canvas, block_sizes: Tensor | None = None) -> None:
        total = sum(self.counts_per_step)
        need = canvas.block_length if block_sizes is None else int(block_sizes.max())
        if total < need:
            raise ConfigError(
                f"the per-step counts {list(self.counts_per_step)} commit {total} positions per block, "
                f"but a block has {need} masked positions: the sampler could not unmask everything"
            )

    def plan(self, canvas, block_step, n_eligible, rng=None, block=None):
        return _from_table(self.counts_per_step, block_step, n_eligible)


@dataclass(frozen=True)
class PerStep(Schedule):
    """Commit ``k`` positions at every step until the block is complete (BD3-LM's first hitting: ``k = 1``)."""

    k: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", check_int("k", self.k, minimum=1))

    def steps_per_block(self, canvas: Canvas) -> int:
        return -(-canvas.block_length // int(self.k))

    def validate(self, canvas: Canvas, block_sizes: Tensor | None = None) -> None:
        pass

    def plan(self, canvas, block_step, n_eligible, rng=None, block=None):
        return StepPlan(k=n_eligible.clamp(max=int(self.k)))


def _steps_per_block(steps: int, canvas: Canvas, name: str) -> int:
    nb = canvas.num_blocks
    if int(steps) % nb != 0:
        raise ConfigError(f"{name}: steps ({steps}) must be a multiple of the number of blocks ({nb})")
    return int(steps) // nb


@dataclass(frozen=True)
class DreamSchedule(Schedule):
    """Dream's schedule (``diffusion_generate``): ``t = linspace(1, eps, steps + 1)`` in float32.

    At step ``i`` (of ``steps``, per block if there are blocks) with ``m`` masks,
    ``k = int(m * (1 - s/t))`` with ``t = ts[i]``, ``s = ts[i + 1]``, and the last
    step commits every remaining mask; ``p = 1 - s/t`` (1 at the last step) is
    Dream's ``origin`` transfer probability. Dream averages ``m`` over the batch;
    here every row uses its own count, which is the same number whenever the rows
    started with equal masks, as in Dream.
    """

    steps: int = 512
    eps: float = 1e-3

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", check_int("steps", self.steps, minimum=1))
        check_number("eps", self.eps, low=0.0, high=1.0, high_open=True)

    def steps_per_block(self, canvas: Canvas) -> int:
        if canvas.template:  # an upper bound (see EvenSplit)
            return int(self.steps)
        return _steps_per_block(self.steps, canvas, "DreamSchedule")

    def validate(self, canvas: Canvas, block_sizes: Tensor | None = None) -> None:
        if canvas.template:
            if int(self.steps) < canvas.num_blocks:
                raise ConfigError(
                    f"DreamSchedule: steps ({self.steps}) is smaller than the number of blocks of a template row "
                    f"({canvas.num_blocks})"
                )
            return
        self.steps_per_block(canvas)

    def _row_steps(self, canvas: Canvas, block_step: Tensor, block: BlockInfo | None) -> Tensor:
        if block is None:
            return torch.full_like(block_step, self.steps_per_block(canvas))
        return block.steps_in_block(int(self.steps)).clamp(min=1)

    def ratio(self, canvas: Canvas, block_step: Tensor, block: BlockInfo | None = None) -> Tensor:
        """``1 - s/t`` in float32 per row (1 at the last step of the block)."""
        steps = self._row_steps(canvas, block_step, block).cpu()
        bs = block_step.cpu()
        r = torch.ones(bs.shape, dtype=torch.float32)
        for n in steps.unique().tolist():
            sel = steps == n
            ts = torch.linspace(1, float(self.eps), n + 1, dtype=torch.float32)
            i = bs[sel].clamp(max=n - 1)
            rr = 1 - ts[i + 1] / ts[i]
            r[sel] = torch.where(i >= n - 1, torch.ones_like(rr), rr)
        return r.to(block_step.device)

    def probs(self, canvas, block_step, block=None):
        return self.ratio(canvas, block_step, block).to(torch.float64)

    def plan(self, canvas, block_step, n_eligible, rng=None, block=None):
        r = self.ratio(canvas, block_step, block)
        k = (n_eligible.to(torch.float32) * r).to(torch.int64)  # int() truncates, as upstream
        last = block_step >= self._row_steps(canvas, block_step, block) - 1
        k = torch.where(last, n_eligible, k)
        return StepPlan(k=torch.minimum(k, n_eligible), p=r.to(torch.float64))


@dataclass(frozen=True)
class AlphaSchedule(Schedule):
    """Alpha (noise) schedules over ``steps`` steps per block, on kuleshov-group/mdlm's time grid.

    Times ``t_j = 1 - j dt`` for ``j = 0 .. steps - 1`` with ``dt = (1 - eps) / steps``
    (MDLM's ``torch.linspace(1, eps, steps + 1)``), and ``s_j = t_j - dt`` (the last
    ``s`` is exactly ``eps``). At step ``j`` a masked position is committed with
    probability ``p_j = (alpha(s) - alpha(t)) / (1 - alpha(t)) = 1 - m(s) / m(t)`` where
    ``m = 1 - alpha`` is the masking probability (:func:`move_chance`), computed in
    float64 from the exact times (MDLM evaluates it in float32; the two agree to about
    1e-7). The noise floor of MDLM's schedules cancels in ``p_j``.

    ``eps = 0`` (default): the last step has ``s = 0`` and commits every remaining mask
    (``p = 1``); there are ``steps`` steps. ``eps > 0`` (MDLM ``_sample``, default
    ``eps = 1e-5``): after the ``steps`` steps a position is still masked with
    probability ``m(eps) / m(1)`` (``eps`` for ``loglinear``); one more step with ``p = 1``
    commits them (MDLM's ``noise_removal``), so there are ``steps + 1`` steps. A block
    with no masks left ends early, so that step only happens when it is needed.

    Counts:

    * ``counts="none"``: no count, only ``p_j`` (for
      :class:`~smcdiff.proposals.selectors.Ancestral` selection, where each position
      is its own Bernoulli draw: MDLM's ancestral sampler);
    * ``counts="round"``: ``k_j = round(m_j p_j)`` computed once per block from the
      block's masks, with zero-count steps removed (ZHZisZZ/dllm
      ``get_num_transfer_tokens``, deterministic; dllm's own grid ``t = (S - j)/S``, so
      ``eps`` must be 0);
    * ``counts="binomial"``: ``k_j ~ Binomial(m_j, p_j)`` at each step, with its
      log-probability reported (a random count; zero-count steps are kept).
    """

    kind: str = "linear"
    steps: int = 128
    counts: str = "round"
    eps: float = 0.0

    def __post_init__(self) -> None:
        _check_kind(self.kind)
        object.__setattr__(self, "steps", check_int("steps", self.steps, minimum=1))
        if self.counts not in ("round", "binomial", "none"):
            raise ConfigError(f"counts must be 'round', 'binomial' or 'none'; got {self.counts!r}")
        check_number("eps", self.eps, low=0.0, high=1.0, high_open=True)
        if self.counts == "round" and float(self.eps) != 0.0:
            raise ConfigError("counts='round' follows ZHZisZZ/dllm's grid, which has no eps; use eps=0")
        object.__setattr__(self, "is_random", self.counts == "binomial")

    @property
    def noise_removal(self) -> bool:
        """True when a final ``p = 1`` step follows the ``steps`` grid steps (``eps > 0``)."""
        return float(self.eps) > 0.0

    def times(self) -> tuple[Tensor, Tensor]:
        """``(t_j, s_j)`` for ``j = 0 .. steps-1`` (float64; ``s`` of the last step is exactly ``eps``)."""
        n = int(self.steps)
        eps = float(self.eps)
        dt = (1.0 - eps) / n
        t = 1.0 - torch.arange(n, dtype=torch.float64) * dt
        s = torch.cat([t[1:], torch.tensor([eps], dtype=torch.float64)])
        return t, s

    def transfer_probs(self) -> Tensor:
        """``p_j`` for every step of a block (float64), the noise-removal step included."""
        t, s = self.times()
        p = (1.0 - move_chance(self.kind, s) / move_chance(self.kind, t)).clamp(0.0, 1.0)
        if self.noise_removal:
            p = torch.cat([p, torch.ones(1, dtype=torch.float64)])
        else:
            p[-1] = 1.0  # s = 0: m(0) = 0 exactly
        return p

    def _dllm_probs(self) -> list[float]:
        """``1 - (1 - alpha(s)) / (1 - alpha(t))`` on ``t = (S - j)/S`` in float32, as ZHZisZZ/dllm does."""
        s_ = int(self.steps)
        out = []
        for j in range(s_):
            t = torch.tensor((s_ - j) / s_, dtype=torch.float32)
            s = torch.tensor((s_ - j - 1) / s_, dtype=torch.float32)
            keep = (1 - _dllm_alpha(self.kind, s)) / (1 - _dllm_alpha(self.kind, t))
            out.append(1 - float(keep))
        return out

    def round_counts(self, n: int) -> list[int]:
        """The deterministic per-step counts for a block of ``n`` masks (zero steps removed)."""
        out = []
        m = int(n)
        for p in self._dllm_probs():
            c = min(int(torch.round(torch.tensor(m, dtype=torch.float64) * p)), m)
            out.append(c)
            m -= c
            if m == 0:
                break
        if m > 0:
            out.append(m)
        return [c for c in out if c > 0]

    def steps_per_block(self, canvas: Canvas) -> int:
        if self.counts == "round":
            if canvas.template:  # an upper bound over the rows' block sizes
                return int(self.steps) + 1
            return len(self.round_counts(canvas.block_length))
        return int(self.steps) + int(self.noise_removal)

    def validate(self, canvas: Canvas, block_sizes: Tensor | None = None) -> None:
        pass

    def _p(self, block_step: Tensor) -> Tensor:
        p = self.transfer_probs().to(block_step.device)
        return p[block_step.clamp(max=p.numel() - 1)]

    def probs(self, canvas, block_step, block=None):
        return self._p(block_step)

    def plan(self, canvas, block_step, n_eligible, rng=None, block=None):
        p = self._p(block_step)
        if self.counts == "none":
            return StepPlan(k=n_eligible.clone(), p=p)
        if self.counts == "round":
            if block is None:
                base = _from_table(self.round_counts(canvas.block_length), block_step, n_eligible)
                return StepPlan(k=base.k, p=p)
            k = torch.zeros_like(block_step)
            for size in block.size.unique().tolist():
                sel = block.size == size
                k[sel] = _from_table(self.round_counts(int(size)), block_step[sel], n_eligible[sel]).k
            return StepPlan(k=k, p=p)
        if rng is None:
            raise ConfigError("a binomial count schedule needs random numbers")
        u = rng.uniform(canvas.block_length)
        idx = torch.arange(canvas.block_length, device=u.device)[None, :]
        k = ((u < p[:, None]) & (idx < n_eligible[:, None])).sum(dim=-1)
        return StepPlan(k=k, p=p)

    def count_log_prob(self, canvas, block_step, n_eligible, k, block=None):
        if self.counts != "binomial":
            return super().count_log_prob(canvas, block_step, n_eligible, k)
        p = self._p(block_step).to(torch.float64)
        m = n_eligible.to(torch.float64)
        kf = k.to(torch.float64)
        lb = torch.lgamma(m + 1) - torch.lgamma(kf + 1) - torch.lgamma(m - kf + 1)
        lp = lb + torch.where(kf > 0, kf * torch.log(p), 0.0) + torch.where(m - kf > 0, (m - kf) * torch.log1p(-p), 0.0)
        bad = (kf > m) | (kf < 0) | torch.isnan(lp)
        return torch.where(bad, float("-inf"), lp)
