"""Generation-order and efficiency metrics.

All order metrics take the commit step of each generated position (``commit_step``
as recorded by the engine: 1-based step at which the position was committed;
:attr:`SMCResult.commit_step` restricted to the generation span) for one
sequence, ``steps [G]``. Positions committed in the same step are ordered by
position where an order is needed.

Definitions (ours; the RWS paper, arXiv 2509.00707, does not give its formula):

* **GOD** (generation-order deviation, in steps): with ``s_i`` the 0-based step
  at which position ``i`` was committed and ``k`` tokens per step, the
  autoregressive reference is ``floor(i / k)`` and
  ``GOD = mean_i |s_i - floor(i / k)|``. 0 for left-to-right decoding. The toy
  order of ``rws.md`` §3.1 (L = 6, k = 2, steps {0,5},{1,4},{2,3}) gives 1.0.
  The variant without trailing EOS drops those positions and counts only the
  steps that commit a kept position.
* **Kendall tau** between commit step and position (tau-b, ties in steps
  handled): 1 for left-to-right, -1 for right-to-left.
* **local AR-ness@k**: over consecutive commit events (in commit order), the
  fraction whose position lies 1..k positions to the right of the previous one.
* **global AR-ness@k**: over commit events, the fraction that commit one of the k
  leftmost still-masked positions.

The AR-ness definitions follow the description of DiffuCoder (arXiv 2506.20639)
in our reference notes; they are stated here exactly so results are reproducible.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

import numpy as np
import torch

from .errors import ConfigError

__all__ = [
    "god",
    "kendall_tau_order",
    "local_ar_ness",
    "global_ar_ness",
    "commit_order",
    "tokens_per_forward",
    "unigram_entropy",
    "order_metrics",
]


def _steps(steps) -> np.ndarray:
    s = np.asarray(torch.as_tensor(steps).cpu(), dtype=np.int64).reshape(-1)
    if (s < 1).any():
        raise ConfigError("commit steps must be >= 1 for every generated position (is the sequence complete?)")
    return s


def _keep(steps: np.ndarray, tokens, eos_ids: Sequence[int] | None) -> np.ndarray:
    """Mask of positions to keep: drop the trailing run of EOS tokens when eos_ids is given."""
    keep = np.ones(len(steps), dtype=bool)
    if eos_ids:
        tok = np.asarray(torch.as_tensor(tokens).cpu()).reshape(-1)
        if len(tok) != len(steps):
            raise ConfigError("tokens and steps must have the same length")
        eos = set(int(e) for e in eos_ids)
        i = len(tok)
        while i > 0 and int(tok[i - 1]) in eos:
            i -= 1
        keep[i:] = False
    return keep


def god(steps, tokens_per_step: int, tokens=None, eos_ids: Sequence[int] | None = None) -> float:
    """Generation-order deviation in steps (see the module docstring).

    Args:
        steps: ``[G]`` 1-based commit step of each generated position.
        tokens_per_step: ``k``, the number of tokens committed per step.
        tokens, eos_ids: give both to exclude the trailing run of EOS positions.
            Steps are then counted over the kept positions only: a step that
            committed nothing but excluded EOS tokens does not count, so EOS
            filled early (or in between) adds no deviation by itself.
    """
    k = int(tokens_per_step)
    if k < 1:
        raise ConfigError(f"tokens_per_step must be >= 1; got {tokens_per_step}")
    s = _steps(steps)
    keep = _keep(s, tokens, eos_ids)
    s = s[keep]
    if len(s) == 0:
        return 0.0
    # 0-based step; without EOS exclusion every step counts, with it only steps that commit a kept position
    s0 = s - s.min() if keep.all() else np.unique(s, return_inverse=True)[1].reshape(-1)
    ar = np.arange(len(s)) // k
    return float(np.abs(s0 - ar).mean())


def kendall_tau_order(steps) -> float:
    """Kendall's tau-b between commit step and position (1 = left-to-right)."""
    from scipy.stats import kendalltau

    s = _steps(steps)
    if len(s) < 2 or len(set(s.tolist())) == 1:
        return float("nan")
    return float(kendalltau(s, np.arange(len(s))).statistic)


def commit_order(steps) -> list[int]:
    """Positions in commit order (same-step positions by position)."""
    s = _steps(steps)
    return sorted(range(len(s)), key=lambda i: (s[i], i))


def local_ar_ness(steps, k: int = 1) -> float:
    """Fraction of consecutive commit events landing 1..k positions right of the previous one."""
    o = commit_order(steps)
    if len(o) < 2:
        return float("nan")
    hits = sum(1 for a, b in zip(o, o[1:]) if 1 <= b - a <= k)
    return hits / (len(o) - 1)


def global_ar_ness(steps, k: int = 1) -> float:
    """Fraction of commit events that commit one of the k leftmost still-masked positions."""
    o = commit_order(steps)
    if not o:
        return float("nan")
    masked = sorted(range(len(o)))
    hits = 0
    for pos in o:
        if pos in masked[:k]:
            hits += 1
        masked.remove(pos)
    return hits / len(o)


def tokens_per_forward(n_tokens: int, nfe: int) -> float:
    """Committed tokens per denoiser forward pass."""
    return float(n_tokens) / float(nfe) if nfe else float("nan")


def unigram_entropy(tokens, ignore: Sequence[int] = ()) -> float:
    """Entropy (nats) of the empirical unigram distribution of ``tokens``."""
    t = [int(x) for x in np.asarray(torch.as_tensor(tokens).cpu()).reshape(-1) if int(x) not in set(ignore)]
    if not t:
        return 0.0
    c = Counter(t)
    n = len(t)
    return float(-sum((v / n) * math.log(v / n) for v in c.values()))


def order_metrics(result, tokens_per_step: int | None = None, eos_ids: Sequence[int] | None = None) -> dict:
    """All order metrics for every particle of an :class:`~smcdiff.results.SMCResult`.

    Returns a dict of ``[B, N]`` numpy arrays (``god``, ``kendall_tau``,
    ``local_ar_ness``, ``global_ar_ness``, ``unigram_entropy``) and ``[B]`` arrays
    ``nfe`` and ``tokens_per_forward``. ``tokens_per_step`` defaults to
    ``G / (steps taken)``, rounded.

    Canvas order: the metrics see each row's generated positions in the order they
    have in the canvas — ``[P, L)`` for prefix generation, and for infilling the
    template's masked positions left to right (spans joined, fixed tokens skipped).
    """
    free = result.free_positions().cpu()
    b, n = result.commit_step.shape[:2]
    out = {k: np.zeros((b, n)) for k in ("god", "kendall_tau", "local_ar_ness", "global_ar_ness", "unigram_entropy")}
    g_rows = []
    for i in range(b):
        cs = result.commit_step[i][:, free[i]]
        gen = result.sequences[i][:, free[i]]
        g = cs.shape[-1]
        g_rows.append(g)
        for j in range(n):
            st = cs[j]
            kps = tokens_per_step or max(1, round(g / int(st.max() - st.min() + 1)))
            out["god"][i, j] = god(st, kps, gen[j], eos_ids)
            out["kendall_tau"][i, j] = kendall_tau_order(st)
            out["local_ar_ness"][i, j] = local_ar_ness(st, 1)
            out["global_ar_ness"][i, j] = global_ar_ness(st, 1)
            out["unigram_entropy"][i, j] = unigram_entropy(gen[j])
    nfe = result.nfe.cpu().numpy()
    out["nfe"] = nfe
    out["tokens_per_forward"] = np.array([tokens_per_forward(g, int(x)) for g, x in zip(g_rows, nfe)])
    return out

