"""Checks a user can run on their own proposals and potentials.

* :func:`check_proper_weighting` (exact): for every final sequence ``s``,
  ``sum_paths q(path) w(path) 1{x = s}`` must equal the unnormalised target
  ``gamma(s)``. The left side walks the proposal with the engine's weights; the
  right side walks the reference (model) kernel with the potentials only, or is
  given explicitly.
  It also requires ``sum_paths q(path) = 1``: the reported path probabilities
  must form a distribution.
* :func:`check_sampling_law` (statistical): the proposal's draws must follow the
  law its reported ``log q`` describes. The exact check above only uses the
  *reported* probabilities; this one compares them with what the proposal
  actually draws, so a sampler that draws from one law and reports another is
  caught.
* :func:`check_unbiasedness` (statistical): over R independent SMC runs, run as
  R rows of one batch, the mean of ``Z_hat / Z`` must be within ``k`` standard
  errors of 1.

What each check can see: when the proposal *is* the model kernel and no
``target`` is given, the target is enumerated from the same kernel, so
:func:`check_proper_weighting` then checks only the normalisation of ``log q``
and the engine's bookkeeping of the potentials (the report says so with
``self_referential=True``); pass ``target=`` from an independent computation to
check the potentials' values, and run :func:`check_sampling_law` to check that
the draws match ``log q``. :func:`check_components` runs all three.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch

from ..engine import SMC
from ..errors import ConfigError
from ..potentials.base import Potential
from ..proposals.base import Proposal
from .enumerate import enumerate_paths, exact_log_Z

__all__ = [
    "ComponentReport",
    "check_components",
    "ProperWeightingReport",
    "check_proper_weighting",
    "SamplingLawReport",
    "check_sampling_law",
    "UnbiasednessReport",
    "check_unbiasedness",
]


def _reference_kernel(proposal: Proposal, reference: Proposal | None) -> Proposal:
    """The model kernel defining the target: ``reference``, the proposal's ``reference``, or the proposal."""
    ref = reference if reference is not None else getattr(proposal, "reference", None)
    if ref is not None:
        return ref
    if not proposal.is_model_kernel:
        raise ConfigError(
            "the proposal is not the model kernel and has no `reference`; pass reference= (the model "
            "kernel) or target= (gamma(s))"
        )
    return proposal


def _run_rows(smc: SMC, model, prompt: Sequence[int] | None, gen_length: int | None, n: int, seed: int, template=None):
    """``n`` independent runs of ``smc`` from one prompt (or template), as ``n`` rows of one batch."""
    if template is not None:
        return smc.infill(model, [list(template)] * n, seed=seed)
    if prompt is None or len(prompt) == 0:
        return smc.run(model, None, gen_length, seed=seed, batch_size=n)
    return smc.run(model, torch.tensor([list(prompt)] * n, dtype=torch.long), gen_length, seed=seed)


@dataclass(frozen=True)
class ProperWeightingReport:
    """Result of :func:`check_proper_weighting`.

    Attributes:
        passed: every ``|lhs(s) - gamma(s)| <= atol`` and ``|sum_paths q - 1| <= atol``.
        max_abs_error: the largest difference over all sequences.
        lhs: ``{s: sum_paths q w 1{x=s}}`` from the proposal.
        target: ``{s: gamma(s)}``.
        log_Z_proposal / log_Z_target: ``log`` of the total masses of the two sides.
        n_paths: number of proposal paths enumerated.
        total_q: ``sum_paths q``, which must be one.
        self_referential: the target was enumerated from the proposal itself (a
            model kernel without ``target=``): then only the normalisation and the
            bookkeeping of the weights are checked, not the potentials' values.
    """

    passed: bool
    max_abs_error: float
    lhs: Mapping[tuple[int, ...], float]
    target: Mapping[tuple[int, ...], float]
    log_Z_proposal: float
    log_Z_target: float
    n_paths: int
    atol: float
    total_q: float = 1.0
    self_referential: bool = False

    def __str__(self) -> str:
        verdict = "properly weighted" if self.passed else "NOT properly weighted"
        out = (
            f"{verdict}: max |sum q w 1{{x=s}} - gamma(s)| = {self.max_abs_error:.3e} (atol {self.atol:g}) over "
            f"{len(self.target)} sequences and {self.n_paths} proposal paths; sum_paths q = {self.total_q:.12f}; "
            f"log Z = {self.log_Z_proposal:.12f} (proposal) vs {self.log_Z_target:.12f} (target)"
        )
        if self.self_referential:
            out += (
                "; the target was enumerated from the proposal itself, so only the normalisation of log q was "
                "checked (give target= from an independent computation, and see check_sampling_law)"
            )
        return out


