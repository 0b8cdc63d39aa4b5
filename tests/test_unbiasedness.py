"""Statistical checks that E[Z_hat] / Z = 1.

Each configuration runs R independent SMC runs (R rows of one batch, fixed seed)
and requires |mean(Z_hat / Z) - 1| <= 5 standard errors of that mean. Z is the
exact normaliser from enumeration.
"""

from dataclasses import replace

import pytest
import torch

from smcdiff import (
    SMC,
    AdaptiveResampling,
    AlwaysResample,
    Categorical,
    EveryKSteps,
    EvenSplit,
    NeverResample,
    RandomK,
    ToyDenoiser,
    TopK,
    TrajectoryConfidence,
    UnmaskingKernel,
)
from smcdiff.theory_checks import check_unbiasedness, exact_log_Z

K_SE = 5.0
R = 1500
SCHEMES = ["systematic", "stratified", "residual", "multinomial"]
JOINT_SEEDS = [101, 202]
PROMPT = [1]
GEN = 4


def kernel():
    # two blocks of two positions, one commit per step, tokens at temperature 1
    return UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(4), block_length=2)


def policy(name, scheme):
    if name == "every_step":
        return AlwaysResample(scheme, when="every_step")
    if name == "adaptive":
        return AdaptiveResampling(kappa=0.9, scheme=scheme, when="every_step")
    if name == "every_k":
        return AdaptiveResampling(kappa=1.0, scheme=scheme, when=EveryKSteps(2))
    if name == "block_end":
        return AdaptiveResampling(kappa=1.0, scheme=scheme, when="block_end")
    return NeverResample()


_LOG_Z = {}


def log_z(seed):
    if seed not in _LOG_Z:
        model = ToyDenoiser.random(3, 1 + GEN, seed=seed)
        _LOG_Z[seed] = exact_log_Z(kernel(), model, PROMPT, GEN, [TrajectoryConfidence()])
    return _LOG_Z[seed]


CONFIGS = [
    (n, scheme, pol, js)
    for js in JOINT_SEEDS
    for n in (1, 2, 4, 16)
    for pol in ("every_step", "adaptive", "every_k", "block_end", "never")
    for scheme in (SCHEMES if pol != "never" else ["systematic"])
]


@pytest.mark.parametrize("n,scheme,pol,joint_seed", CONFIGS, ids=lambda x: str(x))
def test_Z_hat_is_unbiased(n, scheme, pol, joint_seed):
    model = ToyDenoiser.random(3, 1 + GEN, seed=joint_seed)
    smc = SMC(kernel(), [TrajectoryConfidence()], n_particles=n, resampling=policy(pol, scheme))
    rep = check_unbiasedness(smc, model, PROMPT, GEN, n_runs=R, seed=7 * n + joint_seed, k=K_SE, log_Z=log_z(joint_seed))
    assert rep.passed, str(rep)


def test_random_selection_and_tempered_potential_unbiased():
    model = ToyDenoiser.random(3, 4, seed=5)
    k = UnmaskingKernel(Categorical(0.7), RandomK(), EvenSplit(3))
    smc = SMC(k, [TrajectoryConfidence() ** 2.0], n_particles=4, resampling=AlwaysResample("systematic"))
    rep = check_unbiasedness(smc, model, [0], 3, n_runs=R, seed=3, k=K_SE)
    assert rep.passed, str(rep)


def test_without_potentials_Z_hat_is_exactly_one():
    model = ToyDenoiser.random(3, 4, seed=5)
    k = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(3))
    smc = SMC(k, [], n_particles=4, resampling=AlwaysResample())
    rep = check_unbiasedness(smc, model, [0], 3, n_runs=50, seed=1)
    assert rep.passed and rep.standard_error == 0.0 and rep.ratio_mean == pytest.approx(1.0, abs=1e-12)


