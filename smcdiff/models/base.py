"""The denoiser protocol every model adapter implements.

A denoiser maps partly masked token rows ``[R, L]`` to logits ``[R, L, V]``
where ``logits[r, i]`` is the model's distribution of the clean token at
position ``i`` (any logit shift, as in Dream, is already undone by the adapter).
Samplers only ever talk to this protocol; model quirks (mask id, EOS ids,
shifts, padding conventions) live in the adapters under :mod:`smcdiff.models`.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import torch
from torch import Tensor

from ..errors import ConfigError, ModelOutputError, check_int

__all__ = ["Denoiser", "validate_denoiser", "call_denoiser", "output_device"]


@runtime_checkable
class Denoiser(Protocol):
    """Protocol for masked-diffusion denoisers.

    Attributes:
        mask_id: id of the mask token in ``tokens``.
        vocab_size: ``V``, the width of the returned logits.
        eos_ids: ids treated as end-of-sequence (possibly empty).
        device: device of the returned logits.
    """

    mask_id: int
    vocab_size: int
    eos_ids: Sequence[int]

    @property
    def device(self) -> torch.device:  # pragma: no cover - protocol
        ...

    def logits(self, tokens: Tensor, attention_mask: Tensor | None = None) -> Tensor:  # pragma: no cover
        """``tokens [R, L]`` (long) -> ``logits [R, L, V]`` (float)."""
        ...


def output_device(model: object) -> torch.device:
    """Where the model's logits come out: ``model.output_device`` if it has one (a model split over
    devices with ``device_map``), else ``model.device`` (CPU when it has neither).

    The engine keeps its particle state there, so that sampling never copies the logits.
    """
    dev = getattr(model, "output_device", None)
    if dev is None:
        dev = getattr(model, "device", None)
    return torch.device("cpu") if dev is None else torch.device(dev)


def validate_denoiser(model: object) -> None:
    """Raise :class:`ConfigError` if ``model`` does not look like a :class:`Denoiser`."""
    for attr in ("mask_id", "vocab_size", "logits"):
        if not hasattr(model, attr):
            raise ConfigError(
                f"the model must implement the Denoiser protocol (mask_id, vocab_size, eos_ids, device, "
                f"logits(tokens, attention_mask)); {type(model).__name__} has no {attr!r}. Wrap a plain "
                f"function with smcdiff.models.CallableDenoiser."
            )
    check_int("model vocab_size", model.vocab_size, minimum=1)
    check_int("model mask_id", model.mask_id, minimum=0)


def _checked_output(model: object, out: object) -> Tensor:
    """Refuse a ``logits`` output that is not a floating-point tensor, naming what came back."""
    name = f"{type(model).__name__}.logits"
    if not isinstance(out, Tensor):
        raise ModelOutputError(
            f"{name} returned a {type(out).__name__}; it must return a floating-point torch.Tensor of logits "
            f"[rows, length, vocab] (convert with torch.as_tensor(..., dtype=torch.float32))"
        )
    if not out.dtype.is_floating_point:
        raise ModelOutputError(
            f"{name} returned logits of dtype {out.dtype}; logits must be floating point (float32, float16, "
            f"bfloat16 or float64): integer or bool outputs are not log-probabilities (cast with .float())"
        )
    return out


def call_denoiser(
    model: Denoiser, tokens: Tensor, attention_mask: Tensor | None = None, max_rows: int | None = None
) -> Tensor:
    """Call ``model.logits`` on ``tokens [R, L]``, in chunks of at most ``max_rows`` rows.

    Checks the output shape. Chunking only splits the batch; for a model whose
    rows are computed independently the result is bit-identical to one call.
    """
    r, l = tokens.shape
    if max_rows is None or max_rows >= r:
        out = _checked_output(model, model.logits(tokens, attention_mask))
    else:
        if max_rows < 1:
            raise ConfigError(f"max_rows must be >= 1; got {max_rows}")
        parts = []
        for s in range(0, r, max_rows):
            am = attention_mask[s : s + max_rows] if attention_mask is not None else None
            parts.append(_checked_output(model, model.logits(tokens[s : s + max_rows], am)))
        out = torch.cat(parts, dim=0)
    if out.dim() != 3 or out.shape[0] != r or out.shape[1] != l:
        raise ModelOutputError(
            f"the model returned logits of shape {tuple(out.shape)}; expected [rows={r}, length={l}, vocab]"
        )
    if out.shape[2] != int(model.vocab_size):
        raise ModelOutputError(
            f"the model returned logits with {out.shape[2]} entries per position but declares "
            f"vocab_size={model.vocab_size}"
        )
    return out
