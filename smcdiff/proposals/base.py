"""The proposal protocol and the records a proposal step returns.

A proposal moves every particle from ``x_t`` to ``x_{t-1}`` and reports the
log-probability of the random choices it made, ``log q``. When the proposal is
not the model's own unmasking kernel it also reports the log-probability of the
*same* choices under that kernel, ``log K``, so that the engine can weight by
``log K - log q`` (see :mod:`smcdiff.engine`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch
from torch import Tensor

from ..errors import ConfigError
from ..state import Canvas, ParticleState

__all__ = ["Choice", "ProposalStep", "Proposal", "RowRNG"]


@dataclass(frozen=True)
class Choice:
    """The random choices of one unmasking step, relative to each row's current block.

    Attributes:
        candidates: ``[B, N, Lb]`` long, the candidate clean token drawn at each
            position of the current block (meaningful only where eligible).
        commit: ``[B, N, Lb]`` bool, the positions committed this step.
        extra: other random choices a proposal makes (named tensors ``[B, N, ...]``).
    """

    candidates: Tensor
    commit: Tensor
    extra: Mapping[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class ProposalStep:
    """What one proposal step did, for every prompt and particle.

    Attributes:
        state: the new particle state.
        log_q: ``[B, N]`` float64, log-probability of the choices under the proposal
            (0 for rows that did not step).
        log_k: ``[B, N]`` float64 log-probability of the same choices under the
            model's kernel, or None when the proposal *is* that kernel.
        choice: the choices made (block-relative, see :class:`Choice`).
        eligible: ``[B, N, Lb]`` bool, masked positions of the current block.
        block_positions: ``[B, Lb]`` absolute positions of each row's current block.
        committed: ``[B, N, L]`` bool, positions committed this step.
        committed_logp: ``[B, N, L]`` float64, untempered model log-probability of each
            token committed this step (0 elsewhere).
        active: ``[B]`` bool, rows that took this step.
        block_completed: ``[B, N]`` bool, particles whose current block became fully
            unmasked in this step.
        completed: ``[B, N]`` bool, particles that became fully unmasked in this step.
        block_end: ``[B]`` bool, rows that moved to the next block after this step.
        finished: ``[B]`` bool, rows that are fully generated after this step.
        nfe: ``[B]`` long, denoiser forward passes spent on each row in this step.
        row_forwards: ``[B]`` long, denoiser rows run for each prompt in this step
            (particles x passes, doubled by classifier-free guidance); None means ``nfe * N``.
        aux: further named tensors, e.g. ``"logp_proposal"`` ``[B, N, Lb]`` or
            ``"score"`` ``[B, N, Lb]``.
    """

    state: ParticleState
    log_q: Tensor
    log_k: Tensor | None
    choice: Choice
    eligible: Tensor
    block_positions: Tensor
    committed: Tensor
    committed_logp: Tensor
    active: Tensor
    block_completed: Tensor
    completed: Tensor
    block_end: Tensor
    finished: Tensor
    nfe: Tensor
    aux: Mapping[str, Tensor] = field(default_factory=dict)
    row_forwards: Tensor | None = None

    @property
    def moved(self) -> Tensor:
        """Bool ``[B, N]``: particles that took a kernel step (had masked positions in their block).

        A particle that has finished its block (or the whole sequence) while other
        particles of its prompt have not idles: its state does not change, and
        per-step potentials and twists must not touch its weight.
        """
        return self.eligible.any(dim=-1)


class RowRNG:
    """Per-prompt random numbers: row ``b`` draws only from ``generators[b]``.

    Draws for the active rows are stacked to ``[B_active * N, ...]`` in the
    flattened (prompt, particle) order used by the kernels. Because each prompt
    draws a fixed shape from its own generator, a prompt's randomness does not
    depend on which other prompts share the batch.
    """

    def __init__(
        self,
        generators: Sequence[torch.Generator],
        rows: Sequence[int],
        n_particles: int,
        device: torch.device,
        widths: Sequence[int] | None = None,
        slots: int | None = None,
        positions: Tensor | None = None,
        canvas_length: int | None = None,
        starts: Sequence[int] | None = None,
    ) -> None:
        self.generators = [generators[r] for r in rows]
        self.positions = positions
        self.canvas_length = canvas_length
        self.starts = None if starts is None else [int(v) for v in starts]
        self.n = int(n_particles)
        self.device = device
        self.slots = slots
        self.widths = None
        if widths is not None and slots is not None and any(int(w) != int(slots) for w in widths):
            self.widths = [int(w) for w in widths]

    def uniform(self, *shape: int) -> Tensor:
        """U(0,1) float64 draws of shape ``[B_active * N, *shape]``.

        Templates: when the first dimension is the block's slots and a row's own
        window is narrower, the row draws only its own width (its stream does not
        depend on the batch) and the remaining slots, which are never eligible, get 0.5.
        """
        size = (self.n,) + tuple(shape)
        if not self.generators:
            return torch.zeros((0,) + tuple(shape), dtype=torch.float64, device=self.device)
        if self.widths is not None and shape and shape[0] == self.slots:
            parts = []
            for g, w in zip(self.generators, self.widths):
                u = torch.rand((self.n, w) + tuple(shape[1:]), generator=g, dtype=torch.float64, device=self.device)
                if w < shape[0]:
                    fill = torch.full((self.n, shape[0] - w) + tuple(shape[1:]), 0.5, dtype=torch.float64, device=self.device)
                    u = torch.cat([u, fill], dim=1)
                parts.append(u)
            return torch.cat(parts, dim=0)
        parts = [torch.rand(size, generator=g, dtype=torch.float64, device=self.device) for g in self.generators]
        return torch.cat(parts, dim=0)

    def canvas_uniform(self, *trailing: int, dtype: torch.dtype = torch.float64, at: Tensor | None = None) -> Tensor:
        """U(0,1) draws over the whole canvas, ``[B_active * N, L, *trailing]``, in ``dtype``; with
        ``at`` (positions ``[B_active * N, K]``) only those rows are kept, ``[B_active * N, K, *trailing]``
        (the same stream; one particle's whole-canvas draw is alive at a time).

        Each particle draws one ``[1, L, *trailing]`` tensor from its prompt's
        generator, the stream ML-GSAI/LLaDA ``generate`` draws for a batch of one
        (``torch.rand_like`` on ``[1, P + L_gen, V]`` logits, or ``torch.rand((1, P + L_gen))``).
        Only the kernel knows the canvas: it passes ``canvas_length`` (and the
        block ``positions [B_active * N, Lb]``, used to read the block's rows).
        A left-padded row (its first real position ``starts[b] > 0``) draws over its
        own ``L - starts[b]`` positions only, as that prompt alone would, and its
        padding slots (never eligible) get 0.5: padding changes no stream.
        """
        if self.canvas_length is None:
            raise ConfigError("canvas_uniform needs the canvas length; only UnmaskingKernel steps provide it")
        length = int(self.canvas_length)
        tail = tuple(trailing)
        if not self.generators:
            return torch.zeros((0, length) + tail, dtype=dtype, device=self.device)
        starts = self.starts or [0] * len(self.generators)
        parts = []
        i = 0
        for g, s0 in zip(self.generators, starts):
            for _ in range(self.n):
                u = torch.rand((1, length - s0) + tail, generator=g, dtype=dtype, device=self.device)
                if s0:
                    u = torch.cat([torch.full((1, s0) + tail, 0.5, dtype=dtype, device=self.device), u], dim=1)
                if at is not None:
                    u = u[:, at[i].to(u.device)]
                parts.append(u)
                i += 1
        return torch.cat(parts, dim=0)


class Proposal(ABC):
    """Base class of proposals over unmasking trajectories.

    Subclasses implement :meth:`propose` (draw the choices and report their
    log-probabilities) and :meth:`evaluate` (report the log-probabilities and the
    resulting state for *given* choices, used by exact enumeration). Both must go
    through the same computation so that a drawn choice and the same choice
    evaluated later get identical numbers.
    """

    #: True when the proposal is the model's own kernel (then ``log_k`` is None).
    is_model_kernel: bool = True

    def setup(self, canvas: Canvas, state: ParticleState | None = None) -> None:
        """Validate the proposal against the canvas (and, for templates, the rows' layout in ``state``).

        Called once by ``SMC.init`` / ``SMC.infill`` with the initial state.
        """

    @abstractmethod
    def propose(
        self,
        state: ParticleState,
        model,
        generators: Sequence[torch.Generator],
        *,
        max_rows: int | None = None,
    ) -> ProposalStep:
        """Draw one step for every active prompt and particle."""

    @abstractmethod
    def evaluate(
        self, state: ParticleState, model, choice: Choice, *, max_rows: int | None = None
    ) -> ProposalStep:
        """Apply the given choices and report their log-probabilities (``-inf`` if impossible)."""

    def max_block_steps(self, canvas: Canvas) -> int:
        """An upper bound on the steps one block can take (guards against a selector that stalls)."""
        return 4 * canvas.block_length + 16
