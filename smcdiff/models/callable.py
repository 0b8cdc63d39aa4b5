"""Wrap a plain function as a :class:`~smcdiff.models.Denoiser`."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from ..errors import ConfigError, check_int

__all__ = ["CallableDenoiser"]


class CallableDenoiser:
    """A denoiser from ``fn(tokens [R, L], attention_mask [R, L] | None) -> logits [R, L, V]``.

    Args:
        fn: the function; it receives a row-batch and must return logits for
            position ``i`` at index ``i`` (apply any shift yourself).
        mask_id: the mask token id, in ``[0, V]``: a logit slot of the vocabulary (its logit
            is ignored unless a kernel keeps it, ``mask_token="keep"``) or ``V``, an input-only token outside the
            output vocabulary (as :class:`~smcdiff.models.ToyDenoiser`). Larger ids would
            leave ids that are neither output tokens nor the mask and are refused.
        vocab_size: ``V``, the width of the logits (an integer >= 1).
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
            raise ConfigError(f"CallableDenoiser needs a callable fn(tokens, attention_mask) -> logits; got fn={fn!r}")
        self.fn = fn
        self.vocab_size = check_int("vocab_size", vocab_size, minimum=1)
        self.mask_id = check_int("mask_id", mask_id, minimum=0)
        if self.mask_id > self.vocab_size:
            raise ConfigError(
                f"mask_id {self.mask_id} lies outside the vocabulary of {self.vocab_size} tokens; give an id in "
                f"[0, {self.vocab_size - 1}] (a logit slot) or exactly vocab_size={self.vocab_size} (a mask token "
                f"outside the output vocabulary)"
            )
        if isinstance(eos_ids, (str, bytes)) or not hasattr(eos_ids, "__iter__"):
            raise ConfigError(f"eos_ids must be a list of token ids; got {eos_ids!r}")
        self.eos_ids = tuple(check_int(f"eos_ids[{i}]", e, 0, self.vocab_size - 1) for i, e in enumerate(eos_ids))
        self.pad_id = None if pad_id is None else check_int("pad_id", pad_id, 0, max(self.vocab_size, self.mask_id))
        if self.pad_id is not None and self.pad_id == self.mask_id:
            raise ConfigError(f"pad_id ({self.pad_id}) must differ from mask_id ({self.mask_id})")
        try:
            self._device = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise ConfigError(f"device {device!r} is not a torch device ({e})") from e

    @property
    def device(self) -> torch.device:
        return self._device

    def logits(self, tokens: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return self.fn(tokens, attention_mask)
