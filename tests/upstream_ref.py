"""Straightforward loop-form re-implementations of the upstream samplers, for golden tests.

They follow the upstream algorithms (ML-GSAI/LLaDA ``generate``, Dream's
``_sample``, NVlabs/Fast-dLLM ``generate`` / ``generate_with_prefix_cache``,
kuleshov-group/mdlm ``_sample`` / ``_ddpm_update``, kuleshov-group/bd3lms
first-hitting, the EB-sampler as in NEUIR/PC-Sampler) one row and one step at a
time, and call the raw network directly (not smcdiff's adapters or kernels). Two
deliberate, documented departures shared with smcdiff: the mask token's logit is
set to -inf (a mask is never committed; MDLM's ``subs`` parameterisation does the
same), and all randomness comes from a
:class:`Noise` object that replays per-row uniforms in the order smcdiff draws
them (token noise ``[Lb, V]`` first, then selection noise ``[Lb]``), which is
what "the same Gumbel noise" means for these tests.

Each function returns ``(x [B, L], commit_step [B, L])`` with the 1-based step
at which each position was committed (-1 for the prompt).
"""

from __future__ import annotations

import itertools
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


def assert_same(ours, theirs):
    """``(x, commit_step)`` pairs equal: commit steps first (the more telling difference), then tokens."""
    xo, co = ours
    xr, cr = theirs
    assert torch.equal(co, cr), f"commit steps differ:\n{co}\n{cr}"
    assert torch.equal(xo, xr), f"tokens differ:\n{xo}\n{xr}"


def _llada_canvas(prompt, gen_length, block_length, steps, mask_id):
    """LLaDA's canvas (prompt + masks), commit-step record, number of blocks and steps per block."""
    b, p = prompt.shape
    x = torch.full((b, p + gen_length), mask_id, dtype=torch.long)
    x[:, :p] = prompt
    assert gen_length % block_length == 0
    nb = gen_length // block_length
    assert steps % nb == 0
    return x, torch.full_like(x, -1), nb, steps // nb


def llada_generate(
    model_fn, prompt, attention_mask=None, steps=128, gen_length=128, block_length=128, temperature=0.0,
    cfg_scale=0.0, remasking="low_confidence", mask_id=126336, logits_eos_inf=False,
    confidence_eos_eot_inf=False, eos_id=126081, eot_id=126348, noise=None,
):
    b, p = prompt.shape
    x, commit, nb, spb = _llada_canvas(prompt, gen_length, block_length, steps, mask_id)
    am = None
    if attention_mask is not None:
        am = torch.cat([attention_mask, torch.ones(b, gen_length, dtype=attention_mask.dtype)], 1)
    prompt_index = torch.zeros_like(x, dtype=torch.bool)
    prompt_index[:, :p] = True
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
                if temperature > 0:  # upstream's noise covers the whole canvas; the block's rows are used
                    u = noise.rand(r, x.shape[1], logits.shape[-1])[s0 : s0 + block_length]
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


def llada_generate_released(
    model_fn, prompt, steps=128, gen_length=128, block_length=128, temperature=0.0, cfg_scale=0.0,
    remasking="low_confidence", mask_id=126336, logits_eos_inf=False, confidence_eos_eot_inf=False,
    eos_id=126081, eot_id=126348, generator=None,
):
    """ML-GSAI/LLaDA ``generate`` as released, without the departures of :func:`llada_generate`.

    The mask token stays in every softmax and argmax; the confidence is the softmax in the
    dtype of the model's logits; ``torch.topk`` runs over whole canvas rows; at ``T > 0`` one
    generator gives float64 uniforms of the shape of the whole logits ``[B, P + L, V]`` at every
    step (upstream's ``rand_like`` on the global generator), and ``remasking="random"`` float32
    uniforms ``[B, P + L]`` after them; ``confidence_eos_eot_inf`` acts as the released line
    does (at T = 0 the noisy logits are the logits themselves, so EOS and EoT both leave the
    confidence softmax; at T > 0 only EoT does). A selected position whose candidate is the mask
    token stays masked (not recorded as committed), as upstream.
    """
    b, p = prompt.shape
    x, commit, nb, spb = _llada_canvas(prompt, gen_length, block_length, steps, mask_id)
    prompt_index = x != mask_id
    step_no = 0
    for blk in range(nb):
        s0, s1 = p + blk * block_length, p + (blk + 1) * block_length
        counts = [_even_split(int(n), spb) for n in (x[:, s0:s1] == mask_id).sum(dim=1)]
        for i in range(spb):
            step_no += 1
            masked = x == mask_id
            if cfg_scale > 0:
                un = x.clone()
                un[prompt_index] = mask_id
                c, u = model_fn(torch.cat([x, un]), None).chunk(2)
                logits = u + (cfg_scale + 1) * (c - u)
            else:
                logits = model_fn(x, None)
            logits = logits.clone()
            if logits_eos_inf:
                logits[:, :, eos_id] = -math.inf
            if temperature > 0:
                uni = torch.rand(logits.shape, generator=generator, dtype=torch.float64)
                x0 = (logits.double().exp() / (-torch.log(uni)) ** temperature).argmax(-1)
            else:
                x0 = logits.argmax(-1)
            conf_logits = logits.clone()
            if confidence_eos_eot_inf:
                conf_logits[:, :, eot_id] = -math.inf
                if temperature == 0:
                    conf_logits[:, :, eos_id] = -math.inf
            if remasking == "low_confidence":
                x0_p = F.softmax(conf_logits, dim=-1).gather(-1, x0[..., None])[..., 0]
            else:
                x0_p = torch.rand((b, p + gen_length), generator=generator)
            x0_p[:, s1:] = -math.inf
            conf = torch.where(masked, x0_p, torch.tensor(-math.inf, dtype=x0_p.dtype))
            for r in range(b):
                for j in torch.topk(conf[r], counts[r][i]).indices.tolist():
                    if masked[r, j] and int(x0[r, j]) != mask_id:
                        x[r, j] = x0[r, j]
                        commit[r, j] = step_no
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


