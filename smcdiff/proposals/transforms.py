"""Logit transforms applied inside the unmasking kernel.

A transform maps block logits ``[R, Lb, V]`` to new logits. It acts at one of
two stages:

* ``stage="sampling"``: before the candidate tokens are drawn; the scores are
  computed from the transformed logits too (LLaDA ``logits_eos_inf``);
* ``stage="score"``: only on the logits from which position scores are computed
  (LLaDA ``confidence_eos_eot_inf``, see ML-GSAI/LLaDA PR #139).

``in_target=True`` (the default) makes the transform part of the kernel that
defines the target; ``in_target=False`` marks a *proposal-only* change (for
example a reward tilt): the kernel then also evaluates every choice without it
and the engine weights by ``log K - log q``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Sequence

from torch import Tensor

from ..errors import ConfigError

__all__ = ["TransformContext", "LogitTransform", "SuppressTokens", "SuppressEOS", "LogitsFn", "apply_transforms"]


@dataclass
class TransformContext:
    """What a transform may look at (active rows only, ``R = B_active * N`` rows).

    Attributes:
        tokens: ``[R, L]`` current canvases.
        positions: ``[R, Lb]`` absolute positions of the block logits.
        eligible: ``[R, Lb]`` masked positions of the block.
        full_logits: ``[R, L, V]`` logits of every position (after CFG and mask
            suppression), or None when the kernel only computed a suffix (cache).
        rows: ``[B_active]`` prompt indices; ``n_particles``: N.
        prompt_length, mask_id: canvas geometry.
        model: the denoiser.
        cache: a dict shared by the transforms of one step (e.g. to compute a reward once).
    """

    tokens: Tensor
    positions: Tensor
    eligible: Tensor
    full_logits: Tensor | None
    rows: Tensor
    n_particles: int
    prompt_length: int
    mask_id: int
    model: object
    cache: dict = field(default_factory=dict)


class LogitTransform(ABC):
    """Base class of logit transforms.

    Attributes:
        stage: ``"sampling"`` or ``"score"``.
        in_target: part of the target kernel (True) or proposal-only (False).
        preserves_argmax: the transform never changes the arg-max token of a
            position (lets a proposal-only transform be used with greedy sampling).
    """

    stage: str = "sampling"
    in_target: bool = True
    preserves_argmax: bool = False

    @abstractmethod
    def __call__(self, logits: Tensor, ctx: TransformContext) -> Tensor:
        """Return transformed logits of the same shape (do not modify ``logits`` in place)."""


def _check_stage(stage: str) -> None:
    if stage not in ("sampling", "score"):
        raise ConfigError(f"transform stage must be 'sampling' or 'score'; got {stage!r}")


@dataclass(frozen=True)
class SuppressTokens(LogitTransform):
    """Set the logits of ``token_ids`` to ``-inf``.

    ``stage="sampling"``: the tokens are never drawn (LLaDA ``logits_eos_inf``).
    ``stage="score"``: the tokens can be drawn, but the confidence is computed
    with them removed, so a position whose candidate is one of them gets
    confidence 0 and is committed last (LLaDA ``confidence_eos_eot_inf``, correct
    at every temperature as in ML-GSAI/LLaDA PR #139).
    """

    token_ids: Sequence[int]
    stage: str = "sampling"
    in_target: bool = True

    def __post_init__(self) -> None:
        _check_stage(self.stage)
        ids = tuple(int(i) for i in self.token_ids)
        if not ids:
            raise ConfigError("SuppressTokens needs at least one token id")
        object.__setattr__(self, "token_ids", ids)

    def __call__(self, logits: Tensor, ctx: TransformContext) -> Tensor:
        v = logits.shape[-1]
        bad = [i for i in self.token_ids if not 0 <= i < v]
        if bad:
            raise ConfigError(f"cannot suppress token ids {bad}: the model's vocabulary has {v} entries")
        out = logits.clone()
        out[..., list(self.token_ids)] = float("-inf")
        return out


@dataclass(frozen=True)
class SuppressEOS(LogitTransform):
    """:class:`SuppressTokens` for the model's own end-of-sequence ids (``model.eos_ids``).

    ``include_eot=False`` suppresses the first id only (LLaDA's ``logits_eos_inf``
    acts on EOS 126081); ``include_eot=True`` the first two (LLaDA's
    ``confidence_eos_eot_inf`` acts on EOS 126081 and EoT 126348);
    ``eot_only=True`` the second only (what the released ``confidence_eos_eot_inf``
    does at temperature > 0, where it removes only EoT from the confidence softmax).
    """

    stage: str = "sampling"
    include_eot: bool = False
    in_target: bool = True
    eot_only: bool = False

    def __post_init__(self) -> None:
        _check_stage(self.stage)
        if self.eot_only and self.include_eot:
            raise ConfigError("SuppressEOS: give include_eot=True (EOS and EoT) or eot_only=True (EoT), not both")

    def __call__(self, logits: Tensor, ctx: TransformContext) -> Tensor:
        ids = tuple(getattr(ctx.model, "eos_ids", ()) or ())
        if not ids:
            raise ConfigError("SuppressEOS: the model declares no eos_ids")
        if self.eot_only and len(ids) < 2:
            raise ConfigError(f"SuppressEOS(eot_only=True): the model declares no EoT id (eos_ids={list(ids)})")
        ids = ids[1:2] if self.eot_only else ids[:2] if self.include_eot else ids[:1]
        return SuppressTokens(ids, self.stage)(logits, ctx)


@dataclass(frozen=True)
class LogitsFn(LogitTransform):
    """A user transform ``fn(logits [R, Lb, V], ctx) -> logits``; deterministic."""

    fn: Callable[[Tensor, TransformContext], Tensor]
    stage: str = "sampling"
    in_target: bool = True
    preserves_argmax: bool = False

    def __post_init__(self) -> None:
        _check_stage(self.stage)

    def __call__(self, logits: Tensor, ctx: TransformContext) -> Tensor:
        out = self.fn(logits, ctx)
        if not isinstance(out, Tensor) or out.shape != logits.shape:
            raise ConfigError(
                f"a logits transform must return a tensor of shape {tuple(logits.shape)}; got "
                f"{getattr(out, 'shape', type(out))}"
            )
        return out


def apply_transforms(logits: Tensor, transforms: Sequence[LogitTransform], ctx: TransformContext) -> Tensor:
    for t in transforms:
        logits = t(logits, ctx)
    return logits

