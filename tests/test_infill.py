"""Infilling (``SMC.infill``): templates with masks anywhere, with the exactness of prefix generation.

Exact checks compare enumerations with an independent brute-force computation of the target
(``brute_gamma``: a recursion over commit orders written from the documented window rule, not the
engine's code) to 1e-9. Statistical checks: E[Z_hat]/Z = 1 within 4 standard errors, fixed seeds.
"""

import math
from functools import lru_cache

import pytest
import torch

from smcdiff import (
    SMC,
    AdaptiveResampling,
    AlwaysResample,
    Categorical,
    ConfigError,
    EvenSplit,
    RandomK,
    ToyDenoiser,
    TopK,
    TrajectoryConfidence,
    UnmaskingKernel,
    recipes,
)
from smcdiff.metrics import order_metrics
from smcdiff.potentials.reward import RewardPotential
from smcdiff.proposals import AlphaSchedule, Ancestral, AdaptiveSteps, PlackettLuce, ScoreFn, Threshold
from smcdiff.rewards import CallableReward
from smcdiff.state import template_layout
from smcdiff.theory_checks import (
    check_components,
    check_proper_weighting,
    check_sampling_law,
    check_unbiasedness,
    enumerate_paths,
    exact_log_Z,
    exact_target,
)

V, L = 2, 5
MODEL = ToyDenoiser.random(V, L, seed=23)
MODEL3 = ToyDenoiser.random(V, 3, seed=29)  # fully masked in full diffusion: 3! orders x 2^6 candidates
M = MODEL.mask_id
assert MODEL3.mask_id == M

LAYOUTS = {
    "start": [M, M, 1, 0, 1],
    "middle": [1, M, M, M, 0],
    "two_spans": [M, 1, M, 0, M],
    "full": [M, M, M, M, M],
    "full3": [M, M, M],
}


def model_for(template):
    return MODEL3 if len(template) == 3 else MODEL


def windows(template, block_length):
    """The documented window rule, written independently: lists of free positions per window."""
    free = [i for i, t in enumerate(template) if t == M]
    if block_length is None:
        return [free]
    f = free[0]
    out = []
    k = 0
    while f + k * block_length < len(template):
        w = [i for i in free if f + k * block_length <= i < f + (k + 1) * block_length]
        if w:
            out.append(w)
        k += 1
    return out


def brute_gamma(template, block_length, power, model=MODEL):
    """gamma(s) for uniform random order, one commit per step, exact toy conditionals, temperature 1.

    The path measure of (order, committed tokens) is prod_t (1/m_t) p(x_j | x_t) (the candidates
    drawn at uncommitted positions sum out); the trajectory-confidence potential multiplies each
    step by p(x_j | x_t) ** (power - 1). Returns {tokens at the free positions: gamma}.
    """
    wins = windows(template, block_length)
    free = [i for i, t in enumerate(template) if t == M]

    @lru_cache(maxsize=None)
    def go(canvas, w):
        canvas = list(canvas)
        if w == len(wins):
            return {tuple(canvas[i] for i in free): 1.0}
        left = [i for i in wins[w] if canvas[i] == M]
        if not left:
            return go(tuple(canvas), w + 1)
        probs = torch.exp(model.logits(torch.tensor([canvas]))[0]).tolist()
        out = {}
        for j in left:
            for tok in range(V):
                p = probs[j][tok]
                if p <= 0:
                    continue
                nxt = list(canvas)
                nxt[j] = tok
                for s, g in go(tuple(nxt), w).items():
                    out[s] = out.get(s, 0.0) + g * (1.0 / len(left)) * p**power
        return out

    return go(tuple(template), 0)


def random_order_kernel(block_length, selector="randomk"):
    n_free_max = L
    steps = n_free_max  # more steps than masks per window: the count is min(1, masks) per step
    if selector == "randomk":
        return UnmaskingKernel(Categorical(1.0), RandomK(), EvenSplit(steps * 4), block_length=block_length)
    # Plackett-Luce on equal scores is a uniformly random order, drawn as ranks
    uniform = ScoreFn(lambda logits, cand, lp: torch.zeros(cand.shape))
    return UnmaskingKernel(Categorical(1.0), PlackettLuce(1.0), EvenSplit(steps * 4), score=uniform, block_length=block_length)


GEOMETRIES = [
    ("start", None), ("start", 2), ("middle", None), ("middle", 2), ("two_spans", None), ("two_spans", 2),
    ("full", 2), ("full3", None),  # 5 masks in full diffusion would be 5! x 2^15 paths
]