def check_proper_weighting(
    proposal: Proposal,
    model,
    prompt: Sequence[int] | None = None,
    gen_length: int | None = None,
    potentials: Sequence[Potential] | Potential = (),
    *,
    reference: Proposal | None = None,
    target: Mapping[tuple[int, ...], float] | Callable[[tuple[int, ...]], float] | None = None,
    atol: float = 1e-9,
    template: Sequence[int] | None = None,
    max_seconds: float | None = 60.0,
) -> ProperWeightingReport:
    """Exact proper-weighting check on a toy model.

    Args:
        proposal: the proposal under test.
        model: a toy denoiser small enough to enumerate.
        prompt: prompt tokens (or None).
        gen_length: generated positions.
        potentials: the potentials of the target.
        reference: the model kernel defining the target. Default: the proposal's
            ``reference`` attribute if it has one, else the proposal itself (which
            must then be a model kernel).
        target: give ``gamma(s)`` directly instead (a dict, or a function of the
            generated tuple evaluated on all ``V ** gen_length`` generations), e.g. from an
            independent computation.
        atol: absolute tolerance on each ``gamma(s)`` and on ``sum_paths q = 1``.
        template: a 1-D list of ids with the mask id at the free positions, in place of
            ``prompt`` + ``gen_length`` (sequences ``s`` are then the free positions' tokens).
        max_seconds: see :func:`~smcdiff.theory_checks.enumerate_paths`.
    """
    kw = dict(template=template, max_seconds=max_seconds)
    lhs_enum = enumerate_paths(proposal, model, prompt, gen_length, potentials, **kw)
    lhs = lhs_enum.unnormalized_target()
    self_ref = False
    if target is None:
        ref = _reference_kernel(proposal, reference)
        self_ref = ref is proposal
        tgt_enum = lhs_enum if self_ref else enumerate_paths(ref, model, prompt, gen_length, potentials, **kw)
        tgt = tgt_enum.unnormalized_target()
    elif callable(target):
        import itertools

        # evaluate gamma on every possible generation, so a proposal that misses part of the
        # target's support is caught
        n_free = int(gen_length) if template is None else sum(int(t) == int(model.mask_id) for t in template)
        every = itertools.product(range(int(model.vocab_size)), repeat=n_free)
        tgt = {s: float(target(s)) for s in every}
    else:
        tgt = {tuple(k): float(v) for k, v in target.items()}
    keys = set(lhs) | set(tgt)
    err = max((abs(lhs.get(s, 0.0) - tgt.get(s, 0.0)) for s in keys), default=0.0)
    tz = sum(tgt.values())
    total_q = math.exp(lhs_enum.total_log_q)
    return ProperWeightingReport(
        passed=err <= atol and abs(total_q - 1.0) <= atol,
        max_abs_error=err,
        lhs=lhs,
        target=tgt,
        log_Z_proposal=lhs_enum.log_Z,
        log_Z_target=math.log(tz) if tz > 0 else -math.inf,
        n_paths=lhs_enum.n_paths,
        atol=atol,
        total_q=total_q,
        self_referential=self_ref,
    )


