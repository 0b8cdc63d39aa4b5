"""Straightforward loop-form re-implementations of the upstream samplers, for golden tests.

They follow the reference notes (ML-GSAI/LLaDA ``generate``, Dream's
``_sample``, NVlabs/Fast-dLLM ``generate`` / ``generate_with_prefix_cache``,
the MDLM ancestral step, the EB-sampler) one row and one step at a time, and
call the raw network directly (not smcdiff's adapters). Two deliberate,
documented departures shared with smcdiff: the mask token's logit is set to
-inf (a mask is never committed), and all randomness comes from a
:class:`Noise` object that replays per-row uniforms in the order smcdiff draws
them (token noise ``[Lb, V]`` first, then selection noise ``[Lb]``), which is
what "the same Gumbel noise" means for these tests.

Each function returns ``(x [B, L], commit_step [B, L])`` with the 1-based step
at which each position was committed (-1 for the prompt).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from smcdiff import row_seeds


class Noise:
    """Per-row uniforms drawn from generators seeded like smcdiff's rows (N = 1 particle)."""

    def __init__(self, seeds):
        self.g = [torch.Generator().manual_seed(int(s)) for s in seeds]

    @classmethod
    def from_seed(cls, seed, batch):
        return cls(row_seeds(seed, batch))

    def rand(self, b, *shape):
        return torch.rand((1,) + shape, generator=self.g[b], dtype=torch.float64)[0]


def _suppress_mask(logits, mask_id):
    logits = logits.clone()
    if mask_id < logits.shape[-1]:
        logits[..., mask_id] = -math.inf
    return logits


def _gumbel_argmax(logits_row, u, temperature):
    """LLaDA's ``argmax(exp(logits) / (-log u)^T)`` in float64 (T > 0)."""
    return (logits_row.double().exp() / (-torch.log(u)) ** temperature).argmax(-1)


def _even_split(n, steps):
    base, rem = divmod(n, steps)
    return [base + (1 if i < rem else 0) for i in range(steps)]


def llada_generate(
    model_fn, prompt, attention_mask=None, steps=128, gen_length=128, block_length=128, temperature=0.0,
    cfg_scale=0.0, remasking="low_confidence", mask_id=126336, logits_eos_inf=False,
    confidence_eos_eot_inf=False, eos_id=126081, eot_id=126348, noise=None,
):
    b, p = prompt.shape
    x = torch.full((b, p + gen_length), mask_id, dtype=torch.long)
    x[:, :p] = prompt
    am = None
    if attention_mask is not None:
        am = torch.cat([attention_mask, torch.ones(b, gen_length, dtype=attention_mask.dtype)], 1)
    commit = torch.full_like(x, -1)
    prompt_index = torch.zeros_like(x, dtype=torch.bool)
    prompt_index[:, :p] = True
    assert gen_length % block_length == 0
    nb = gen_length // block_length
    assert steps % nb == 0
    spb = steps // nb
    step_no = 0
    for blk in range(nb):
        s0 = p + blk * block_length
        counts = _even_split(block_length, spb)
        for i in range(spb):
            step_no += 1
            if cfg_scale > 0:
                un = x.clone()
                un[prompt_index] = mask_id
                both = model_fn(torch.cat([x, un]), None if am is None else torch.cat([am, am]))
                c, u = both.chunk(2)
                logits = u + (cfg_scale + 1) * (c - u)
            else:
                logits = model_fn(x, am)
            logits = _suppress_mask(logits, mask_id)
            if logits_eos_inf:
                logits[:, :, eos_id] = -math.inf
            for r in range(b):
                blk_logits = logits[r, s0 : s0 + block_length]
                if temperature > 0:
                    u = noise.rand(r, block_length, logits.shape[-1])
                    x0 = _gumbel_argmax(blk_logits, u, temperature)
                else:
                    x0 = blk_logits.argmax(-1)
                conf_logits = blk_logits.clone()
                if confidence_eos_eot_inf:
                    conf_logits[:, [eos_id, eot_id]] = -math.inf
                if remasking == "low_confidence":
                    pr = F.softmax(conf_logits.double(), -1)
                    x0_p = pr.gather(-1, x0[:, None])[:, 0]
                else:
                    x0_p = noise.rand(r, block_length)
                masked = x[r, s0 : s0 + block_length] == mask_id
                conf = torch.where(masked, x0_p, torch.tensor(-math.inf, dtype=x0_p.dtype))
                k = min(counts[i], int(masked.sum()))
                # top-k with ties to the lower index
                order = sorted(range(block_length), key=lambda j: (-float(conf[j]), j))[:k]
                for j in order:
                    x[r, s0 + j] = x0[j]
                    commit[r, s0 + j] = step_no
    return x, commit


