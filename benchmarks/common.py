"""Shared helpers for the benchmark scripts: a timed denoiser and the benchmark model."""

from __future__ import annotations

import time

import torch

from smcdiff.models import LLaDADenoiser
from smcdiff.models.tiny import tiny_llada


class Timed:
    """Wraps a denoiser and accumulates the wall time spent inside its forward passes."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.calls = 0
        self.mask_id = inner.mask_id
        self.vocab_size = inner.vocab_size
        self.eos_ids = inner.eos_ids
        self.pad_id = getattr(inner, "pad_id", None)

    @property
    def device(self):
        return self.inner.device

    def _sync(self):
        if self.inner.device.type == "cuda":
            torch.cuda.synchronize()

    def _timed(self, fn, *a):
        self._sync()
        t = time.perf_counter()
        out = fn(*a)
        self._sync()
        self.seconds += time.perf_counter() - t
        self.calls += 1
        return out

    def logits(self, tokens, attention_mask=None):
        return self._timed(self.inner.logits, tokens, attention_mask)

    def prefill(self, tokens, attention_mask, prefix_len, *suffix_start):
        return self._timed(self.inner.prefill, tokens, attention_mask, prefix_len, *suffix_start)

    def cached_logits(self, tokens, attention_mask, cache):
        return self._timed(self.inner.cached_logits, tokens, attention_mask, cache)

    @property
    def logits_dtype(self):
        from smcdiff.memory import logits_dtype

        return logits_dtype(self.inner)

    def require_prefix_cache(self):
        return self.inner.require_prefix_cache()

    def require_dual_cache(self):
        return self.inner.require_dual_cache()

    def reset(self):
        self.seconds, self.calls = 0.0, 0


def bench_model(d=256, layers=4, vocab=32000, heads=4, device="cpu", dtype=torch.float32, seed=0):
    net = tiny_llada(vocab_size=vocab, hidden_size=d, num_layers=layers, num_heads=heads,
                     intermediate_size=3 * d, seed=seed, dtype=dtype).to(device)
    return LLaDADenoiser.wrap(net)
