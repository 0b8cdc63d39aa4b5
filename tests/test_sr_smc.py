"""SR-SMC (arXiv 2602.01849): Proposition 3.1 exactly, unbiasedness, and regressions for the released
code's deviations D1-D11 (reference notes sr-smc.md §4.9)."""

import math
import warnings

import pytest
import torch

from reference_impl import conditional
from smcdiff import (
    SMC,
    AdaptiveResampling,
    AlwaysResample,
    EveryKSteps,
    NeverResample,
    ToyDenoiser,
    TrajectoryConfidence,
    recipes,
    row_seeds,
)
from smcdiff.models import DreamDenoiser, LLaDADenoiser
from smcdiff.models.tiny import tiny_dream, tiny_llada
from smcdiff.proposals import (
    AdaptiveSteps,
    Categorical,
    Confidence,
    EvenSplit,
    Margin,
    NegEntropy,
    RandomK,
    Threshold,
    TopK,
    UnmaskingKernel,
)
from smcdiff.theory_checks import check_unbiasedness, enumerate_paths


def trajectory_log_conf(joint, seq, steps, mask_id):
    """sum over positions of log p(x_l | the positions committed before l's step), from the joint."""
    total = 0.0
    for pos, st in enumerate(steps):
        if st < 0:
            continue
        before = [t if (s < 0 or s < st) else mask_id for t, s in zip(seq, steps)]
        total += math.log(conditional(joint, before, mask_id)[pos][seq[pos]])
    return total


SCORES = {"confidence": Confidence(), "margin": Margin(), "neg-entropy": NegEntropy()}
PROP31_CASES = [  # (selector, schedule, score); random selection ignores the score, so it is run once
    pytest.param(sel, sch, SCORES[sc], id=f"{name}-{sc}")
    for name, sel, sch in [("top-k", TopK(), EvenSplit(3)), ("threshold", Threshold(0.3), AdaptiveSteps())]
    for sc in SCORES
] + [pytest.param(RandomK(), EvenSplit(2), Confidence(), id="random")]


@pytest.mark.parametrize("selector,schedule,score", PROP31_CASES)
@pytest.mark.parametrize("tau", [1.0, 0.6])
def test_proposition_3_1_incremental_weight_is_product_of_confidences(selector, schedule, tau, score):
    # every path: engine log weight == sum of log model probabilities of each token at its commit step,
    # whatever score ranks the positions (D3: the released Dream code weighted by the score instead)
    model = ToyDenoiser.random(3, 4, seed=31)
    kernel = UnmaskingKernel(Categorical(tau), selector, schedule, score=score)
    e = enumerate_paths(kernel, model, [2], 3, [TrajectoryConfidence()])
    assert e.n_paths > 10
    for seq, steps, lw in zip(e.finals.tolist(), e.commit_steps.tolist(), e.log_w.tolist()):
        assert lw == pytest.approx(trajectory_log_conf(model.joint, seq, steps, model.mask_id), abs=1e-9)


def test_annealed_confidence_exact_weights():
    model = ToyDenoiser.random(3, 4, seed=32)
    kernel = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(3))
    e = enumerate_paths(kernel, model, [0], 3, [TrajectoryConfidence(anneal="steps_over_length")])
    for seq, steps, lw in zip(e.finals.tolist(), e.commit_steps.tolist(), e.log_w.tolist()):
        expect = 0.0
        for pos, st in enumerate(steps):
            if st > 0:
                before = [t if (s < 0 or s < st) else model.mask_id for t, s in zip(seq, steps)]
                expect += (st / 3) * math.log(conditional(model.joint, before, model.mask_id)[pos][seq[pos]])
        assert lw == pytest.approx(expect, abs=1e-9)


@pytest.mark.parametrize("faithful", [False, True])
def test_sr_smc_recipe_is_unbiased(faithful):
    model = ToyDenoiser.random(3, 5, seed=33)
    base = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(4), block_length=2)
    smc = recipes.sr_smc(base, n_particles=4, faithful=faithful, kappa=0.9)
    rep = check_unbiasedness(smc, model, [1], 4, n_runs=1500, seed=2, k=5.0)
    assert rep.passed, str(rep)


