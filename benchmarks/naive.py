"""Naive per-row samplers written the way the released code is, for overhead comparisons.

``llada_naive`` follows ML-GSAI/LLaDA ``generate``: float64 Gumbel noise over every
position and the whole vocabulary, a float64 softmax over every position, and a
Python loop over rows for the top-k. ``sr_smc_naive`` adds what the released
SR-SMC LLaDA sampler (Algolzw/self-rewarding-smc ``llada/generate_smc.py``) does
on top: float64 log-softmax for the weights, per-token log-probabilities, and
multinomial resampling at block ends. Both are our own code following the
reference notes; they exist only to be timed.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _even_split(mask_index, steps):
    n = mask_index.sum(dim=1, keepdim=True)
    base, rem = n // steps, n % steps
    out = torch.zeros(n.size(0), steps, dtype=torch.int64) + base
    for i in range(n.size(0)):
        out[i, : rem[i]] += 1
    return out


def _gumbel(logits, temperature):
    if temperature == 0:
        return logits
    l64 = logits.to(torch.float64)
    u = torch.rand_like(l64)
    return l64.exp() / (-torch.log(u)) ** temperature


@torch.no_grad()
def llada_naive(model_fn, prompt, steps, gen_length, block_length, temperature, mask_id, max_steps=None):
    x = torch.full((prompt.shape[0], prompt.shape[1] + gen_length), mask_id, dtype=torch.long)
    x[:, : prompt.shape[1]] = prompt
    nb = gen_length // block_length
    spb = steps // nb
    done = 0
    for b in range(nb):
        s0 = prompt.shape[1] + b * block_length
        counts = _even_split(x[:, s0 : s0 + block_length] == mask_id, spb)
        for i in range(spb):
            if max_steps is not None and done >= max_steps:
                return x, done
            mask_index = x == mask_id
            logits = model_fn(x)
            x0 = torch.argmax(_gumbel(logits, temperature), dim=-1)
            p = F.softmax(logits.to(torch.float64), dim=-1)
            x0_p = torch.gather(p, -1, x0[..., None])[..., 0]
            x0_p[:, s0 + block_length :] = -np.inf
            x0 = torch.where(mask_index, x0, x)
            conf = torch.where(mask_index, x0_p, -np.inf)
            transfer = torch.zeros_like(x0, dtype=torch.bool)
            for j in range(conf.shape[0]):
                _, idx = torch.topk(conf[j], k=int(counts[j, i]))
                transfer[j, idx] = True
            x[transfer] = x0[transfer]
            done += 1
    return x, done


@torch.no_grad()
def sr_smc_naive(model_fn, prompt, n_particles, steps, gen_length, block_length, temperature, mask_id, max_steps=None):
    """One prompt (the released code handles B = 1): N particles as rows, SR-SMC weights."""
    x = torch.full((n_particles, prompt.shape[1] + gen_length), mask_id, dtype=torch.long)
    x[:, : prompt.shape[1]] = prompt
    log_w = torch.zeros(n_particles, dtype=torch.float64)
    logp = torch.zeros(x.shape, dtype=torch.float64)
    nb = gen_length // block_length
    spb = steps // nb
    done = 0
    for b in range(nb):
        s0 = prompt.shape[1] + b * block_length
        counts = _even_split(x[:, s0 : s0 + block_length] == mask_id, spb)
        for i in range(spb):
            if max_steps is not None and done >= max_steps:
                return x, done
            mask_index = x == mask_id
            mask_index[:, s0 + block_length :] = False
            logits = model_fn(x)
            x0 = torch.argmax(_gumbel(logits, temperature), dim=-1)
            x0_logp = torch.gather(F.log_softmax(logits.to(torch.float64), dim=-1), -1, x0[..., None])[..., 0]
            conf = torch.where(mask_index, torch.exp(x0_logp), -np.inf)
            x0 = torch.where(mask_index, x0, x)
            transfer = torch.zeros_like(x0, dtype=torch.bool)
            for j in range(conf.shape[0]):
                _, idx = torch.topk(conf[j], k=int(counts[j, i]))
                transfer[j, idx] = True
            x[transfer] = x0[transfer]
            log_w += (x0_logp * transfer).sum(1)
            logp[transfer] = x0_logp[transfer]
            done += 1
        w = torch.exp(log_w - log_w.max())
        w = w / w.sum()
        if 1.0 / (w**2).sum() < 0.5 * n_particles:
            idx = torch.multinomial(w, n_particles, replacement=True)
            x, logp = x[idx], logp[idx]
            log_w = torch.zeros_like(log_w)
    return x, done
