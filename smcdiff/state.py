"""Particle state: the canvas of every particle and everything that travels with it.

Layout
------
Each prompt row is ``[left padding | prompt | generation]`` of total length
``L = P + G`` where ``P`` is the longest prompt in the batch and ``G`` the
generation length. The generation span is cut into ``G / block_length``
semi-autoregressive blocks; with ``block_length = G`` there is one block (full
diffusion).

Per-particle tensors have leading dimensions ``[B, N]`` and are moved by
:meth:`ParticleState.gather` on resampling; per-prompt tensors have leading
dimension ``[B]`` and are shared by the particles of a prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Protocol, runtime_checkable

import torch
from torch import Tensor

from .errors import ConfigError

__all__ = ["Canvas", "ParticleState", "ParticleCache", "gather_particles"]


@dataclass(frozen=True)
class Canvas:
    """Geometry of the sequences being generated.

    Attributes:
        prompt_length: ``P``, the (left-padded) prompt length.
        gen_length: ``G``, the number of generated positions.
        block_length: length of a semi-autoregressive block; divides ``G``.
        mask_id: token id of the mask.
    """

    prompt_length: int
    gen_length: int
    block_length: int
    mask_id: int

    def __post_init__(self) -> None:
        if self.gen_length < 1:
            raise ConfigError(f"gen_length must be >= 1; got {self.gen_length}")
        if self.block_length < 1:
            raise ConfigError(f"block_length must be >= 1; got {self.block_length}")
        if self.gen_length % self.block_length != 0:
            raise ConfigError(
                f"block_length ({self.block_length}) must divide gen_length ({self.gen_length}); "
                f"{self.gen_length} = {self.gen_length // self.block_length} x {self.block_length} "
                f"+ {self.gen_length % self.block_length}"
            )
        if self.prompt_length < 0:
            raise ConfigError(f"prompt_length must be >= 0; got {self.prompt_length}")

    @property
    def length(self) -> int:
        """``L = P + G``."""
        return self.prompt_length + self.gen_length

    @property
    def num_blocks(self) -> int:
        return self.gen_length // self.block_length

    def block_start(self, block: Tensor) -> Tensor:
        """Absolute start position of ``block`` (``[B]`` long)."""
        return self.prompt_length + block * self.block_length


@runtime_checkable
class ParticleCache(Protocol):
    """Anything per-particle that a proposal keeps between steps (e.g. a KV cache)."""

    def gather(self, ancestors: Tensor) -> "ParticleCache":  # pragma: no cover - protocol
        """Return the cache reordered so that particle ``i`` of row ``b`` is old ``ancestors[b, i]``."""


def gather_particles(x: Tensor, ancestors: Tensor) -> Tensor:
    """``out[b, i, ...] = x[b, ancestors[b, i], ...]`` for ``x [B, N, ...]`` and ``ancestors [B, M]``."""
    if x.dim() < 2:
        raise ConfigError(f"per-particle tensors need shape [B, N, ...]; got {tuple(x.shape)}")
    idx = ancestors.reshape(ancestors.shape + (1,) * (x.dim() - 2)).expand(
        ancestors.shape + x.shape[2:]
    )
    return torch.gather(x, 1, idx)


@dataclass(frozen=True)
class ParticleState:
    """Everything the sampler knows about B prompts x N particles.

    Per particle (``[B, N, ...]``, gathered on resampling):
        tokens: ``[B, N, L]`` token ids; ``canvas.mask_id`` where still masked.
        committed_logp: ``[B, N, L]`` float64, model log-probability (untempered) of
            each token at the step it was committed; 0 elsewhere. Its sum over a row is
            the log trajectory confidence of SR-SMC (arXiv 2602.01849).
        commit_step: ``[B, N, L]`` int64, the step (1-based) at which each position was
            committed; -1 for prompt/padding and for positions still masked.
        extras: named per-particle tensors kept by proposals and potentials.
        cache: optional per-particle cache (e.g. a prefix KV cache).

    Per prompt (``[B]``, shared by its particles):
        block: current semi-autoregressive block; block_step: steps taken in it;
        steps: steps taken so far; done: fully generated;
        attention_mask: ``[B, L]`` bool, False on left padding (None: no padding).
    """

    tokens: Tensor
    committed_logp: Tensor
    commit_step: Tensor
    block: Tensor
    block_step: Tensor
    steps: Tensor
    done: Tensor
    canvas: Canvas
    attention_mask: Tensor | None = None
    extras: Mapping[str, Tensor] = field(default_factory=dict)
    cache: Any = None

    # ------------------------------------------------------------------ shapes
    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    @property
    def n_particles(self) -> int:
        return self.tokens.shape[1]

    @property
    def device(self) -> torch.device:
        return self.tokens.device

    @property
    def masked(self) -> Tensor:
        """Bool ``[B, N, L]``: positions still masked."""
        return self.tokens == self.canvas.mask_id

    @property
    def generated(self) -> Tensor:
        """The generation span ``[B, N, G]``."""
        return self.tokens[..., self.canvas.prompt_length :]

    def block_positions(self) -> Tensor:
        """Absolute positions of each row's current block, ``[B, block_length]`` (long).

        Rows that are done point at their last block.
        """
        c = self.canvas
        blk = self.block.clamp(max=c.num_blocks - 1)
        start = c.block_start(blk)
        return start[:, None] + torch.arange(c.block_length, device=self.device)[None, :]

    # ------------------------------------------------------------------ resampling
    def gather(self, ancestors: Tensor) -> "ParticleState":
        """Return the state whose particle ``i`` of row ``b`` is old particle ``ancestors[b, i]``.

        Moves every per-particle tensor (tokens, committed log-probs, commit steps,
        extras) and the cache. ``ancestors`` is ``[B, N]`` int64.
        """
        b, n = self.tokens.shape[:2]
        if ancestors.shape != (b, n):
            raise ConfigError(f"ancestors must have shape [B, N] = [{b}, {n}]; got {tuple(ancestors.shape)}")
        anc = ancestors.to(device=self.device, dtype=torch.int64)
        if bool(((anc < 0) | (anc >= n)).any()):
            raise ConfigError(f"ancestor indices must lie in [0, {n}); got values from {int(anc.min())} to {int(anc.max())}")
        extras = {k: gather_particles(v, anc) for k, v in self.extras.items()}
        cache = self.cache.gather(anc) if self.cache is not None else None
        return replace(
            self,
            tokens=gather_particles(self.tokens, anc),
            committed_logp=gather_particles(self.committed_logp, anc),
            commit_step=gather_particles(self.commit_step, anc),
            extras=extras,
            cache=cache,
        )

    def with_extras(self, **updates: Tensor) -> "ParticleState":
        """Return a copy with the given per-particle extras added or replaced."""
        new = dict(self.extras)
        for k, v in updates.items():
            if v.shape[:2] != self.tokens.shape[:2]:
                raise ConfigError(
                    f"extra {k!r} must have leading shape [B, N] = {tuple(self.tokens.shape[:2])}; "
                    f"got {tuple(v.shape)}"
                )
            new[k] = v
        return replace(self, extras=new)