@pytest.mark.parametrize("layout,block_length", GEOMETRIES, ids=lambda x: str(x))
@pytest.mark.parametrize("selector", ["randomk", "plackett_luce"])
@pytest.mark.parametrize("with_conf", [False, True], ids=["no-potential", "trajectory-confidence"])
def test_exact_target_on_templates_matches_brute_force(layout, block_length, selector, with_conf):
    template = LAYOUTS[layout]
    model = model_for(template)
    kernel = random_order_kernel(block_length, selector)
    gamma = brute_gamma(template, block_length, 2 if with_conf else 1, model)
    pots = [TrajectoryConfidence()] if with_conf else []
    rep = check_proper_weighting(kernel, model, potentials=pots, template=template, target=gamma, atol=1e-9)
    assert rep.passed, str(rep)
    assert rep.log_Z_proposal == pytest.approx(math.log(sum(gamma.values())), abs=1e-9)
    assert exact_log_Z(kernel, model, potentials=pots, template=template) == pytest.approx(
        math.log(sum(gamma.values())), abs=1e-9
    )


def toy_conditional(template, model):
    """p(free tokens | fixed tokens) straight from the toy joint table."""
    free = [i for i, t in enumerate(template) if t == M]
    out = {}
    for cfg, mass in zip(model.configs.tolist(), model._flat.tolist()):
        if all(t == M or cfg[i] == t for i, t in enumerate(template)):
            key = tuple(cfg[i] for i in free)
            out[key] = out.get(key, 0.0) + mass
    z = sum(out.values())
    return {k: v / z for k, v in out.items()}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_one_at_a_time_any_order_samples_the_exact_conditional(layout):
    # with exact conditionals, committing one position per step in any order gives p(free | fixed)
    template = LAYOUTS[layout]
    model = model_for(template)
    law = exact_target(random_order_kernel(2), model, template=template).target()
    ref = toy_conditional(template, model)
    assert set(law) == set(ref)
    assert max(abs(law[k] - ref[k]) for k in ref) < 1e-9


def tilt_kernels(selector, block_length):
    """A proposal with a proposal-only score tilt and its model kernel (stochastic selectors only)."""
    from smcdiff.proposals import LogitsFn

    if selector == "plackett_luce":
        sel, sched = PlackettLuce(0.7), EvenSplit(6)
    else:
        sel, sched = Ancestral(), AlphaSchedule("linear", 3, counts="none")
    tilt = LogitsFn(lambda z, ctx: 0.5 * z, stage="score", in_target=False)
    q = UnmaskingKernel(Categorical(1.0), sel, sched, block_length=block_length, transforms=[tilt])
    return q, q.reference


@pytest.mark.parametrize("layout", ["middle", "two_spans"])
@pytest.mark.parametrize("selector", ["plackett_luce", "ancestral"])
@pytest.mark.parametrize("pot", ["none", "confidence", "reward_twist"])
def test_tilted_proposals_are_properly_weighted_on_templates(layout, selector, pot):
    template = LAYOUTS[layout]
    q, k = tilt_kernels(selector, 2)
    reward = CallableReward(lambda prompt, text: 0.4 * sum(t for t in text if t != M))
    pots = {"none": [], "confidence": [TrajectoryConfidence()], "reward_twist": [RewardPotential(reward, 1.0).as_twist()]}[pot]
    rep = check_proper_weighting(q, MODEL, potentials=pots, template=template, reference=k, atol=1e-9)
    assert rep.passed, str(rep)
    assert abs(rep.total_q - 1.0) < 1e-9


@pytest.mark.parametrize("layout", ["start", "two_spans", "full"])
@pytest.mark.parametrize("selector", ["topk", "threshold"])
def test_deterministic_selectors_normalise_and_follow_their_law(layout, selector):
    # top-k and threshold selection: the model kernel is its own target; check sum q = 1, the
    # bookkeeping of the confidence weights, and that draws follow the reported law (5 SE, 1500 draws)
    template = LAYOUTS[layout]
    if selector == "topk":
        kernel = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(4), block_length=2)
    else:
        kernel = UnmaskingKernel(Categorical(1.0), Threshold(0.5), AdaptiveSteps(), block_length=3)
    rep = check_proper_weighting(kernel, MODEL, potentials=[TrajectoryConfidence()], template=template, atol=1e-9)
    assert rep.passed and abs(rep.total_q - 1.0) < 1e-9, str(rep)
    law = check_sampling_law(kernel, MODEL, template=template, n_draws=1500, seed=3, k=5.0)
    assert law.passed, str(law)