# ---------------------------------------------------------------- MDLM / BD3-LM
# Written from kuleshov-group/mdlm (diffusion.py: _sample, _ddpm_update, _ddpm_caching_update,
# _sample_categorical, _subs_parameterization; noise_schedule.py) and kuleshov-group/bd3lms
# (diffusion.py: _semi_ar_sampler, _ddpm_caching_update with first_hitting).

MDLM_NOISE_FLOOR = 1e-3  # the eps of MDLM's LogLinearNoise / CosineNoise


def mdlm_move_chances(noise_type, t, dt):
    """``(move_chance_t, move_chance_s)`` as MDLM's sampler computes them, float32, ``s = t - dt``.

    ``loglinear``: MDLM's default predictor ``ddpm_cache`` uses ``t`` and ``t - dt`` directly.
    ``cosine``: ``_ddpm_update`` with ``CosineNoise``: ``1 - exp(-total_noise)``, where
    ``total_noise(t) = -log(eps + (1 - eps) cos(pi t / 2))``.
    """
    t = torch.as_tensor(t, dtype=torch.float32)
    s = t - dt
    if noise_type == "loglinear":
        return t, s
    if noise_type == "cosine":
        def total_noise(u):
            return -torch.log(MDLM_NOISE_FLOOR + (1 - MDLM_NOISE_FLOOR) * torch.cos(u * math.pi / 2))

        return 1 - torch.exp(-total_noise(t)), 1 - torch.exp(-total_noise(s))
    raise ValueError(noise_type)


def _mdlm_log_p_x0(model_fn, x, mask_id):
    """MDLM's ``subs`` parameterisation for masked positions: log-softmax with the mask entry at -inf."""
    return F.log_softmax(_suppress_mask(model_fn(x, None), mask_id).double(), -1)


def mdlm_q_xs(log_p_x0, mc_t, mc_s, mask_id):
    """MDLM's unnormalised reverse step at a masked position: ``p_x0 (mc_t - mc_s)``, ``mc_s`` at the mask."""
    q = log_p_x0.exp() * (float(mc_t) - float(mc_s))
    q[..., mask_id] = float(mc_s)
    return q


def mdlm_race(p_x0, u):
    """``_sample_categorical``: ``argmax(p / (1e-10 - log(u + 1e-10)))`` (an exponential race)."""
    return (p_x0 / (1e-10 - torch.log(u + 1e-10))).argmax(-1)


