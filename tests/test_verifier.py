"""ViolationPotential: exact targets on an enumerable toy model, the twist leaves the target alone, Sudoku use."""

import math

import pytest
import torch

from smcdiff import SMC, Categorical, ConfigError, EvenSplit, TopK, ToyDenoiser, UnmaskingKernel
from smcdiff.potentials.verifier import ViolationPotential
from smcdiff.theory_checks import check_unbiasedness, exact_target

MASK = 2  # ToyDenoiser with V = 2: token 2 is the mask


def adjacent_equal(tokens):
    """Violations: adjacent equal committed tokens (masks are blanks)."""
    a, b = tokens[:, :-1], tokens[:, 1:]
    return ((a == b) & (a != MASK)).sum(dim=1)


def _count_of(seq):
    return sum(1 for x, y in zip(seq, seq[1:]) if x == y)


@pytest.fixture(scope="module")
def setup():
    model = ToyDenoiser.random(vocab_size=2, length=5, seed=3)
    kernel = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(steps=2), block_length=None)
    base = exact_target(kernel, model, [0], 4).target()
    return model, kernel, base


@pytest.mark.parametrize("lam", [0.0, 0.7, 2.5])
def test_increment_form_targets_p_times_exp_minus_lam_v(setup, lam):
    model, kernel, base = setup
    enum = exact_target(kernel, model, [0], 4, [ViolationPotential(adjacent_equal, lam)])
    full = {k: (0,) + k for k in base}
    un = {k: p * math.exp(-lam * _count_of(full[k])) for k, p in base.items()}
    z = sum(un.values())
    got = enum.target()
    assert set(got) == set(un)
    for k in un:
        assert got[k] == pytest.approx(un[k] / z, abs=1e-12)
    assert enum.log_Z == pytest.approx(math.log(z), abs=1e-12)  # V_0 = 0: the prompt alone has no pair


def test_infinite_penalty_restricts_to_valid_outputs(setup):
    model, kernel, base = setup
    got = exact_target(kernel, model, [0], 4, [ViolationPotential(adjacent_equal, math.inf)]).target()
    valid = {k: p for k, p in base.items() if _count_of((0,) + k) == 0}
    z = sum(valid.values())
    assert {k for k, v in got.items() if v > 0} == set(valid)
    for k, p in valid.items():
        assert got[k] == pytest.approx(p / z, abs=1e-12)


def test_level_form_as_twist_keeps_the_target(setup):
    model, kernel, base = setup
    enum = exact_target(kernel, model, [0], 4, [ViolationPotential(adjacent_equal, 1.3, form="level").as_twist()])
    assert enum.log_Z == pytest.approx(0.0, abs=1e-12)
    got = enum.target()
    for k, p in base.items():
        assert got[k] == pytest.approx(p, abs=1e-12)


def test_level_form_as_potential_is_the_sum_over_steps(setup):
    model, kernel, _ = setup
    enum = exact_target(kernel, model, [0], 4, [ViolationPotential(adjacent_equal, 0.9, form="level")])
    plain = exact_target(kernel, model, [0], 4)
    # per path: log w = -0.9 * (V after step 1 + V after step 2); recompute from the recorded paths
    assert torch.equal(enum.finals, plain.finals)
    v_final = torch.tensor([_count_of(f.tolist()) for f in enum.finals], dtype=torch.float64)
    assert bool((enum.log_w <= -0.9 * v_final + 1e-12).all())  # the final V is one of the summed terms


def test_smc_estimate_is_unbiased(setup):
    model, kernel, _ = setup
    smc = SMC(kernel, [ViolationPotential(adjacent_equal, 1.0)], n_particles=4)
    rep = check_unbiasedness(smc, model, [0], 4, n_runs=400, seed=0)
    assert rep.passed, rep


def test_bad_arguments():
    with pytest.raises(ConfigError, match="lam must be a number >= 0"):
        ViolationPotential(adjacent_equal, -1.0)
    with pytest.raises(ConfigError, match="lam must be a number >= 0; got nan"):
        ViolationPotential(adjacent_equal, float("nan"))
    with pytest.raises(ConfigError, match="form must be"):
        ViolationPotential(adjacent_equal, 1.0, form="sum")
    with pytest.raises(ConfigError, match="only defined for form='increment'"):
        ViolationPotential(adjacent_equal, math.inf, form="level")
    with pytest.raises(ConfigError, match="count must be callable"):
        ViolationPotential(3)


def test_sudoku_weights_are_minus_lam_times_final_violations():
    # on the shipped Sudoku model, without resampling, each particle's final log weight is exactly
    # -lam * (violations of its grid - violations of the givens) (the increments telescope)
    from smcdiff.models import load
    from smcdiff.tasks import sudoku as task

    model = load("sudoku")
    x = model.encode_batch([p for p, _ in task.load_split("test_hard")[:2]])
    kernel = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(27), block_length=None)
    from smcdiff.policies import NeverResample

    res = SMC(kernel, [ViolationPotential(task.violations_ids, 0.75)], n_particles=3,
              resampling=NeverResample()).infill(model, x, seed=0)
    v_final = task.violations_ids(res.sequences.reshape(-1, 81)).double().reshape(2, 3)
    v0 = task.violations_ids(x).double()[:, None]
    assert bool((v_final > 0).any())  # the check is not vacuous
    torch.testing.assert_close(res.weights.log_w, -0.75 * (v_final - v0), rtol=0, atol=1e-12)
