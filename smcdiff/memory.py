"""How much memory a run needs, estimated before allocating, and how much it used, measured.

The estimate covers the sampler's own tensors, which dominate for large
vocabularies: one forward pass's logits over the whole canvas for every row
(``R = B * N`` rows, ``L`` positions, ``V`` tokens, in the model's dtype), the
kernel's working copies of the current block (``2 R Lb V`` numbers in at least
float32) and the particle state (24 bytes per row and position). With
classifier-free guidance the forward holds the conditional and unconditional
logits and two temporaries of the combination at once (4 x the logits). The
model's own activations (attention scores, MLP) are *not* included: they depend on
the network and are small next to ``R L V`` for a LLaDA- or Dream-sized
vocabulary; add them yourself for a network where they are not.

On the tiny models of the tests the estimate is within a few percent of the
measured peak (tests/test_memory.py checks 25 %).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

__all__ = ["MemoryEstimate", "estimate", "logits_dtype", "peak_memory"]


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs at its peak (see the module docstring for what is counted).

    ``logits``: the forward pass at its peak; ``working``: the block copies made after it,
    while its logits are alive; ``total = state + max(logits, full logits + working)``.
    """

    state: int
    logits: int
    working: int
    total: int

    def describe(self) -> str:
        gib = 2.0**30
        return (f"{self.total / gib:.3g} GiB (particle state {self.state / gib:.3g} GiB, logits of one forward "
                f"pass {self.logits / gib:.3g} GiB, block working copies {self.working / gib:.3g} GiB)")


def logits_dtype(model) -> torch.dtype:
    """The dtype of the model's logits: ``model.logits_dtype`` if it says, else its parameters' dtype, else float32."""
    dt = getattr(model, "logits_dtype", None)
    if isinstance(dt, torch.dtype):
        return dt
    net = getattr(model, "model", None)
    if isinstance(net, torch.nn.Module):
        for p in net.parameters():
            if p.dtype.is_floating_point:
                return p.dtype
    return torch.float32


def estimate(
    rows: int, length: int, block_length: int, vocab: int, dtype: torch.dtype = torch.float32, cfg: bool = False
) -> MemoryEstimate:
    """The peak bytes of one step over ``rows`` canvases of ``length`` positions (blocks of ``block_length``).

    ``dtype`` is the dtype of the model's logits; ``cfg`` whether classifier-free
    guidance doubles the forward pass.
    """
    item = torch.tensor([], dtype=dtype).element_size()
    full = rows * length * vocab * item
    forward = (4 if cfg else 1) * full  # cond + uncond logits and the two temporaries of their combination
    working = 2 * rows * block_length * vocab * max(4, item)
    state = rows * length * 24
    return MemoryEstimate(state=state, logits=forward, working=working, total=state + max(forward, full + working))


def _proc_status(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


@contextlib.contextmanager
def peak_memory(device: torch.device):
    """Measure the peak memory of the enclosed code on ``device``; yields a dict filled on exit.

    CUDA: ``torch.cuda.max_memory_allocated`` above what was allocated at the start
    (the device's peak counter is reset). CPU (Linux): the process's peak resident
    size (``VmHWM``, reset through ``/proc/self/clear_refs``) above its size at the
    start; glibc may keep freed memory, so this can exceed the live tensors. Elsewhere
    ``None``. Keys: ``peak_memory_bytes`` and ``peak_memory_source``.
    """
    out: dict = {"peak_memory_bytes": None, "peak_memory_source": None}
    dev = torch.device(device)
    start = None
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        start = torch.cuda.memory_allocated(dev)
    elif dev.type == "cpu":
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            start = _proc_status("VmRSS:")
        except OSError:
            start = None
    try:
        yield out
    finally:
        if start is not None:
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
                out["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated(dev) - start)
                out["peak_memory_source"] = "torch.cuda.max_memory_allocated"
            else:
                hwm = _proc_status("VmHWM:")
                if hwm is not None:
                    out["peak_memory_bytes"] = int(max(0, hwm - start))
                    out["peak_memory_source"] = "process peak RSS (VmHWM) above the start"
