"""Wrap a plain function as a :class:`~smcdiff.models.Denoiser`."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = ["CallableDenoiser"]


class CallableDenoiser:
    """A denoiser from ``fn(tokens [R, L], attention_mask [R, L] | None) -> logits [R, L, V]``.

    Args:
        fn: the function; it receives a row-batch and must return logits for
            position ``i`` at index ``i`` (apply any shift yourself).
        mask_id: the mask token id.
        vocab_size: ``V``, the width of the logits.
        eos_ids: end-of-sequence ids.
        pad_id: padding id for prompts of different lengths.
        device: where tokens live.
    """

    def __init__(
        self,
        fn: Callable[[Tensor, Tensor | None], Tensor],
        mask_id: int,
        vocab_size: int,
        eos_ids: Sequence[int] = (),
        pad_id: int | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if not callable(fn):
            raise ConfigError("CallableDenoiser needs a callable fn(tokens, attention_mask) -> logits")
        if int(vocab_size) < 1:
            raise ConfigError(f"vocab_size must be >= 1; got {vocab_size}")
        self.fn = fn
        self.mask_id = int(mask_id)
        self.vocab_size = int(vocab_size)
        self.eos_ids = tuple(int(e) for e in eos_ids)
        self.pad_id = None if pad_id is None else int(pad_id)
        self._device = torch.device(device)

    @property
    def device(self) -> torch.device:
        return self._device

    def logits(self, tokens: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return self.fn(tokens, attention_mask)
