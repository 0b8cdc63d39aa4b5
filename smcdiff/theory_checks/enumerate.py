"""Exact enumeration of every choice path of a proposal on a toy model.

A *path* is the sequence of choices a proposal makes from the all-masked canvas
to a complete sequence: at each step, a candidate token at every eligible
position and a commit set. :func:`enumerate_paths` walks all of them (breadth
first, one batched :meth:`~smcdiff.proposals.Proposal.evaluate` call per step),
keeping the paths of positive proposal probability, with

* ``log_q``: the log-probability of the path under the proposal, and
* ``log_w``: the log importance weight the SMC engine gives it (the same
  :meth:`smcdiff.engine.SMC.reweight` the sampler uses, so potentials and the
  ``log K - log q`` correction are exactly those of a real run).

From these, ``Z = E_q[w] = sum_paths q * w`` and the target law of the final
sequence ``pi(s) = sum_paths q * w * 1{x = s} / Z`` are exact. Only use this on
models small enough to enumerate (``V ** (eligible positions)`` candidates per
step).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Sequence

import torch
from torch import Tensor

from ..engine import SMC
from ..errors import ConfigError
from ..policies import NeverResample
from ..potentials.base import Potential
from ..proposals.base import Choice, Proposal
from ..state import ParticleState

__all__ = ["PathEnumeration", "enumerate_paths", "exact_log_Z", "exact_target"]


@dataclass(frozen=True)
class PathEnumeration:
    """Every path of positive proposal probability.

    Attributes:
        finals: ``[P, L]`` final token ids of each path.
        log_q: ``[P]`` float64 log proposal probability of each path.
        log_w: ``[P]`` float64 log importance weight of each path.
        prompt_length: length of the prompt prefix in ``finals``.
        commit_steps: ``[P, L]`` step at which each position was committed (-1: prompt).
    """

    finals: Tensor
    log_q: Tensor
    log_w: Tensor
    prompt_length: int
    commit_steps: Tensor | None = None

    @property
    def n_paths(self) -> int:
        return self.finals.shape[0]

    @property
    def log_Z(self) -> float:
        """``log sum_paths q * w``: the exact log normalising constant."""
        return float(torch.logsumexp(self.log_q + self.log_w, dim=0))

    @property
    def total_log_q(self) -> float:
        """``log sum_paths q`` (0 for a proposal whose probabilities sum to one)."""
        return float(torch.logsumexp(self.log_q, dim=0))

    def _group(self, values: Tensor) -> dict[tuple[int, ...], float]:
        out: dict[tuple[int, ...], float] = {}
        for seq, v in zip(self.finals.tolist(), values.tolist()):
            key = tuple(seq[self.prompt_length :])
            out[key] = out.get(key, 0.0) + v
        return out

    def unnormalized_target(self) -> dict[tuple[int, ...], float]:
        """``{generation: sum_paths q * w * 1{x = s}}`` (keys exclude the prompt)."""
        return self._group(torch.exp(self.log_q + self.log_w))

    def target(self) -> dict[tuple[int, ...], float]:
        """The normalised target law of the generated sequence."""
        un = self.unnormalized_target()
        z = sum(un.values())
        if z <= 0:
            raise ConfigError("the target has zero mass: every path has weight zero")
        return {k: v / z for k, v in un.items()}

    def proposal_law(self) -> dict[tuple[int, ...], float]:
        """``{generation: sum_paths q * 1{x = s}}``, the law of the proposal's output."""
        return self._group(torch.exp(self.log_q))


def _subsets(m: int, sizes: Sequence[int]) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = []
    for s in sizes:
        out.extend(itertools.combinations(range(m), s))
    return out


def _index_state(state: ParticleState, idx: Tensor) -> ParticleState:
    """Rows ``idx`` of a state with N = 1 (a new batch)."""
    return replace(
        state,
        tokens=state.tokens[idx],
        committed_logp=state.committed_logp[idx],
        commit_step=state.commit_step[idx],
        block=state.block[idx],
        block_step=state.block_step[idx],
        steps=state.steps[idx],
        done=state.done[idx],
        attention_mask=None if state.attention_mask is None else state.attention_mask[idx],
        extras={k: v[idx] for k, v in state.extras.items()},
        cache=None if state.cache is None else state.cache.index_rows(idx),
    )


