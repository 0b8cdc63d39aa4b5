"""Proposals: the masked-diffusion unmasking kernel and its parts."""

from .base import Choice, Proposal, ProposalStep, RowRNG
from .kernel import KernelContext, UnmaskingKernel
from .schedules import EvenSplit, FixedCounts, Schedule, even_split_counts
from .scores import Confidence, Score
from .selectors import RandomK, Selector, TopK, top_k_mask
from .tokens import Categorical, Greedy, GumbelMax, TokenLogProbs, TokenSampler

__all__ = [
    "Choice",
    "Proposal",
    "ProposalStep",
    "RowRNG",
    "UnmaskingKernel",
    "KernelContext",
    "Schedule",
    "EvenSplit",
    "FixedCounts",
    "even_split_counts",
    "Score",
    "Confidence",
    "Selector",
    "TopK",
    "RandomK",
    "top_k_mask",
    "TokenSampler",
    "TokenLogProbs",
    "Greedy",
    "Categorical",
    "GumbelMax",
]
