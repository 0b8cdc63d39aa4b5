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
step). Before enumerating, :func:`estimate_enumeration` estimates the work
(Knuth's tree-size estimator along paths drawn from the proposal) and
:func:`enumerate_paths` refuses, with the estimate and the limit in the message,
an enumeration that would take more than ``max_seconds``; long ones report
progress on standard error.

Templates: every function takes ``template=`` (a 1-D list of ids with the model's
mask id at the free positions) in place of ``prompt`` + ``gen_length``; the keys of
the laws are then the tokens at the free positions, in canvas order.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
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

__all__ = ["PathEnumeration", "enumerate_paths", "estimate_enumeration", "exact_log_Z", "exact_target"]


@dataclass(frozen=True)
class PathEnumeration:
    """Every path of positive proposal probability.

    Attributes:
        finals: ``[P, L]`` final token ids of each path.
        log_q: ``[P]`` float64 log proposal probability of each path.
        log_w: ``[P]`` float64 log importance weight of each path.
        prompt_length: length of the prompt prefix in ``finals``.
        commit_steps: ``[P, L]`` step at which each position was committed (-1: prompt).
        free: ``[L]`` bool, the generated positions of a template (None: ``[P, L)``);
            the keys of the laws below are the tokens at these positions.
    """

    finals: Tensor
    log_q: Tensor
    log_w: Tensor
    prompt_length: int
    commit_steps: Tensor | None = None
    free: Tensor | None = None

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
        finals = self.finals if self.free is None else self.finals[:, self.free]
        p = self.prompt_length if self.free is None else 0
        for seq, v in zip(finals.tolist(), values.tolist()):
            key = tuple(seq[p:])
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
        extras={k: v[idx] for k, v in state.extras.items()},
        cache=None if state.cache is None else state.cache.index_rows(idx),
        **state.index_rows(idx),
    )


def _initial_state(smc: SMC, model, prompt, gen_length, template, n: int = 1) -> ParticleState:
    if template is not None:
        if prompt is not None or gen_length is not None:
            raise ConfigError("give either template= or prompt + gen_length, not both")
        t = torch.as_tensor(list(template) if not isinstance(template, Tensor) else template, dtype=torch.long)
        if t.dim() != 1:
            raise ConfigError(f"template must be a 1-D list of token ids; got shape {tuple(t.shape)}")
        return smc.init_template(model, t.reshape(1, -1), seed=0).particles
    if gen_length is None:
        raise ConfigError("give gen_length (or a template=)")
    if prompt is None or (not isinstance(prompt, Tensor) and len(prompt) == 0):
        return smc.init(model, None, gen_length, seed=0, batch_size=1).particles
    p = torch.as_tensor(list(prompt) if not isinstance(prompt, Tensor) else prompt, dtype=torch.long)
    return smc.init(model, p.reshape(1, -1), gen_length, seed=0).particles


_SUPPORT_SIZES: dict = {}


def _support_size(selector, m: int, k: int | None) -> int:
    key = (type(selector).__name__, getattr(selector, "uses_count", None), m, k)
    if key not in _SUPPORT_SIZES:
        if selector is None:
            _SUPPORT_SIZES[key] = 2**m
        else:
            _SUPPORT_SIZES[key] = sum(1 for _ in itertools.islice(selector.support(m, k), 10**7))
    return _SUPPORT_SIZES[key]


def _plan_counts(proposal, model, state: ParticleState) -> Tensor | None:
    """``[B, N]`` the count each particle's next step commits under a deterministic schedule (else None)."""
    schedule = getattr(proposal, "schedule", None)
    if not hasattr(proposal, "context") or schedule is None or schedule.is_random:
        return None
    b, n = state.tokens.shape[:2]
    ctx = proposal.context(state, model, forward=False)
    k_rows = schedule.plan(state.canvas, ctx.block_step, ctx.n_eligible, block=ctx.block).k
    counts = torch.zeros(b, n, dtype=torch.long)
    counts[ctx.rows.cpu()] = k_rows.reshape(-1, n).cpu()
    return counts