def test_faithful_switches():
    smc = recipes.sr_smc(n_particles=4, faithful=True)
    pol = smc.resampling
    assert (pol.scheme, pol.kappa, pol.when, pol.final) == ("multinomial", 0.5, "block_end", True)
    mdlm = recipes.sr_smc(recipes.mdlm(), faithful=True, family="mdlm")
    assert mdlm.resampling.when == EveryKSteps(128)
    default = recipes.sr_smc()
    assert default.resampling.scheme == "systematic" and default.n_particles == 4  # D4: N configurable
    assert recipes.sr_smc(n_particles=7).n_particles == 7


@pytest.fixture(scope="module")
def peaked_llada():
    net = tiny_llada(vocab_size=48, seed=3)
    with torch.no_grad():
        net.lm_head.weight.mul_(40.0)
    return LLaDADenoiser.wrap(net)


def test_d1_threshold_compares_probabilities(peaked_llada):
    # the released Dream SR-SMC compared log-probabilities with 0.9 and so decoded one token per step
    prompts = torch.randint(3, 40, (2, 5), generator=torch.Generator().manual_seed(0))
    base = recipes.fast_dllm(threshold=0.5, block_length=8, gen_length=16, temperature=1.0)
    res = recipes.sr_smc(base, n_particles=3).run(peaked_llada, prompts, seed=1)
    alone = base.run(peaked_llada, prompts, seed=1)
    assert (res.nfe < 16).all() and (alone.nfe < 16).all()  # several tokens per forward


def test_d2_weights_updated_on_every_path_including_the_cache():
    # a causal model makes the prefix cache exact: cached and uncached SR-SMC runs must give the same
    # tokens and weights, and the weights must include the tokens committed in cached steps
    model = DreamDenoiser.wrap(tiny_dream(vocab_size=40, seed=7))
    prompts = torch.randint(3, 30, (2, 5), generator=torch.Generator().manual_seed(0))
    runs = {}
    for cache in (None, "prefix"):
        base = recipes.fast_dllm(threshold=0.3, block_length=8, gen_length=16, temperature=1.0, cache=cache)
        smc = SMC(base.proposal, [TrajectoryConfidence()], n_particles=3, resampling=NeverResample(), gen_length=16)
        runs[cache] = smc.run(model, prompts, seed=2)
    on, off = runs["prefix"], runs[None]
    assert torch.equal(on.sequences, off.sequences)
    assert torch.allclose(on.log_weights, off.log_weights, atol=1e-5)
    assert torch.allclose(on.log_weights, on.trajectory_log_confidence, atol=1e-12)
    # some tokens were committed in cached steps: after the first step of their block (which runs the full
    # canvas; every particle commits at least one token there, so it is the block's earliest commit step)
    cs = on.commit_step[..., 5:].reshape(2, 3, 2, 8)  # [B, N, blocks, block positions]
    first = cs.amin(dim=(1, 3), keepdim=True)
    assert (cs > first).float().mean() > 0.2


def test_d3_weights_are_log_probs_of_sampled_tokens_for_any_score():
    model = DreamDenoiser.wrap(tiny_dream(vocab_size=40, seed=6))
    prompts = torch.randint(3, 30, (2, 4), generator=torch.Generator().manual_seed(1))
    base = recipes.dream(alg="entropy", steps=8, gen_length=8, temperature=1.0)
    smc = SMC(base.proposal, [TrajectoryConfidence()], n_particles=3, resampling=NeverResample(), gen_length=8)
    res = smc.run(model, prompts, seed=3)
    assert torch.allclose(res.log_weights, res.trajectory_log_confidence, atol=1e-12)
    assert (res.committed_logp[..., 4:] < 0).all()


