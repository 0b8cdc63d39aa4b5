"""Particle state: the canvas of every particle and everything that travels with it.

Layout
------
Prefix generation (:meth:`SMC.run <smcdiff.engine.SMC.run>`): each prompt row is
``[left padding | prompt | generation]`` of total length ``L = P + G`` where
``P`` is the longest prompt in the batch and ``G`` the generation length. The
generation span is cut into ``G / block_length`` semi-autoregressive blocks;
with ``block_length = G`` there is one block (full diffusion).

Infilling (:meth:`SMC.infill <smcdiff.engine.SMC.infill>`): each row is a
template of length ``L`` whose masked positions are the ones to generate, in any
number of spans. Blocks are *windows* of ``block_length`` canvas positions: the
``k``-th window of row ``b`` covers ``[f_b + k * block_length, f_b + (k + 1) *
block_length)`` where ``f_b`` is the row's first masked position; windows that
hold no masked position are skipped, and a last window may be partial (its
slots past the end of the canvas hold no position to generate). Without
``block_length`` a row has one window from its first to its last masked position
(full diffusion). For a prompt + ``G`` masks this is exactly the prefix layout
above (``f_b = P``). Each row has its own window width (``min(block_length,
row length)`` or its span), so its random numbers do not depend on the other
rows of the batch or on padding.
The per-row geometry lives in :class:`ParticleState` (``block_starts``,
``block_sizes``, ``num_blocks``, ``free``); for the prefix layout they are None
and the formulas above are used.

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
    """Geometry of the sequences being generated (the same for every row of a batch).

    Attributes:
        prompt_length: ``P``, the (left-padded) prompt length; 0 for templates.
        gen_length: ``G``, the number of generated positions; for templates the
            canvas length ``L`` (rows generate their own masked positions).
        block_length: number of canvas positions of a block (window); divides
            ``G`` for prefix generation.
        mask_id: token id of the mask.
        template: True for infilling (per-row windows, see the module docstring).
        max_blocks: for templates, the largest number of windows of any row.
    """

    prompt_length: int
    gen_length: int
    block_length: int
    mask_id: int
    template: bool = False
    max_blocks: int = 0

    def __post_init__(self) -> None:
        if self.gen_length < 1:
            raise ConfigError(f"gen_length must be >= 1; got {self.gen_length}")
        if self.block_length < 1:
            raise ConfigError(f"block_length must be >= 1; got {self.block_length}")
        if self.template:
            if self.prompt_length != 0:
                raise ConfigError("a template canvas has prompt_length 0")
            if self.block_length > self.gen_length:
                raise ConfigError(f"block_length ({self.block_length}) exceeds the canvas length ({self.gen_length})")
        elif self.gen_length % self.block_length != 0:
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
        """Blocks per row (prefix layout), or the largest number of windows of any row (templates)."""
        return self.max_blocks if self.template else self.gen_length // self.block_length

    def block_start(self, block: Tensor) -> Tensor:
        """Absolute start position of ``block`` (``[B]`` long) in the prefix layout."""
        return self.prompt_length + block * self.block_length


def template_layout(
    free: Tensor, block_length: int | None, lengths: Tensor | None = None
) -> tuple[int, Tensor, Tensor, Tensor, Tensor]:
    """Windows of the rows of a template batch (see the module docstring).

    Args:
        free: ``[B, L]`` bool, the positions to generate (every row has at least one).
        block_length: window length, or None for one window per row (full diffusion).
        lengths: ``[B]`` each row's number of real (attended) positions (default ``L``).

    Returns:
        ``(width, starts [B, K], sizes [B, K], num_blocks [B], widths [B])``: the tensor
        width ``Lb`` of a window (the largest row width), each row's window starts
        (padded with the last start), the number of free positions in each window (0 in
        padding), each row's number of windows, and each row's own window width
        (``min(block_length, length)``, or the span from its first to its last free
        position). A row's width depends on the row alone, so its random draws do not
        depend on the batch it is in.
    """
    b, l = free.shape
    dev = free.device
    pos = torch.arange(l, device=dev)
    first = torch.where(free, pos, l).min(dim=1).values
    if lengths is None:
        lengths = torch.full((b,), l, dtype=torch.long, device=dev)
    if block_length is None:
        last = torch.where(free, pos, -1).max(dim=1).values
        widths = last - first + 1
        return int(widths.max()), first[:, None], free.sum(dim=1)[:, None], torch.ones(b, dtype=torch.long, device=dev), widths
    bl = int(block_length)
    widths = lengths.clamp(max=bl)
    k = (pos[None, :] - first[:, None]).div(bl, rounding_mode="floor")  # window index of each position
    kmax = int(((l - 1 - first) // bl).max()) + 1
    counts = torch.zeros(b, kmax, dtype=torch.long, device=dev)
    counts.scatter_add_(1, k.clamp(min=0, max=kmax - 1), (free & (k >= 0)).long())
    keep = counts > 0
    nb = keep.sum(dim=1)
    width_k = int(nb.max())
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :width_k]  # kept windows first, in order
    idx = torch.arange(width_k, device=dev)[None, :]
    order = torch.where(idx < nb[:, None], order, order.gather(1, (nb - 1)[:, None]))
    starts = first[:, None] + order * bl
    sizes = torch.where(idx < nb[:, None], counts.gather(1, order), 0)
    return int(widths.max()), starts, sizes, nb, widths


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
        attention_mask: ``[B, L]`` bool, False on padding (None: no padding).
        free: ``[B, L]`` bool, the positions generated (None: ``[P, L)`` of every row).
        block_starts: ``[B, K]`` start of each window (None: the prefix layout).
        block_sizes: ``[B, K]`` masked positions of each window when it starts.
        num_blocks: ``[B]`` windows per row.
        block_widths: ``[B]`` each row's own window width (at most ``canvas.block_length``).
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
    free: Tensor | None = None
    block_starts: Tensor | None = None
    block_sizes: Tensor | None = None
    num_blocks: Tensor | None = None
    block_widths: Tensor | None = None

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

    @property
    def is_template(self) -> bool:
        return self.block_starts is not None

    def free_positions(self) -> Tensor:
        """Bool ``[B, L]``: the positions each row generates."""
        if self.free is not None:
            return self.free
        c = self.canvas
        out = torch.zeros(self.batch_size, c.length, dtype=torch.bool, device=self.device)
        out[:, c.prompt_length :] = True
        return out

    def n_free(self) -> Tensor:
        """``[B]`` number of positions each row generates (``G`` in the prefix layout)."""
        if self.free is None:
            return torch.full((self.batch_size,), self.canvas.gen_length, dtype=torch.long, device=self.device)
        return self.free.sum(dim=1)

    def row_num_blocks(self) -> Tensor:
        """``[B]`` number of blocks (windows) of each row."""
        if self.num_blocks is None:
            return torch.full((self.batch_size,), self.canvas.num_blocks, dtype=torch.long, device=self.device)
        return self.num_blocks

    def block_size(self) -> Tensor:
        """``[B]`` masked positions of each row's current block when it started."""
        if self.block_sizes is None:
            return torch.full((self.batch_size,), self.canvas.block_length, dtype=torch.long, device=self.device)
        blk = torch.minimum(self.block, self.num_blocks - 1)
        return self.block_sizes.gather(1, blk[:, None])[:, 0]

    def block_positions(self) -> Tensor:
        """Absolute positions of each row's current block, ``[B, block_length]`` (long).

        Rows that are done point at their last block.
        """
        c = self.canvas
        if self.block_starts is None:
            blk = self.block.clamp(max=c.num_blocks - 1)
            start = c.block_start(blk)
        else:
            blk = torch.minimum(self.block, self.num_blocks - 1)
            start = self.block_starts.gather(1, blk[:, None])[:, 0]
            pos = start[:, None] + torch.arange(c.block_length, device=self.device)[None, :]
            # slots past the canvas point at the position before the window: never masked (it is
            # fixed or was committed in an earlier window), so those slots are never eligible
            return torch.where(pos >= c.length, (start - 1).clamp(min=0)[:, None], pos)
        return start[:, None] + torch.arange(c.block_length, device=self.device)[None, :]

    def index_rows(self, idx: Tensor) -> dict:
        """The per-prompt layout fields of rows ``idx`` (for building a sub-batch)."""
        return {
            k: None if getattr(self, k) is None else getattr(self, k)[idx]
            for k in ("attention_mask", "free", "block_starts", "block_sizes", "num_blocks", "block_widths")
        }

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
