"""Proposals: the masked-diffusion unmasking kernel and its parts."""

from .base import Choice, Proposal, ProposalStep, RowRNG
from .cache import PrefixCacheStore
from .kernel import KernelContext, UnmaskingKernel
from .reward_tilt import Affine, Direct, ExpClip, RewardTilt
from .schedules import (AdaptiveSteps, AlphaSchedule, BlockInfo, DreamSchedule, EvenSplit, FixedCounts, PerStep, Schedule,
                        even_split_counts)
from .learned import PolicyBernoulli, PolicyPlackettLuce, UnmaskingPolicyNet, load_policy, policy_kernel
from .scores import Confidence, Margin, NegEntropy, Score, ScoreFn, TopProbability, UniformRandom
from .selectors import (
    Ancestral,
    EntropyBound,
    FactorRule,
    PlackettLuce,
    RandomK,
    Selector,
    SelectorDraw,
    StepPlan,
    Threshold,
    TopK,
    CanvasTopK,
    top_k_mask,
)
from .tokens import Categorical, Greedy, GumbelMax, TokenLogProbs, TokenSampler, truncate_logits
from .transforms import LogitsFn, LogitTransform, SuppressEOS, SuppressTokens, TransformContext

__all__ = [
    "Choice",
    "Proposal",
    "ProposalStep",
    "RowRNG",
    "PrefixCacheStore",
    "UnmaskingKernel",
    "KernelContext",
    "Schedule",
    "EvenSplit",
    "FixedCounts",
    "PerStep",
    "BlockInfo",
    "DreamSchedule",
    "AlphaSchedule",
    "AdaptiveSteps",
    "even_split_counts",
    "Score",
    "Confidence",
    "Margin",
    "TopProbability",
    "NegEntropy",
    "UniformRandom",
    "ScoreFn",
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
    "TokenSampler",
    "TokenLogProbs",
    "Greedy",
    "Categorical",
    "GumbelMax",
    "truncate_logits",
    "LogitTransform",
    "SuppressTokens",
    "SuppressEOS",
    "LogitsFn",
    "TransformContext",
    "RewardTilt",
    "ExpClip",
    "Affine",
    "Direct",
    "UnmaskingPolicyNet",
    "PolicyBernoulli",
    "PolicyPlackettLuce",
    "policy_kernel",
    "load_policy",
]