def test_d5_prompts_are_never_pooled():
    model = ToyDenoiser.random(3, 5, seed=34)
    base = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(4), block_length=2)
    smc = recipes.sr_smc(base, n_particles=4, kappa=1.0, gen_length=4)
    prompts = torch.tensor([[0], [1], [2]])
    joint = smc.run(model, prompts, seed=9)
    seeds = row_seeds(9, 3)
    for b in range(3):
        alone = smc.run(model, prompts[b : b + 1], seed=[seeds[b]])
        assert torch.equal(joint.per_prompt(b).sequences, alone.sequences)
        assert torch.equal(joint.per_prompt(b).log_weights, alone.log_weights)
    assert joint.resampled.any()


def test_d8_output_rules():
    model = ToyDenoiser.random(3, 5, seed=35)
    base = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(4), block_length=2)
    res = recipes.sr_smc(base, n_particles=6, faithful=True, gen_length=4).run(model, torch.tensor([[0], [2]]), seed=4)
    seqs, idx = res.best("trajectory_confidence")
    assert torch.equal(idx, res.trajectory_log_confidence.argmax(1))
    assert torch.equal(seqs, res.sequences[torch.arange(2), idx])
    w_seqs, w_idx = res.best("weight")
    assert torch.equal(w_idx, res.log_weights.argmax(1))
    draws, didx = res.sample(50, seed=0)
    assert torch.equal(res.per_prompt(1).sample(50, seed=[row_seeds(0, 2)[1]])[1][0], didx[1])
    assert draws.shape == (2, 50, 5)
    W = res.normalized_weights
    assert (W.gather(1, didx) > 0).all()


def test_d11_cache_moves_with_particles_in_sr_smc():
    model = DreamDenoiser.wrap(tiny_dream(vocab_size=50, seed=1))
    prompts = torch.randint(2, 48, (2, 6), generator=torch.Generator().manual_seed(3))
    runs = {}
    for cache in (None, "prefix"):
        kernel = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(8), block_length=4, cache=cache)
        smc = recipes.sr_smc(kernel, n_particles=4, kappa=1.0, when="every_step", scheme="multinomial", gen_length=16)
        runs[cache] = smc.run(model, prompts, seed=5)
    assert runs[None].resampled.any()
    assert torch.equal(runs[None].sequences, runs["prefix"].sequences)
    assert torch.allclose(runs[None].log_weights, runs["prefix"].log_weights, atol=1e-5)


