"""Kernel parts: Plackett-Luce probabilities, tilted proposals, EOS suppression, schedules."""

import itertools
import math

import pytest
import torch

from smcdiff import SMC, ConfigError, ToyDenoiser, TrajectoryConfidence, UndefinedWeightError
from smcdiff.models import CallableDenoiser
from smcdiff.proposals import (
    SuppressTokens,
    AlphaSchedule,
    Ancestral,
    Categorical,
    Confidence,
    DreamSchedule,
    EntropyBound,
    EvenSplit,
    FactorRule,
    FixedCounts,
    LogitsFn,
    Margin,
    NegEntropy,
    PlackettLuce,
    RandomK,
    RowRNG,
    StepPlan,
    SuppressEOS,
    Threshold,
    TopK,
    UniformRandom,
    UnmaskingKernel,
)
from smcdiff.state import Canvas
from smcdiff.theory_checks import check_proper_weighting


@pytest.mark.parametrize("m,k", [(3, 1), (3, 2), (4, 2), (4, 3)])
def test_plackett_luce_ordered_choices_sum_to_one(m, k):
    g = torch.Generator().manual_seed(m * 10 + k)
    lb = m + 1
    scores = torch.rand(1, lb, generator=g, dtype=torch.float64)
    elig = torch.tensor([[True] * m + [False]])
    sel = PlackettLuce(0.3)
    plan = StepPlan(torch.tensor([k]))
    total = 0.0
    n = 0
    for perm in itertools.permutations(range(m), k):
        commit = torch.zeros(1, lb, dtype=torch.bool)
        rank = torch.full((1, lb), -1)
        for r, j in enumerate(perm):
            commit[0, j] = True
            rank[0, j] = r
        total += math.exp(sel.log_prob(scores, elig, plan, commit, rank).item())
        n += 1
    assert total == pytest.approx(1.0, abs=1e-12)
    # the Plackett-Luce probability of a first pick is the softmax
    z = scores[0, :m] / 0.3
    first = torch.softmax(z, 0)
    if k == 1:
        for j in range(m):
            c = torch.zeros(1, lb, dtype=torch.bool)
            c[0, j] = True
            rk = torch.where(c, 0, -1)
            assert math.exp(sel.log_prob(scores, elig, plan, c, rk).item()) == pytest.approx(float(first[j]))


def test_plackett_luce_draw_frequencies():
    # first-draw frequencies within 5 binomial standard errors of softmax(score / T)
    r = 8000
    scores = torch.tensor([[0.1, 0.5, 0.3, 0.9]], dtype=torch.float64).expand(r, 4)
    elig = torch.ones(r, 4, dtype=torch.bool)
    rng = RowRNG([torch.Generator().manual_seed(3)], [0], r, torch.device("cpu"))
    d = PlackettLuce(0.4).draw(scores, elig, StepPlan(torch.full((r,), 2)), rng)
    first = (d.rank == 0).double().mean(0)
    p = torch.softmax(scores[0] / 0.4, 0)
    assert torch.all((first - p).abs() <= 5 * torch.sqrt(p * (1 - p) / r))
    assert torch.all(d.commit.sum(1) == 2)
    again = PlackettLuce(0.4).log_prob(scores, elig, StepPlan(torch.full((r,), 2)), d.commit, d.rank)
    assert torch.allclose(again, d.log_prob)


def tilt(scale):
    return LogitsFn(lambda z, ctx: z * scale, stage="sampling", in_target=False)


@pytest.mark.parametrize(
    "selector,schedule",
    [(PlackettLuce(0.7), EvenSplit(3)), (Ancestral(), AlphaSchedule("linear", 3, counts="none")),
     (RandomK(), AlphaSchedule("cosine", 3, counts="binomial"))],
    ids=["plackett-luce", "ancestral", "binomial-count"],
)
@pytest.mark.parametrize("with_conf", [False, True])
def test_tilted_proposal_with_stochastic_selection_is_properly_weighted(selector, schedule, with_conf):
    model = ToyDenoiser.random(3, 4, seed=13)
    kernel = UnmaskingKernel(Categorical(1.0), selector, schedule, transforms=[tilt(2.5)])
    assert not kernel.is_model_kernel
    pots = [TrajectoryConfidence()] if with_conf else []
    rep = check_proper_weighting(kernel, model, [1], 3, pots)
    assert rep.passed, str(rep)
    # and the tilt really changes the proposal law
    from smcdiff.theory_checks import enumerate_paths

    e_q = enumerate_paths(kernel, model, [1], 3).proposal_law()
    e_k = enumerate_paths(kernel.reference, model, [1], 3).proposal_law()
    assert max(abs(e_q[s] - e_k.get(s, 0.0)) for s in e_q) > 1e-3


