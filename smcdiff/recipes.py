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
import warnings
from typing import Any, Callable, Sequence

from .engine import SMC
from .errors import ConfigError, check_int
from .rewards import check_decode
from .policies import AdaptiveResampling, AtBlockEnd, EveryKSteps, ResamplingPolicy
from .potentials.base import Potential
from .potentials.confidence import TrajectoryConfidence
from .proposals import (
    AdaptiveSteps,
    AlphaSchedule,
    Ancestral,
    CanvasTopK,
    Categorical,
    Confidence,
    DreamSchedule,
    EntropyBound,
    EvenSplit,
    FactorRule,
    GumbelMax,
    Margin,
    NegEntropy,
    PerStep,
    PlackettLuce,
    RandomK,
    SuppressEOS,
    Threshold,
    TopK,
    UnmaskingKernel,
)
from .proposals.reward_tilt import ExpClip, RewardTilt
from .proposals.tokens import TokenSampler

__all__ = ["llada", "dream", "fast_dllm", "mdlm", "eb_sampler", "sr_smc", "rws", "learned_policy", "build", "RECIPES",
           "token_sampler"]


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
    sampler: str | None = None,
    cache: str | None = None,
    n_particles: int = 1,
    potentials: Sequence[Potential] = (),
    resampling: ResamplingPolicy | None = None,
    max_rows: int | None = None,
    faithful: bool = False,
) -> SMC:
    """LLaDA's sampler (ML-GSAI/LLaDA ``generate``), with its defaults.

    ``steps`` are split evenly over ``gen_length / block_length`` blocks; each step
    commits LLaDA's even-split count. ``remasking="low_confidence"`` commits the
    candidates with the highest untempered probability, ``"random"`` a uniformly
    random subset. ``logits_eos_inf`` sets the EOS logit (the model's first EOS id,
    126081 for LLaDA) to ``-inf``; ``confidence_eos_eot_inf`` gives EOS/EoT
    candidates the lowest confidence (correct at every temperature, LLaDA PR #139).
    ``cfg_scale`` is LLaDA's unsupervised classifier-free guidance. ``sampler`` is
    ``"categorical"`` (default: exact inverse-CDF draws) or ``"gumbel"``
    (``GumbelMax(replay="llada")``: upstream's float64 Gumbel noise over the whole
    canvas at every step).

    ``faithful=True`` replays the released ``generate`` token for token and step
    for step (same seed: upstream ``torch.manual_seed(s)``, here ``seed=[s]``),
    switching each difference to upstream's choice:

    * the mask token stays in the softmax (``mask_token="keep"``): the confidence
      is ``p(x) (1 - p_mask)``-like and may rank positions differently; a run in
      which upstream would commit the mask token raises instead of diverging;
    * the confidence is ``softmax(logits)[x]`` in the model's dtype
      (``Confidence(in_model_dtype=True)``: bfloat16 rounding and its ties);
    * positions are chosen by ``torch.topk`` over the whole canvas row
      (:class:`CanvasTopK`), so ties fall as upstream's on the same device;
      ``remasking="random"`` draws upstream's float32 canvas uniforms;
    * tokens at ``T > 0`` come from ``GumbelMax(replay="llada")``;
    * ``confidence_eos_eot_inf`` acts as the released code does: at ``T = 0`` EOS and
      EoT leave the confidence softmax, at ``T > 0`` only EoT does (a released bug
      that PR #139 fixes; EOS candidates then keep their confidence).

    The defaults (``faithful=False``) stay the principled choices.
    """
    faithful = bool(faithful) if isinstance(faithful, bool) else _bad_bool("faithful", faithful)
    if remasking not in ("low_confidence", "random"):
        raise ConfigError(f"remasking must be 'low_confidence' or 'random'; got {remasking!r}")
    if sampler is None:
        sampler = "gumbel" if faithful else "categorical"
    if faithful and sampler != "gumbel":
        raise ConfigError(f"faithful=True replays upstream's Gumbel noise; sampler must be 'gumbel' (or None); got {sampler!r}")
    transforms = []
    if logits_eos_inf:
        transforms.append(SuppressEOS("sampling"))
    if confidence_eos_eot_inf:
        if faithful and float(temperature) > 0:
            transforms.append(SuppressEOS("score", eot_only=True))
        else:
            transforms.append(SuppressEOS("score", include_eot=True))
    if faithful:
        selector = CanvasTopK(random=remasking == "random")
        score = Confidence(in_model_dtype=True)
    else:
        selector = TopK() if remasking == "low_confidence" else RandomK()
        score = Confidence()
    ts = GumbelMax(temperature, replay="llada") if sampler == "gumbel" else token_sampler(temperature, sampler)
    kernel = UnmaskingKernel(
        ts,
        selector,
        EvenSplit(steps),
        score,
        block_length=block_length,
        transforms=transforms,
        cfg_scale=cfg_scale,
        cache=cache,
        mask_token="keep" if faithful else "suppress",
    )
    return _smc(kernel, gen_length, n_particles, potentials, resampling, max_rows)