def _choice(cand_rows: list, commit_rows: list, rank_rows: list, selector, lb: int, rows: Tensor | None = None) -> Choice:
    """The enumerator's branches (``rows`` of them, default all) as a :class:`Choice` with N = 1."""
    def take(x: list, dtype) -> Tensor:
        t = torch.tensor(x, dtype=dtype)
        return (t if rows is None else t[rows]).reshape(-1, 1, lb)

    extra = {}
    if selector is not None and getattr(selector, "uses_rank", False):
        extra["rank"] = take(rank_rows, torch.long)
    return Choice(candidates=take(cand_rows, torch.long), commit=take(commit_rows, torch.bool), extra=extra)


def _branch_counts(proposal, model, state: ParticleState) -> Tensor:
    """``[B, N]`` float: how many (tokens, commit set) branches the enumerator expands at each particle."""
    v = int(model.vocab_size)
    b, n, _ = state.tokens.shape
    pos = state.block_positions()
    cur = state.tokens.gather(2, pos[:, None, :].expand(b, n, pos.shape[1]))
    m = (cur == int(model.mask_id)).sum(dim=-1)  # [B, N]
    counts = _plan_counts(proposal, model, state)
    selector = getattr(proposal, "selector", None)
    out = torch.zeros(b, n, dtype=torch.float64)
    for i in range(b):
        for j in range(n):
            mm = int(m[i, j])
            kk = None if counts is None else int(counts[i, j])
            out[i, j] = float(v) ** mm * _support_size(selector, mm, kk)
    return out


def estimate_enumeration(
    proposal: Proposal,
    model,
    prompt: Sequence[int] | Tensor | None = None,
    gen_length: int | None = None,
    *,
    template: Sequence[int] | Tensor | None = None,
    n_probes: int = 64,
    seed: int = 0,
) -> dict:
    """Estimate the size of :func:`enumerate_paths`'s work without doing it.

    Knuth's estimator: along a path drawn from the proposal ``q``, the branch
    count ``c(node)`` of each visited node divided by the path's probability so far
    is an unbiased estimate of ``sum_nodes c(node)`` over the nodes of positive
    probability (the rows the enumerator evaluates); ``1 / q(path)`` estimates the
    number of paths. Over ``n_probes`` paths the median is reported (robust to the
    estimator's heavy tail; ``branches_mean`` is the unbiased mean).

    Returns ``{"branches": ..., "paths": ..., "branches_mean": ..., "probes": n_probes}``.
    """
    smc = SMC(proposal, [], n_particles=int(n_probes), resampling=NeverResample())
    state = _initial_state(smc, model, prompt, gen_length, template)
    gens = [torch.Generator().manual_seed(int(seed))]
    log_q = torch.zeros(1, int(n_probes), dtype=torch.float64)
    branches = torch.zeros(1, int(n_probes), dtype=torch.float64)
    for _ in range(smc.max_steps(state.canvas)):
        if bool(state.done.all()):
            break
        c = _branch_counts(proposal, model, state)
        branches += torch.where(state.done[:, None], 0.0, c * torch.exp(-log_q))
        ps = proposal.propose(state, model, gens)
        log_q = log_q + ps.log_q.to(torch.float64)
        state = ps.state
    # the per-probe values are unbiased but heavy-tailed (a rarely drawn path has a huge 1 / q), so the
    # mean of a few probes is often far too high; the median is the typical size (it can be low when
    # most of the tree hangs on improbable paths: then the enumeration is slower than estimated)
    return {
        "branches": float(branches.median()),
        "paths": float(torch.exp(-log_q).median()),
        "branches_mean": float(branches.mean()),
        "probes": int(n_probes),
    }


