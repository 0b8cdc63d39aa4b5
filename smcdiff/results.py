"""Records and results returned by the SMC engine."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor

from .errors import AllParticlesDeadError, ConfigError, check_int
from .weights import Weights

__all__ = ["StepRecord", "Genealogy", "SMCResult"]


@dataclass(frozen=True)
class StepRecord:
    """What one engine step did (tensors per prompt ``[B]`` or per particle ``[B, N]``).

    Attributes:
        step: 1-based index of the engine step.
        active: ``[B]`` prompts that moved in this step.
        log_weight_increment: ``[B, N]`` float64, ``log G_t (+ log K - log q)`` added to
            each particle's log weight.
        ess_before: ``[B]`` ESS after reweighting, before any resampling.
        ess_after: ``[B]`` ESS after the resampling decision (``N`` where resampled).
        resampled: ``[B]`` bool.
        ancestors: ``[B, N]`` long; particle ``i`` after this step descends from
            particle ``ancestors[b, i]`` of the proposal's output (identity where no
            resampling happened).
        log_Z_increment: ``[B]`` change of the running estimate ``log Z_hat`` in this step.
        block_end: ``[B]`` prompts whose particles all finished a block in this step.
        nfe: ``[B]`` denoiser forward passes spent on each prompt in this step (batched
            calls: one call over all of a prompt's particles counts once).
        particle_forwards: ``[B]`` rows the denoiser ran for each prompt in this step
            (particles x forward passes; twice with classifier-free guidance): the compute.
        reward_calls: ``[B]`` batched reward ``score`` calls that scored prompt ``b``'s texts.
        reward_texts: ``[B]`` texts of prompt ``b`` scored by a reward in this step.
    """

    step: int
    active: Tensor
    log_weight_increment: Tensor
    ess_before: Tensor
    ess_after: Tensor
    resampled: Tensor
    ancestors: Tensor
    log_Z_increment: Tensor
    block_end: Tensor
    nfe: Tensor
    particle_forwards: Tensor | None = None
    reward_calls: Tensor | None = None
    reward_texts: Tensor | None = None


@dataclass(frozen=True)
class Genealogy:
    """Ancestor indices of every step, ``ancestors [T, B, N]``.

    ``ancestors[t, b, i]`` is the index, among the particles proposed at step
    ``t`` (0-based), of the parent of particle ``i`` after step ``t``.
    """

    ancestors: Tensor

    @property
    def n_steps(self) -> int:
        return self.ancestors.shape[0]

    def lineage(self) -> Tensor:
        """``[T + 1, B, N]``: index at each step of the ancestor of every final particle.

        Row ``T`` is the identity; row ``t`` gives, for each final particle, the
        index of its ancestor among the particles alive just before step ``t``.
        """
        t, b, n = self.ancestors.shape
        out = torch.empty(t + 1, b, n, dtype=torch.long, device=self.ancestors.device)
        cur = torch.arange(n, device=self.ancestors.device).expand(b, n).clone()
        out[t] = cur
        for s in range(t - 1, -1, -1):
            cur = self.ancestors[s].gather(1, cur)
            out[s] = cur
        return out

    def n_unique_ancestors(self) -> Tensor:
        """``[T + 1, B]``: number of distinct ancestors of the final population at each step."""
        lin = self.lineage()
        t1, b, n = lin.shape
        onehot = torch.zeros(t1, b, n, dtype=torch.bool, device=lin.device)
        onehot.scatter_(2, lin, True)
        return onehot.sum(dim=2)


@dataclass(frozen=True)
class SMCResult:
    """The outcome of an SMC run over B prompts x N particles.

    Attributes:
        sequences: ``[B, N, L]`` final token ids (prompt, padding and generation).
        weights: final :class:`~smcdiff.weights.Weights` ``[B, N]``.
        log_Z: ``[B]`` float64, the SMC estimate ``log Z_hat`` of the log normalising
            constant of the target; ``Z_hat`` (not ``log Z_hat``) is unbiased.
        records: one :class:`StepRecord` per engine step.
        genealogy: ancestors of every step.
        prompt_length: ``P``; the generation is ``sequences[..., P:]``.
        committed_logp: ``[B, N, L]`` log-probability of each token at its commit step under the
            target kernel's untempered token law (the model's softmax after the target's
            sampling-stage transforms, e.g. EOS suppression; with ``target="proposal"`` that
            includes a reward tilt).
        commit_step: ``[B, N, L]`` step at which each position was committed (-1: prompt).
        nfe: ``[B]`` batched denoiser forward passes per prompt (one call over all N
            particles counts once; see :attr:`particle_forwards` for the compute).
        dead: ``[B]`` prompts whose particles all reached weight zero (only with
            ``on_all_dead="flag"``); their ``log_Z`` is ``-inf`` and their sequences are
            unfinished (they still hold mask ids).
        extras: per-particle extras of the final state.
        free: ``[B, L]`` bool, the positions that were generated (for infilling, the
            template's masked positions; None for prefix generation: ``[P, L)``).
        particle_forwards: ``[B]`` rows the denoiser ran per prompt, summed over steps
            (particles x forward passes, twice with classifier-free guidance): the real compute.
        reward_calls: ``[B]`` batched reward ``score`` calls that scored prompt ``b``'s texts
            (reward potentials and RWS tilts).
        reward_texts: ``[B]`` texts of prompt ``b`` scored by rewards.
        best_by: the sampler's output rule, used by :meth:`best` without ``by``.
        timings: how the run went (filled by ``SMC.run`` / ``SMC.infill``; saved with the
            result): ``wall_s``, ``peak_memory_bytes`` and ``peak_memory_source`` (see
            :func:`smcdiff.memory.peak_memory`; None where it cannot be measured) and
            ``memory_estimate_bytes``, the engine's estimate made before allocating. Measuring resets
            the device's peak-memory counter (CUDA) or the process's peak resident size (Linux).
    """

    sequences: Tensor
    weights: Weights
    log_Z: Tensor
    records: Sequence[StepRecord]
    genealogy: Genealogy
    prompt_length: int
    committed_logp: Tensor
    commit_step: Tensor
    nfe: Tensor
    dead: Tensor
    extras: dict = field(default_factory=dict)
    free: Tensor | None = None
    particle_forwards: Tensor | None = None
    reward_calls: Tensor | None = None
    reward_texts: Tensor | None = None
    best_by: str = "weight"
    timings: dict = field(default_factory=dict)

    @property
    def is_template(self) -> bool:
        """True for a result of :meth:`SMC.infill <smcdiff.engine.SMC.infill>`."""
        return self.free is not None

    def free_positions(self) -> Tensor:
        """Bool ``[B, L]``: the generated positions (``[P, L)`` for prefix generation)."""
        if self.free is not None:
            return self.free
        b, _, l = self.sequences.shape
        out = torch.zeros(b, l, dtype=torch.bool, device=self.sequences.device)
        out[:, self.prompt_length :] = True
        return out

    @property
    def log_weights(self) -> Tensor:
        """Final unnormalised log weights ``[B, N]``."""
        return self.weights.log_w

    @property
    def normalized_weights(self) -> Tensor:
        """Final normalised weights ``[B, N]`` (zeros for dead prompts)."""
        return self.weights.normalized(allow_dead=True)

    @property
    def generated(self) -> Tensor:
        """The generated span ``[B, N, G]`` (prefix generation; for templates the whole filled canvas)."""
        return self.sequences[..., self.prompt_length :]

    def filled(self, b: int, i: int) -> list[int]:
        """The tokens generated for prompt/template ``b``, particle ``i``, in canvas order."""
        return self.sequences[b, i][self.free_positions()[b]].tolist()

    @property
    def ess(self) -> Tensor:
        """Final ESS ``[B]``."""
        return self.weights.ess

    @property
    def ess_trace(self) -> Tensor:
        """ESS after reweighting at every step, ``[T, B]``."""
        if not self.records:
            return torch.zeros(0, self.sequences.shape[0], dtype=torch.float64)
        return torch.stack([r.ess_before for r in self.records])

    @property
    def resampled(self) -> Tensor:
        """Bool ``[T, B]``: where resampling happened."""
        if not self.records:
            return torch.zeros(0, self.sequences.shape[0], dtype=torch.bool)
        return torch.stack([r.resampled for r in self.records])

    @property
    def trajectory_log_confidence(self) -> Tensor:
        """``[B, N]`` sum of the committed tokens' log-probabilities (SR-SMC's log C)."""
        return self.committed_logp.sum(dim=-1)

    def _dead_error(self, rows: list[int], what: str) -> AllParticlesDeadError:
        live = [b for b in range(self.sequences.shape[0]) if b not in set(rows)]
        return AllParticlesDeadError(
            rows,
            f"at the end of the run ({what})",
            hint=(
                "The run flagged them (on_all_dead='flag', see result.dead); their sequences are unfinished and "
                "still hold mask ids, so there is no particle to return. Use the live prompts only, e.g. "
                f"result.per_prompt(b) for b in {live[:8]}"
                + (", or pass allow_dead=True to get index -1 for the dead ones." if what == "best" else ".")
            ),
        )

    def best(
        self, by: str | None = None, tempered: bool | None = None, allow_dead: bool = False
    ) -> tuple[Tensor, Tensor]:
        """One particle per prompt: ``(sequences [B, L], indices [B])``.

        ``by=None`` (default) applies the sampler's own output rule, :attr:`best_by`
        (``"weight"`` unless the ``SMC`` was built with ``best_by=``;
        :func:`~smcdiff.recipes.sr_smc` sets ``"trajectory_confidence"``).
        ``by="weight"``: the particle of largest final weight. ``by="trajectory_confidence"``:
        the particle of largest total log trajectory confidence (the rule of the
        released SR-SMC LLaDA/Dream code and Algorithm 1 of arXiv 2602.01849, which
        does not depend on the weight resets at resampling). ``tempered`` picks the
        untempered confidence (:attr:`trajectory_log_confidence`) or the tempered one
        that a ``TrajectoryConfidence(tempered=True)`` potential recorded (the
        released Dream code's rule); by default the tempered one when it was recorded.

        Only particles of positive weight are candidates. Ties are explicit: when
        particles holding *different* sequences share the best score (by weight this is
        the rule rather than the exception: after a final resampling, or without
        potentials, all weights are equal) the lowest index is returned and a
        ``UserWarning`` names the prompts; choose with ``by="trajectory_confidence"``
        or draw with :meth:`sample` instead.

        Prompts whose particles all died (:attr:`dead`, ``on_all_dead="flag"``) raise
        :class:`~smcdiff.errors.AllParticlesDeadError`: their sequences are unfinished
        and still hold mask ids. With ``allow_dead=True`` their index is ``-1`` and
        their row is particle 0's unfinished canvas (check :attr:`dead`).
        """
        from .potentials.confidence import TrajectoryConfidence

        if by is None:
            by = self.best_by
        key = TrajectoryConfidence.TEMPERED_TOTAL
        if by == "weight":
            score = self.weights.log_w
        elif by == "trajectory_confidence":
            if tempered is None:
                tempered = key in self.extras
            if tempered and key not in self.extras:
                raise ConfigError(
                    "tempered=True but no tempered confidence was recorded; run with TrajectoryConfidence(tempered=True)"
                )
            score = (self.extras[key] if tempered else self.trajectory_log_confidence).to(torch.float64)
        else:
            raise ConfigError(f"by must be None, 'weight' or 'trajectory_confidence'; got {by!r}")
        dead = self.weights.dead | self.dead.to(self.weights.dead.device)
        dead_rows = torch.nonzero(dead).flatten().tolist()
        if dead_rows and not allow_dead:
            raise self._dead_error(dead_rows, "best")
        score = torch.where(torch.isneginf(self.weights.log_w), float("-inf"), score.to(self.weights.log_w.device))
        idx = score.argmax(dim=1)
        ar = torch.arange(self.sequences.shape[0], device=self.sequences.device)
        idx = idx.to(self.sequences.device)
        chosen = self.sequences[ar, idx]
        top = score.max(dim=1, keepdim=True).values
        tied = (score == top) & ~dead[:, None] & torch.isfinite(top)
        tied = tied.to(self.sequences.device)
        differs = (self.sequences != chosen[:, None, :]).any(dim=-1) & tied
        tie_rows = torch.nonzero(differs.any(dim=1)).flatten().tolist()
        if tie_rows:
            counts = tied.sum(dim=1)
            shown = ", ".join(f"prompt {b}: {int(counts[b])} particles" for b in tie_rows[:8])
            warnings.warn(
                f"best(by={by!r}): different sequences tie for the best score ({shown}"
                f"{', ...' if len(tie_rows) > 8 else ''}); returning the lowest index. Equal weights are the rule "
                f"after a final resampling or without potentials: rank by trajectory confidence "
                f"(by='trajectory_confidence') or draw by weight with result.sample()",
                UserWarning,
                stacklevel=2,
            )
        if dead_rows:
            idx = torch.where(dead.to(idx.device), torch.full_like(idx, -1), idx)
        return chosen, idx

    def sample(self, k: int = 1, seed: int | None | Sequence[int] | Sequence[torch.Generator] = 0) -> tuple[Tensor, Tensor]:
        """``k`` particles per prompt drawn with replacement by normalised weight.

        Returns ``(sequences [B, k, L], indices [B, k])``: draws from the weighted
        particle approximation of the target. Prompt ``b`` draws from its own
        generator (``seed`` follows the seed rule of :meth:`SMC.run
        <smcdiff.engine.SMC.run>`, see :data:`smcdiff.engine.SEED_RULE`), so its draws do
        not depend on the rest of the batch. Prompts whose particles all died raise
        :class:`~smcdiff.errors.AllParticlesDeadError` (there is nothing to draw).
        """
        from .engine import make_generators

        k = check_int("k", k, minimum=1)
        dead = self.weights.dead | self.dead.to(self.weights.dead.device)
        if bool(dead.any()):
            raise self._dead_error(torch.nonzero(dead).flatten().tolist(), "sample")
        W = self.weights.normalized().to(torch.float64).cpu()
        gens = make_generators(seed, W.shape[0], "cpu")
        idx = torch.stack([torch.multinomial(W[b], k, replacement=True, generator=gens[b]) for b in range(W.shape[0])])
        idx = idx.to(self.sequences.device)
        seqs = torch.gather(self.sequences, 1, idx[..., None].expand(-1, -1, self.sequences.shape[-1]))
        return seqs, idx

    def save(self, path, meta: dict | None = None):
        """Write this result to ``path`` (``.safetensors``, no pickle; see :mod:`smcdiff.io`); returns the path.

        ``meta`` (JSON-serialisable) is stored beside the tensors, e.g. the run record
        of :mod:`smcdiff.runs` that replays the run.
        """
        from .io import save_result

        return save_result(self, path, meta)

    @classmethod
    def load(cls, path) -> "SMCResult":
        """The result saved at ``path`` by :meth:`save`, every tensor bit for bit (``smcdiff.io.load_result``
        also returns the stored ``meta``)."""
        from .io import load_result

        return load_result(path)[0]

    def to_dict(self, decode=None) -> dict:
        """A JSON-ready summary (sequences, normalised weights, log Z, NFE, ESS, compute counters; with
        ``decode(ids) -> str`` the texts): :func:`smcdiff.io.result_to_dict`."""
        from .io import result_to_dict

        return result_to_dict(self, decode)

    def per_prompt(self, b: int) -> "SMCResult":
        """The result restricted to prompt ``b`` (a batch of one)."""
        b = check_int("b (prompt index)", b)
        if not 0 <= b < self.sequences.shape[0]:
            raise ConfigError(f"prompt index {b} out of range for {self.sequences.shape[0]} prompts")
        sl = slice(b, b + 1)
        recs = [
            StepRecord(
                step=r.step,
                active=r.active[sl],
                log_weight_increment=r.log_weight_increment[sl],
                ess_before=r.ess_before[sl],
                ess_after=r.ess_after[sl],
                resampled=r.resampled[sl],
                ancestors=r.ancestors[sl],
                log_Z_increment=r.log_Z_increment[sl],
                block_end=r.block_end[sl],
                nfe=r.nfe[sl],
                particle_forwards=None if r.particle_forwards is None else r.particle_forwards[sl],
                reward_calls=None if r.reward_calls is None else r.reward_calls[sl],
                reward_texts=None if r.reward_texts is None else r.reward_texts[sl],
            )
            for r in self.records
            if bool(r.active[b])
        ]
        anc = torch.stack([r.ancestors for r in recs]) if recs else self.genealogy.ancestors[:0, sl]
        return SMCResult(
            sequences=self.sequences[sl],
            weights=Weights(self.weights.log_w[sl]),
            log_Z=self.log_Z[sl],
            records=recs,
            genealogy=Genealogy(anc),
            prompt_length=self.prompt_length,
            committed_logp=self.committed_logp[sl],
            commit_step=self.commit_step[sl],
            nfe=self.nfe[sl],
            dead=self.dead[sl],
            extras={k: v[sl] for k, v in self.extras.items()},
            free=None if self.free is None else self.free[sl],
            particle_forwards=None if self.particle_forwards is None else self.particle_forwards[sl],
            reward_calls=None if self.reward_calls is None else self.reward_calls[sl],
            reward_texts=None if self.reward_texts is None else self.reward_texts[sl],
            best_by=self.best_by,
        )