def test_exact_confidence_target_for_topk_against_the_weight_identity():
    # gamma = K * prod p(x_j): the enumeration with the confidence potential equals the plain
    # enumeration times the product of committed probabilities, path by path
    template = LAYOUTS["two_spans"]
    kernel = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(4), block_length=2)
    plain = enumerate_paths(kernel, MODEL, template=template)
    conf = enumerate_paths(kernel, MODEL, potentials=[TrajectoryConfidence()], template=template)
    assert torch.equal(plain.finals, conf.finals)
    # log w of a path = sum of the committed log-probabilities (recomputed from the model along the path)
    for row in range(0, plain.n_paths, max(1, plain.n_paths // 25)):
        steps = plain.commit_steps[row]
        final = plain.finals[row]
        canvas = torch.tensor(template)
        logw = 0.0
        for t in range(1, int(steps.max()) + 1):
            lp = MODEL.logits(canvas[None])[0]
            for j in torch.nonzero(steps == t).flatten().tolist():
                logw += float(lp[j, final[j]])
            canvas = torch.where((steps <= t) & (steps > 0), final, canvas)
        assert conf.log_w[row].item() == pytest.approx(logw, abs=1e-9)


# ---------------------------------------------------------------- E[Z_hat]/Z on templates

K_SE = 4.0


@pytest.mark.slow
@pytest.mark.parametrize("n", [1, 4, 16])
@pytest.mark.parametrize("scheme", ["systematic", "stratified", "residual", "multinomial"])
@pytest.mark.parametrize("when", ["every_step", "block_end"])
def test_Z_hat_is_unbiased_on_templates(n, scheme, when):
    template = LAYOUTS["two_spans"]
    kernel = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(4), block_length=2)
    smc = SMC(kernel, [TrajectoryConfidence()], n_particles=n, resampling=AdaptiveResampling(1.0, scheme, when))
    runs = 600 if n == 16 else 1500
    rep = check_unbiasedness(smc, MODEL, template=template, n_runs=runs, seed=7, k=K_SE)
    assert rep.passed, str(rep)


def test_check_components_on_a_template():
    q, k = tilt_kernels("plackett_luce", None)
    rep = check_components(q, MODEL, potentials=[TrajectoryConfidence()], template=LAYOUTS["middle"], reference=k,
                           n_runs=800, seed=1, k=K_SE)
    assert rep.passed, str(rep)


# ---------------------------------------------------------------- run is the prefix case of infill


@pytest.mark.parametrize(
    "make",
    [
        lambda: recipes.llada(steps=4, gen_length=4, block_length=2, temperature=1.0, n_particles=3),
        lambda: recipes.dream(steps=3, gen_length=4, temperature=1.0, alg="topk_margin", n_particles=2),
        lambda: recipes.mdlm(steps=3, gen_length=4, block_length=2, n_particles=2),
        lambda: recipes.mdlm(gen_length=4, first_hitting=True, n_particles=2),
        lambda: recipes.eb_sampler(gen_length=4, temperature=1.0, n_particles=2),
        lambda: recipes.fast_dllm(gen_length=4, block_length=2, temperature=1.0, threshold=0.5, n_particles=2),
        lambda: recipes.sr_smc(recipes.llada(steps=4, gen_length=4, block_length=2, temperature=1.0), n_particles=4,
                               when="every_step"),
        # on a template the reward reads the whole filled canvas as its text (an empty prompt): a reward of
        # the last 4 tokens reads the same generation in both cases
        lambda: recipes.rws(CallableReward(lambda p, t: 0.3 * sum(t[-4:])), gen_length=4, steps=2, temperature=1.0,
                            n_particles=2),
        lambda: recipes.rws(CallableReward(lambda p, t: 0.3 * sum(t[-4:])), gen_length=4, steps=2, temperature=1.0,
                            selection="plackett_luce", n_particles=3),
    ],
    ids=["llada", "dream", "mdlm", "mdlm_fh", "eb", "fast_dllm", "sr_smc", "rws", "rws_pl"],
)
def test_infill_of_prompt_plus_masks_equals_run(make):
    prompts = torch.tensor([[0], [1]])
    ran = make().run(MODEL, prompts, seed=4)
    filled = make().infill(MODEL, torch.cat([prompts, torch.full((2, 4), M)], dim=1), seed=4)
    assert torch.equal(ran.sequences, filled.sequences)
    assert torch.equal(ran.commit_step, filled.commit_step)
    assert torch.equal(ran.log_weights, filled.log_weights)
    assert torch.equal(ran.log_Z, filled.log_Z)


def test_window_rule_reduces_to_prefix_blocks():
    free = torch.zeros(2, 10, dtype=torch.bool)
    free[:, 4:] = True
    width, starts, sizes, nb, widths = template_layout(free, 3)
    assert width == 3 and nb.tolist() == [2, 2]  # 6 masks in windows [4, 7), [7, 10)
    assert starts.tolist() == [[4, 7], [4, 7]] and sizes.tolist() == [[3, 3], [3, 3]]
    width, starts, sizes, nb, widths = template_layout(free, None)
    assert width == 6 and starts.tolist() == [[4], [4]] and widths.tolist() == [6, 6]


def test_windows_skip_empty_ones_and_a_last_partial_window_never_leaves_the_canvas():
    t = torch.tensor([[True, False, False, False, False, False, False, True, True, False, False]])
    width, starts, sizes, nb, widths = template_layout(t, 3)
    # windows from position 0: [0,3) has 0; [3,6) empty (skipped); [6,9) has 7, 8; [9,12) has none
    assert nb.tolist() == [2] and starts.tolist() == [[0, 6]] and sizes.tolist() == [[1, 2]]
    t2 = torch.tensor([[True] + [False] * 8 + [True, True]])
    width, starts, sizes, nb, widths = template_layout(t2, 4)
    # [0,4) has 0; [4,8) empty; [8,12) has 9, 10 and runs past L = 11
    assert starts.tolist() == [[0, 8]] and sizes.tolist() == [[1, 2]]
    # the slot past the canvas points at position 7 (fixed), so it is never eligible
    res = recipes.llada(steps=4, gen_length=4, block_length=4, temperature=1.0).init_template(
        ToyDenoiser.random(2, 11, seed=0), [[M] + [0] * 8 + [M, M]], seed=0
    ).particles
    from dataclasses import replace

    assert replace(res, block=torch.tensor([1])).block_positions().tolist() == [[8, 9, 10, 7]]


def test_rows_with_different_mask_counts_finish_at_different_steps():
    smc = recipes.llada(steps=4, gen_length=4, block_length=None, temperature=1.0, n_particles=2)
    res = smc.infill(MODEL, [[1, M, 0, 1, 1], [M, M, M, M, M]], seed=0)
    assert not bool((res.sequences == M).any())
    assert res.nfe.tolist()[0] < res.nfe.tolist()[1]
    # fixed tokens never move, and their commit step stays -1
    assert res.sequences[0, :, [0, 2, 3, 4]].eq(torch.tensor([1, 0, 1, 1])).all()
    assert (res.commit_step[0, :, [0, 2, 3, 4]] == -1).all()


def test_template_errors_are_clear():
    smc = recipes.llada(steps=4, gen_length=4, temperature=1.0)
    with pytest.raises(ConfigError, match="no masked position"):
        smc.infill(MODEL, [[0, 1, 1, 0, 1]])
    with pytest.raises(ConfigError, match=r"\[B, L\]"):
        smc.infill(MODEL, torch.tensor([M, 1, 1, 0, 1]))
    with pytest.raises(ConfigError, match="padding"):
        smc.infill(MODEL, torch.tensor([[M, 1, 1, 0, M]]), attention_mask=torch.tensor([[1, 1, 1, 1, 0]]))
    with pytest.raises(ConfigError, match="attention_mask must have the shape"):
        smc.infill(MODEL, torch.tensor([[M, 1, 1, 0, M]]), attention_mask=torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(ConfigError, match="must lie in"):
        smc.infill(MODEL, [[M, 1, 7, 0, 1]])
    with pytest.raises(ConfigError, match="integer token ids"):
        smc.infill(MODEL, [[M, 1, 0.5, 0, 1]])
    with pytest.raises(ConfigError, match="steps .* smaller than the number of blocks"):
        recipes.llada(steps=1, gen_length=4, block_length=1).infill(MODEL, [[M, 1, M, 0, M]])


def test_enumeration_refuses_what_would_run_for_minutes():
    model = ToyDenoiser.random(3, 9, seed=0)
    kernel = recipes.mdlm(gen_length=9, first_hitting=True).proposal
    with pytest.raises(ConfigError, match=r"refused: an estimated .* branch evaluations .* max_seconds=60"):
        exact_log_Z(kernel, model, template=[model.mask_id] * 9)
    with pytest.raises(ConfigError, match="refused"):
        exact_log_Z(kernel, model, None, 9)


def test_order_metrics_are_in_canvas_order():
    # a left-to-right one-at-a-time order over a template with two spans is perfectly
    # autoregressive in the template's positions
    l2r = ScoreFn(lambda logits, cand, lp: -torch.arange(cand.shape[-1], dtype=torch.float64).expand(cand.shape))
    kernel = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(5), score=l2r)
    res = SMC(kernel).infill(MODEL, [[M, 1, M, 0, M]], seed=0)
    assert res.commit_step[0, 0].tolist() == [1, -1, 2, -1, 3]
    om = order_metrics(res)
    assert om["kendall_tau"][0, 0] == pytest.approx(1.0)
    assert om["global_ar_ness"][0, 0] == pytest.approx(1.0)
    assert res.filled(0, 0) == [res.sequences[0, 0, i].item() for i in (0, 2, 4)]