@dataclass(frozen=True)
class SamplingLawReport:
    """Result of :func:`check_sampling_law`.

    Attributes:
        passed: every sequence's frequency is within ``k`` standard errors of its
            probability, and no sequence of probability zero was drawn.
        max_z: the largest ``|freq(s) - q(s)| / sqrt(q(s) (1 - q(s)) / R)``.
        worst: the sequence attaining it.
        n_draws: R.
        k: the tolerance in standard errors.
        unexpected: sequences drawn although their probability is zero.
    """

    passed: bool
    max_z: float
    worst: tuple[int, ...] | None
    n_draws: int
    k: float
    unexpected: tuple[tuple[int, ...], ...] = ()

    def __str__(self) -> str:
        verdict = "draws follow the reported law" if self.passed else "draws do NOT follow the reported law"
        extra = f"; {len(self.unexpected)} drawn sequence(s) have probability zero" if self.unexpected else ""
        return f"{verdict}: max |freq - q| = {self.max_z:.2f} SE at {self.worst} (R = {self.n_draws}, tolerance {self.k:g} SE){extra}"


def check_sampling_law(
    proposal: Proposal,
    model,
    prompt: Sequence[int] | None = None,
    gen_length: int | None = None,
    *,
    n_draws: int = 4000,
    seed: int = 0,
    k: float = 5.0,
    template: Sequence[int] | None = None,
    max_seconds: float | None = 60.0,
) -> SamplingLawReport:
    """Statistical check that the proposal draws from the law its ``log q`` reports.

    Enumerates the law of the final sequence, ``q(s) = sum_paths q * 1{x = s}``
    (from the reported path probabilities), draws ``n_draws`` sequences with the
    proposal (N = 1, no potentials, as rows of one batch) and compares each
    sequence's frequency with ``q(s)``: it passes when every ``|freq - q|`` is
    within ``k`` binomial standard errors and nothing of probability zero is drawn.
    ``k = 5`` keeps the chance of a false alarm below about ``6e-7`` per sequence.
    """
    from ..policies import NeverResample

    if n_draws < 2:
        raise ConfigError(f"n_draws must be >= 2; got {n_draws}")
    law = enumerate_paths(proposal, model, prompt, gen_length, template=template, max_seconds=max_seconds).proposal_law()
    smc = SMC(proposal, [], n_particles=1, resampling=NeverResample())
    res = _run_rows(smc, model, prompt, gen_length, n_draws, seed, template)
    gen = [res.filled(b, 0) for b in range(n_draws)]
    counts: dict[tuple[int, ...], int] = {}
    for g in gen:
        counts[tuple(g)] = counts.get(tuple(g), 0) + 1
    unexpected = tuple(sorted(s for s in counts if law.get(s, 0.0) <= 0.0))
    max_z, worst = 0.0, None
    for s, q in law.items():
        se = math.sqrt(max(q * (1.0 - q), 0.0) / n_draws)
        diff = abs(counts.get(s, 0) / n_draws - q)
        z = diff / se if se > 0 else (0.0 if diff <= 1e-12 else math.inf)
        if z > max_z:
            max_z, worst = z, s
    return SamplingLawReport(
        passed=max_z <= k and not unexpected, max_z=max_z, worst=worst, n_draws=n_draws, k=k, unexpected=unexpected
    )


@dataclass(frozen=True)
class UnbiasednessReport:
    """Result of :func:`check_unbiasedness`.

    Attributes:
        ratio_mean: mean of ``Z_hat / Z`` over the runs.
        standard_error: its standard error (sample std / sqrt(R)).
        z_score: ``(ratio_mean - 1) / standard_error``.
        n_runs: R.
        k: the tolerance in standard errors.
        passed: ``|ratio_mean - 1| <= k * standard_error`` (or within 1e-9 when the
            estimator has no variance).
        log_Z: the exact log normalising constant.
    """

    ratio_mean: float
    standard_error: float
    z_score: float
    n_runs: int
    k: float
    passed: bool
    log_Z: float

    def __str__(self) -> str:
        return (
            f"E[Z_hat]/Z = {self.ratio_mean:.4f} +- {self.standard_error:.4f} (z = {self.z_score:+.2f}, "
            f"R = {self.n_runs}, tolerance {self.k:g} SE): {'unbiased' if self.passed else 'BIASED'}"
        )