def test_score_stage_tilt_with_plackett_luce_is_properly_weighted():
    model = ToyDenoiser.random(3, 4, seed=14)
    t = LogitsFn(lambda z, ctx: z * 0.3, stage="score", in_target=False)
    kernel = UnmaskingKernel(Categorical(0.8), PlackettLuce(0.5), EvenSplit(3), Confidence(), transforms=[t])
    rep = check_proper_weighting(kernel, model, [0], 3, [TrajectoryConfidence()])
    assert rep.passed, str(rep)


def test_deterministic_selection_under_a_tilt_is_refused():
    kernel = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(3), transforms=[tilt(2.0)])
    with pytest.raises(UndefinedWeightError, match="deterministic"):
        SMC(kernel, n_particles=2)
    greedy = UnmaskingKernel(Categorical(0.0), PlackettLuce(1.0), EvenSplit(3), transforms=[tilt(2.0)])
    with pytest.raises(UndefinedWeightError, match="greedy"):
        SMC(greedy, n_particles=2)
    # as a target in its own right it is fine
    SMC(UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(3), transforms=[tilt(2.0)], target="proposal"))


def test_proposal_only_transform_that_removes_tokens_is_refused():
    # K can draw token 0, q never does: log K - log q is not an importance weight (the target would be missed)
    model = ToyDenoiser.random(3, 4, seed=13)
    t = SuppressTokens([0], in_target=False)
    smc = SMC(UnmaskingKernel(Categorical(1.0), RandomK(), EvenSplit(3), transforms=[t]), n_particles=2)
    with pytest.raises(UndefinedWeightError, match="probability zero to tokens that the target kernel can draw"):
        smc.run(model, torch.tensor([[1]]), 3)
    # as part of the target it is fine
    ok = UnmaskingKernel(Categorical(1.0), RandomK(), EvenSplit(3), transforms=[SuppressTokens([0])])
    assert check_proper_weighting(ok, model, [1], 3, [TrajectoryConfidence()]).passed


def test_truncation_under_a_sampling_tilt_is_refused():
    with pytest.raises(UndefinedWeightError, match="truncation"):
        SMC(UnmaskingKernel(Categorical(1.0, top_p=0.7), PlackettLuce(1.0), EvenSplit(3), transforms=[tilt(2.5)]))
    # tilting only the scores is fine with truncation
    t = LogitsFn(lambda z, ctx: z * 2.5, stage="score", in_target=False)
    model = ToyDenoiser.random(3, 4, seed=16)
    k = UnmaskingKernel(Categorical(1.0, top_p=0.7), PlackettLuce(1.0), EvenSplit(3), transforms=[t])
    rep = check_proper_weighting(k, model, [1], 3, [TrajectoryConfidence()])
    assert rep.passed, str(rep)


def test_plackett_luce_with_random_counts_enumerates_every_size():
    from smcdiff.theory_checks import enumerate_paths

    model = ToyDenoiser.random(3, 4, seed=17)
    k = UnmaskingKernel(Categorical(1.0), PlackettLuce(0.8), AlphaSchedule("linear", 3, counts="binomial"))
    e = enumerate_paths(k, model, [0], 3)
    assert e.total_log_q == pytest.approx(0.0, abs=1e-12)
    rep = check_proper_weighting(
        UnmaskingKernel(Categorical(1.0), PlackettLuce(0.8), AlphaSchedule("linear", 3, counts="binomial"),
                        transforms=[LogitsFn(lambda z, ctx: 0.5 * z, stage="score", in_target=False)]),
        model, [0], 3, [TrajectoryConfidence()],
    )
    assert rep.passed, str(rep)


def test_uniform_random_score_is_random_k():
    k = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(3), UniformRandom())
    assert isinstance(k.selector, RandomK)
    with pytest.raises(ConfigError, match="only defined with TopK"):
        UnmaskingKernel(Categorical(1.0), Threshold(0.5), EvenSplit(3), UniformRandom())


def eos_model(v=6, eos=5):
    """The first generated position prefers EOS (p ~ 0.9), the second an ordinary token (p ~ 0.6)."""

    def fn(tokens, am=None):
        r, l = tokens.shape
        out = torch.zeros(r, l, v)
        out[:, :, 0] = 1.0
        out[:, -2, eos] = 4.0
        out[:, -1, 2] = 2.0
        out[:, -1, [4, eos]] = -float("inf")  # the last position never proposes EOS/EoT
        return out

    return CallableDenoiser(fn, mask_id=v, vocab_size=v, eos_ids=(eos, 4))


