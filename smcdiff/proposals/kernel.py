"""The masked-diffusion unmasking kernel as a composition of parts.

One step of :class:`UnmaskingKernel` for every active prompt and particle:

1. one denoiser forward pass on the ``[B * N, L]`` canvases (optionally with
   classifier-free guidance, or over the suffix only with a prefix cache); the
   logits of the current block's positions are kept (``[R, Lb, V]``) and the
   mask token's logit is set to ``-inf`` (a mask is never committed);
2. sampling-stage **transforms** (e.g. EOS suppression) modify the logits;
3. the **token sampler** draws a candidate token at every block position;
4. score-stage transforms, then the **score**, rank the eligible positions
   (masked, in the current block);
5. the **schedule** gives the step plan (count ``k``, transfer probability ``p``);
6. the **selector** picks the commit set; those positions take their candidates.

The log-probability of the step's choices is

    log q = sum_{j eligible} log q_tok(x_j) + log q_count(k) + log q_sel(S | scores).

Which kernel defines the target
-------------------------------
With ``target="model"`` (default) the target kernel ``K`` is the same
composition *without* the transforms marked ``in_target=False``. If there are
none, the kernel is the model kernel (``log_k`` is None, bootstrap weights).
Otherwise every choice is also scored under ``K`` and the engine adds
``log K - log q``; this is properly weighted only when every choice ``K`` can make
has positive probability under ``q`` — :meth:`UnmaskingKernel.check_weighting`
refuses deterministic selection (or greedy tokens) that a proposal-only
transform could change. ``target="proposal"`` takes the whole composition,
transforms included, as the target (e.g. the RWS paper's sampler).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import torch
from torch import Tensor

from ..errors import ConfigError, ModelOutputError, UndefinedWeightError, check_int, check_number
from ..models.base import call_denoiser
from ..models.cache import KVCache
from ..state import Canvas, ParticleState
from .base import Choice, Proposal, ProposalStep, RowRNG
from .cache import CacheSegment, PrefixCacheStore
from .schedules import BlockInfo, Schedule
from .scores import Confidence, Margin, Score, UniformRandom
from .selectors import RandomK, Selector, StepPlan, Threshold, TopK
from .tokens import Categorical, TokenLogProbs, TokenSampler, _lse
from .transforms import LogitTransform, TransformContext, apply_transforms

__all__ = ["UnmaskingKernel", "KernelContext"]

NEG_INF = float("-inf")


@dataclass
class KernelContext:
    """Per-step quantities shared by drawing and evaluating (active rows only, ``R = B_a * N``).

    Attributes:
        rows: ``[B_a]`` indices of the active prompts.
        positions: ``[B_a, Lb]`` absolute positions of each active row's block.
        tokens: ``[R, L]`` current canvases.
        logits: ``[R, Lb, V]`` block logits (mask suppressed, CFG applied) or None.
        full_logits: ``[R, L, V]`` logits of every position, when computed.
        eligible: ``[R, Lb]`` masked positions of the block.
        current: ``[R, Lb]`` current tokens of the block.
        block_step: ``[R]`` step index inside the block.
        n_eligible: ``[R]``.
        cache: the prefix-cache store after this step's forward (None without cache).
        block: per-row block geometry for templates (None: prefix layout).
        model_dtype: the dtype of the model's logits before they were widened to float32.
        starts: first real (unpadded) canvas position of each active prompt, or None without padding.
    """

    rows: Tensor
    positions: Tensor
    tokens: Tensor
    logits: Tensor | None
    full_logits: Tensor | None
    eligible: Tensor
    current: Tensor
    block_step: Tensor
    n_eligible: Tensor
    cache: PrefixCacheStore | None = None
    block: BlockInfo | None = None
    model_dtype: torch.dtype | None = None
    starts: list[int] | None = None


def _slots(block_logits: Tensor, lb: int) -> Tensor:
    """Block logits ``[R, <= lb, V]`` padded to ``lb`` slots (a last window past the canvas end).

    The padding slots point at a position that is never eligible, so their values are never used.
    """
    short = lb - block_logits.shape[1]
    if short <= 0:
        return block_logits
    return torch.cat([block_logits, block_logits[:, :1].expand(-1, short, -1)], dim=1)


class UnmaskingKernel(Proposal):
    """Token sampler x score x selector x schedule, over semi-autoregressive blocks.

    Args:
        sampler: draws candidate tokens (default :class:`Categorical` at temperature 1).
        selector: picks the positions to commit (default :class:`TopK`).
        schedule: the step plan (required), e.g. ``EvenSplit(steps)``.
        score: ranks positions (default :class:`Confidence`, the untempered
            probability of the candidate, as LLaDA).
        block_length: semi-autoregressive block length; None means one block.
        transforms: logit transforms (see :mod:`smcdiff.proposals.transforms`).
        cfg_scale: classifier-free guidance scale (0 = off), as LLaDA: the
            unconditional pass masks the prompt and
            ``logits = u + (cfg_scale + 1) * (c - u)``.
        cache: ``"prefix"`` for Fast-dLLM's prefix KV cache, ``"dual"`` for its dual
            cache (prefix and suffix; LLaDA-style models whose forward takes
            ``position_ids``), or None. The model must implement ``prefill`` /
            ``cached_logits``. Both are approximations: each block's first step
            runs the whole canvas and caches the keys and values of the positions
            outside the block's reach (before it; with ``"dual"`` also after it),
            which then stay frozen while the block's tokens change.
        target: ``"model"`` or ``"proposal"`` (see the module docstring).
        mask_token: ``"suppress"`` (default) sets the mask token's logit to ``-inf``
            before sampling and scoring, so a mask is never a candidate.
            ``"keep"`` leaves it in, as ML-GSAI/LLaDA ``generate`` does: the
            softmax (token law, confidence, ``logp_model``) then runs over the
            whole vocabulary, mask included. Where upstream would then *commit*
            the mask token (its candidate at a selected position is the mask id,
            after which upstream leaves the position masked and may end with
            masks in its output), this kernel raises :class:`ModelOutputError`
            instead of diverging silently.

    Shapes: the state holds ``[B, N, L]`` canvases; internally the active prompts
    are flattened to ``R = B_active * N`` rows.
    """

    def __init__(
        self,
        sampler: TokenSampler | None = None,
        selector: Selector | None = None,
        schedule: Schedule | None = None,
        score: Score | None = None,
        block_length: int | None = None,
        transforms: Sequence[LogitTransform] = (),
        cfg_scale: float = 0.0,
        cache: str | None = None,
        target: str = "model",
        mask_token: str = "suppress",
    ) -> None:
        if schedule is None:
            raise ConfigError("UnmaskingKernel needs a schedule, e.g. EvenSplit(steps=...) or FixedCounts([...])")
        self.sampler = sampler if sampler is not None else Categorical(1.0)
        self.selector = selector if selector is not None else TopK()
        self.schedule = schedule
        self.score = score if score is not None else Confidence()
        self.block_length = None if block_length is None else check_int("block_length", block_length, minimum=1)
        for name, obj, cls in (
            ("sampler", self.sampler, TokenSampler),
            ("selector", self.selector, Selector),
            ("schedule", self.schedule, Schedule),
            ("score", self.score, Score),
        ):
            if not isinstance(obj, cls):
                raise ConfigError(f"{name} must be a {cls.__name__}; got {type(obj).__name__}")
        if isinstance(self.score, UniformRandom):
            if not isinstance(self.selector, TopK):
                raise ConfigError("UniformRandom scores are only defined with TopK (that is RandomK); use RandomK()")
            self.selector = RandomK()
        self.transforms = tuple(transforms)
        for t in self.transforms:
            if not isinstance(t, LogitTransform):
                raise ConfigError(f"transforms must be LogitTransform objects; got {type(t).__name__}")
        self.cfg_scale = check_number("cfg_scale", cfg_scale, low=0.0)
        if isinstance(self.selector, Threshold) and isinstance(self.score, (Confidence, Margin)):
            thr = float(self.selector.threshold)
            if not 0.0 <= thr <= 1.0:
                raise ConfigError(
                    f"threshold must lie in [0, 1] with the probability-valued score {self.score!r}; got {thr} "
                    f"(above 1 nothing but the top position would ever pass, below 0 everything would)"
                )
        if cache not in (None, "prefix", "dual"):
            raise ConfigError(f"cache must be None, 'prefix' or 'dual'; got {cache!r}")
        if cache is not None and self.cfg_scale > 0:
            raise ConfigError(f"cache={cache!r} is not supported together with classifier-free guidance")
        self.cache = cache
        if target not in ("model", "proposal"):
            raise ConfigError(f"target must be 'model' or 'proposal'; got {target!r}")
        self.target = target
        if mask_token not in ("suppress", "keep"):
            raise ConfigError(f"mask_token must be 'suppress' or 'keep'; got {mask_token!r}")
        self.mask_token = mask_token

    # ------------------------------------------------------------------ description
    @property
    def is_model_kernel(self) -> bool:  # type: ignore[override]
        return self.target == "proposal" or all(t.in_target for t in self.transforms)

    @property
    def is_deterministic(self) -> bool:
        """True when a step has a single possible outcome: every particle of a prompt then follows one path.

        That is greedy tokens (temperature 0, or ``top_k=1``), a deterministic
        selector and a deterministic count.
        """
        greedy = self.sampler.is_deterministic or self.sampler.top_k == 1
        return greedy and self.selector.is_deterministic and not self.schedule.is_random

    def _stage(self, stage: str, target_only: bool) -> tuple[LogitTransform, ...]:
        return tuple(
            t for t in self.transforms if t.stage == stage and (not target_only or t.in_target or self.target == "proposal")
        )

    @property
    def reference(self) -> "UnmaskingKernel":
        """The target kernel ``K``: this composition without its proposal-only transforms."""
        if self.is_model_kernel:
            return self
        return UnmaskingKernel(
            self.sampler,
            self.selector,
            self.schedule,
            self.score,
            block_length=self.block_length,
            transforms=[t for t in self.transforms if t.in_target],
            cfg_scale=self.cfg_scale,
            cache=self.cache,
            mask_token=self.mask_token,
        )

    def check_weighting(self) -> None:
        """Raise :class:`UndefinedWeightError` if ``log K - log q`` is not a valid weight.

        That is the case when a proposal-only transform can change a deterministic
        part of the kernel: the selection (``TopK``, thresholds...) or greedy
        token choice, because ``K`` then has choices that ``q`` never makes.
        """
        if self.is_model_kernel:
            return
        proposal_only = [t for t in self.transforms if not t.in_target]
        if self.selector.is_deterministic:
            raise UndefinedWeightError(
                f"the proposal-only transforms {proposal_only} change the scores used by the deterministic "
                f"selector {self.selector!r}; the model kernel's selections then have no proposal density. "
                f"Use a stochastic selector (PlackettLuce, Ancestral, RandomK) or target='proposal'."
            )
        sampling_tilts = [t for t in proposal_only if t.stage == "sampling"]
        if sampling_tilts and self.sampler.truncates:
            raise UndefinedWeightError(
                "a proposal-only sampling transform changes which tokens top_p/top_k truncation keeps; the model "
                "kernel can then draw tokens the proposal never draws. Drop the truncation or tilt only the scores."
            )
        if self.sampler.is_deterministic and any(not t.preserves_argmax for t in sampling_tilts):
            raise UndefinedWeightError(
                "a proposal-only sampling transform may change greedy (temperature 0) token choices; use a "
                "positive temperature or target='proposal'"
            )

    def __repr__(self) -> str:
        extra = ""
        if self.transforms:
            extra += f", transforms={list(self.transforms)!r}"
        if self.cfg_scale:
            extra += f", cfg_scale={self.cfg_scale}"
        if self.cache:
            extra += f", cache={self.cache!r}"
        if self.target != "model":
            extra += f", target={self.target!r}"
        if self.mask_token != "suppress":
            extra += f", mask_token={self.mask_token!r}"
        return (
            f"UnmaskingKernel(sampler={self.sampler!r}, selector={self.selector!r}, "
            f"schedule={self.schedule!r}, score={self.score!r}, block_length={self.block_length}{extra})"
        )

    # ------------------------------------------------------------------ setup
    def canvas_block_length(self, gen_length: int) -> int:
        """The block length to use for a generation of ``gen_length`` tokens."""
        return gen_length if self.block_length is None else self.block_length

    def setup(self, canvas: Canvas, state: ParticleState | None = None) -> None:
        """Validate the schedule (and, on templates, the cache) against the canvas and its rows' layout."""
        if state is None or not state.is_template:
            self.schedule.validate(canvas)
            return
        self.schedule.validate(canvas, state.block_sizes)
        if self.cache == "prefix":
            free = state.free_positions()
            pos = torch.arange(canvas.length, device=free.device)
            first = torch.where(free, pos, canvas.length).min(dim=1).values
            suffix = free == (pos[None, :] >= first[:, None])
            if state.attention_mask is not None:
                suffix = suffix | ~state.attention_mask
            bad = torch.nonzero(~suffix.all(dim=1)).flatten().tolist()
            if bad:
                raise ConfigError(
                    f"cache='prefix' needs every template row's masked positions to form a suffix (masks only "
                    f"after the last fixed token); row(s) {bad[:8]} have fixed tokens after a mask, for which a "
                    f"prefix cache is not exact. Use cache=None for such templates."
                )

    def check_model(self, model) -> None:
        """Raise if the model lacks what this kernel needs (called by ``SMC.init``)."""
        if self.cache is None:
            return
        if not (hasattr(model, "prefill") and hasattr(model, "cached_logits")):
            raise ConfigError(
                f"cache={self.cache!r} needs a model with prefill() and cached_logits(); {type(model).__name__} has none"
            )
        if hasattr(model, "require_prefix_cache"):  # adapters that can tell whether the model accepts a cache
            model.require_prefix_cache()
        if self.cache == "dual":
            if not hasattr(model, "require_dual_cache"):
                raise ConfigError(
                    f"cache='dual' needs a model adapter that supports it (require_dual_cache(), e.g. LLaDADenoiser); "
                    f"{type(model).__name__} has none"
                )
            model.require_dual_cache()

    def max_block_steps(self, canvas: Canvas) -> int:
        s = self.schedule.steps_per_block(canvas)
        if s is not None and self.selector.uses_count:
            return int(s)
        return max(int(s or 0), canvas.block_length)

    # ------------------------------------------------------------------ forward passes
    def _model_logits(
        self, model, tokens: Tensor, am: Tensor | None, prompt_length: int, max_rows: int | None, free: Tensor | None = None
    ) -> Tensor:
        if self.cfg_scale == 0.0:
            return call_denoiser(model, tokens, am, max_rows)
        if free is None:
            un = tokens.clone()
            un[:, :prompt_length] = int(model.mask_id)
        else:  # templates: the unconditional pass masks every fixed (observed) position
            un = torch.where(free, tokens, int(model.mask_id))
        both = call_denoiser(
            model, torch.cat([tokens, un]), None if am is None else torch.cat([am, am]), max_rows
        )
        cond, unc = both.chunk(2, dim=0)
        return unc + (self.cfg_scale + 1.0) * (cond - unc)

    def _forward(
        self, state: ParticleState, model, rows: Tensor, positions: Tensor, block_step: Tensor, max_rows: int | None
    ) -> tuple[Tensor, Tensor | None, PrefixCacheStore | None]:
        """Block logits ``[R, Lb, V]``, full logits (or None) and the new cache store."""
        n, l = state.n_particles, state.canvas.length
        lb = state.canvas.block_length
        tokens = state.tokens[rows].reshape(-1, l)
        am = None
        if state.attention_mask is not None:
            am = state.attention_mask[rows].repeat_interleave(n, dim=0)
        r = tokens.shape[0]
        pos_r = positions.repeat_interleave(n, dim=0)
        if self.cache is None:
            free = None if state.free is None else state.free[rows].repeat_interleave(n, dim=0)
            full = self._model_logits(model, tokens, am, state.canvas.prompt_length, max_rows, free)
            if full.device != tokens.device:  # a model split over devices may return its logits elsewhere
                full = full.to(tokens.device)
            starts = pos_r[:, 0]
            if bool((starts == starts[0]).all()) and int(starts[0]) + lb <= l:
                s = int(starts[0])
                blk = full[:, s : s + lb]
            else:
                blk = full[torch.arange(r, device=full.device)[:, None], pos_r]
            return blk, full, None
        return self._forward_cached(state, model, rows, tokens, am, positions, block_step, max_rows)

    def _forward_cached(self, state, model, rows, tokens, am, positions, block_step, max_rows):
        n = state.n_particles
        lb = state.canvas.block_length
        store = state.cache if isinstance(state.cache, PrefixCacheStore) else PrefixCacheStore((), n)
        starts = positions[:, 0].tolist()
        bstep = block_step.reshape(-1, n)[:, 0].tolist()
        prefill: dict[int, list[int]] = {}
        cached: dict[int, list[tuple[int, int]]] = {}
        for i, (b, s, k) in enumerate(zip(rows.tolist(), starts, bstep)):
            hit = None if k == 0 else store.find(b, s)
            if hit is None:
                prefill.setdefault(s, []).append(i)
            else:
                cached.setdefault(hit[0], []).append((i, hit[1]))
        out: Tensor | None = None
        ar = torch.arange(n, device=tokens.device)

        def rows_of(idx: list[int]) -> Tensor:
            t = torch.tensor(idx, dtype=torch.long, device=tokens.device)
            return (t[:, None] * n + ar[None, :]).flatten()

        def put(idx_rows: Tensor, blk: Tensor) -> None:
            nonlocal out
            if out is None:
                out = torch.empty((tokens.shape[0],) + tuple(blk.shape[1:]), dtype=blk.dtype, device=blk.device)
            out[idx_rows] = blk

        new_segments: list[CacheSegment] = []
        for s, idx in prefill.items():
            rr = rows_of(idx)
            chunks_logits, chunks_kv = [], []
            step = max_rows or rr.numel()
            for c in range(0, rr.numel(), step):
                sub = rr[c : c + step]
                if self.cache == "dual":
                    lg, kv = model.prefill(tokens[sub], None if am is None else am[sub], s, min(s + lb, tokens.shape[1]))
                else:
                    lg, kv = model.prefill(tokens[sub], None if am is None else am[sub], s)
                chunks_logits.append(_slots(lg[:, s : s + lb], lb))
                chunks_kv.append(kv)
            put(rr, torch.cat(chunks_logits))
            new_segments.append(CacheSegment(rows[torch.tensor(idx, dtype=torch.long)], s, KVCache.cat(chunks_kv)))
        for si, pairs in cached.items():
            seg = store.segments[si]
            idx = [i for i, _ in pairs]
            rr = rows_of(idx)
            seg_pos = torch.tensor([p for _, p in pairs], dtype=torch.long, device=tokens.device)
            kv_rows = (seg_pos[:, None] * n + ar[None, :]).flatten()
            kv = seg.kv if kv_rows.numel() == seg.kv.n_rows and bool(
                (kv_rows == torch.arange(seg.kv.n_rows, device=kv_rows.device)).all()
            ) else seg.kv.index_select(kv_rows)
            step = max_rows or rr.numel()
            parts = []
            for c in range(0, rr.numel(), step):
                sub = rr[c : c + step]
                kv_sub = kv if (c == 0 and sub.numel() == rr.numel()) else kv.index_select(
                    torch.arange(c, c + sub.numel(), device=tokens.device)
                )
                lg = model.cached_logits(tokens[sub], None if am is None else am[sub], kv_sub)
                parts.append(_slots(lg[:, :lb], lb))
            put(rr, torch.cat(parts))
        for seg in new_segments:
            store = store.with_segment(seg)
        assert out is not None
        return out, None, store

    # ------------------------------------------------------------------ context
    def context(self, state: ParticleState, model, max_rows: int | None = None, forward: bool = True) -> KernelContext:
        """Compute the per-step context for the active rows of ``state``."""
        rows = torch.nonzero(~state.done).flatten()
        n = state.n_particles
        positions = state.block_positions()[rows]
        pos_r = positions.repeat_interleave(n, dim=0)
        tokens = state.tokens[rows].reshape(-1, state.canvas.length)
        current = tokens.gather(1, pos_r)
        eligible = current == state.canvas.mask_id
        block_step = state.block_step[rows].repeat_interleave(n)
        n_elig = eligible.sum(dim=-1)
        block = None
        if state.is_template:
            block = BlockInfo(
                size=state.block_size()[rows].repeat_interleave(n),
                index=state.block[rows].repeat_interleave(n),
                count=state.num_blocks[rows].repeat_interleave(n),
            )
        logits = full = cache = model_dtype = None
        if forward and rows.numel():
            logits, full, cache = self._forward(state, model, rows, positions, block_step, max_rows)
            model_dtype = logits.dtype
            if logits.dtype in (torch.float16, torch.bfloat16):
                logits = logits.float()  # sampling laws and log-probabilities in at least float32
            mid = int(state.canvas.mask_id)
            if self.mask_token == "suppress" and 0 <= mid < logits.shape[-1]:
                logits = logits.clone()
                logits[..., mid] = NEG_INF
        return KernelContext(
            rows=rows,
            positions=positions,
            tokens=tokens,
            logits=logits,
            full_logits=full,
            eligible=eligible,
            current=current,
            block_step=block_step,
            n_eligible=n_elig,
            cache=cache,
            block=block,
            model_dtype=model_dtype,
            starts=None if state.attention_mask is None else state.attention_mask[rows].long().argmax(dim=1).tolist(),
        )

    def _tctx(self, state: ParticleState, model, ctx: KernelContext) -> TransformContext:
        return TransformContext(
            tokens=ctx.tokens,
            positions=ctx.positions.repeat_interleave(state.n_particles, dim=0),
            eligible=ctx.eligible,
            full_logits=ctx.full_logits,
            rows=ctx.rows,
            n_particles=state.n_particles,
            prompt_length=state.canvas.prompt_length,
            mask_id=state.canvas.mask_id,
            model=model,
        )

    def _check_finite(self, state: ParticleState, ctx: KernelContext, lp: TokenLogProbs, logits: Tensor) -> None:
        bad = torch.isnan(lp.model) & ctx.eligible
        if bool(bad.any()):
            n = state.n_particles
            rows = ctx.rows[bad.any(dim=-1).reshape(-1, n).any(dim=1)].tolist()
            step = int(state.steps[rows[0]]) + 1
            elig = ctx.eligible[..., None]
            if bool((torch.isnan(logits) & elig).any()):
                what = "NaN logits"
            elif bool((torch.isposinf(logits) & elig).any()):
                what = "+inf logits"
            elif bool((torch.isneginf(logits).all(dim=-1) & ctx.eligible).any()):
                raw_ok = ctx.logits is not None and not bool((torch.isneginf(ctx.logits).all(dim=-1) & ctx.eligible).any())
                what = (
                    "logits that are -inf for every token (probability zero everywhere)"
                    + (" after the sampling transforms" if raw_ok else (
                        " (the mask token counted as -inf: a mask is never committed)"
                        if self.mask_token == "suppress" else ""))
                )
            else:
                what = "logits whose softmax is undefined"
            raise ModelOutputError(
                f"the model returned {what} at masked positions of prompt(s) {rows} (step {step}); there is no "
                f"token to sample there"
            )

    def _scores(
        self, samp: Tensor, stage: tuple, tctx: TransformContext, cand: Tensor, lp: TokenLogProbs, ctx: KernelContext
    ) -> Tensor:
        if stage:
            samp = apply_transforms(samp, stage, tctx)
            lp = self.sampler.log_prob(samp, cand)
        if getattr(self.score, "in_model_dtype", False) and ctx.model_dtype is not None:
            samp = samp.to(ctx.model_dtype)  # exact: the logits were widened from this dtype
        return self.score(samp, cand, lp, self.sampler)

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
        widths = None if state.block_widths is None else state.block_widths[ctx.rows].tolist()
        rng = RowRNG(
            generators, ctx.rows.tolist(), state.n_particles, state.device, widths, state.canvas.block_length,
            positions=ctx.positions.repeat_interleave(state.n_particles, dim=0), canvas_length=state.canvas.length,
            starts=ctx.starts,
        )
        tctx = self._tctx(state, model, ctx)
        samp_q = apply_transforms(ctx.logits, self._stage("sampling", False), tctx)
        cand, lp_q = self.sampler.draw(samp_q, rng)
        self._check_finite(state, ctx, lp_q, samp_q)
        score_q = self._scores(samp_q, self._stage("score", False), tctx, cand, lp_q, ctx)
        plan = self._policy_inputs(state, ctx, self.schedule.plan(state.canvas, ctx.block_step, ctx.n_eligible, rng,
                                                          block=ctx.block))
        sd = self.selector.draw(score_q, ctx.eligible, plan, rng)
        return self._finish(state, model, ctx, tctx, samp_q, cand, lp_q, score_q, plan, sd.commit, sd.log_prob, sd.rank)

    def evaluate(self, state: ParticleState, model, choice: Choice, *, max_rows: int | None = None) -> ProposalStep:
        ctx = self.context(state, model, max_rows)
        if ctx.rows.numel() == 0:
            return self._idle(state)
        lb = state.canvas.block_length
        cand = choice.candidates[ctx.rows].reshape(-1, lb).to(torch.long)
        commit = choice.commit[ctx.rows].reshape(-1, lb).to(torch.bool)
        rank = choice.extra.get("rank")
        rank = None if rank is None else rank[ctx.rows].reshape(-1, lb).to(torch.long)
        tctx = self._tctx(state, model, ctx)
        samp_q = apply_transforms(ctx.logits, self._stage("sampling", False), tctx)
        lp_q = self.sampler.log_prob(samp_q, cand)
        self._check_finite(state, ctx, lp_q, samp_q)
        score_q = self._scores(samp_q, self._stage("score", False), tctx, cand, lp_q, ctx)
        if self.schedule.is_random:
            k = (commit & ctx.eligible).sum(dim=-1)
            plan = StepPlan(k=k, p=self.schedule.probs(state.canvas, ctx.block_step, block=ctx.block))
        else:
            plan = self.schedule.plan(state.canvas, ctx.block_step, ctx.n_eligible, block=ctx.block)
        plan = self._policy_inputs(state, ctx, plan)
        sel_lp = self.selector.log_prob(score_q, ctx.eligible, plan, commit, rank)
        return self._finish(state, model, ctx, tctx, samp_q, cand, lp_q, score_q, plan, commit, sel_lp, rank)

    def _policy_inputs(self, state: ParticleState, ctx: KernelContext, plan: StepPlan) -> StepPlan:
        """``plan`` with ``time`` (steps taken / canvas length) and ``view`` (the whole canvas: top-1
        probabilities, mask bits, block positions) per row, for selectors that read them (``needs_time``),
        or with ``canvas`` (length, block positions) for selectors that work on canvas rows (``needs_canvas``)."""
        if getattr(self.selector, "needs_canvas", False):
            n = state.n_particles
            plan = replace(plan, canvas=(state.canvas.length, ctx.positions.repeat_interleave(n, dim=0),
                                         None if ctx.starts is None else [s for s in ctx.starts for _ in range(n)]))
        if not getattr(self.selector, "needs_time", False):
            return plan
        n = state.n_particles
        if ctx.full_logits is None:
            raise ConfigError(f"a learned policy reads the whole canvas; it cannot run with cache={self.cache!r}")
        t = state.steps[ctx.rows].to(torch.float64).repeat_interleave(n) / state.canvas.gen_length
        z = ctx.full_logits.float()
        mid = int(state.canvas.mask_id)
        if 0 <= mid < z.shape[-1]:
            z = z.clone()
            z[..., mid] = NEG_INF
        conf = torch.exp(z.max(dim=-1).values.to(torch.float64) - _lse(z))
        masked = ctx.tokens == mid
        pos = ctx.positions.repeat_interleave(n, dim=0)
        return replace(plan, time=t, view=(conf, masked, pos))

    # ------------------------------------------------------------------ weights and state update
    def _finish(self, state, model, ctx, tctx, samp_q, cand, lp_q, score_q, plan, commit, sel_lp, rank):
        elig = ctx.eligible
        if self.mask_token == "keep":
            self._check_no_mask_commit(state, ctx, cand, commit)
        count_lp = self.schedule.count_log_prob(state.canvas, ctx.block_step, ctx.n_eligible, plan.k, block=ctx.block)
        tok_lq = torch.where(elig, lp_q.proposal, 0.0).sum(dim=-1)
        log_q = tok_lq + count_lp + sel_lp
        log_k = None
        lp_target = lp_q
        if not self.is_model_kernel:
            samp_t = ctx.logits
            s_stage = self._stage("sampling", True)
            samp_k = apply_transforms(samp_t, s_stage, tctx) if len(s_stage) != len(self._stage("sampling", False)) else samp_q
            lp_k = lp_q if samp_k is samp_q else self.sampler.log_prob(samp_k, cand)
            score_k = self._scores(samp_k, self._stage("score", True), tctx, cand, lp_k, ctx)
            self._check_support(ctx, samp_q, samp_k, score_q, score_k)
            sel_lp_k = self.selector.log_prob(score_k, elig, plan, commit, rank)
            log_k = torch.where(elig, lp_k.proposal, 0.0).sum(dim=-1) + count_lp + sel_lp_k
            lp_target = lp_k
        step_aux = {k: v for k, v in tctx.cache.items() if isinstance(v, Tensor) and v.dim() == 1 and v.shape[0] == cand.shape[0]}
        return self._apply(state, ctx, cand, commit, lp_q, lp_target, log_q, log_k, score_q, plan, rank, step_aux)

    def _check_no_mask_commit(self, state: ParticleState, ctx: KernelContext, cand: Tensor, commit: Tensor) -> None:
        bad = commit & ctx.eligible & (cand == int(state.canvas.mask_id))
        if bool(bad.any()):
            n = state.n_particles
            r = int(torch.nonzero(bad.any(dim=-1)).flatten()[0])
            pos = int(ctx.positions.repeat_interleave(n, dim=0)[r][bad[r]][0])
            raise ModelOutputError(
                f"mask_token='keep': the candidate at position {pos} of prompt {int(ctx.rows[r // n])} (particle "
                f"{r % n}, step {int(state.steps[ctx.rows[r // n]]) + 1}) is the mask token itself and is selected "
                f"for commit. ML-GSAI/LLaDA generate would commit it, leave the position masked and carry on, "
                f"possibly returning masks; smcdiff does not replay that. Use mask_token='suppress' "
                f"(recipes.llada(faithful=False)), which never draws the mask token."
            )

    def _check_support(self, ctx: KernelContext, samp_q: Tensor, samp_k: Tensor, score_q: Tensor, score_k: Tensor) -> None:
        """Refuse a step where the target kernel ``K`` can choose what the proposal ``q`` never does.

        ``log K - log q`` is a valid weight only if ``q > 0`` wherever ``K > 0``. A
        proposal-only transform that sets a token's logit (or a position's score)
        to ``-inf`` where ``K`` keeps it finite breaks that: the particles would
        miss part of the target and the estimates would be biased without warning.
        """
        elig = ctx.eligible
        if not self.sampler.is_deterministic and samp_k is not samp_q:
            lost = elig[..., None] & torch.isfinite(samp_k) & ~torch.isfinite(samp_q)
            if bool(lost.any()):
                raise UndefinedWeightError(
                    "a proposal-only transform gives probability zero to tokens that the target kernel can draw "
                    "(their logits are -inf under the proposal only); the weight log K - log q is then not a valid "
                    "importance weight. Make the transform part of the target (in_target=True) or keep its logits "
                    "finite."
                )
        if self.selector.uses_scores and not self.selector.is_deterministic:
            lost = elig & torch.isfinite(score_k.to(torch.float64)) & ~torch.isfinite(score_q.to(torch.float64))
            if bool(lost.any()):
                raise UndefinedWeightError(
                    "a proposal-only transform gives a -inf score to positions that the target kernel can select; "
                    "the proposal then never selects them and log K - log q is not a valid importance weight"
                )

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

    def _apply(self, state, ctx, cand, commit, lp_q, lp_target, log_q, log_k, score, plan, rank, step_aux=None) -> ProposalStep:
        b, n, l = state.tokens.shape
        canvas = state.canvas
        lb = canvas.block_length
        dev = state.device
        rows = ctx.rows
        ba = rows.numel()
        elig = ctx.eligible
        commit = commit & elig

        new_blk = torch.where(commit, cand, ctx.current)
        pos_r = ctx.positions.repeat_interleave(n, dim=0)
        tok_a = ctx.tokens.scatter(1, pos_r, new_blk)
        clp_blk = torch.where(commit, lp_target.model, 0.0)
        committed_logp_a = torch.zeros(ba * n, l, dtype=torch.float64, device=dev).scatter(1, pos_r, clp_blk)
        committed_a = torch.zeros(ba * n, l, dtype=torch.bool, device=dev).scatter(1, pos_r, commit)
        step_no = (state.steps[rows] + 1).repeat_interleave(n)
        cs_a = state.commit_step[rows].reshape(ba * n, l)
        cs_a = torch.where(committed_a, step_no[:, None].to(cs_a.dtype), cs_a)
        clp_state_a = state.committed_logp[rows].reshape(ba * n, l) + committed_logp_a

        had_blk = elig.any(dim=-1).reshape(ba, n)
        left_blk = (new_blk == canvas.mask_id).any(dim=-1).reshape(ba, n)
        gen = slice(canvas.prompt_length, l)
        had_any = (ctx.tokens[:, gen] == canvas.mask_id).any(dim=-1).reshape(ba, n)
        left_any = (tok_a[:, gen] == canvas.mask_id).any(dim=-1).reshape(ba, n)
        row_block_end = ~left_blk.any(dim=1)
        new_block = state.block[rows] + row_block_end.long()
        new_block_step = torch.where(row_block_end, torch.zeros_like(new_block), state.block_step[rows] + 1)
        finished_a = new_block >= (canvas.num_blocks if state.num_blocks is None else state.num_blocks[rows])
        limit = self.max_block_steps(canvas)
        possible = torch.isfinite(log_q).reshape(ba, n).any(dim=1)  # impossible (evaluated) choices never stall
        stalled = (~row_block_end) & (new_block_step >= limit) & possible
        if bool(stalled.any()):
            bad = rows[stalled].tolist()
            shown = f"{bad[:8]}{' and more' if len(bad) > 8 else ''}"
            raise ConfigError(
                f"after {limit} steps, block {int(state.block[rows][stalled][0])} of prompt(s) {shown} still has "
                f"masked positions: the schedule/selector does not unmask everything"
            )

        def full(x_a: Tensor, like: Tensor) -> Tensor:
            out = like.clone()
            out[rows] = x_a.reshape((ba,) + tuple(like.shape[1:])).to(like.dtype)
            return out

        cache = state.cache
        if self.cache is not None:
            cache = ctx.cache
            gone = rows[finished_a | row_block_end]
            if gone.numel():
                cache = cache.without_rows(gone)
        new_state = replace(
            state,
            tokens=full(tok_a, state.tokens),
            committed_logp=full(clp_state_a, state.committed_logp),
            commit_step=full(cs_a, state.commit_step),
            block=full(new_block, state.block),
            block_step=full(new_block_step, state.block_step),
            steps=full(state.steps[rows] + 1, state.steps),
            done=full(finished_a, state.done),
            cache=cache,
        )
        zb = torch.zeros(b, dtype=torch.bool, device=dev)
        zbn = torch.zeros(b, n, dtype=torch.bool, device=dev)
        zf = torch.zeros(b, n, dtype=torch.float64, device=dev)
        zlb = torch.zeros(b, n, lb, dtype=torch.float64, device=dev)
        aux = {
            "logp_model": full(lp_target.model, zlb),
            "logp_proposal": full(torch.where(elig, lp_q.proposal, 0.0), zlb),
            "logp_tempered": full(lp_target.tempered, zlb),
            "score": full(score.to(torch.float64), zlb),
            "k": full(plan.k, torch.zeros(b, n, dtype=torch.long, device=dev)),
        }
        for key, val in (step_aux or {}).items():  # per-row values computed by transforms (e.g. RWS reward, scale)
            aux[key] = full(val.to(torch.float64), zf)
        extra = {}
        if rank is not None:
            extra["rank"] = full(rank, torch.full((b, n, lb), -1, dtype=torch.long, device=dev))
        nfe = torch.zeros(b, dtype=torch.long, device=dev)
        nfe[rows] = 1
        row_forwards = nfe * n * (2 if self.cfg_scale > 0 else 1)
        active = zb.clone()
        active[rows] = True
        return ProposalStep(
            state=new_state,
            log_q=full(log_q, zf),
            log_k=None if log_k is None else full(log_k, zf),
            choice=Choice(
                candidates=full(cand, torch.zeros(b, n, lb, dtype=torch.long, device=dev)),
                commit=full(commit, torch.zeros(b, n, lb, dtype=torch.bool, device=dev)),
                extra=extra,
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
            row_forwards=row_forwards,
        )

