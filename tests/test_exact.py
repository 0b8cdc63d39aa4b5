"""Exact proper-weighting checks on enumerable toy models (tolerance 1e-9)."""

import math

import pytest
import torch

from reference_impl import even_split, reference_gamma
from smcdiff import (
    Categorical,
    EvenSplit,
    FixedCounts,
    GumbelMax,
    RandomK,
    ToyDenoiser,
    TopK,
    TrajectoryConfidence,
    UnmaskingKernel,
)
from smcdiff.theory_checks import check_proper_weighting, enumerate_paths, exact_log_Z

CASES = [
    # (V, L_total, prompt, gen_length, steps, block_length)
    (3, 3, [], 3, 3, None),
    (3, 3, [], 3, 2, None),
    (3, 4, [1], 3, 3, None),
    (2, 4, [0], 3, 3, 1),
    (2, 4, [], 4, 4, 2),
]


def kernel_for(case, selection, sampler):
    _, _, _, g, steps, bl = case
    sel = TopK() if selection == "topk" else RandomK()
    return UnmaskingKernel(sampler, sel, EvenSplit(steps), block_length=bl)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"V{c[0]}L{c[1]}P{len(c[2])}s{c[4]}b{c[5]}")
@pytest.mark.parametrize("selection", ["topk", "random"])
@pytest.mark.parametrize("with_conf", [False, True], ids=["no-potential", "trajectory-confidence"])
@pytest.mark.parametrize("tau", [1.0, 0.5, 0.0])
def test_minimal_kernel_is_properly_weighted(case, selection, with_conf, tau):
    v, l, prompt, g, steps, bl = case
    model = ToyDenoiser.random(v, l, seed=11 * v + l)
    kernel = kernel_for(case, selection, Categorical(tau))
    pots = [TrajectoryConfidence()] if with_conf else []
    nblocks = g // (bl or g)
    counts = even_split(bl or g, steps // nblocks)
    gamma = reference_gamma(
        model.joint, prompt, g, counts, bl, selection, tau, confidence_potential=with_conf
    )
    rep = check_proper_weighting(kernel, model, prompt, g, pots, target=gamma, atol=1e-9)
    assert rep.passed, str(rep)
    # Z = E_q[prod w] equals the reference mass
    assert rep.log_Z_proposal == pytest.approx(math.log(sum(gamma.values())), abs=1e-9)
    if not with_conf:
        assert rep.log_Z_proposal == pytest.approx(0.0, abs=1e-12)


def test_gumbel_sampler_has_the_same_target():
    case = CASES[2]
    v, l, prompt, g, steps, bl = case
    model = ToyDenoiser.random(v, l, seed=3)
    gamma = reference_gamma(model.joint, prompt, g, [1, 1, 1], None, "topk", 0.7, True)
    rep = check_proper_weighting(
        kernel_for(case, "topk", GumbelMax(0.7)), model, prompt, g, [TrajectoryConfidence()], target=gamma
    )
    assert rep.passed, str(rep)


def test_tempered_potential_matches_reference():
    model = ToyDenoiser.random(3, 3, seed=4)
    kernel = UnmaskingKernel(Categorical(1.0), RandomK(), EvenSplit(3))
    gamma = reference_gamma(model.joint, [], 3, [1, 1, 1], None, "random", 1.0, True, beta=2.5)
    rep = check_proper_weighting(kernel, model, [], 3, [TrajectoryConfidence() ** 2.5], target=gamma)
    assert rep.passed, str(rep)


@pytest.mark.parametrize("prompt", [[], [2]])
def test_random_order_one_token_per_step_samples_the_joint_exactly(prompt):
    # An independent ground truth: ancestral masked diffusion with exact conditionals,
    # random order and one commit per step at temperature 1 draws from the joint.
    model = ToyDenoiser.random(3, 3, seed=8)
    g = 3 - len(prompt)
    kernel = UnmaskingKernel(Categorical(1.0), RandomK(), FixedCounts([1] * g))
    rep = check_proper_weighting(kernel, model, prompt, g, target=model.target_given_prompt(prompt))
    assert rep.passed, str(rep)


def test_proper_weighting_detects_a_wrong_target():
    model = ToyDenoiser.random(3, 3, seed=5)
    kernel = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(3))
    gamma = reference_gamma(model.joint, [], 3, [1, 1, 1], None, "topk", 1.0, True, beta=1.0)
    # the confidence-tilted target is not the untilted kernel's law
    rep = check_proper_weighting(kernel, model, [], 3, [], target=gamma)
    assert not rep.passed and rep.max_abs_error > 1e-3


def test_enumeration_normalises_and_exact_log_Z():
    model = ToyDenoiser.random(3, 3, seed=6)
    kernel = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(3))
    e = enumerate_paths(kernel, model, None, 3, [TrajectoryConfidence()])
    assert e.total_log_q == pytest.approx(0.0, abs=1e-12)
    assert sum(e.target().values()) == pytest.approx(1.0, abs=1e-12)
    gamma = reference_gamma(model.joint, [], 3, [1, 1, 1], None, "topk", 1.0, True)
    lz = exact_log_Z(kernel, model, None, 3, [TrajectoryConfidence()])
    assert lz == pytest.approx(math.log(sum(gamma.values())), abs=1e-12)
