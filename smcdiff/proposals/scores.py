"""Scores that rank masked positions for selection.

A score maps block logits ``[R, Lb, V]``, the candidate tokens ``[R, Lb]`` and
their log-probabilities to one number per position ``[R, Lb]`` (higher = commit
sooner). Scores are deterministic functions of those inputs; randomness in the
choice of positions belongs to the selector.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from .tokens import TokenLogProbs

__all__ = ["Score", "Confidence"]


class Score(ABC):
    """Base class of position scores."""

    @abstractmethod
    def __call__(self, logits: Tensor, candidates: Tensor, logp: TokenLogProbs) -> Tensor:
        """Scores ``[R, Lb]`` (float64); larger means more confident."""


@dataclass(frozen=True)
class Confidence(Score):
    """Probability of the candidate token (LLaDA ``low_confidence``, Dream ``maskgit_plus``).

    Args:
        tempered: use the probability under the sampler's (tempered, truncated)
            distribution, as Dream does, instead of the untempered model
            probability, as LLaDA does (default).
    """

    tempered: bool = False

    def __call__(self, logits: Tensor, candidates: Tensor, logp: TokenLogProbs) -> Tensor:
        lp = logp.tempered if self.tempered else logp.model
        return torch.exp(lp)