def test_temperature_zero_warns_and_particles_are_identical():
    model = ToyDenoiser.random(3, 5, seed=36)
    base = UnmaskingKernel(Categorical(0.0), TopK(), EvenSplit(4), block_length=2)
    with pytest.warns(UserWarning, match="SMC cannot act"):
        smc = recipes.sr_smc(base, n_particles=4, gen_length=4)
    res = smc.run(model, torch.tensor([[1]]), seed=0)
    assert (res.sequences == res.sequences[:, :1]).all()
    assert torch.allclose(res.normalized_weights, torch.full((1, 4), 0.25, dtype=torch.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recipes.sr_smc(UnmaskingKernel(Categorical(0.0), RandomK(), EvenSplit(4)), n_particles=4, when="every_step")
    with pytest.warns(UserWarning, match="SMC cannot act"):  # top_k = 1 is greedy at any temperature
        recipes.sr_smc(UnmaskingKernel(Categorical(1.0, top_k=1), TopK(), EvenSplit(4)), n_particles=4,
                       when="every_step")


def test_sr_smc_keeps_the_base_potentials_and_settings():
    extra = TrajectoryConfidence() ** 2.0
    base = recipes.llada(steps=4, gen_length=4, block_length=2, temperature=1.0, potentials=[extra], max_rows=3)
    smc = recipes.sr_smc(base, n_particles=4)
    assert smc.potentials[0] is extra and isinstance(smc.potentials[1], TrajectoryConfidence)
    assert smc.max_rows == 3 and smc.gen_length == 4
    assert recipes.sr_smc(base, n_particles=4, max_rows=7).max_rows == 7


def test_explicit_resampling_settings_win_over_the_faithful_defaults():
    pol = recipes.sr_smc(n_particles=4, faithful=True, kappa=0.9, scheme="residual").resampling
    assert (pol.scheme, pol.kappa, pol.when, pol.final) == ("residual", 0.9, "block_end", True)
    pol = recipes.sr_smc(n_particles=4, faithful=True, family="mdlm").resampling
    assert (pol.scheme, pol.kappa) == ("multinomial", 0.5) and pol.when.k == 128
    pol = recipes.sr_smc(n_particles=4).resampling
    assert (pol.scheme, pol.kappa, pol.when, pol.final) == ("systematic", 0.5, "block_end", False)


def _tempered_truncated(p, tau, top_p):
    """softmax(log p / tau) restricted to Dream's nucleus (keep tokens up to the one crossing top_p)."""
    q = [x ** (1.0 / tau) for x in p]
    z = sum(q)
    q = [x / z for x in q]
    order = sorted(range(len(q)), key=lambda v: -q[v])
    keep, cum = set(), 0.0
    for v in order:
        keep.add(v)
        cum += q[v]
        if cum > top_p:
            break
    z = sum(q[v] for v in keep)
    return [q[v] / z if v in keep else 0.0 for v in range(len(q))]


@pytest.mark.parametrize("tau,top_p", [(0.6, 1.0), (1.7, 1.0), (1.0, 0.7), (0.8, 0.75)])
def test_tempered_confidence_weights_by_the_tempered_truncated_law(tau, top_p):
    # the released Dream code's weighting (tempered=True), checked on every path against the joint
    model = ToyDenoiser.random(3, 4, seed=37)
    sampler = Categorical(tau, top_p=None if top_p == 1.0 else top_p)
    e = enumerate_paths(UnmaskingKernel(sampler, TopK(), EvenSplit(3)), model, [2], 3, [TrajectoryConfidence(tempered=True)])
    assert e.n_paths > 10
    for seq, steps, lw in zip(e.finals.tolist(), e.commit_steps.tolist(), e.log_w.tolist()):
        expect = 0.0
        for pos, st in enumerate(steps):
            if st > 0:
                before = [t if (s < 0 or s < st) else model.mask_id for t, s in zip(seq, steps)]
                expect += math.log(_tempered_truncated(conditional(model.joint, before, model.mask_id)[pos], tau, top_p)[seq[pos]])
        assert lw == pytest.approx(expect, abs=1e-9)


def test_best_by_tempered_confidence_follows_the_tempered_potential():
    # the released Dream code ranks particles by the tempered log confidence it accumulated
    model = ToyDenoiser.random(3, 5, seed=38)
    base = UnmaskingKernel(Categorical(0.5), TopK(), EvenSplit(4), block_length=2)
    res = recipes.sr_smc(base, n_particles=8, tempered=True, gen_length=4).run(model, torch.tensor([[0], [2]]), seed=1)
    rec = res.extras[TrajectoryConfidence.TEMPERED_TOTAL]
    # independent: the tempered log-probability of each committed token, softmax(log p / 0.5), from the joint
    for b in range(2):
        for i in range(8):
            seq, steps = res.sequences[b, i].tolist(), res.commit_step[b, i].tolist()
            expect = 0.0
            for pos, st in enumerate(steps):
                if st > 0:
                    before = [t if (s < 0 or s < st) else model.mask_id for t, s in zip(seq, steps)]
                    expect += math.log(_tempered_truncated(conditional(model.joint, before, model.mask_id)[pos], 0.5, 1.0)[seq[pos]])
            assert rec[b, i].item() == pytest.approx(expect, abs=1e-9)
    assert torch.equal(res.best("trajectory_confidence")[1], rec.argmax(1))
    assert torch.equal(res.best("trajectory_confidence", tempered=False)[1], res.trajectory_log_confidence.argmax(1))
    with pytest.raises(Exception, match="no tempered confidence"):
        recipes.sr_smc(base, n_particles=2, gen_length=4).run(model, torch.tensor([[0]])).best("trajectory_confidence", tempered=True)
