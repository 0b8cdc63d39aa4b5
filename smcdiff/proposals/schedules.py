"""Schedules: how many positions to commit at each step of a block.

A schedule is validated against the canvas once (:meth:`Schedule.validate`) and
then asked, at each step, for the count ``k [R]`` given the step index inside
the block and the number of eligible positions of each particle.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import torch
from torch import Tensor

from ..errors import ConfigError
from ..state import Canvas

__all__ = ["Schedule", "EvenSplit", "FixedCounts", "even_split_counts"]


def even_split_counts(n: int, steps: int) -> list[int]:
    """LLaDA's ``get_num_transfer_tokens``: ``n`` masks over ``steps`` steps, the remainder first.

    Each step gets ``n // steps`` and the first ``n % steps`` steps one more; the
    counts sum to ``n``.
    """
    base, rem = divmod(int(n), int(steps))
    return [base + (1 if i < rem else 0) for i in range(int(steps))]


class Schedule(ABC):
    """Base class of per-step commit counts."""

    @abstractmethod
    def validate(self, canvas: Canvas) -> None:
        """Raise :class:`~smcdiff.errors.ConfigError` if the schedule cannot unmask the canvas."""

    @abstractmethod
    def counts(self, canvas: Canvas, block_step: Tensor, n_eligible: Tensor) -> Tensor:
        """Count ``[R]`` (long) to commit, given the step index in the block ``[R]``."""

    def steps_per_block(self, canvas: Canvas) -> int | None:
        """Number of steps one block takes, if fixed."""
        return None


@lru_cache(maxsize=256)
def _table(counts: tuple[int, ...]) -> Tensor:
    return torch.tensor(counts + (0,), dtype=torch.long)


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
        if int(self.steps) < 1:
            raise ConfigError(f"steps must be >= 1; got {self.steps}")

    def steps_per_block(self, canvas: Canvas) -> int:
        return int(self.steps) // canvas.num_blocks

    def validate(self, canvas: Canvas) -> None:
        nb = canvas.num_blocks
        if int(self.steps) % nb != 0:
            raise ConfigError(
                f"steps ({self.steps}) must be a multiple of the number of blocks ({nb} = gen_length "
                f"{canvas.gen_length} / block_length {canvas.block_length}), as in LLaDA"
            )

    def counts(self, canvas: Canvas, block_step: Tensor, n_eligible: Tensor) -> Tensor:
        table = _table(tuple(even_split_counts(canvas.block_length, self.steps_per_block(canvas))))
        table = table.to(block_step.device)
        idx = block_step.clamp(max=table.numel() - 1)
        return torch.minimum(table[idx], n_eligible)


@dataclass(frozen=True)
class FixedCounts(Schedule):
    """Commit ``counts[i]`` positions at step ``i`` of every block.

    The counts must sum to at least ``block_length``; otherwise the sampler would
    leave masks behind and :meth:`validate` raises.
    """

    counts_per_step: Sequence[int]

    def __post_init__(self) -> None:
        c = tuple(int(x) for x in self.counts_per_step)
        if not c:
            raise ConfigError("FixedCounts needs at least one step")
        if any(x < 0 for x in c):
            raise ConfigError(f"counts must be non-negative; got {list(c)}")
        object.__setattr__(self, "counts_per_step", c)

    def steps_per_block(self, canvas: Canvas) -> int:
        return len(self.counts_per_step)

    def validate(self, canvas: Canvas) -> None:
        total = sum(self.counts_per_step)
        if total < canvas.block_length:
            raise ConfigError(
                f"the per-step counts {list(self.counts_per_step)} commit {total} positions per block, "
                f"but each block has {canvas.block_length} masked positions: the sampler could not "
                f"unmask everything"
            )

    def counts(self, canvas: Canvas, block_step: Tensor, n_eligible: Tensor) -> Tensor:
        table = _table(tuple(self.counts_per_step)).to(block_step.device)
        idx = block_step.clamp(max=table.numel() - 1)
        return torch.minimum(table[idx], n_eligible)