def mdlm_sample(
    model_fn, prompt, gen_length, steps=128, eps=1e-5, noise_type="loglinear", block_length=None,
    noise_removal="argmax", mask_id=None, noise=None,
):
    """MDLM's ``_sample`` with the ``ddpm`` / ``ddpm_cache`` update, one row at a time.

    Per block (BD3-LM semi-AR structure; one block = MDLM): ``timesteps = linspace(1, eps, steps+1)``
    (float32), ``dt = (1 - eps) / steps``; at step ``i`` with ``t = timesteps[i]`` every masked position
    draws from the categorical ``q_xs`` over the vocabulary plus the mask entry (``mdlm_q_xs``), and
    unmasked positions are copied. A block with no masks left stops (later steps are no-ops
    upstream). Then ``noise_removal``: ``"argmax"`` (MDLM) fills any remaining mask with the arg-max
    of ``p_x0``; ``"sample"`` draws it from ``p_x0`` instead (smcdiff's documented deviation);
    None leaves it.

    Randomness: upstream draws the ``q_xs`` categorical in one race over ``V`` entries. Here the same
    law is drawn in the two stages smcdiff uses, so both sides can share uniforms: the race over the
    vocabulary part (which is proportional to ``p_x0``) with ``V`` uniforms per position gives the
    token; then the position is revealed iff a uniform is below ``(mc_t - mc_s) / mc_t``, the total
    vocabulary mass of the normalised ``q_xs``. (:func:`mdlm_q_xs` is checked against smcdiff's
    ``log q`` separately.) Returns ``(x, commit_step)``.
    """
    b, p = prompt.shape
    lb = block_length or gen_length
    x = torch.full((b, p + gen_length), mask_id, dtype=torch.long)
    x[:, :p] = prompt
    commit = torch.full_like(x, -1)
    timesteps = torch.linspace(1, eps, steps + 1)
    dt = (1 - eps) / steps
    for r in range(b):
        step_no = 0
        for blk in range(gen_length // lb):
            s0 = p + blk * lb
            for i in range(steps):
                if not (x[r, s0 : s0 + lb] == mask_id).any():
                    break
                step_no += 1
                log_p_x0 = _mdlm_log_p_x0(model_fn, x[r : r + 1], mask_id)[0, s0 : s0 + lb]
                mc_t, mc_s = mdlm_move_chances(noise_type, timesteps[i], dt)
                tok = mdlm_race(log_p_x0.exp(), noise.rand(r, lb, log_p_x0.shape[-1]))
                reveal = noise.rand(r, lb) < (float(mc_t) - float(mc_s)) / float(mc_t)
                for q in range(lb):
                    if x[r, s0 + q] == mask_id and reveal[q]:
                        x[r, s0 + q] = tok[q]
                        commit[r, s0 + q] = step_no
            if noise_removal is not None and (x[r, s0 : s0 + lb] == mask_id).any():
                step_no += 1
                log_p_x0 = _mdlm_log_p_x0(model_fn, x[r : r + 1], mask_id)[0, s0 : s0 + lb]
                if noise_removal == "argmax":
                    tok = log_p_x0.argmax(-1)
                else:
                    tok = mdlm_race(log_p_x0.exp(), noise.rand(r, lb, log_p_x0.shape[-1]))
                    noise.rand(r, lb)  # smcdiff's selection draws its uniforms at this step too (p = 1)
                for q in range(lb):
                    if x[r, s0 + q] == mask_id:
                        x[r, s0 + q] = tok[q]
                        commit[r, s0 + q] = step_no
    return x, commit


def bd3_first_hitting_sample(model_fn, prompt, gen_length, block_length=None, mask_id=None, noise=None):
    """BD3-LM's semi-AR sampler with ``first_hitting`` (``T >= block_length``), one row at a time.

    Each step: a token for every block position from ``p_x0`` (``_sample_categorical``), and one
    masked position chosen uniformly (upstream ``torch.randint(0, num_masked)``; here the masked
    position with the largest of ``block_length`` uniforms, the same uniform choice drawn from the
    uniforms smcdiff uses) takes its token. The block ends when it has no masks.
    """
    b, p = prompt.shape
    lb = block_length or gen_length
    x = torch.full((b, p + gen_length), mask_id, dtype=torch.long)
    x[:, :p] = prompt
    commit = torch.full_like(x, -1)
    for r in range(b):
        step_no = 0
        for blk in range(gen_length // lb):
            s0 = p + blk * lb
            while (x[r, s0 : s0 + lb] == mask_id).any():
                step_no += 1
                log_p_x0 = _mdlm_log_p_x0(model_fn, x[r : r + 1], mask_id)[0, s0 : s0 + lb]
                tok = mdlm_race(log_p_x0.exp(), noise.rand(r, lb, log_p_x0.shape[-1]))
                u = noise.rand(r, lb)
                masked = [q for q in range(lb) if x[r, s0 + q] == mask_id]
                q = max(masked, key=lambda j: float(u[j]))
                x[r, s0 + q] = tok[q]
                commit[r, s0 + q] = step_no
    return x, commit


def mdlm_exact_law(
    cond_fn, prompt, gen_length, steps, eps=1e-5, noise_type="loglinear", block_length=None, vocab_size=None,
    mask_id=None, noise_removal="sample",
):
    """The exact law of MDLM's sampler's output ``{generation: probability}`` on an enumerable model.

    ``cond_fn(x) -> [L][V]`` gives ``p_x0`` for a canvas ``x`` (a list; masks are ``mask_id``). Walks
    every outcome of every step: each masked position independently ends the step in entry ``e`` of the
    normalised :func:`mdlm_q_xs` (a token, or the mask). ``noise_removal``: ``"sample"`` draws the
    remaining masks from ``p_x0``; ``"argmax"`` takes the arg-max (MDLM).
    """
    p = len(prompt)
    lb = block_length or gen_length
    timesteps = torch.linspace(1, eps, steps + 1)
    dt = (1 - eps) / steps
    law = {}

    def finish(x, prob):
        key = tuple(x[p:])
        law[key] = law.get(key, 0.0) + prob

    def run_block(x, prob, blk, i):
        s0 = p + blk * lb
        masked = [q for q in range(s0, s0 + lb) if x[q] == mask_id]
        if not masked:
            if blk + 1 < gen_length // lb:
                run_block(x, prob, blk + 1, 0)
            else:
                finish(x, prob)
            return
        px0 = cond_fn(x)
        if i < steps:
            mc_t, mc_s = mdlm_move_chances(noise_type, timesteps[i], dt)
            per_pos = []
            for q in masked:
                lp = torch.log(torch.tensor(px0[q] + [0.0], dtype=torch.float64))  # entry V stands for the mask
                qx = mdlm_q_xs(lp, mc_t, mc_s, vocab_size)
                qx = qx / qx.sum()
                per_pos.append([(e, float(qx[e])) for e in range(vocab_size + 1) if float(qx[e]) > 0])
            nxt = i + 1
        else:  # noise removal
            per_pos = []
            for q in masked:
                if noise_removal == "argmax":
                    per_pos.append([(max(range(vocab_size), key=lambda v: px0[q][v]), 1.0)])
                else:
                    per_pos.append([(v, px0[q][v]) for v in range(vocab_size) if px0[q][v] > 0])
            nxt = i + 1
        for combo in itertools.product(*per_pos):
            y = list(x)
            pr = prob
            for q, (e, pe) in zip(masked, combo):
                pr *= pe
                if e != vocab_size:
                    y[q] = e
            if nxt > steps:
                assert all(y[q] != mask_id for q in masked)
            run_block(y, pr, blk, nxt)

    run_block(list(prompt) + [mask_id] * gen_length, 1.0, 0, 0)
    return law


def eb_generate(model_fn, prompt, gen_length, gamma=0.1, temperature=0.0, mask_id=None, noise=None):
    """EB-sampler (NEUIR/PC-Sampler ``generate_with_eb_sampler``), one block over the whole generation.

    Tokens: arg-max of the logits, or at ``temperature > 0`` LLaDA's float64 Gumbel-max
    (``add_gumbel_noise``). Positions: sorted by the entropy of the untempered model distribution
    (ascending), commit the largest prefix with ``cumsum H - cummax H <= gamma``, at least one.
    """
    b, p = prompt.shape
    x = torch.full((b, p + gen_length), mask_id, dtype=torch.long)
    x[:, :p] = prompt
    commit = torch.full_like(x, -1)
    for r in range(b):
        step_no = 0
        while (x[r] == mask_id).any():
            step_no += 1
            logits = _suppress_mask(model_fn(x[r : r + 1], None), mask_id)[0, p:]
            if temperature > 0:
                x0 = _gumbel_argmax(logits, noise.rand(r, gen_length, logits.shape[-1]), temperature)
            else:
                x0 = logits.argmax(-1)
            masked = [j for j in range(gen_length) if x[r, p + j] == mask_id]
            lg = logits[masked].double()
            pr = F.softmax(lg, -1)
            ent = -(torch.where(pr > 0, pr * torch.log(pr), torch.zeros_like(pr))).sum(-1)
            order = sorted(range(len(masked)), key=lambda q: (float(ent[q]), q))
            acc, cmax, k = 0.0, -math.inf, 0
            for q in order:
                acc += float(ent[q])
                cmax = max(cmax, float(ent[q]))
                if acc - cmax <= gamma:
                    k += 1
            k = min(max(k, 1), len(masked))
            for q in order[:k]:
                x[r, p + masked[q]] = x0[masked[q]]
                commit[r, p + masked[q]] = step_no
    return x, commit


_ = np  # numpy kept for users of this module
