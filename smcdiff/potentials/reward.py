"""Reward potentials: an external score of the (partly generated) sequence.

``RewardPotential(reward, lam)`` gives ``log G = lam * R(decode(x))`` where
``x`` is a particle's canvas after the step. Masked positions of the current
block are filled with the step's candidate tokens (``fill="candidates"``, an
estimate of the clean sequence in the spirit of FK steering) or dropped
(``fill="none"``); positions of later blocks stay masked and are dropped by the
decoder. Typical uses:

* ``RewardPotential(r, lam).final_only()`` tilts the target by ``exp(lam R(x_0))``;
* ``RewardPotential(r, lam).as_twist()`` steers with intermediate rewards but
  leaves the target unchanged (the twist telescopes away);
* both together: steering towards a reward-tilted target.

Only the particles the potential applies to are scored (one batched call).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from ..errors import ConfigError
from ..proposals.base import ProposalStep
from ..errors import check_number
from ..rewards import Decoder, check_decode, count_reward_call
from ..state import ParticleState
from .base import Potential

__all__ = ["RewardPotential"]


class RewardPotential(Potential):
    """``log G_t = lam * reward(prompt, decode(x_{t-1}))`` for each particle (see the module docstring).

    Args:
        reward: object with ``score(prompts, texts) -> Tensor [R]``.
        lam: scale of the log potential (a finite number).
        decode: ``decode(ids: list[int], cut_eos: bool = True) -> text`` (checked here; see
            :func:`~smcdiff.rewards.check_decode`). Default: tuples of ids with masks dropped
            (no EOS cut: the potential does not know the model); pass
            ``Decoder.for_model(model)`` to decode text and cut at the first EOS.
        fill: ``"candidates"`` or ``"none"``.
        pad_id: id dropped from the decoded prompt.
    """

    def __init__(self, reward: Any, lam: float = 1.0, decode: Callable | None = None, fill: str = "candidates", pad_id: int | None = None) -> None:
        if not hasattr(reward, "score"):
            raise ConfigError(f"reward must have score(prompts, texts); got {type(reward).__name__}")
        if fill not in ("candidates", "none"):
            raise ConfigError(f"fill must be 'candidates' or 'none'; got {fill!r}")
        self.reward = reward
        self.lam = check_number("lam", lam)
        self.decode = check_decode(decode)
        self.fill = fill
        if pad_id is not None:
            from ..errors import check_int

            pad_id = check_int("pad_id", pad_id, minimum=0)
        self.pad_id = pad_id

    def canvases(self, step: ProposalStep) -> Tensor:
        """The canvases ``[B, N, L]`` that are scored (after filling)."""
        tok = step.state.tokens
        if self.fill == "none":
            return tok
        pos = step.block_positions[:, None, :].expand(step.choice.candidates.shape)
        cur = tok.gather(2, pos)
        mid = step.state.canvas.mask_id
        filled = torch.where(cur == mid, step.choice.candidates, cur)
        return tok.scatter(2, pos, filled)

    def log_potential(self, prev: ParticleState, step: ProposalStep) -> Tensor:
        return self.log_potential_at(prev, step, torch.ones_like(step.log_q, dtype=torch.bool))

    def log_potential_at(self, prev: ParticleState, step: ProposalStep, mask: Tensor) -> Tensor:
        out = torch.zeros(step.log_q.shape, dtype=torch.float64, device=step.log_q.device)
        idx = torch.nonzero(mask)
        if idx.numel() == 0:
            return out
        canvas = step.state.canvas
        dec = self.decode or Decoder(None, (), canvas.mask_id)
        x = self.canvases(step)[idx[:, 0], idx[:, 1]].tolist()
        p = canvas.prompt_length
        prompts = [dec([t for t in row[:p] if self.pad_id is None or t != self.pad_id], cut_eos=False) for row in x]
        texts = [dec(row[p:]) for row in x]
        count_reward_call(idx[:, 0])
        r = torch.as_tensor(self.reward.score(prompts, texts), dtype=torch.float64).reshape(-1).to(out.device)
        if r.numel() != len(texts):
            raise ConfigError(f"the reward returned {r.numel()} scores for {len(texts)} texts")
        if bool(torch.isnan(r).any()):
            raise ConfigError(f"the reward ({type(self.reward).__name__}) returned NaN scores; log potentials must be numbers")
        out[idx[:, 0], idx[:, 1]] = self.lam * r
        return out

    def __repr__(self) -> str:
        return f"RewardPotential(reward={self.reward!r}, lam={self.lam}, fill={self.fill!r})"
