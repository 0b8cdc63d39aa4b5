"""The masked-diffusion unmasking kernel as a composition of parts.

One step of :class:`UnmaskingKernel` for every active prompt and particle:

1. one denoiser forward pass on the ``[B * N, L]`` canvases; the logits of the
   current block's positions are kept (``[R, Lb, V]``), the mask token's logit is
   set to ``-inf`` (a mask is never committed);
2. the **token sampler** draws a candidate token at every block position;
3. the **score** ranks the eligible positions (masked, in the current block);
4. the **schedule** says how many to commit (``k``);
5. the **selector** picks the commit set; those positions take their candidates.

The log-probability of the step's choices (all candidate tokens at eligible
positions, then the commit set) is

    log q = sum_{j eligible} log q_tok(x_j) + log q_sel(S | scores),

and is reported in :attr:`ProposalStep.log_q`. With the model's own sampler and
selector this kernel *is* the model kernel ``K``, so ``log_k`` is None and the
bootstrap weight is the product of the potentials alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import torch
from torch import Tensor

from ..errors import ConfigError, ModelOutputError
from ..models.base import call_denoiser
from ..state import Canvas, ParticleState
from .base import Choice, Proposal, ProposalStep, RowRNG
from .schedules import EvenSplit, Schedule
from .scores import Confidence, Score
from .selectors import Selector, TopK
from .tokens import Categorical, TokenLogProbs, TokenSampler

__all__ = ["UnmaskingKernel", "KernelContext"]


@dataclass
class KernelContext:
    """Per-step quantities shared by drawing and evaluating (active rows only).

    Attributes:
        rows: ``[B_a]`` indices of the active prompts.
        positions: ``[B_a, Lb]`` absolute positions of each active row's block.
        logits: ``[R, Lb, V]`` block logits, ``R = B_a * N``.
        eligible: ``[R, Lb]`` masked positions of the block.
        current: ``[R, Lb]`` current tokens of the block.
        k: ``[R]`` number of positions the schedule asks to commit.
        nfe: forward passes spent per active row.
    """

    rows: Tensor
    positions: Tensor
    logits: Tensor
    eligible: Tensor
    current: Tensor
    k: Tensor
    nfe: int = 1


class UnmaskingKernel(Proposal):
    """Token sampler x score x selector x schedule, over semi-autoregressive blocks.

    Args:
        sampler: draws candidate tokens (default :class:`Categorical` at temperature 1).
        selector: picks the positions to commit (default :class:`TopK`).
        schedule: commit counts per step (default ``EvenSplit(steps=gen_length)``-like
            behaviour is not assumed: a schedule must be given).
        score: ranks positions (default :class:`Confidence`, the untempered
            probability of the candidate, as LLaDA).
        block_length: semi-autoregressive block length; None means one block (full
            diffusion).

    Shapes: the state holds ``[B, N, L]`` canvases; internally the active prompts
    are flattened to ``R = B_active * N`` rows.
    """

    is_model_kernel = True

    def __init__(
        self,
        sampler: TokenSampler | None = None,
        selector: Selector | None = None,
        schedule: Schedule | None = None,
        score: Score | None = None,
        block_length: int | None = None,
    ) -> None:
        if schedule is None:
            raise ConfigError("UnmaskingKernel needs a schedule, e.g. EvenSplit(steps=...) or FixedCounts([...])")
        self.sampler = sampler if sampler is not None else Categorical(1.0)
        self.selector = selector if selector is not None else TopK()
        self.schedule = schedule
        self.score = score if score is not None else Confidence()
        if block_length is not None and int(block_length) < 1:
            raise ConfigError(f"block_length must be >= 1; got {block_length}")
        self.block_length = None if block_length is None else int(block_length)
        for name, obj, cls in (
            ("sampler", self.sampler, TokenSampler),
            ("selector", self.selector, Selector),
            ("schedule", self.schedule, Schedule),
            ("score", self.score, Score),
        ):
            if not isinstance(obj, cls):
                raise ConfigError(f"{name} must be a {cls.__name__}; got {type(obj).__name__}")

    def __repr__(self) -> str:
        return (
            f"UnmaskingKernel(sampler={self.sampler!r}, selector={self.selector!r}, "
            f"schedule={self.schedule!r}, score={self.score!r}, block_length={self.block_length})"
        )

    # ------------------------------------------------------------------ setup
    def canvas_block_length(self, gen_length: int) -> int:
        """The block length to use for a generation of ``gen_length`` tokens."""
        return gen_length if self.block_length is None else self.block_length

    def setup(self, canvas: Canvas) -> None:
        self.schedule.validate(canvas)

    def max_block_steps(self, canvas: Canvas) -> int:
        s = self.schedule.steps_per_block(canvas)
        return int(s) if s is not None else canvas.block_length

    # ------------------------------------------------------------------ shared computation
    def block_logits(self, state: ParticleState, model, rows: Tensor, positions: Tensor, max_rows: int | None) -> Tensor:
        """Forward the active rows and return the logits at their block positions ``[R, Lb, V]``."""
        n, l = state.n_particles, state.canvas.length
        flat = state.tokens[rows].reshape(-1, l)
        am = None
        if state.attention_mask is not None:
            am = state.attention_mask[rows].repeat_interleave(n, dim=0)
        logits = call_denoiser(model, flat, am, max_rows)
        pos_r = positions.repeat_interleave(n, dim=0)  # [R, Lb]
        starts = pos_r[:, 0]
        if bool((starts == starts[0]).all()):
            s = int(starts[0])
            blk = logits[:, s : s + state.canvas.block_length]
        else:
            blk = logits[torch.arange(flat.shape[0], device=logits.device)[:, None], pos_r]
        mid = int(state.canvas.mask_id)
        if 0 <= mid < blk.shape[-1]:
            blk = blk.clone()
            blk[..., mid] = float("-inf")
        return blk

    def context(self, state: ParticleState, model, max_rows: int | None = None) -> KernelContext:
        """Compute the per-step context for the active rows of ``state``."""
        rows = torch.nonzero(~state.done).flatten()
        n = state.n_particles
        positions = state.block_positions()[rows]  # [B_a, Lb]
        pos_r = positions.repeat_interleave(n, dim=0)
        current = state.tokens[rows].reshape(-1, state.canvas.length).gather(1, pos_r)
        eligible = current == state.canvas.mask_id
        logits = self.block_logits(state, model, rows, positions, max_rows) if rows.numel() else None
        block_step = state.block_step[rows].repeat_interleave(n)
        k = self.schedule.counts(state.canvas, block_step, eligible.sum(dim=-1))
        return KernelContext(rows=rows, positions=positions, logits=logits, eligible=eligible, current=current, k=k)

    def _check_finite(self, state: ParticleState, ctx: KernelContext, lp: TokenLogProbs) -> None:
        bad = torch.isnan(lp.model) & ctx.eligible
        if bool(bad.any()):
            n = state.n_particles
            rows = ctx.rows[bad.any(dim=-1).reshape(-1, n).any(dim=1)].tolist()
            raise ModelOutputError(
                f"the model returned NaN (or +inf) logits at masked positions of prompt(s) {rows} "
                f"(step {int(state.steps[rows[0]]) + 1}); cannot sample from them"
            )

    # ------------------------------------------------------------------ protocol
    def propose(
        self,
        state: ParticleState,
        model,
        generators: Sequence[torch.Generator],
        *,
        max_rows: int | None = None,
    ) -> ProposalStep:
        ctx = self.context(state, model, max_rows)
        if ctx.rows.numel() == 0:
            return self._idle(state)
        rng = RowRNG(generators, ctx.rows.tolist(), state.n_particles, state.device)
        cand, lp = self.sampler.draw(ctx.logits, rng)
        self._check_finite(state, ctx, lp)
        score = self.score(ctx.logits, cand, lp)
        commit, sel_lp = self.selector.draw(score, ctx.eligible, ctx.k, rng)
        return self._apply(state, ctx, cand, commit, lp, sel_lp, score)

    def evaluate(self, state: ParticleState, model, choice: Choice, *, max_rows: int | None = None) -> ProposalStep:
        ctx = self.context(state, model, max_rows)
        if ctx.rows.numel() == 0:
            return self._idle(state)
        lb = state.canvas.block_length
        cand = choice.candidates[ctx.rows].reshape(-1, lb).to(torch.long)
        commit = choice.commit[ctx.rows].reshape(-1, lb).to(torch.bool)
        lp = self.sampler.log_prob(ctx.logits, cand)
        self._check_finite(state, ctx, lp)
        score = self.score(ctx.logits, cand, lp)
        sel_lp = self.selector.log_prob(score, ctx.eligible, ctx.k, commit)
        return self._apply(state, ctx, cand, commit, lp, sel_lp, score)

    # ------------------------------------------------------------------ state update
    def _idle(self, state: ParticleState) -> ProposalStep:
        b, n, l = state.tokens.shape
        lb = state.canvas.block_length
        dev = state.device
        zeros_bn = torch.zeros(b, n, dtype=torch.float64, device=dev)
        f_bn = torch.zeros(b, n, dtype=torch.bool, device=dev)
        f_b = torch.zeros(b, dtype=torch.bool, device=dev)
        empty = torch.zeros(b, n, lb, dtype=torch.bool, device=dev)
        return ProposalStep(
            state=state,
            log_q=zeros_bn,
            log_k=None if self.is_model_kernel else zeros_bn.clone(),
            choice=Choice(torch.zeros(b, n, lb, dtype=torch.long, device=dev), empty),
            eligible=empty,
            block_positions=state.block_positions(),
            committed=torch.zeros(b, n, l, dtype=torch.bool, device=dev),
            committed_logp=torch.zeros(b, n, l, dtype=torch.float64, device=dev),
            active=f_b,
            block_completed=f_bn,
            completed=f_bn,
            block_end=f_b,
            finished=f_b,
            nfe=torch.zeros(b, dtype=torch.long, device=dev),
        )

    def _apply(
        self,
        state: ParticleState,
        ctx: KernelContext,
        cand: Tensor,
        commit: Tensor,
        lp: TokenLogProbs,
        sel_lp: Tensor,
        score: Tensor,
        log_k: Tensor | None = None,
        extra_aux: dict[str, Tensor] | None = None,
    ) -> ProposalStep:
        b, n, l = state.tokens.shape
        canvas = state.canvas
        lb = canvas.block_length
        dev = state.device
        rows = ctx.rows
        ba = rows.numel()
        elig = ctx.eligible
        commit = commit & elig

        tok_lq = torch.where(elig, lp.proposal, torch.zeros_like(lp.proposal)).sum(dim=-1)
        log_q_a = (tok_lq + sel_lp).reshape(ba, n)

        new_blk = torch.where(commit, cand, ctx.current)
        pos_r = ctx.positions.repeat_interleave(n, dim=0)
        tok_a = state.tokens[rows].reshape(ba * n, l).scatter(1, pos_r, new_blk)
        clp_blk = torch.where(commit, lp.model, torch.zeros_like(lp.model))
        committed_logp_a = torch.zeros(ba * n, l, dtype=torch.float64, device=dev).scatter(1, pos_r, clp_blk)
        committed_a = torch.zeros(ba * n, l, dtype=torch.bool, device=dev).scatter(1, pos_r, commit)
        step_no = (state.steps[rows] + 1).repeat_interleave(n)
        cs_a = state.commit_step[rows].reshape(ba * n, l)
        cs_a = torch.where(committed_a, step_no[:, None].to(cs_a.dtype), cs_a)
        clp_state_a = state.committed_logp[rows].reshape(ba * n, l) + committed_logp_a

        # block and completion bookkeeping
        had_blk = elig.any(dim=-1).reshape(ba, n)
        left_blk = (new_blk == canvas.mask_id).any(dim=-1).reshape(ba, n)
        gen = slice(canvas.prompt_length, l)
        had_any = (state.tokens[rows][..., gen] == canvas.mask_id).any(dim=-1)  # [B_a, N]
        left_any = (tok_a.reshape(ba, n, l)[..., gen] == canvas.mask_id).any(dim=-1)
        row_block_end = ~left_blk.any(dim=1)  # [B_a]
        new_block = state.block[rows] + row_block_end.long()
        new_block_step = torch.where(row_block_end, torch.zeros_like(new_block), state.block_step[rows] + 1)
        finished_a = new_block >= canvas.num_blocks
        limit = self.max_block_steps(canvas)
        stalled = (~row_block_end) & (new_block_step >= limit)
        if bool(stalled.any()):
            bad = rows[stalled].tolist()
            raise ConfigError(
                f"after {limit} steps, block {int(state.block[rows][stalled][0])} of prompt(s) {bad} still has "
                f"masked positions: the schedule/selector does not unmask everything"
            )

        # scatter active rows back into full-batch tensors
        def full(x_a: Tensor, like: Tensor) -> Tensor:
            out = like.clone()
            out[rows] = x_a.reshape((ba,) + tuple(like.shape[1:])).to(like.dtype)
            return out

        new_state = replace(
            state,
            tokens=full(tok_a, state.tokens),
            committed_logp=full(clp_state_a, state.committed_logp),
            commit_step=full(cs_a, state.commit_step),
            block=full(new_block, state.block),
            block_step=full(new_block_step, state.block_step),
            steps=full(state.steps[rows] + 1, state.steps),
            done=full(finished_a, state.done),
        )
        zb = torch.zeros(b, dtype=torch.bool, device=dev)
        zbn = torch.zeros(b, n, dtype=torch.bool, device=dev)
        zf = torch.zeros(b, n, dtype=torch.float64, device=dev)
        zlb = torch.zeros(b, n, lb, dtype=torch.float64, device=dev)
        aux = {
            "logp_model": full(lp.model, zlb),
            "logp_proposal": full(torch.where(elig, lp.proposal, torch.zeros_like(lp.proposal)), zlb),
            "logp_tempered": full(lp.tempered, zlb),
            "score": full(score.to(torch.float64), zlb),
            "k": full(ctx.k, torch.zeros(b, n, dtype=torch.long, device=dev)),
        }
        if extra_aux:
            aux.update(extra_aux)
        nfe = torch.zeros(b, dtype=torch.long, device=dev)
        nfe[rows] = ctx.nfe
        active = zb.clone()
        active[rows] = True
        return ProposalStep(
            state=new_state,
            log_q=full(log_q_a, zf),
            log_k=None if log_k is None else full(log_k, zf),
            choice=Choice(
                candidates=full(cand, torch.zeros(b, n, lb, dtype=torch.long, device=dev)),
                commit=full(commit, torch.zeros(b, n, lb, dtype=torch.bool, device=dev)),
            ),
            eligible=full(elig, torch.zeros(b, n, lb, dtype=torch.bool, device=dev)),
            block_positions=state.block_positions(),
            committed=full(committed_a, torch.zeros(b, n, l, dtype=torch.bool, device=dev)),
            committed_logp=full(committed_logp_a, torch.zeros(b, n, l, dtype=torch.float64, device=dev)),
            active=active,
            block_completed=full(had_blk & ~left_blk, zbn),
            completed=full(had_any & ~left_any, zbn),
            block_end=full(row_block_end, zb),
            finished=full(finished_a, zb),
            nfe=nfe,
            aux=aux,
        )