def _top_p(z, top_p):
    sz, idx = torch.sort(z, descending=True)
    cum = torch.cumsum(F.softmax(sz.double(), -1), -1)
    rm = cum > top_p
    rm[1:] = rm[:-1].clone()
    rm[0] = False
    mask = torch.zeros_like(z, dtype=torch.bool).scatter_(-1, idx, rm)
    return z.masked_fill(mask, -math.inf)


def _top_k(z, top_k):
    kth = torch.topk(z, min(top_k, z.shape[-1])).values[-1]
    return z.masked_fill(z < kth, -math.inf)


def dream_sample(
    model_fn, prompt, gen_length, steps=512, eps=1e-3, alg="origin", alg_temp=None, temperature=0.0,
    top_p=None, top_k=None, mask_id=None, noise=None,
):
    """Dream's ``_sample`` (no padding), one row at a time; logits shifted right by one."""
    b, p = prompt.shape
    L = p + gen_length
    x = torch.full((b, L), mask_id, dtype=torch.long)
    x[:, :p] = prompt
    commit = torch.full_like(x, -1)
    ts = torch.linspace(1, eps, steps + 1)
    for i in range(steps):
        raw = model_fn(x, None)
        logits = torch.cat([raw[:, :1], raw[:, :-1]], dim=1)
        logits = _suppress_mask(logits, mask_id)
        t, s = ts[i], ts[i + 1]
        for r in range(b):
            gl = logits[r, p:]  # the generation span is the only block
            z = gl / temperature if temperature > 0 else gl.clone()
            if top_p is not None and top_p < 1:
                z = torch.stack([_top_p(zz, top_p) for zz in z])
            if top_k is not None:
                z = torch.stack([_top_k(zz, top_k) for zz in z])
            probs = F.softmax(z.double(), -1)
            if temperature > 0:
                u = noise.rand(r, gen_length, z.shape[-1])
                x0 = (z.double() - torch.log(-torch.log(u))).argmax(-1)
            else:
                x0 = probs.argmax(-1)
            masked = x[r, p:] == mask_id
            m = int(masked.sum())
            if alg == "origin":
                p_transfer = float(1 - s / t) if i < steps - 1 else 1.0
                uu = noise.rand(r, gen_length)
                for j in range(gen_length):
                    if masked[j] and uu[j] < p_transfer:
                        x[r, p + j] = x0[j]
                        commit[r, p + j] = i + 1
                continue
            if alg == "maskgit_plus":
                conf = probs.gather(-1, x0[:, None])[:, 0]
            elif alg == "topk_margin":
                sp = torch.sort(probs, -1, descending=True).values
                conf = sp[:, 0] - sp[:, 1]
            elif alg == "entropy":
                conf = torch.where(probs > 0, probs * torch.log(probs), torch.zeros_like(probs)).sum(-1)
            else:
                raise ValueError(alg)
            k = int(torch.tensor(float(m), dtype=torch.float32) * (1 - s / t)) if i < steps - 1 else m
            conf = torch.where(masked, conf, torch.tensor(-math.inf, dtype=conf.dtype))
            if k > 0:
                if alg_temp:
                    # sampling without replacement from softmax(conf / alg_temp) by Gumbel-top-k
                    u = noise.rand(r, gen_length)
                    keys = conf / alg_temp - torch.log(-torch.log(u))
                    keys = torch.where(masked, keys, torch.tensor(-math.inf, dtype=keys.dtype))
                    chosen = sorted(range(gen_length), key=lambda j: (-float(keys[j]), j))[:k]
                else:
                    chosen = sorted(range(gen_length), key=lambda j: (-float(conf[j]), j))[:k]
                for j in chosen:
                    x[r, p + j] = x0[j]
                    commit[r, p + j] = i + 1
    return x, commit


def _fast_select(conf, masked, threshold, factor, count):
    n = len(conf)
    order = sorted(range(n), key=lambda j: (-float(conf[j]), j))
    order = [j for j in order if masked[j]]
    if factor is not None:
        m = len(order)
        threshs = [1 - factor / (q + 1) for q in range(1, m + 1)]
        threshs[0] = -1
        top_i = 0
        for top_i in range(m):
            if conf[order[top_i]] < threshs[top_i]:
                break
        if top_i == 0 or top_i == m - 1:
            top_i += 1
        return order[:top_i]
    if threshold is not None:
        return [j for q, j in enumerate(order) if q == 0 or conf[j] >= threshold]
    return order[:count]


