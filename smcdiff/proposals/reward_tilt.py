"""Reward-weighted logit scaling (RWS, arXiv 2509.00707) as a logit transform.

At every step, for every particle row:

1. fill the masked positions with the current predictions (the arg-max of the
   untilted logits, the mask token excluded);
2. decode the generated span (cut at the first EOS, masks dropped) and score it
   with the reward — one batched call for all rows of the step;
3. normalise (use a :class:`~smcdiff.rewards.NormalizedReward`) and map the
   score ``s`` to a positive scale ``r`` (:class:`ExpClip` by default);
4. multiply the block logits by ``r``.

``stage="sampling"`` (``scale_sampling=True`` in the recipe) scales the logits
tokens are drawn from, and therefore the selection scores too; ``stage="score"``
scales only the selection scores. Because ``r > 0`` the arg-max token of every
position is unchanged (``preserves_argmax``): at temperature 0 RWS changes only
which positions are committed. ``r = 1`` reproduces the untilted sampler exactly.
The per-row reward and scale of each step are reported in the step's ``aux`` as
``"rws_reward"`` and ``"rws_scale"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor

from ..errors import ConfigError, check_number
from ..rewards import Decoder, check_decode, count_reward_call
from .transforms import LogitTransform, TransformContext

__all__ = ["RewardTilt", "ExpClip", "Affine", "Direct", "fill_predictions"]


@dataclass(frozen=True)
class ExpClip:
    """``r = clip(exp(lam * s), r_min, r_max)``; ``r = 1`` at the reference mean."""

    lam: float = 1.0
    r_min: float = 0.25
    r_max: float = 4.0

    def __post_init__(self) -> None:
        check_number("ExpClip lam", self.lam)
        if not (0 < self.r_min <= 1 <= self.r_max):
            raise ConfigError(f"need 0 < r_min <= 1 <= r_max; got {self.r_min}, {self.r_max}")

    def __call__(self, s: Tensor) -> Tensor:
        return torch.exp(self.lam * s).clamp(self.r_min, self.r_max)


@dataclass(frozen=True)
class Affine:
    """``r = max(1 + lam * s, r_min)``."""

    lam: float = 1.0
    r_min: float = 0.05

    def __post_init__(self) -> None:
        check_number("Affine lam", self.lam)
        if not self.r_min > 0:
            raise ConfigError(f"r_min must be > 0; got {self.r_min}")

    def __call__(self, s: Tensor) -> Tensor:
        return (1.0 + self.lam * s).clamp_min(self.r_min)


@dataclass(frozen=True)
class Direct:
    """``r = max(s, r_min)``: the reward itself, e.g. a min-max normalised score in ``[0, 1]``.

    A min-max normalised reward is 0 at the baseline minimum and can fall below it
    on new sequences; such values get the smallest scale ``r_min > 0`` (a scale
    must be positive). NaN rewards raise.
    """

    r_min: float = 1e-6

    def __post_init__(self) -> None:
        if not self.r_min > 0:
            raise ConfigError(f"r_min must be > 0; got {self.r_min}")

    def __call__(self, s: Tensor) -> Tensor:
        if bool(torch.isnan(s).any()):
            raise ConfigError("the reward returned NaN; Direct scaling needs a number for every row")
        return s.clamp_min(self.r_min)


def fill_predictions(tokens: Tensor, full_logits: Tensor, mask_id: int) -> Tensor:
    """``tokens [R, L]`` with masked positions replaced by the arg-max of ``full_logits [R, L, V]``."""
    lg = full_logits
    if 0 <= mask_id < lg.shape[-1]:
        lg = lg.clone()
        lg[..., mask_id] = float("-inf")
    pred = lg.argmax(dim=-1)
    return torch.where(tokens == mask_id, pred, tokens)


@dataclass(frozen=True, eq=False)
class RewardTilt(LogitTransform):
    """Scale the block logits by ``r = scale(reward(filled sequence))`` (see the module docstring).

    Args:
        reward: an object with ``score(prompts, texts) -> Tensor [R]``.
        scale: the map from (normalised) reward to scale.
        stage: ``"sampling"`` or ``"score"``.
        decode: ``decode(ids: list[int], cut_eos: bool = True) -> text`` (checked on
            construction, see :func:`~smcdiff.rewards.check_decode`); default
            :meth:`Decoder.for_model`.
        in_target: False (default) makes it a proposal-only tilt.
    """

    reward: Any
    scale: Callable[[Tensor], Tensor] = field(default_factory=ExpClip)
    stage: str = "score"
    decode: Callable | None = None
    in_target: bool = False
    preserves_argmax: bool = True

    def __post_init__(self) -> None:
        if self.stage not in ("sampling", "score"):
            raise ConfigError(f"stage must be 'sampling' or 'score'; got {self.stage!r}")
        if not hasattr(self.reward, "score"):
            raise ConfigError(f"reward must have score(prompts, texts); got {type(self.reward).__name__}")
        if not callable(self.scale):
            raise ConfigError(f"scale must be a callable scores -> positive scales, e.g. ExpClip(); got {self.scale!r}")
        check_decode(self.decode)

    def scales(self, ctx: TransformContext) -> Tensor:
        """The per-row scale ``[R]``, computed once per step (one reward call) and cached in ``ctx``."""
        if "rws_scale" in ctx.cache:
            return ctx.cache["rws_scale"]
        if ctx.full_logits is None:
            raise ConfigError("RWS needs the logits of every position; it does not work with the prefix cache")
        dec = self.decode or Decoder.for_model(ctx.model)
        filled = fill_predictions(ctx.tokens, ctx.full_logits, ctx.mask_id)
        p = ctx.prompt_length
        pad = getattr(ctx.model, "pad_id", None)
        prompts, texts = [], []
        for row in filled.tolist():
            prompt_ids = [t for t in row[:p] if pad is None or t != pad]
            prompts.append(dec(prompt_ids, cut_eos=False))
            texts.append(dec(row[p:]))
        count_reward_call(ctx.rows.repeat_interleave(ctx.n_particles))
        r_raw = torch.as_tensor(self.reward.score(prompts, texts), dtype=torch.float64).reshape(-1)
        if r_raw.numel() != filled.shape[0]:
            raise ConfigError(f"the reward returned {r_raw.numel()} scores for {filled.shape[0]} rows")
        r = self.scale(r_raw).to(torch.float64)
        if not bool(torch.isfinite(r).all()) or bool((r <= 0).any()):
            raise ConfigError("the reward scale must be finite and positive")
        ctx.cache["rws_reward"] = r_raw
        ctx.cache["rws_scale"] = r
        return r

    def __call__(self, logits: Tensor, ctx: TransformContext) -> Tensor:
        r = self.scales(ctx).to(device=logits.device)
        if bool((r == 1.0).all()):
            return logits
        return logits * r.to(logits.dtype)[:, None, None]

    def __repr__(self) -> str:
        return f"RewardTilt(reward={self.reward!r}, scale={self.scale!r}, stage={self.stage!r}, in_target={self.in_target})"