#: more rows per second than a toy model evaluates on a CPU (measured: 1e4 - 1e5); beyond
#: ``max_seconds`` times this, an enumeration is refused before any work
_ROWS_PER_SECOND_CEILING = 1e6
#: steps (or estimates) above this many branches are timed on a batch of 4096 to 32768 of their rows
#: (the cost per row falls with the batch size: about 230, 140 and 75 us at 4k, 16k and 32k rows)
_CALIBRATE_ABOVE = 20_000
_CALIBRATION_ROWS = 4096


def enumerate_paths(
    proposal: Proposal,
    model,
    prompt: Sequence[int] | Tensor | None = None,
    gen_length: int | None = None,
    potentials: Sequence[Potential] | Potential = (),
    max_paths: int = 2_000_000,
    *,
    template: Sequence[int] | Tensor | None = None,
    max_seconds: float | None = 60.0,
    progress: bool | None = None,
) -> PathEnumeration:
    """Enumerate every path of ``proposal`` on ``model`` from one prompt or one template.

    Args:
        proposal: the proposal to enumerate (its :meth:`evaluate` gives path probabilities).
        model: a small (toy) denoiser.
        prompt: the prompt tokens (a list, a 1-D tensor, or None for no prompt).
        gen_length: number of generated positions.
        potentials: potentials included in the weights.
        max_paths: abort if the frontier grows beyond this.
        template: a 1-D list of ids with the mask id at the positions to generate,
            in place of ``prompt`` + ``gen_length``.
        max_seconds: refuse (before starting) an enumeration estimated to take longer
            (:func:`estimate_enumeration` times the measured cost of the first step);
            None disables the check.
        progress: report progress on standard error (None: when the estimate exceeds 5 s).
    """
    smc = SMC(proposal, potentials, n_particles=1, resampling=NeverResample())
    state = _initial_state(smc, model, prompt, gen_length, template)
    free0 = None if state.free is None else state.free[0].cpu()
    est = None
    if max_seconds is not None or progress is None:
        est = estimate_enumeration(proposal, model, prompt, gen_length, template=template)
        limit_rows = float("inf") if max_seconds is None else float(max_seconds) * _ROWS_PER_SECOND_CEILING
        if est["branches"] > limit_rows:  # hopeless at any realistic speed: refuse before any work
            raise ConfigError(_too_long(est, None, max_seconds))
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
    t_start = time.perf_counter()
    rows_done = 0
    show = bool(progress)
    per_row: float | None = None
    n_calibrated = 0  # rows of the largest timing batch so far (the cost per row falls with the batch size)
    for step_no in range(limit):
        if state.tokens.shape[0] == 0:
            break
        if show:
            from tqdm.auto import tqdm

            tqdm.write(
                f"[smcdiff enumerate] step {step_no + 1}: {state.tokens.shape[0]} open paths, {rows_done} rows "
                f"evaluated"
                + (f" of about {est['branches']:.3g}" if est is not None else "")
                + f", {time.perf_counter() - t_start:.1f} s",
                file=sys.stderr,
            )
        # which positions each node may change and how many it commits
        pos = state.block_positions()
        cur = state.tokens[:, 0, :].gather(1, pos)
        elig = (cur == mask_id).tolist()
        selector = getattr(proposal, "selector", None)
        plan = _plan_counts(proposal, model, state)
        counts = None if plan is None else plan[:, 0].tolist()
        node_idx: list[int] = []
        cand_rows: list[list[int]] = []
        commit_rows: list[list[bool]] = []
        rank_rows: list[list[int]] = []
        t_build = time.perf_counter()
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
        big = len(node_idx) > _CALIBRATE_ABOVE or (step_no == 0 and est is not None and est["branches"] > _CALIBRATE_ABOVE)
        n_want = max(_CALIBRATION_ROWS, min(len(node_idx), 8 * _CALIBRATION_ROWS))
        if big and n_want > n_calibrated and (max_seconds is not None or progress is None):
            # time one large batch of this step's branches (cycled) to turn row counts into seconds
            build = (time.perf_counter() - t_build) / max(len(node_idx), 1)
            n_cal = n_calibrated = n_want
            reps = torch.arange(n_cal) % len(node_idx)
            cal_state = _index_state(state, torch.tensor(node_idx, dtype=torch.long)[reps])
            cal_choice = _choice(cand_rows, commit_rows, rank_rows, selector, lb, reps)
            t_cal = time.perf_counter()
            smc._reweight(cal_state, proposal.evaluate(cal_state, model, cal_choice))
            per_row = (time.perf_counter() - t_cal) / n_cal + build
            if step_no == 0 and est is not None:  # before any work: the whole enumeration's estimate
                seconds = est["branches"] * per_row
                if max_seconds is not None and seconds > float(max_seconds):
                    raise ConfigError(_too_long(est, seconds, max_seconds))
                show = progress if progress is not None else seconds > 5.0
        if per_row is not None:  # this step's exact size: refuse before evaluating it
            elapsed = time.perf_counter() - t_start
            seconds = elapsed + len(node_idx) * per_row
            if max_seconds is not None and seconds > float(max_seconds):
                raise ConfigError(
                    f"exact enumeration stopped before step {step_no + 1}: it has {len(node_idx)} branches to "
                    f"evaluate, about {seconds:.0f} s in all with the {elapsed:.0f} s spent, more than "
                    f"max_seconds={max_seconds} (the advance estimate was {est['branches']:.3g} branch "
                    f"evaluations; the estimator is heavy-tailed). Use a smaller toy model, or pass "
                    f"max_seconds=None to run it anyway."
                    if est is not None
                    else f"exact enumeration stopped before step {step_no + 1}: about {seconds:.0f} s, more than "
                    f"max_seconds={max_seconds}"
                )
            if progress is None and not show and seconds > 5.0:
                show = True
        idx = torch.tensor(node_idx, dtype=torch.long)
        rows_done += len(node_idx)
        expanded = _index_state(state, idx)
        choice = _choice(cand_rows, commit_rows, rank_rows, selector, lb)
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
        free=free0,
    )


