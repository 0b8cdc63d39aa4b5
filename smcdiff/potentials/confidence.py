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
        anneal: ``"steps_over_length"`` multiplies the log potential of a particle's
            k-th move by ``beta_k = k / gen_length``, the annealing of the released
            MDLM/BD3-LM SR-SMC code (deviation D9: not part of Proposition 3.1; it
            defines a different target). ``k`` counts the steps at which *this*
            particle moved (kept per particle, moved with resampling), not the
            prompt's steps: a particle that idles after finishing its block early
            must not have its schedule set by its siblings, or the particles would
            not share one target and ``Z_hat`` would be biased. In the released code
            every particle moves at every step, so the two counts agree there.
    """

    tempered: bool = False
    anneal: str | None = None

    def __post_init__(self) -> None:
        if self.anneal not in (None, "steps_over_length"):
            raise ConfigError(f"anneal must be None or 'steps_over_length'; got {self.anneal!r}")

    _MOVES = "trajectory_confidence:moves"  # per-particle move count (shared by all annealed instances)
    TEMPERED_TOTAL = "trajectory_confidence:tempered"  # per-particle running sum of tempered log confidences

    def _keys(self) -> tuple[str, ...]:
        return ((self._MOVES,) if self.anneal else ()) + ((self.TEMPERED_TOTAL,) if self.tempered else ())

    def init_state(self, particles: ParticleState) -> ParticleState:
        zero = torch.zeros(particles.tokens.shape[:2], dtype=torch.float64, device=particles.device)
        new = {k: zero.clone() for k in self._keys() if k not in particles.extras}
        return particles.with_extras(**new) if new else particles

    def update_state(self, prev: ParticleState, step: ProposalStep) -> dict[str, Tensor]:
        out = {}
        if self.anneal is not None:
            out[self._MOVES] = self._moves(prev) + step.moved.to(torch.float64)
        if self.tempered:  # kept so that result.best("trajectory_confidence") can rank by it
            out[self.TEMPERED_TOTAL] = prev.extras[self.TEMPERED_TOTAL] + self._tempered(step)
        return out

    @staticmethod
    def _tempered(step: ProposalStep) -> Tensor:
        lp = step.aux["logp_tempered"]
        return torch.where(step.choice.commit, lp, torch.zeros_like(lp)).sum(dim=-1)

    def _moves(self, prev: ParticleState) -> Tensor:
        if self._MOVES not in prev.extras:
            raise ConfigError("the annealed confidence's move counter is missing; run it through SMC (which calls init_state)")
        return prev.extras[self._MOVES]

    def log_potential(self, prev: ParticleState, step: ProposalStep) -> Tensor:
        if not self.tempered:
            lg = step.committed_logp.sum(dim=-1)
        else:
            lg = self._tempered(step)
        if self.anneal == "steps_over_length":
            if prev.free is None:
                beta = (self._moves(prev) + 1.0) / float(prev.canvas.gen_length)
            else:  # templates: each row's number of generated positions
                beta = (self._moves(prev) + 1.0) / prev.n_free()[:, None].to(torch.float64)
            lg = beta * lg
        return lg
