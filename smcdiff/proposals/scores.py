"""Scores that rank masked positions for selection.

A score maps block logits ``[R, Lb, V]``, the candidate tokens ``[R, Lb]``,
their log-probabilities and the token sampler to one float64 number per
position ``[R, Lb]`` (higher = commit sooner). Scores are deterministic
functions of those inputs; randomness in the choice of positions belongs to the
selector (see :class:`UniformRandom`).

==================  ===================================================================
score               value at position i
==================  ===================================================================
``Confidence``      ``p(x_hat_i)`` (LLaDA ``low_confidence``, Dream ``maskgit_plus``)
``Margin``          top-1 minus top-2 probability (Dream ``topk_margin``, Kim et al.)
``TopProbability``  ``max_v p_v`` whatever the candidate (the learned policies' input)
``NegEntropy``      ``sum_v p_v log p_v`` (Dream ``entropy``; EB-sampler's proxy)
``UniformRandom``   uniform noise; only with ``TopK``, where it is ``RandomK``
``ScoreFn(f)``      any user function ``f(logits, candidates, logp) -> [R, Lb]``
==================  ===================================================================

``Confidence(in_model_dtype=True)`` is LLaDA's released computation (softmax in the
model's dtype). ``tempered=True`` computes the probabilities from the sampler's tempered and
truncated logits (Dream's convention); the default uses the raw model logits
(LLaDA's).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from ..errors import ConfigError
from .tokens import TokenLogProbs, TokenSampler, _lse

__all__ = ["Score", "Confidence", "Margin", "TopProbability", "NegEntropy", "UniformRandom", "ScoreFn"]


class Score(ABC):
    """Base class of position scores."""

    @abstractmethod
    def __call__(self, logits: Tensor, candidates: Tensor, logp: TokenLogProbs, sampler: TokenSampler) -> Tensor:
        """Scores ``[R, Lb]`` (float64); larger means commit sooner."""


def _dist_logits(logits: Tensor, sampler: TokenSampler, tempered: bool) -> Tensor:
    return sampler.tempered_logits(logits) if tempered else logits


@dataclass(frozen=True)
class Confidence(Score):
    """Probability of the candidate token.

    Args:
        tempered: use the probability under the sampler's tempered, truncated
            law (Dream) instead of the untempered model probability (LLaDA, default).
        in_model_dtype: compute it as ML-GSAI/LLaDA ``generate`` does,
            ``softmax(logits)[x]`` in the dtype of the model's logits (bfloat16 for a
            bf16 model, whose rounding creates ties that change the commit order),
            and return it in that dtype. The default is the float64 value
            ``exp(logp.model)``.
    """

    tempered: bool = False
    in_model_dtype: bool = False

    def __post_init__(self) -> None:
        if self.tempered and self.in_model_dtype:
            raise ConfigError("Confidence: in_model_dtype=True replays the untempered LLaDA confidence; "
                              "it cannot be combined with tempered=True")

    def __call__(self, logits, candidates, logp, sampler):
        if self.in_model_dtype:
            return torch.softmax(logits, dim=-1).gather(-1, candidates[..., None])[..., 0]
        return torch.exp(logp.tempered if self.tempered else logp.model)


@dataclass(frozen=True)
class Margin(Score):
    """Top-1 minus top-2 probability at each position (independent of the candidate)."""

    tempered: bool = False

    def __call__(self, logits, candidates, logp, sampler):
        z = _dist_logits(logits, sampler, self.tempered)
        lse = _lse(z)
        top2 = torch.topk(z, 2, dim=-1).values.to(torch.float64)
        p = torch.exp(top2 - lse[..., None])
        return p[..., 0] - p[..., 1]


@dataclass(frozen=True)
class TopProbability(Score):
    """The largest token probability at each position, ``max_v p_v`` (equal to ``Confidence`` with greedy
    tokens; independent of the candidate when tokens are sampled)."""

    tempered: bool = False

    def __call__(self, logits, candidates, logp, sampler):
        z = _dist_logits(logits, sampler, self.tempered)
        return torch.exp(z.max(dim=-1).values.to(torch.float64) - _lse(z))


@dataclass(frozen=True)
class NegEntropy(Score):
    """``sum_v p_v log p_v`` (the negative entropy; 0 for a point mass)."""

    tempered: bool = False

    def __call__(self, logits, candidates, logp, sampler):
        z = _dist_logits(logits, sampler, self.tempered)
        lse = _lse(z)
        logp_all = z.to(torch.float64) - lse[..., None]
        p = torch.exp(logp_all)
        return torch.where(p > 0, p * logp_all, 0.0).sum(dim=-1)


@dataclass(frozen=True)
class UniformRandom(Score):
    """Uniform random scores. With :class:`TopK` this is exactly :class:`RandomK`.

    The kernel replaces ``TopK`` + ``UniformRandom`` by ``RandomK`` (whose commit
    set has the exact probability ``1 / C(m, k)``) and refuses this score with any
    other selector.
    """

    def __call__(self, logits, candidates, logp, sampler):  # pragma: no cover - replaced by RandomK
        raise RuntimeError("UniformRandom is only used through RandomK")


@dataclass(frozen=True)
class ScoreFn(Score):
    """A user score: ``fn(logits [R, Lb, V], candidates [R, Lb], logp) -> [R, Lb]``.

    ``fn`` must be deterministic; the kernel's log-probabilities assume it.
    """

    fn: Callable[[Tensor, Tensor, TokenLogProbs], Tensor]

    def __call__(self, logits, candidates, logp, sampler):
        out = self.fn(logits, candidates, logp)
        return torch.as_tensor(out).to(torch.float64)