class ForgetfulSMC(SMC):
    """A deliberately wrong estimator: drops the log-mean weights at resampling events."""

    def step(self, model, state):
        new, rec = super().step(model, state)
        return replace(new, log_Z_resampled=torch.zeros_like(new.log_Z_resampled)), rec


@pytest.mark.parametrize("pol", ["every_step", "adaptive", "every_k", "block_end"])
def test_policies_do_resample_in_these_configurations(pol):
    model = ToyDenoiser.random(3, 1 + GEN, seed=JOINT_SEEDS[0])
    smc = SMC(kernel(), [TrajectoryConfidence()], n_particles=4, resampling=policy(pol, "systematic"))
    res = smc.run(model, torch.tensor([PROMPT] * 200), GEN, seed=0)
    frac = res.resampled.double().mean().item()
    assert frac > 0.05
    if pol == "every_k":
        assert not res.resampled[0].any() and not res.resampled[2].any()  # checks only after steps 2 and 4
    if pol == "block_end":
        assert not res.resampled[0].any()  # step 1 does not end a block


def test_check_detects_a_biased_estimator():
    model = ToyDenoiser.random(3, 1 + GEN, seed=JOINT_SEEDS[0])
    smc = ForgetfulSMC(kernel(), [TrajectoryConfidence()], n_particles=4, resampling=AlwaysResample())
    rep = check_unbiasedness(smc, model, PROMPT, GEN, n_runs=R, seed=1, k=K_SE, log_Z=log_z(JOINT_SEEDS[0]))
    assert not rep.passed, str(rep)


# ---------------------------------------------------------------- particles that idle
# With a variable number of commits per step (threshold selection), a particle that
# finishes its block early idles until its siblings finish. Per-step potentials must
# then depend on the particle's own moves only; the annealed confidence of the
# released MDLM code (beta_k = k / G) once counted the prompt's steps instead and
# gave E[Z_hat]/Z = 0.83 (z = -38) here.
from smcdiff import Threshold  # noqa: E402

IDLE_POTENTIALS = {
    "confidence": lambda: [TrajectoryConfidence()],
    "annealed": lambda: [TrajectoryConfidence(anneal="steps_over_length")],
    "annealed_power": lambda: [TrajectoryConfidence(anneal="steps_over_length") ** 1.5],
    "annealed_twist": lambda: [TrajectoryConfidence(), TrajectoryConfidence(anneal="steps_over_length").as_twist()],
}


def idle_kernel():
    return UnmaskingKernel(Categorical(1.0), Threshold(0.3), EvenSplit(4), block_length=2)


@pytest.mark.parametrize("pot", sorted(IDLE_POTENTIALS))
@pytest.mark.parametrize("pol", ["never", "block_end", "every_step"])
def test_Z_hat_is_unbiased_when_particles_idle(pot, pol):
    model = ToyDenoiser.random(3, 1 + GEN, seed=4, concentration=0.3)
    pots = IDLE_POTENTIALS[pot]()
    lz = exact_log_Z(idle_kernel(), model, PROMPT, GEN, pots)
    smc = SMC(idle_kernel(), pots, n_particles=5, resampling=policy(pol, "systematic"))
    rep = check_unbiasedness(smc, model, PROMPT, GEN, n_runs=R, seed=11, k=K_SE, log_Z=lz)
    assert rep.passed, str(rep)


def test_idling_really_happens_in_the_idle_configuration():
    model = ToyDenoiser.random(3, 1 + GEN, seed=4, concentration=0.3)
    smc = SMC(idle_kernel(), [TrajectoryConfidence()], n_particles=5, resampling=NeverResample())
    res = smc.run(model, torch.tensor([PROMPT] * 200), GEN, seed=0)
    # particles of one prompt finish a block at different steps: the early ones idle
    done_at = res.commit_step[:, :, 1:].reshape(200, 5, 2, 2).max(dim=-1).values  # [runs, N, blocks]
    differ = (done_at[:, :, 0] != done_at[:, :1, 0]).any(dim=1)  # in the first block, so later moves shift
    assert differ.float().mean() > 0.2