def _too_long(est: dict, seconds: float | None, max_seconds) -> str:
    when = f"about {seconds:.0f} s" if seconds is not None else "far longer"
    return (
        f"exact enumeration refused: an estimated {est['branches']:.3g} branch evaluations over about "
        f"{est['paths']:.3g} paths would take {when}, more than max_seconds={max_seconds}. Use a smaller toy "
        f"model (fewer positions or tokens), or pass max_seconds=None to run it anyway."
    )


def exact_target(
    kernel: Proposal,
    model,
    prompt: Sequence[int] | Tensor | None = None,
    gen_length: int | None = None,
    potentials: Sequence[Potential] | Potential = (),
    *,
    template: Sequence[int] | Tensor | None = None,
    max_seconds: float | None = 60.0,
) -> PathEnumeration:
    """Enumerate the *target* ``gamma = prod K * prod G`` by walking the model kernel's paths.

    ``kernel`` must be the model's own kernel (``is_model_kernel``); its paths carry
    the weight ``prod G`` only, so ``exp(log_q + log_w)`` is ``gamma(path)``.
    """
    if not getattr(kernel, "is_model_kernel", False):
        raise ConfigError("exact_target needs the model's own kernel (a proposal with is_model_kernel=True)")
    return enumerate_paths(kernel, model, prompt, gen_length, potentials, template=template, max_seconds=max_seconds)


def exact_log_Z(
    kernel: Proposal,
    model,
    prompt: Sequence[int] | Tensor | None = None,
    gen_length: int | None = None,
    potentials: Sequence[Potential] | Potential = (),
    *,
    template: Sequence[int] | Tensor | None = None,
    max_seconds: float | None = 60.0,
) -> float:
    """``log Z`` of the target ``prod K * prod G`` from one prompt (or ``template``), by exact enumeration."""
    return exact_target(kernel, model, prompt, gen_length, potentials, template=template, max_seconds=max_seconds).log_Z

