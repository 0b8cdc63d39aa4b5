"""The trajectory-confidence potential of self-rewarding SMC (arXiv 2602.01849).

At step ``t`` with commit set ``S_t`` and candidates ``x_hat``,

    log G_t = sum_{j in S_t} log p_theta(x_hat_j | x_t),

the log-probability, *at the moment of commitment*, of each token committed in
this step. Over a whole trajectory the product of the ``G_t`` is the trajectory
confidence ``C = prod_l p_theta(x_l | x_{tau(l)})`` where ``tau(l)`` is the step
that committed position ``l``. With the bootstrap proposal (the model's own
kernel) the incremental importance weight is exactly ``G_t`` (Proposition 3.1
of the paper), whatever rule selects ``S_t``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError
from ..proposals.base import ProposalStep
from ..state import ParticleState
from .base import Potential

__all__ = ["TrajectoryConfidence"]


@dataclass(frozen=True)
class TrajectoryConfidence(Potential):
    """``log G_t = sum of log p(committed token)`` over the tokens committed at step t.

    Args:
        tempered: use the log-probability under the sampler's tempered (and
            truncated) distribution, as the released Dream SR-SMC code does, instead
            of the untempered model probability (the LLaDA code and the paper's
            Proposition 3.1). At temperature 1 without truncation the two agree.
        anneal: ``"steps_over_length"`` multiplies step t's log potential by
            ``beta_t = t / gen_length`` (t counts the prompt's steps), the annealing of
            the released MDLM/BD3-LM SR-SMC code (deviation D9: not part of
            Proposition 3.1; it defines a different target).
    """

    tempered: bool = False
    anneal: str | None = None

    def __post_init__(self) -> None:
        if self.anneal not in (None, "steps_over_length"):
            raise ConfigError(f"anneal must be None or 'steps_over_length'; got {self.anneal!r}")

    def log_potential(self, prev: ParticleState, step: ProposalStep) -> Tensor:
        if not self.tempered:
            lg = step.committed_logp.sum(dim=-1)
        else:
            lp = step.aux["logp_tempered"]
            lg = torch.where(step.choice.commit, lp, torch.zeros_like(lp)).sum(dim=-1)
        if self.anneal == "steps_over_length":
            beta = (prev.steps + 1).to(torch.float64) / float(prev.canvas.gen_length)
            lg = beta[:, None] * lg
        return lg
