"""A model-agnostic key/value cache: prefix (Fast-dLLM's prefix cache) or prefix and suffix (its dual cache).

:class:`KVCache` holds, for every layer, the keys and values of the first
``prefix_len`` positions of ``R`` rows (batch dimension 0), and with
``suffix_start`` also those of the positions from ``suffix_start`` to the end
(after the prefix's, in that order). Adapters convert it to and from their
model's native cache format. It never changes in place: a forward pass over the
uncached positions reads it and leaves it as it was, so one cache can serve every
step of a block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

__all__ = ["KVCache"]


@dataclass(frozen=True)
class KVCache:
    """Per-layer ``(key, value)`` tensors ``[R, ...]`` for the first ``prefix_len`` positions.

    Attributes:
        layers: one ``(k, v)`` pair per layer; dimension 0 is the row.
        prefix_len: number of cached positions (of the model's input, after any shift).
        start: first position whose logits a cached forward returns (the block start;
            ``prefix_len + shift`` for models with shifted logits, or more when the
            shift leaves nothing to cache). Defaults to ``prefix_len``.
        suffix_start: with a dual cache, the first cached position after the block: the
            cache then also holds positions ``suffix_start ..`` (None: prefix only).
    """

    layers: tuple[tuple[Tensor, Tensor], ...]
    prefix_len: int
    start: int = -1
    suffix_start: int | None = None

    def __post_init__(self) -> None:
        if self.start < 0:
            object.__setattr__(self, "start", self.prefix_len)

    @property
    def n_rows(self) -> int:
        return self.layers[0][0].shape[0] if self.layers else 0

    def index_select(self, rows: Tensor) -> "KVCache":
        """Rows ``rows`` (long ``[R']``) of the cache, in that order.

        Layers may live on different devices (a model split with ``device_map``); each
        layer is gathered on its own device.
        """
        on: dict = {}

        def idx(t: Tensor) -> Tensor:
            if t.device not in on:
                on[t.device] = rows.to(t.device)
            return on[t.device]

        return KVCache(
            tuple((k.index_select(0, idx(k)), v.index_select(0, idx(v))) for k, v in self.layers),
            self.prefix_len, self.start, self.suffix_start,
        )

    @staticmethod
    def cat(caches: Sequence["KVCache"]) -> "KVCache":
        """Concatenate caches with the same ``prefix_len`` along the row dimension."""
        if len(caches) == 1:
            return caches[0]
        p = {(c.prefix_len, c.start, c.suffix_start) for c in caches}
        if len(p) != 1:
            raise ValueError(f"cannot concatenate caches of different layouts (prefix, start, suffix) {sorted(p, key=str)}")
        layers = tuple(
            (torch.cat([c.layers[i][0] for c in caches]), torch.cat([c.layers[i][1] for c in caches]))
            for i in range(len(caches[0].layers))
        )
        return KVCache(layers, caches[0].prefix_len, caches[0].start, caches[0].suffix_start)

    def nbytes(self) -> int:
        return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in self.layers)
