"""Ready-made samplers: short compositions of the library's parts with upstream defaults.

Every recipe returns an :class:`~smcdiff.engine.SMC` whose ``run(model, prompts,
seed=...)`` generates ``gen_length`` tokens per prompt. ``n_particles = 1`` is
the plain upstream sampler; ``n_particles > 1`` runs independent particles
(their weights stay equal) unless ``potentials`` are given, in which case it is
SMC targeting the sampler's path measure tilted by the potentials.

Token sampling at ``temperature > 0`` uses the exact inverse-CDF sampler by
default (``sampler="categorical"``); ``sampler="gumbel"`` draws float64 Gumbel
noise over the whole vocabulary exactly as the upstream code does (same law,
slower; use it to replay upstream noise).

Use :func:`build` to make a recipe from a configuration dictionary; unknown keys
raise :class:`~smcdiff.errors.ConfigError` naming them.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

from .engine import SMC
from .errors import ConfigError
from .policies import AdaptiveResampling, ResamplingPolicy
from .potentials.base import Potential
from .proposals import (
    AdaptiveSteps,
    AlphaSchedule,
    Ancestral,
    Categorical,
    Confidence,
    DreamSchedule,
    EntropyBound,
    EvenSplit,
    FactorRule,
    GumbelMax,
    Margin,
    NegEntropy,
    PlackettLuce,
    RandomK,
    SuppressEOS,
    Threshold,
    TopK,
    UnmaskingKernel,
)
from .proposals.tokens import TokenSampler

__all__ = ["llada", "dream", "fast_dllm", "mdlm", "eb_sampler", "build", "RECIPES", "token_sampler"]


def token_sampler(temperature: float, sampler: str = "categorical", top_p: float | None = None, top_k: int | None = None) -> TokenSampler:
    """``Categorical`` or ``GumbelMax`` at ``temperature`` with optional truncation."""
    if sampler == "categorical":
        return Categorical(temperature, top_p=top_p, top_k=top_k)
    if sampler == "gumbel":
        return GumbelMax(temperature, top_p=top_p, top_k=top_k)
    raise ConfigError(f"sampler must be 'categorical' or 'gumbel'; got {sampler!r}")


def _smc(kernel, gen_length, n_particles, potentials, resampling, max_rows, on_all_dead="raise") -> SMC:
    return SMC(
        kernel,
        list(potentials),
        n_particles=n_particles,
        resampling=resampling if resampling is not None else AdaptiveResampling(),
        max_rows=max_rows,
        gen_length=gen_length,
        on_all_dead=on_all_dead,
    )


def llada(
    steps: int = 128,
    gen_length: int = 128,
    block_length: int = 128,
    temperature: float = 0.0,
    cfg_scale: float = 0.0,
    remasking: str = "low_confidence",
    logits_eos_inf: bool = False,
    confidence_eos_eot_inf: bool = False,
    sampler: str = "categorical",
    cache: str | None = None,
    n_particles: int = 1,
    potentials: Sequence[Potential] = (),
    resampling: ResamplingPolicy | None = None,
    max_rows: int | None = None,
) -> SMC:
    """LLaDA's sampler (ML-GSAI/LLaDA ``generate``), with its defaults.

    ``steps`` are split evenly over ``gen_length / block_length`` blocks; each step
    commits LLaDA's even-split count. ``remasking="low_confidence"`` commits the
    candidates with the highest untempered probability, ``"random"`` a uniformly
    random subset. ``logits_eos_inf`` sets the EOS logit (the model's first EOS id,
    126081 for LLaDA) to ``-inf``; ``confidence_eos_eot_inf`` gives EOS/EoT
    candidates the lowest confidence (correct at every temperature, LLaDA PR #139).
    ``cfg_scale`` is LLaDA's unsupervised classifier-free guidance.
    """
    if remasking == "low_confidence":
        selector = TopK()
    elif remasking == "random":
        selector = RandomK()
    else:
        raise ConfigError(f"remasking must be 'low_confidence' or 'random'; got {remasking!r}")
    transforms = []
    if logits_eos_inf:
        transforms.append(SuppressEOS("sampling"))
    if confidence_eos_eot_inf:
        transforms.append(SuppressEOS("score", include_eot=True))
    kernel = UnmaskingKernel(
        token_sampler(temperature, sampler),
        selector,
        EvenSplit(steps),
        Confidence(),
        block_length=block_length,
        transforms=transforms,
        cfg_scale=cfg_scale,
        cache=cache,
    )
    return _smc(kernel, gen_length, n_particles, potentials, resampling, max_rows)


_DREAM_SCORES = {"maskgit_plus": Confidence(tempered=True), "topk_margin": Margin(tempered=True), "entropy": NegEntropy(tempered=True)}


def dream(
    steps: int = 512,
    gen_length: int = 512,
    temperature: float = 0.0,
    top_p: float | None = None,
    top_k: int | None = None,
    eps: float = 1e-3,
    alg: str = "origin",
    alg_temp: float | None = None,
    sampler: str = "categorical",
    block_length: int | None = None,
    n_particles: int = 1,
    potentials: Sequence[Potential] = (),
    resampling: ResamplingPolicy | None = None,
    max_rows: int | None = None,
) -> SMC:
    """Dream's sampler (``diffusion_generate`` in Dream's ``generation_utils.py``), with its defaults.

    Timesteps ``linspace(1, eps, steps + 1)``. ``alg="origin"``: each mask is
    revealed with probability ``1 - s/t`` (all at the last step) with a sampled
    token. ``"maskgit_plus"`` / ``"topk_margin"`` / ``"entropy"``: commit
    ``int(m (1 - s/t))`` positions (all at the last step) ranked by the sampled
    token's tempered probability, the top-1 minus top-2 margin, or the negative
    entropy; ``alg_temp > 0`` draws them without replacement from
    ``softmax(score / alg_temp)`` (Plackett-Luce) instead of taking the top.
    Dream has no blocks (``block_length`` defaults to ``gen_length``). The model
    adapter handles Dream's shifted logits.
    """
    ts = token_sampler(temperature, sampler, top_p=top_p, top_k=top_k)
    schedule = DreamSchedule(steps, eps)
    if alg == "origin":
        kernel = UnmaskingKernel(ts, Ancestral(), schedule, Confidence(tempered=True), block_length=block_length)
    elif alg in _DREAM_SCORES:
        sel = PlackettLuce(alg_temp) if alg_temp else TopK()
        kernel = UnmaskingKernel(ts, sel, schedule, _DREAM_SCORES[alg], block_length=block_length)
    else:
        raise ConfigError(f"alg must be one of 'origin', {', '.join(map(repr, _DREAM_SCORES))}; got {alg!r}")
    return _smc(kernel, gen_length, n_particles, potentials, resampling, max_rows)


def fast_dllm(
    steps: int = 128,
    gen_length: int = 128,
    block_length: int = 32,
    temperature: float = 0.0,
    threshold: float | None = 0.9,
    factor: float | None = None,
    cache: str | None = None,
    sampler: str = "categorical",
    n_particles: int = 1,
    potentials: Sequence[Potential] = (),
    resampling: ResamplingPolicy | None = None,
    max_rows: int | None = None,
) -> SMC:
    """Fast-dLLM's LLaDA sampler (NVlabs/Fast-dLLM ``llada/generate.py``).

    ``threshold``: commit every masked position of the block whose confidence is at
    least the threshold, and always the most confident one. ``factor``: the
    dynamic factor rule (``get_transfer_index_dynamic``; takes precedence over the
    threshold, as upstream). Neither: LLaDA's even split over ``steps``.
    ``cache="prefix"`` is ``generate_with_prefix_cache`` (the first step of each
    block runs the full canvas, the others run the suffix with the cached prefix);
    ``cache=None`` is ``generate``.
    """
    if factor is not None:
        selector, schedule = FactorRule(factor), AdaptiveSteps()
    elif threshold is not None:
        selector, schedule = Threshold(threshold), AdaptiveSteps()
    else:
        selector, schedule = TopK(), EvenSplit(steps)
    kernel = UnmaskingKernel(
        token_sampler(temperature, sampler), selector, schedule, Confidence(), block_length=block_length, cache=cache
    )
    return _smc(kernel, gen_length, n_particles, potentials, resampling, max_rows)


def mdlm(
    steps: int = 128,
    gen_length: int = 128,
    block_length: int | None = None,
    schedule: str = "linear",
    temperature: float = 1.0,
    top_p: float | None = None,
    sampler: str = "categorical",
    n_particles: int = 1,
    potentials: Sequence[Potential] = (),
    resampling: ResamplingPolicy | None = None,
    max_rows: int | None = None,
) -> SMC:
    """MDLM ancestral sampling (kuleshov-group/mdlm), optionally in BD3-LM blocks.

    At step ``j`` of ``steps`` (per block) every mask is committed independently
    with probability ``(alpha_s - alpha_t) / (1 - alpha_t)`` for the ``linear`` or
    ``cosine`` alpha schedule, with a token drawn from ``p_theta`` at
    ``temperature`` (optionally nucleus-truncated with ``top_p``).
    """
    kernel = UnmaskingKernel(
        token_sampler(temperature, sampler, top_p=top_p),
        Ancestral(),
        AlphaSchedule(schedule, steps, counts="none"),
        Confidence(),
        block_length=block_length,
    )
    return _smc(kernel, gen_length, n_particles, potentials, resampling, max_rows)


def eb_sampler(
    gamma: float = 0.1,
    gen_length: int = 128,
    block_length: int | None = None,
    temperature: float = 0.0,
    sampler: str = "categorical",
    n_particles: int = 1,
    potentials: Sequence[Potential] = (),
    resampling: ResamplingPolicy | None = None,
    max_rows: int | None = None,
) -> SMC:
    """EB-sampler (arXiv 2505.24857): commit the lowest-entropy positions within an entropy budget.

    Positions are sorted by the entropy of the untempered model distribution; the
    largest prefix with ``sum H - max H <= gamma`` is committed (at least one).
    """
    kernel = UnmaskingKernel(
        token_sampler(temperature, sampler),
        EntropyBound(gamma),
        AdaptiveSteps(),
        NegEntropy(),
        block_length=block_length,
    )
    return _smc(kernel, gen_length, n_particles, potentials, resampling, max_rows)


RECIPES: dict[str, Callable[..., SMC]] = {
    "llada": llada,
    "dream": dream,
    "fast_dllm": fast_dllm,
    "mdlm": mdlm,
    "eb_sampler": eb_sampler,
}


def build(name: str, **config: Any) -> SMC:
    """Build a recipe by name from keyword settings, rejecting unknown keys by name."""
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; known recipes: {', '.join(sorted(RECIPES))}")
    fn = RECIPES[name]
    valid = set(inspect.signature(fn).parameters)
    unknown = sorted(set(config) - valid)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {unknown} for recipe {name!r}; valid settings: {', '.join(sorted(valid))}"
        )
    return fn(**config)
