"""The per-particle prefix cache kept in :attr:`ParticleState.cache`.

Following Fast-dLLM's prefix cache (NVlabs/Fast-dLLM
``generate_with_prefix_cache``), a prompt's first step in a block runs the full
canvas and keeps the keys/values of everything before the block; the other
steps of the block only run the suffix from the block start. Prompts that start
a block together share one *segment* (one batched :class:`KVCache` over their
``N`` particles each). On resampling, :meth:`PrefixCacheStore.gather` reorders
each segment's rows with the particles, so a particle always attends to its own
prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..models.cache import KVCache

__all__ = ["CacheSegment", "PrefixCacheStore"]


@dataclass(frozen=True)
class CacheSegment:
    """``rows [S]`` prompt indices (prompt-major, N particles each) and their cache."""

    rows: Tensor
    block_start: int
    kv: KVCache


@dataclass(frozen=True)
class PrefixCacheStore:
    """All live cache segments of a batch; immutable."""

    segments: tuple[CacheSegment, ...]
    n_particles: int

    def find(self, row: int, block_start: int) -> tuple[int, int] | None:
        """``(segment index, position of the row in it)`` or None."""
        for si, seg in enumerate(self.segments):
            if seg.block_start != block_start:
                continue
            hit = torch.nonzero(seg.rows == row).flatten()
            if hit.numel():
                return si, int(hit[0])
        return None

    def without_rows(self, rows: Tensor) -> "PrefixCacheStore":
        """Drop ``rows`` (prompt indices) from every segment."""
        if rows.numel() == 0:
            return self
        out = []
        n = self.n_particles
        for seg in self.segments:
            keep = ~torch.isin(seg.rows, rows.to(seg.rows.device))
            if bool(keep.all()):
                out.append(seg)
            elif bool(keep.any()):
                pos = torch.nonzero(keep).flatten()
                idx = (pos[:, None] * n + torch.arange(n, device=pos.device)[None, :]).flatten()
                out.append(CacheSegment(seg.rows[pos], seg.block_start, seg.kv.index_select(idx)))
        return PrefixCacheStore(tuple(out), n)

    def with_segment(self, seg: CacheSegment) -> "PrefixCacheStore":
        return PrefixCacheStore(self.without_rows(seg.rows).segments + (seg,), self.n_particles)

    def gather(self, ancestors: Tensor) -> "PrefixCacheStore":
        """Reorder particles: new particle ``i`` of prompt ``b`` takes old particle ``ancestors[b, i]``."""
        n = self.n_particles
        out = []
        for seg in self.segments:
            anc = ancestors[seg.rows.to(ancestors.device)]  # [S, N]
            ident = torch.arange(n, device=anc.device)[None, :]
            if bool((anc == ident).all()):
                out.append(seg)
                continue
            base = torch.arange(seg.rows.numel(), device=anc.device)[:, None] * n
            out.append(CacheSegment(seg.rows, seg.block_start, seg.kv.index_select((base + anc).flatten())))
        return PrefixCacheStore(tuple(out), n)

    def index_rows(self, idx: Tensor) -> "PrefixCacheStore":  # pragma: no cover - enumeration uses no cache
        raise NotImplementedError("exact enumeration does not support a prefix cache")