def fast_dllm_generate(
    model, prompt, steps=128, gen_length=128, block_length=128, temperature=0.0, mask_id=126336,
    threshold=None, factor=None, use_cache=False, noise=None,
):
    """Fast-dLLM's ``generate`` / ``generate_with_prefix_cache`` (``low_confidence``).

    ``model(x, past_key_values=None, use_cache=False)`` must return ``.logits``
    (and ``.past_key_values`` when asked), as LLaDA's model does.
    """
    b, p = prompt.shape
    x = torch.full((b, p + gen_length), mask_id, dtype=torch.long)
    x[:, :p] = prompt
    commit = torch.full_like(x, -1)
    nb = gen_length // block_length
    spb = steps // nb
    step_no = 0
    for blk in range(nb):
        s0 = p + blk * block_length
        e0 = s0 + block_length
        counts = _even_split(block_length, spb)
        i = 0
        past = None
        while (x[:, s0:e0] == mask_id).any():
            step_no += 1
            if use_cache and i > 0:
                out = model(x[:, s0:], past_key_values=past, use_cache=True)
                logits = out.logits[:, :block_length]
            else:
                out = model(x, use_cache=use_cache)
                logits = out.logits[:, s0:e0]
                if use_cache:
                    past = tuple((k[:, :, :s0], v[:, :, :s0]) for k, v in out.past_key_values)
            logits = _suppress_mask(logits, mask_id)
            for r in range(b):
                bl = logits[r]
                if temperature > 0:
                    u = noise.rand(r, block_length, bl.shape[-1])
                    x0 = _gumbel_argmax(bl, u, temperature)
                else:
                    x0 = bl.argmax(-1)
                conf = F.softmax(bl.double(), -1).gather(-1, x0[:, None])[:, 0]
                masked = x[r, s0:e0] == mask_id
                if not masked.any():
                    continue
                chosen = _fast_select(conf, masked, threshold, factor, counts[min(i, len(counts) - 1)])
                for j in chosen:
                    x[r, s0 + j] = x0[j]
                    commit[r, s0 + j] = step_no
            i += 1
    return x, commit


def mdlm_sample(model_fn, prompt, gen_length, steps, block_length=None, kind="linear", temperature=1.0, mask_id=None, noise=None):
    """MDLM ancestral sampling per block: each mask committed with prob (a_s - a_t)/(1 - a_t)."""
    b, p = prompt.shape
    lb = block_length or gen_length
    x = torch.full((b, p + gen_length), mask_id, dtype=torch.long)
    x[:, :p] = prompt
    commit = torch.full_like(x, -1)

    def alpha(t):
        return 1 - t if kind == "linear" else 1 - math.cos(math.pi / 2 * (1 - t))

    step_no = 0
    for blk in range(gen_length // lb):
        s0 = p + blk * lb
        j = 0
        while (x[:, s0 : s0 + lb] == mask_id).any():
            step_no += 1
            t, s = (steps - j) / steps, (steps - j - 1) / steps
            pj = 1.0 if j >= steps - 1 else (alpha(s) - alpha(t)) / (1 - alpha(t))
            logits = _suppress_mask(model_fn(x, None), mask_id)
            for r in range(b):
                bl = logits[r, s0 : s0 + lb]
                u = noise.rand(r, lb, bl.shape[-1])
                x0 = _gumbel_argmax(bl, u, temperature)
                uu = noise.rand(r, lb)
                for q in range(lb):
                    if x[r, s0 + q] == mask_id and uu[q] < pj:
                        x[r, s0 + q] = x0[q]
                        commit[r, s0 + q] = step_no
            j += 1
    return x, commit


def eb_generate(model_fn, prompt, gen_length, gamma=0.1, mask_id=None):
    """EB-sampler (greedy tokens): commit the largest low-entropy prefix with sum H - max H <= gamma."""
    b, p = prompt.shape
    x = torch.full((b, p + gen_length), mask_id, dtype=torch.long)
    x[:, :p] = prompt
    commit = torch.full_like(x, -1)
    step_no = 0
    while (x == mask_id).any():
        step_no += 1
        logits = _suppress_mask(model_fn(x, None), mask_id)
        for r in range(b):
            masked = [j for j in range(p, x.shape[1]) if x[r, j] == mask_id]
            if not masked:
                continue
            lg = logits[r, masked].double()
            pr = F.softmax(lg, -1)
            ent = -(torch.where(pr > 0, pr * torch.log(pr), torch.zeros_like(pr))).sum(-1)
            order = sorted(range(len(masked)), key=lambda q: (float(ent[q]), q))
            se = [float(ent[q]) for q in order]
            acc, cmax, k = 0.0, -math.inf, 0
            for e in se:
                acc += e
                cmax = max(cmax, e)
                if acc - cmax <= gamma:
                    k += 1
            k = min(max(k, 1), len(masked))
            x0 = lg.argmax(-1)
            for q in order[:k]:
                x[r, masked[q]] = x0[q]
                commit[r, masked[q]] = step_no
    return x, commit


_ = np  # numpy kept for users of this module