def _bad_bool(name: str, value) -> bool:
    raise ConfigError(f"{name} must be True or False; got {value!r} ({type(value).__name__})")


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
    ``cache="dual"`` is ``generate_with_dual_cache`` (the others run only the block,
    with the prefix and the suffix cached); ``cache=None`` is ``generate``.
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
    schedule: str = "loglinear",
    eps: float = 1e-5,
    first_hitting: bool = False,
    temperature: float = 1.0,
    top_p: float | None = None,
    sampler: str = "categorical",
    n_particles: int = 1,
    potentials: Sequence[Potential] = (),
    resampling: ResamplingPolicy | None = None,
    max_rows: int | None = None,
) -> SMC:
    """MDLM's ancestral sampler (kuleshov-group/mdlm ``_sample``), optionally in BD3-LM blocks.

    Upstream rule (``diffusion.py``: ``_sample``, ``_ddpm_update``,
    ``_ddpm_caching_update``; ``noise_schedule.py``): times
    ``t = linspace(1, eps, steps + 1)`` with ``dt = (1 - eps) / steps`` (``eps = 1e-5``,
    the default of ``_sample`` / ``restore_model_and_sample``; ``sampling.steps = 128``).
    At each step every masked position independently stays masked with probability
    ``m(t - dt) / m(t)`` and otherwise takes a token drawn from ``p_theta`` (the
    network's softmax with the mask token excluded, MDLM's ``subs`` parameterisation),
    where ``m = 1 - alpha`` is the masking probability of the noise schedule:

    * ``schedule="loglinear"`` (MDLM's default ``noise: loglinear``; ``"linear"`` is an
      alias): ``m(t) = (1 - 1e-3) t``, so a mask is revealed with probability ``dt / t``;
    * ``schedule="cosine"`` (MDLM ``CosineNoise``): ``alpha(t) = 1e-3 + (1 - 1e-3) cos(pi t / 2)``;
    * ``schedule="dllm_cosine"``: ZHZisZZ/dllm's cosine ``alpha(t) = 1 - cos(pi/2 (1 - t))``
      (not an MDLM schedule).

    The floor ``1e-3`` cancels in ``m(s) / m(t)``. After the ``steps`` steps a position
    is still masked with probability ``m(eps) / m(1)`` (``eps`` for loglinear);
    MDLM's ``noise_removal`` (on by default) then fills those. ``eps = 0`` instead
    makes the last grid step reveal everything (no extra step).

    ``block_length``: BD3-LM's semi-autoregressive decoding (kuleshov-group/bd3lms
    ``_semi_ar_sampler``): the schedule runs once per block, and a block ends as
    soon as it has no masks. ``first_hitting=True`` is BD3-LM's default sampler
    (``sampling.first_hitting``): each step reveals exactly one masked position of the
    block, chosen uniformly, with a token from ``p_theta``; a block then takes
    ``block_length`` steps and ``steps`` / ``schedule`` / ``eps`` are not used (upstream
    needs ``T >= block_length`` for a complete sample). Uniform first-hitting with
    ``block_length = gen_length`` is the MDLM setting of the SR-SMC experiments.

    ``temperature`` (MDLM has none; 1 is upstream) divides the logits; ``top_p``
    truncates ``p_theta`` to a nucleus (BD3-LM ``sampling.nucleus_p``; MDLM has none).

    Deliberate deviations, all in the kernel's exact ``log q`` design:

    * noise removal commits the remaining masks with tokens *drawn* from ``p_theta``
      at ``temperature``; MDLM takes the arg-max. It costs a forward pass only when a
      mask is left, i.e. with probability about ``eps`` per position (loglinear);
    * ``top_p`` uses smcdiff's nucleus rule (Dream's: the token whose cumulative
      probability crosses ``top_p`` is kept); BD3-LM's ``_nucleus_sample`` keeps only
      tokens with cumulative probability ``<= top_p`` (at least one), i.e. one token
      fewer at the boundary;
    * the transfer probability is computed in float64 from the exact times (upstream:
      float32, agreeing to about 1e-7); upstream's categorical over the vocabulary and
      the mask entry is drawn in two exactly equivalent stages (token, then whether
      it is revealed);
    * BD3-LM's non-first-hitting grid (``linspace(1, 0, T)`` with ``dt = 1 / T``) is
      not reproduced: blocks use MDLM's grid; time conditioning (MDLM's default is
      off) and BD3-LM's sliding context window are model matters, not sampler ones.
    """
    ts = token_sampler(temperature, sampler, top_p=top_p)
    if first_hitting:  # one uniformly chosen mask per step, for as many steps as the block has masks
        kernel = UnmaskingKernel(ts, RandomK(), PerStep(1), Confidence(), block_length=block_length)
    else:
        kernel = UnmaskingKernel(
            ts,
            Ancestral(),
            AlphaSchedule(schedule, steps, counts="none", eps=eps),
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


def sr_smc(
    base: SMC | UnmaskingKernel | None = None,
    n_particles: int = 4,
    scheme: str | None = None,
    kappa: float | None = None,
    when: str | EveryKSteps | None = None,
    tempered: bool = False,
    anneal: str | None = None,
    faithful: bool = False,
    family: str = "dllm",
    gen_length: int | None = None,
    max_rows: int | None = None,
) -> SMC:
    """Self-rewarding SMC (arXiv 2602.01849): the base sampler's kernel, trajectory confidence, adaptive resampling.

    The target is the base kernel's path measure tilted by the trajectory
    confidence ``prod_t prod_{j in S_t} p(x_j | x_t)`` (times any potentials the
    base ``SMC`` already has); with the kernel as proposal the incremental weight
    is exactly that product (Proposition 3.1), for any selection rule. Default
    base: ``fast_dllm(threshold=0.9, block_length=32, temperature=1.0)`` (the
    paper's dLLM setting). Use ``result.sample()`` for a draw from the weighted
    particles, ``result.best("trajectory_confidence")`` for the paper's output rule.

    Resampling defaults to systematic, ``kappa = 0.5``, checked at block ends.
    ``faithful=True`` switches the defaults to the released code's choices:
    multinomial resampling, ``kappa = 0.5``, checked at block ends (``family="dllm"``,
    LLaDA and Dream, including after the last block) or every 128 steps
    (``family="mdlm"``); ``scheme``, ``kappa`` and ``when`` given explicitly win
    over either set of defaults. ``tempered=True`` weights by the
    tempered/truncated probability (released Dream code); ``anneal=
    "steps_over_length"`` is the released MDLM annealing. ``max_rows`` defaults to
    the base ``SMC``'s. Warns when the kernel is deterministic (temperature 0 and a
    deterministic selector): then all particles are identical and SMC cannot act.
    Warns when resampling is checked only at block ends and the base sampler has a
    single block (``block_length`` None or ``>= gen_length``): the particles can then
    never be resampled during generation (at most once at the end with ``faithful=True``)
    and SR-SMC degenerates to weighted best-of-N; pass ``when="every_step"`` or
    ``when=EveryKSteps(k)`` to resample during generation, or use smaller blocks.

    The returned ``SMC`` has ``best_by="trajectory_confidence"``, so ``result.best()``
    applies the paper's output rule.
    """
    if family not in ("dllm", "mdlm"):
        raise ConfigError(f"family must be 'dllm' or 'mdlm'; got {family!r}")
    base = fast_dllm(threshold=0.9, block_length=32, temperature=1.0) if base is None else base
    smc = base if isinstance(base, SMC) else SMC(base)
    released = dict(scheme="multinomial", kappa=0.5, when="block_end" if family == "dllm" else EveryKSteps(128))
    defaults = released if faithful else dict(scheme="systematic", kappa=0.5, when="block_end")
    chosen = {k: defaults[k] if v is None else v for k, v in dict(scheme=scheme, kappa=kappa, when=when).items()}
    policy = AdaptiveResampling(chosen["kappa"], chosen["scheme"], chosen["when"], final=faithful)
    if n_particles > 1 and getattr(smc.proposal, "is_deterministic", False):
        warnings.warn(_DETERMINISTIC_SMC, UserWarning, stacklevel=2)
    g = gen_length or smc.gen_length
    bl = getattr(smc.proposal, "block_length", None)
    at_block_end = chosen["when"] == "block_end" or isinstance(chosen["when"], AtBlockEnd)
    if n_particles > 1 and at_block_end and (bl is None or (g is not None and bl >= g)):
        warnings.warn(
            f"sr_smc: resampling is checked only at block ends (when={chosen['when']!r}) but the base sampler has a "
            f"single block (block_length={bl}, gen_length={g}), so the particles are never resampled during "
            f"generation{' (only once at the end, faithful=True)' if faithful else ''}: this is weighted best-of-N, "
            f"not SMC. Pass when='every_step' or when=EveryKSteps(k) to resample during generation, or give the "
            f"base sampler several blocks (a smaller block_length).",
            UserWarning,
            stacklevel=2,
        )
    potentials = [*smc.potentials, TrajectoryConfidence(tempered=tempered, anneal=anneal)]
    return SMC(smc.proposal, potentials, n_particles=n_particles, resampling=policy,
               max_rows=smc.max_rows if max_rows is None else max_rows, gen_length=g,
               best_by="trajectory_confidence")


_DETERMINISTIC_SMC = (
    "SR-SMC with a deterministic kernel (temperature 0, or top_k=1, and a deterministic selector): all particles "
    "are identical and have equal weights, so SMC cannot act (it is the plain sampler at N times the cost)"
)


def rws(
    reward: Any,
    gen_length: int = 128,
    steps: int | None = None,
    block_length: int | None = None,
    temperature: float = 0.0,
    scale: Callable | None = None,
    scale_sampling: bool = True,
    decode: Callable | None = None,
    selection: str = "topk",
    alg_temp: float = 1.0,
    sampler: str = "categorical",
    n_particles: int = 1,
    potentials: Sequence[Potential] = (),
    resampling: ResamplingPolicy | None = None,
    max_rows: int | None = None,
    tokens_per_step: int | None = None,
) -> SMC:
    """Reward-weighted sampling (arXiv 2509.00707) on LLaDA's sampler, as a reward-tilted kernel.

    Each step: fill the masks with the current predictions, score the sequence
    once per row with ``reward`` (normalise it, e.g. with
    :class:`~smcdiff.rewards.NormalizedReward`), map it to ``r = scale(s)``
    (default ``ExpClip()``) and use ``r * logits`` for the confidences (and for
    sampling when ``scale_sampling``). Defaults: two tokens per step
    (``steps = gen_length / 2``) and one block, as in the paper's illustration.

    ``selection="topk"``: the paper's sampler; the tilted kernel is its own target
    (no weight correction; with ``n_particles > 1`` independent runs). ``selection=
    "plackett_luce"``: positions drawn by Plackett-Luce at ``alg_temp``; the tilt is
    then a proposal and the engine weights by ``log K - log q``, so the particles
    target the *untilted* Plackett-Luce kernel times ``potentials``.

    ``decode`` turns token ids into the reward's input and must accept
    ``decode(ids: list[int], cut_eos: bool = True)`` (called as ``decode(ids)`` on the
    generated span, ``decode(ids, cut_eos=False)`` on the prompt); it is checked here,
    when the recipe is built. Default: :meth:`~smcdiff.rewards.Decoder.for_model`
    (the model's tokenizer, cut at the first EOS, masks dropped). The result's
    ``reward_calls`` / ``reward_texts`` count the reward's work.

    ``tokens_per_step=k`` commits ``k`` positions per step until a block is full
    (:class:`~smcdiff.proposals.PerStep`) instead of spreading ``steps`` evenly; use it
    for :meth:`~smcdiff.SMC.infill` with templates whose masked spans differ in length
    (at ``k = 2`` a loop of 10 residues takes 5 steps, one of 20 takes 10; a fixed
    ``steps`` would spread both over the same number of steps). It excludes ``steps``.
    """
    gen_length = check_int("gen_length", gen_length, minimum=1)
    check_decode(decode)
    if tokens_per_step is not None:
        if steps is not None:
            raise ConfigError(f"give steps or tokens_per_step, not both; got steps={steps!r}, "
                              f"tokens_per_step={tokens_per_step!r}")
        schedule = PerStep(check_int("tokens_per_step", tokens_per_step, minimum=1))
    else:
        schedule = EvenSplit(steps if steps is not None else max(1, gen_length // 2))
    tilt = RewardTilt(reward, scale or ExpClip(), stage="sampling" if scale_sampling else "score", decode=decode)
    if selection == "topk":
        selector, target = TopK(), "proposal"
    elif selection == "plackett_luce":
        selector, target = PlackettLuce(alg_temp), "model"
    else:
        raise ConfigError(f"selection must be 'topk' or 'plackett_luce'; got {selection!r}")
    kernel = UnmaskingKernel(
        token_sampler(temperature, sampler), selector, schedule, Confidence(),
        block_length=block_length, transforms=[tilt], target=target,
    )
    return _smc(kernel, gen_length, n_particles, potentials, resampling, max_rows)


def learned_policy(
    policy: str,
    gen_length: int = 128,
    block_length: int | None = None,
    mode: str = "bernoulli",
    policy_temperature: float = 1.0,
    beta: float = 1.0,
    fallback: bool = True,
    stop_logit: float = 0.0,
    tokens: str = "greedy",
    temperature: float = 1.0,
    n_particles: int = 1,
    potentials: Sequence[Potential] = (),
    resampling: ResamplingPolicy | None = None,
    max_rows: int | None = None,
) -> SMC:
    """A learned unmasking policy (arXiv 2512.09106) as the selector: :func:`smcdiff.proposals.learned.policy_kernel`.

    ``policy``: a shipped policy name (``smcdiff.proposals.learned.available_policies()``) or a saved
    policy's path. ``mode="bernoulli"`` (independent commits, ``fallback``: at least one) or ``"dpls"``
    (dynamic Plackett-Luce with STOP); ``policy_temperature`` divides the policy's logits, ``beta`` scales
    its probabilities at test time. Tokens are the model's arg-max (``tokens="greedy"``, the paper) or
    drawn at ``temperature`` (``"sample"``). The policy reports the exact probability of its action, so
    with ``potentials`` and ``n_particles > 1`` this is SMC whose weights are the potentials only.
    """
    from .proposals.learned import policy_kernel

    kernel = policy_kernel(policy, mode=mode, temperature=policy_temperature, beta=beta, fallback=fallback,
                           stop_logit=stop_logit, block_length=block_length, tokens=tokens,
                           token_temperature=temperature)
    return _smc(kernel, gen_length, n_particles, potentials, resampling, max_rows)


RECIPES: dict[str, Callable[..., SMC]] = {
    "llada": llada,
    "dream": dream,
    "fast_dllm": fast_dllm,
    "mdlm": mdlm,
    "eb_sampler": eb_sampler,
    "sr_smc": sr_smc,
    "rws": rws,
    "learned_policy": learned_policy,
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
