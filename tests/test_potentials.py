"""Exact checks of the potential algebra and timing on a toy model.

With random order, one commit per step and temperature 1 the kernel's law of the
final sequence is the toy joint p(s | prompt) (checked in test_exact.py), so a
potential that depends on the final sequence only gives the target p(s) * f(s).
"""

import math

import pytest
import torch

from reference_impl import reference_gamma
from smcdiff import Categorical, ConfigError, FixedCounts, Potential, RandomK, ToyDenoiser, TrajectoryConfidence, UnmaskingKernel
from smcdiff.theory_checks import check_proper_weighting


class SeqScore(Potential):
    """log f(generated tokens) with f(s) = exp(c * sum(s)) (or of one block)."""

    def __init__(self, c, block=None, block_length=None):
        self.c, self.block, self.bl = c, block, block_length

    def log_potential(self, prev, step):
        gen = step.state.tokens[..., step.state.canvas.prompt_length :].to(torch.float64)
        if self.block is None:
            return self.c * gen.sum(-1)
        # the block the particle completed in this step: the previous state's block
        b = prev.block[:, None]
        idx = torch.arange(gen.shape[-1])
        in_blk = (idx[None, None, :] // self.bl) == b[..., None]
        return self.c * torch.where(in_blk, gen, 0.0).sum(-1)


MODEL = ToyDenoiser.random(3, 4, seed=21)
PROMPT = [2]
G = 3


def kernel(block_length=None):
    return UnmaskingKernel(Categorical(1.0), RandomK(), FixedCounts([1] * (block_length or G)), block_length=block_length)


def joint_times(f):
    return {s: p * f(s) for s, p in MODEL.target_given_prompt(PROMPT).items()}


def test_final_only():
    rep = check_proper_weighting(kernel(), MODEL, PROMPT, G, [SeqScore(0.3).final_only()],
                                 target=joint_times(lambda s: math.exp(0.3 * sum(s))))
    assert rep.passed, str(rep)


def test_product_and_power_of_final_potentials():
    pot = SeqScore(0.3).final_only() * (SeqScore(-0.2).final_only() ** 2.0)
    rep = check_proper_weighting(kernel(), MODEL, PROMPT, G, [pot],
                                 target=joint_times(lambda s: math.exp((0.3 - 0.4) * sum(s))))
    assert rep.passed, str(rep)


def test_at_block_end():
    model = ToyDenoiser.random(3, 5, seed=21)
    pot = SeqScore(0.5, block=True, block_length=2).at_block_end()
    law = {s: p * math.exp(0.5 * sum(s)) for s, p in model.target_given_prompt(PROMPT).items()}
    rep = check_proper_weighting(kernel(2), model, PROMPT, 4, [pot], target=law)
    assert rep.passed, str(rep)


def test_product_of_confidences_is_power_two():
    k = UnmaskingKernel(Categorical(1.0), RandomK(), FixedCounts([1] * 3))
    m = ToyDenoiser.random(3, 3, seed=2)
    gamma = reference_gamma(m.joint, [], 3, [1, 1, 1], None, "random", 1.0, True, beta=2.0)
    rep = check_proper_weighting(k, m, [], 3, [TrajectoryConfidence() * TrajectoryConfidence()], target=gamma)
    assert rep.passed, str(rep)


def test_power_zero_is_one_and_negative_rejected():
    k = UnmaskingKernel(Categorical(1.0), RandomK(), FixedCounts([1] * 3))
    m = ToyDenoiser.random(3, 3, seed=2)
    # random order, one token per step, T = 1: the kernel law is the joint; G^0 = 1 leaves it unchanged
    rep = check_proper_weighting(k, m, [], 3, [TrajectoryConfidence() ** 0.0], target=m.target_given_prompt([]))
    assert rep.passed and rep.log_Z_proposal == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ConfigError, match="exponent"):
        TrajectoryConfidence() ** -1.0


class StateScore(Potential):
    """log G = 0.4 * (sum of the committed tokens of the new canvas); depends on the state only."""

    def log_potential(self, prev, step):
        st = step.state
        tok = st.tokens[..., st.canvas.prompt_length :]
        return 0.4 * torch.where(tok == st.canvas.mask_id, 0, tok).sum(-1).to(torch.float64)


def adaptive_kernels():
    from smcdiff.proposals import AdaptiveSteps, AlphaSchedule, Ancestral, Threshold

    return [
        UnmaskingKernel(Categorical(1.0), Threshold(0.34), AdaptiveSteps()),
        UnmaskingKernel(Categorical(1.0), Ancestral(), AlphaSchedule("linear", 3, counts="none")),
    ]


@pytest.mark.parametrize("k", adaptive_kernels(), ids=["threshold", "ancestral"])
def test_twist_telescopes_for_particles_that_finish_early(k):
    # particles of one prompt finish at different steps and then idle; the twist must cancel exactly
    from smcdiff import SMC, NeverResample

    res = SMC(k, [StateScore().as_twist()], n_particles=8, resampling=NeverResample()).run(MODEL, torch.tensor([PROMPT] * 3), G, seed=1)
    finish = res.commit_step[..., 1:].max(-1).values
    assert (finish != finish[:, :1]).any()  # some particles finished earlier than others
    assert torch.allclose(res.log_weights, torch.zeros_like(res.log_weights), atol=1e-12)


@pytest.mark.parametrize("k", adaptive_kernels(), ids=["threshold", "ancestral"])
def test_step_potential_on_early_finishers_is_unbiased(k):
    # E[Z_hat]/Z within 5 SE with N = 4 (idle steps must not re-apply the potential)
    from smcdiff import SMC, AlwaysResample
    from smcdiff.theory_checks import check_unbiasedness

    smc = SMC(k, [StateScore()], n_particles=4, resampling=AlwaysResample())
    rep = check_unbiasedness(smc, MODEL, PROMPT, G, n_runs=2000, seed=4, k=5.0)
    assert rep.passed, str(rep)


def test_twist_of_a_timed_potential_is_refused():
    with pytest.raises(ConfigError, match="twist"):
        StateScore().final_only().as_twist()


@pytest.mark.parametrize("wrap", ["power", "product"])
def test_wrapped_twist_keeps_its_state_and_still_telescopes(wrap):
    # a tempered (or multiplied) twist must advance its stored value once per step, so the whole
    # trajectory's factors still cancel: same target as without the twist, exactly on every sequence
    from smcdiff import SMC, NeverResample

    twist = StateScore().as_twist()
    wrapped = twist ** 2.0 if wrap == "power" else twist * TrajectoryConfidence() ** 0.0
    plain = check_proper_weighting(kernel(), MODEL, PROMPT, G, [TrajectoryConfidence()])
    rep = check_proper_weighting(kernel(), MODEL, PROMPT, G, [TrajectoryConfidence(), wrapped], target=plain.target)
    assert plain.passed and rep.passed, str(rep)
    res = SMC(kernel(), [wrapped], n_particles=4, resampling=NeverResample()).run(MODEL, torch.tensor([PROMPT] * 2), G, seed=0)
    assert torch.allclose(res.log_weights, torch.zeros_like(res.log_weights), atol=1e-12)


def test_timed_twist_is_refused():
    with pytest.raises(ConfigError, match="twist telescopes over every step"):
        StateScore().as_twist().at_block_end()