def check_unbiasedness(
    smc: SMC,
    model,
    prompt: Sequence[int] | None = None,
    gen_length: int | None = None,
    *,
    n_runs: int = 2000,
    seed: int = 0,
    k: float = 5.0,
    log_Z: float | None = None,
    reference: Proposal | None = None,
    template: Sequence[int] | None = None,
    max_seconds: float | None = 60.0,
) -> UnbiasednessReport:
    """Statistical check that ``E[Z_hat] = Z`` for an SMC configuration on a toy model.

    The R runs are R rows of one batched run (row seeds from ``seed``). The exact
    ``log Z`` is enumerated with the reference kernel (the proposal's
    ``reference`` or the proposal itself) unless given.
    """
    if n_runs < 2:
        raise ConfigError(f"n_runs must be >= 2; got {n_runs}")
    if log_Z is None:
        log_Z = exact_log_Z(
            _reference_kernel(smc.proposal, reference), model, prompt, gen_length, smc.potentials,
            template=template, max_seconds=max_seconds,
        )
    res = _run_rows(smc, model, prompt, gen_length, n_runs, seed, template)
    ratio = torch.exp(res.log_Z - log_Z)
    mean = float(ratio.mean())
    se = float(ratio.std(unbiased=True) / math.sqrt(n_runs))
    if se == 0.0:
        passed = abs(mean - 1.0) <= 1e-9
        z = 0.0 if passed else math.inf
    else:
        z = (mean - 1.0) / se
        passed = abs(z) <= k
    return UnbiasednessReport(
        ratio_mean=mean, standard_error=se, z_score=z, n_runs=n_runs, k=k, passed=passed, log_Z=float(log_Z)
    )


@dataclass(frozen=True)
class ComponentReport:
    """The three checks for a user's proposal and potentials on a toy model."""

    proper_weighting: ProperWeightingReport
    unbiasedness: UnbiasednessReport
    sampling_law: SamplingLawReport | None = None

    @property
    def passed(self) -> bool:
        law_ok = self.sampling_law is None or self.sampling_law.passed
        return self.proper_weighting.passed and self.unbiasedness.passed and law_ok

    def __str__(self) -> str:
        law = "" if self.sampling_law is None else f"\n{self.sampling_law}"
        return f"{self.proper_weighting}{law}\n{self.unbiasedness}"


def check_components(
    proposal: Proposal,
    model,
    prompt: Sequence[int] | None = None,
    gen_length: int | None = None,
    potentials: Sequence[Potential] | Potential = (),
    *,
    n_particles: int = 4,
    resampling=None,
    n_runs: int = 2000,
    seed: int = 0,
    k: float = 5.0,
    reference: Proposal | None = None,
    atol: float = 1e-9,
    template: Sequence[int] | None = None,
    max_seconds: float | None = 60.0,
) -> ComponentReport:
    """Is ``proposal`` (with ``potentials``) properly weighted, and is its SMC estimate unbiased?

    Runs :func:`check_proper_weighting` (exact), :func:`check_sampling_law`
    (the draws follow the reported ``log q``, over ``n_runs`` draws) and
    :func:`check_unbiasedness` (``E[Z_hat]/Z`` with its standard error over
    ``n_runs`` runs of ``n_particles``) on a toy model. ``reference`` is the model
    kernel defining the target (default: the proposal's ``reference``, or the
    proposal itself).
    """
    from ..policies import AlwaysResample

    kw = dict(template=template, max_seconds=max_seconds)
    pw = check_proper_weighting(proposal, model, prompt, gen_length, potentials, reference=reference, atol=atol, **kw)
    law = check_sampling_law(proposal, model, prompt, gen_length, n_draws=n_runs, seed=seed + 1, k=k, **kw)
    smc = SMC(proposal, potentials, n_particles=n_particles, resampling=resampling or AlwaysResample())
    ub = check_unbiasedness(smc, model, prompt, gen_length, n_runs=n_runs, seed=seed, k=k, reference=reference, **kw)
    return ComponentReport(pw, ub, law)
