"""FK steering: for every potential type and window the exact target is p(x) exp(lam R(x)) / Z."""

import math

import pytest
import torch

from smcdiff import SMC, AdaptiveResampling, Categorical, ConfigError, EvenSplit, TopK, ToyDenoiser, UnmaskingKernel
from smcdiff.potentials.fk import FKSteering
from smcdiff.rewards import CallableReward
from smcdiff.theory_checks import check_unbiasedness, exact_target

ONES = CallableReward(lambda prompt, text: float(sum(1 for t in text if t == 1)))  # texts: tuples of ids


@pytest.fixture(scope="module")
def setup():
    model = ToyDenoiser.random(vocab_size=2, length=5, seed=4)
    kernel = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(steps=4), block_length=None)
    return model, kernel, exact_target(kernel, model, [0], 4).target()


@pytest.mark.parametrize("kind", ["difference", "max", "sum"])
@pytest.mark.parametrize("window", [(1, None, 1), (2, 3, 1), (1, None, 2)])
def test_exact_tilted_target(setup, kind, window):
    model, kernel, base = setup
    lam = 0.8
    start, end, every = window
    enum = exact_target(kernel, model, [0], 4, [FKSteering(ONES, lam, kind, start=start, end=end, every=every)])
    un = {k: p * math.exp(lam * sum(1 for t in k if t == 1)) for k, p in base.items()}
    z = sum(un.values())
    got = enum.target()
    for k in un:
        assert got[k] == pytest.approx(un[k] / z, abs=1e-12)
    assert enum.log_Z == pytest.approx(math.log(z), abs=1e-12)


def test_intermediate_weights_follow_the_potential_type(setup):
    model, kernel, _ = setup
    # over a single step (one step = the whole generation) every type gives lam * R(x_0)
    one = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(steps=1), block_length=None)
    for kind in ("difference", "max", "sum"):
        res = SMC(one, [FKSteering(ONES, 0.5, kind)], n_particles=3).run(model, [[0]], gen_length=4, seed=0)
        r = (res.sequences[0, :, 1:] == 1).sum(-1).double()
        torch.testing.assert_close(res.weights.log_w[0], 0.5 * r, rtol=0, atol=1e-12)


def test_unbiased_with_resampling(setup):
    model, kernel, _ = setup
    smc = SMC(kernel, [FKSteering(ONES, 1.0, "max")], n_particles=4, resampling=AdaptiveResampling(kappa=0.9))
    rep = check_unbiasedness(smc, model, [0], 4, n_runs=400, seed=1)
    assert rep.passed, rep


def test_bad_arguments():
    with pytest.raises(ConfigError, match="potential must be one of"):
        FKSteering(ONES, 1.0, "min")
    with pytest.raises(ConfigError, match="lam must be a finite number; got inf"):
        FKSteering(ONES, math.inf)
    with pytest.raises(ConfigError, match="every must be an int >= 1; got 0"):
        FKSteering(ONES, every=0)
    with pytest.raises(ConfigError, match="end must be an int >= 3; got 2"):
        FKSteering(ONES, start=3, end=2)
    with pytest.raises(ConfigError, match="reward must have score"):
        FKSteering(object())