def enumerate_paths(
    proposal: Proposal,
    model,
    prompt: Sequence[int] | Tensor | None,
    gen_length: int,
    potentials: Sequence[Potential] | Potential = (),
    max_paths: int = 2_000_000,
) -> PathEnumeration:
    """Enumerate every path of ``proposal`` on ``model`` from one prompt.

    Args:
        proposal: the proposal to enumerate (its :meth:`evaluate` gives path probabilities).
        model: a small (toy) denoiser.
        prompt: the prompt tokens (a list, a 1-D tensor, or None for no prompt).
        gen_length: number of generated positions.
        potentials: potentials included in the weights.
        max_paths: abort if the frontier grows beyond this.
    """
    smc = SMC(proposal, potentials, n_particles=1, resampling=NeverResample())
    if prompt is None or (not isinstance(prompt, Tensor) and len(prompt) == 0):
        state = smc.init(model, None, gen_length, seed=0, batch_size=1).particles
    else:
        p = torch.as_tensor(list(prompt) if not isinstance(prompt, Tensor) else prompt, dtype=torch.long)
        state = smc.init(model, p.reshape(1, -1), gen_length, seed=0).particles
    v = int(model.vocab_size)
    mask_id = int(model.mask_id)
    log_q = torch.zeros(1, dtype=torch.float64)
    log_w = torch.zeros(1, dtype=torch.float64)
    done_tokens: list[Tensor] = []
    done_steps: list[Tensor] = []
    done_lq: list[Tensor] = []
    done_lw: list[Tensor] = []
    lb = state.canvas.block_length
    limit = smc.max_steps(state.canvas)
    for _ in range(limit):
        if state.tokens.shape[0] == 0:
            break
        # which positions each node may change and how many it commits
        pos = state.block_positions()
        cur = state.tokens[:, 0, :].gather(1, pos)
        elig = (cur == mask_id).tolist()
        selector = getattr(proposal, "selector", None)
        counts = None
        schedule = getattr(proposal, "schedule", None)
        if hasattr(proposal, "context") and schedule is not None and not schedule.is_random:
            ctx = proposal.context(state, model, forward=False)
            counts = schedule.plan(state.canvas, ctx.block_step, ctx.n_eligible).k.tolist()
        node_idx: list[int] = []
        cand_rows: list[list[int]] = []
        commit_rows: list[list[bool]] = []
        rank_rows: list[list[int]] = []
        for i, e in enumerate(elig):
            epos = [j for j in range(lb) if e[j]]
            m = len(epos)
            k_i = counts[i] if counts is not None else None
            if selector is not None:
                subs = list(selector.support(m, k_i))
            else:
                subs = [(sub, None) for s_ in range(m + 1) for sub in itertools.combinations(range(m), s_)]
            for toks in itertools.product(range(v), repeat=m):
                base = [0] * lb
                for j, t in zip(epos, toks):
                    base[j] = t
                for sub, ranks in subs:
                    c = [False] * lb
                    rk = [-1] * lb
                    for idx_s, s_ in enumerate(sub):
                        c[epos[s_]] = True
                        if ranks is not None:
                            rk[epos[s_]] = ranks[idx_s]
                    node_idx.append(i)
                    cand_rows.append(base)
                    commit_rows.append(c)
                    rank_rows.append(rk)
        if len(node_idx) > max_paths:
            raise ConfigError(f"more than {max_paths} branches at one step; the model is too large to enumerate")
        idx = torch.tensor(node_idx, dtype=torch.long)
        expanded = _index_state(state, idx)
        extra = {}
        if selector is not None and getattr(selector, "uses_rank", False):
            extra["rank"] = torch.tensor(rank_rows, dtype=torch.long).reshape(-1, 1, lb)
        choice = Choice(
            candidates=torch.tensor(cand_rows, dtype=torch.long).reshape(-1, 1, lb),
            commit=torch.tensor(commit_rows, dtype=torch.bool).reshape(-1, 1, lb),
            extra=extra,
        )
        ps = proposal.evaluate(expanded, model, choice)
        inc_full, extras = smc._reweight(expanded, ps)
        inc = inc_full[:, 0]
        step_lq = ps.log_q[:, 0]
        keep = ~torch.isneginf(step_lq)
        new_lq = log_q[idx] + step_lq
        new_lw = torch.where(torch.isneginf(inc), float("-inf"), log_w[idx] + inc)
        new_state = ps.state.with_extras(**extras) if extras else ps.state
        fin = new_state.done & keep
        if bool(fin.any()):
            done_tokens.append(new_state.tokens[fin, 0, :])
            done_steps.append(new_state.commit_step[fin, 0, :])
            done_lq.append(new_lq[fin])
            done_lw.append(new_lw[fin])
        cont = keep & ~new_state.done
        sel = torch.nonzero(cont).flatten()
        state = _index_state(new_state, sel)
        log_q, log_w = new_lq[sel], new_lw[sel]
    else:
        if state.tokens.shape[0] > 0:
            raise ConfigError("enumeration did not finish within the step limit")
    if not done_tokens:
        raise ConfigError("the proposal has no path of positive probability")
    return PathEnumeration(
        finals=torch.cat(done_tokens),
        log_q=torch.cat(done_lq),
        log_w=torch.cat(done_lw),
        prompt_length=state.canvas.prompt_length,
        commit_steps=torch.cat(done_steps),
    )


def exact_target(
    kernel: Proposal,
    model,
    prompt: Sequence[int] | Tensor | None,
    gen_length: int,
    potentials: Sequence[Potential] | Potential = (),
) -> PathEnumeration:
    """Enumerate the *target* ``gamma = prod K * prod G`` by walking the model kernel's paths.

    ``kernel`` must be the model's own kernel (``is_model_kernel``); its paths carry
    the weight ``prod G`` only, so ``exp(log_q + log_w)`` is ``gamma(path)``.
    """
    if not getattr(kernel, "is_model_kernel", False):
        raise ConfigError("exact_target needs the model's own kernel (a proposal with is_model_kernel=True)")
    return enumerate_paths(kernel, model, prompt, gen_length, potentials)


def exact_log_Z(
    kernel: Proposal,
    model,
    prompt: Sequence[int] | Tensor | None,
    gen_length: int,
    potentials: Sequence[Potential] | Potential = (),
) -> float:
    """``log Z`` of the target ``prod K * prod G`` from one prompt, by exact enumeration."""
    return exact_target(kernel, model, prompt, gen_length, potentials).log_Z