def test_confidence_eos_suppression_at_positive_temperature():
    # with EOS/EoT confidence suppressed, a position whose candidate is EOS is committed after the
    # ordinary one even at temperature 1 (LLaDA PR #139); without it, the EOS position goes first.
    model = eos_model()
    order_first = {True: 0, False: 0}
    for suppress in (True, False):
        tr = [SuppressEOS("score", include_eot=True)] if suppress else []
        k = UnmaskingKernel(Categorical(1.0), TopK(), FixedCounts([1, 1]), transforms=tr)
        res = SMC(k, n_particles=64).run(model, torch.tensor([[0]]), 2, seed=1)
        eos_first = (res.commit_step[0, :, 1] == 1) & (res.generated[0, :, 0] == 5)
        order_first[suppress] = int(eos_first.sum())
    assert order_first[True] == 0
    assert order_first[False] > 20


def test_logit_eos_suppression_never_samples_eos():
    model = eos_model()
    k = UnmaskingKernel(Categorical(1.0), TopK(), FixedCounts([1, 1]), transforms=[SuppressEOS("sampling")])
    res = SMC(k, n_particles=64).run(model, torch.tensor([[0]]), 2, seed=2)
    assert not (res.generated == 5).any()
    # the committed log-probabilities are those of the suppressed (target) model
    assert torch.all(res.committed_logp[..., 1:] <= 0)


def test_scores_on_hand_made_logits():
    logits = torch.log(torch.tensor([[[0.7, 0.2, 0.1], [0.4, 0.4, 0.2]]], dtype=torch.float64))
    cand = torch.tensor([[1, 0]])
    samp = Categorical(1.0)
    lp = samp.log_prob(logits, cand)
    assert torch.allclose(Confidence()(logits, cand, lp, samp), torch.tensor([[0.2, 0.4]], dtype=torch.float64))
    assert torch.allclose(Margin()(logits, cand, lp, samp), torch.tensor([[0.5, 0.0]], dtype=torch.float64))
    ent = -(torch.tensor([0.7, 0.2, 0.1]) * torch.log(torch.tensor([0.7, 0.2, 0.1]))).sum()
    assert NegEntropy()(logits, cand, lp, samp)[0, 0].item() == pytest.approx(-ent.item())


def test_threshold_factor_and_entropy_bound_rules():
    sc = torch.tensor([[0.95, 0.3, 0.91, 0.2, 0.5]], dtype=torch.float64)
    el = torch.tensor([[True, True, True, True, False]])
    plan = StepPlan(torch.tensor([5]))
    assert Threshold(0.9).draw(sc, el, plan, None).commit.tolist() == [[True, False, True, False, False]]
    low = Threshold(0.99).draw(sc, el, plan, None).commit
    assert low.tolist() == [[True, False, False, False, False]]  # the best one always
    # factor 1: thresholds -1, 1-1/3, 1-1/4, 1-1/5 on sorted (0.95, 0.91, 0.3, 0.2): first failure at rank 2
    assert FactorRule(1.0).draw(sc, el, plan, None).commit.tolist() == [[True, False, True, False, False]]
    # EB: entropies ascending 0.1, 0.2, 0.3: prefix sums minus max 0, 0.1, 0.3
    neg_h = torch.tensor([[-0.3, -0.1, -0.2, -5.0]], dtype=torch.float64)
    el4 = torch.tensor([[True, True, True, False]])
    assert EntropyBound(0.15).draw(neg_h, el4, plan, None).commit.tolist() == [[False, True, True, False]]
    assert EntropyBound(0.0).draw(neg_h, el4, plan, None).commit.sum() == 1


def test_dream_schedule_counts_match_formula():
    canvas = Canvas(prompt_length=0, gen_length=10, block_length=10, mask_id=0)
    s = DreamSchedule(steps=4, eps=1e-3)
    ts = torch.linspace(1, 1e-3, 5)
    m = torch.tensor([10])
    for i in range(4):
        k = s.plan(canvas, torch.tensor([i]), m).k.item()
        expect = int(torch.tensor(10.0) * (1 - ts[i + 1] / ts[i])) if i < 3 else 10
        assert k == expect


def test_alpha_schedule_probabilities_and_rounded_counts():
    a = AlphaSchedule("linear", 4)
    assert torch.allclose(a.transfer_probs(), torch.tensor([0.25, 1 / 3, 0.5, 1.0], dtype=torch.float64))
    assert sum(a.round_counts(10)) == 10
    c = AlphaSchedule("cosine", 8)
    p = c.transfer_probs()
    assert torch.all((p > 0) & (p <= 1)) and p[-1] == 1.0
    assert sum(c.round_counts(32)) == 32
