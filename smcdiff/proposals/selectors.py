"""Selectors: which eligible (masked, in-block) positions are committed this step.

A selector sees the position scores ``[R, Lb]``, the eligibility mask
``[R, Lb]`` and the schedule's count ``k [R]`` and returns the commit mask
``[R, Lb]`` together with the log-probability of that choice. Deterministic
selectors report ``0`` for the set they pick and ``-inf`` for any other set.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from .base import RowRNG

__all__ = ["Selector", "TopK", "RandomK", "top_k_mask"]


def top_k_mask(scores: Tensor, eligible: Tensor, k: Tensor) -> Tensor:
    """The ``k[r]`` eligible positions of highest score in each row ``[R, Lb]`` (bool).

    Ties are broken towards the lower position index (stable sort), so the
    result is a deterministic function of its inputs. ``k`` is clipped to the
    number of eligible positions.
    """
    s = torch.where(eligible, scores.to(torch.float64), float("-inf"))
    order = torch.sort(s, dim=-1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(s.shape[-1], device=s.device).expand_as(order).contiguous())
    return (ranks < k[:, None]) & eligible


class Selector(ABC):
    """Base class of position selectors."""

    #: True when the commit set is a deterministic function of the scores.
    is_deterministic: bool = True
    #: True when the selector uses the schedule's count ``k``.
    uses_count: bool = True

    @abstractmethod
    def draw(self, scores: Tensor, eligible: Tensor, k: Tensor, rng: RowRNG) -> tuple[Tensor, Tensor]:
        """Return ``(commit [R, Lb] bool, log_prob [R] float64)``."""

    @abstractmethod
    def log_prob(self, scores: Tensor, eligible: Tensor, k: Tensor, commit: Tensor) -> Tensor:
        """Log-probability ``[R]`` of the given commit mask (``-inf`` if impossible)."""

    def support_sizes(self, m: int, k: int | None) -> Sequence[int]:
        """Sizes of commit sets of positive probability with ``m`` eligible positions.

        Used by exact enumeration to skip impossible sets; the default is every size.
        """
        return range(m + 1)


def _deterministic_log_prob(expected: Tensor, commit: Tensor) -> Tensor:
    same = (expected == commit).all(dim=-1)
    return torch.where(same, 0.0, float("-inf")).to(torch.float64)


@dataclass(frozen=True)
class TopK(Selector):
    """Commit the ``k`` eligible positions with the highest scores (LLaDA, Dream)."""

    def support_sizes(self, m: int, k: int | None) -> Sequence[int]:
        return [min(int(k), m)] if k is not None else range(m + 1)

    def draw(self, scores: Tensor, eligible: Tensor, k: Tensor, rng: RowRNG) -> tuple[Tensor, Tensor]:
        commit = top_k_mask(scores, eligible, k)
        return commit, torch.zeros(commit.shape[0], dtype=torch.float64, device=commit.device)

    def log_prob(self, scores: Tensor, eligible: Tensor, k: Tensor, commit: Tensor) -> Tensor:
        return _deterministic_log_prob(top_k_mask(scores, eligible, k), commit)


@dataclass(frozen=True)
class RandomK(Selector):
    """Commit ``k`` eligible positions chosen uniformly at random (LLaDA ``remasking='random'``).

    The commit set has probability ``1 / C(m, k)`` where ``m`` is the number of
    eligible positions. Draws ``Lb`` uniforms per particle.
    """

    is_deterministic = False

    def support_sizes(self, m: int, k: int | None) -> Sequence[int]:
        return [min(int(k), m)] if k is not None else range(m + 1)

    def draw(self, scores: Tensor, eligible: Tensor, k: Tensor, rng: RowRNG) -> tuple[Tensor, Tensor]:
        u = rng.uniform(scores.shape[-1])
        commit = top_k_mask(u, eligible, k)
        return commit, self.log_prob(scores, eligible, k, commit)

    def log_prob(self, scores: Tensor, eligible: Tensor, k: Tensor, commit: Tensor) -> Tensor:
        m = eligible.sum(dim=-1)
        kk = torch.minimum(k.to(m.dtype), m)
        ok = (commit.sum(dim=-1) == kk) & ~(commit & ~eligible).any(dim=-1)
        mf, kf = m.to(torch.float64), kk.to(torch.float64)
        log_binom = torch.lgamma(mf + 1) - torch.lgamma(kf + 1) - torch.lgamma(mf - kf + 1)
        return torch.where(ok, -log_binom, float("-inf"))
