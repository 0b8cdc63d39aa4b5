import math

import pytest
import torch

from smcdiff import (
    SMC,
    AdaptiveResampling,
    AllParticlesDeadError,
    AlwaysResample,
    Categorical,
    EvenSplit,
    NeverResample,
    Potential,
    RandomK,
    ToyDenoiser,
    TopK,
    TrajectoryConfidence,
    UnmaskingKernel,
    row_seeds,
)


def kernel(selector=None, tau=1.0, steps=4, block=2):
    return UnmaskingKernel(Categorical(tau), selector or TopK(), EvenSplit(steps), block_length=block)


@pytest.fixture
def model():
    return ToyDenoiser.random(3, 5, seed=3)


PROMPTS = torch.tensor([[0], [1], [2], [1]])


def assert_same_result(a, b):
    assert torch.equal(a.sequences, b.sequences)
    assert torch.equal(a.log_weights, b.log_weights)
    assert torch.equal(a.log_Z, b.log_Z)
    assert torch.equal(a.commit_step, b.commit_step)
    assert torch.equal(a.committed_logp, b.committed_logp)
    assert torch.equal(a.genealogy.ancestors, b.genealogy.ancestors)
    assert len(a.records) == len(b.records)
    for ra, rb in zip(a.records, b.records):
        assert torch.equal(ra.log_weight_increment, rb.log_weight_increment)
        assert torch.equal(ra.resampled, rb.resampled)
        assert torch.equal(ra.ess_before, rb.ess_before)


@pytest.mark.parametrize("selector", [TopK(), RandomK()], ids=repr)
@pytest.mark.parametrize("scheme", ["systematic", "multinomial", "residual"])
def test_batch_equals_separate_runs_bit_for_bit(model, selector, scheme):
    smc = SMC(kernel(selector), [TrajectoryConfidence()], n_particles=5,
              resampling=AdaptiveResampling(1.0, scheme=scheme))
    seeds = [11, 22, 33, 44]
    joint = smc.run(model, PROMPTS, 4, seed=seeds)
    for b in range(4):
        alone = smc.run(model, PROMPTS[b : b + 1], 4, seed=[seeds[b]])
        assert_same_result(joint.per_prompt(b), alone)
    assert joint.resampled.any()


def test_integer_seed_gives_per_row_seeds_independent_of_batch(model):
    smc = SMC(kernel(), [TrajectoryConfidence()], n_particles=3, resampling=AlwaysResample())
    joint = smc.run(model, PROMPTS, 4, seed=5)
    rs = row_seeds(5, 4)
    assert rs[:2] == row_seeds(5, 2)
    for b in range(4):
        assert_same_result(joint.per_prompt(b), smc.run(model, PROMPTS[b : b + 1], 4, seed=[rs[b]]))


def test_same_seed_same_output_and_different_seed_differs(model):
    smc = SMC(kernel(), [TrajectoryConfidence()], n_particles=8)
    a, b = smc.run(model, PROMPTS, 4, seed=1), smc.run(model, PROMPTS, 4, seed=1)
    assert_same_result(a, b)
    c = smc.run(model, PROMPTS, 4, seed=2)
    assert not torch.equal(a.sequences, c.sequences)


def test_weights_equal_trajectory_confidence_without_resampling(model):
    # With the bootstrap kernel and no resampling, each particle's log weight is the
    # sum of the log-probabilities of its committed tokens (Proposition 3.1), and
    # log Z_hat is the log-mean of those weights.
    smc = SMC(kernel(RandomK()), [TrajectoryConfidence()], n_particles=6, resampling=NeverResample())
    res = smc.run(model, PROMPTS, 4, seed=3)
    assert torch.allclose(res.log_weights, res.trajectory_log_confidence, atol=1e-12, rtol=0)
    assert torch.allclose(res.log_Z, torch.logsumexp(res.log_weights, 1) - math.log(6), atol=1e-12)
    # committed log-probabilities are the exact model conditionals at commit time
    for b in range(2):
        for i in range(2):
            seq = res.sequences[b, i]
            steps = res.commit_step[b, i]
            for pos in range(1, 5):
                before = seq.clone()
                before[(steps >= steps[pos]) & (steps > 0)] = model.mask_id
                p = model.conditionals(before[None])[0, pos, seq[pos]]
                assert res.committed_logp[b, i, pos].item() == pytest.approx(math.log(p), abs=1e-12)


def test_log_Z_increments_sum_to_log_Z(model):
    smc = SMC(kernel(), [TrajectoryConfidence()], n_particles=4, resampling=AlwaysResample())
    res = smc.run(model, PROMPTS, 4, seed=4)
    total = torch.stack([r.log_Z_increment for r in res.records]).sum(0)
    assert torch.allclose(total, res.log_Z, atol=1e-12)
    # resampled after every step but the last (the final population is not resampled)
    assert res.resampled[:-1].all() and not res.resampled[-1].any()


def test_genealogy_lineage_is_consistent(model):
    smc = SMC(kernel(), [TrajectoryConfidence()], n_particles=4, resampling=AlwaysResample("multinomial"))
    res = smc.run(model, PROMPTS, 4, seed=9)
    lin = res.genealogy.lineage()
    assert lin.shape == (5, 4, 4)
    assert torch.equal(lin[-1], torch.arange(4).expand(4, 4))
    nu = res.genealogy.n_unique_ancestors()
    assert torch.all(nu[:-1] <= 4) and torch.all(nu[-1] == 4)
    assert torch.all(nu[:-1] >= 1)


def test_records_and_nfe(model):
    smc = SMC(kernel(steps=4, block=2), [TrajectoryConfidence()], n_particles=2)
    res = smc.run(model, PROMPTS, 4, seed=0)
    assert len(res.records) == 4
    assert res.nfe.tolist() == [4, 4, 4, 4]
    assert [bool(r.block_end.all()) for r in res.records] == [False, True, False, True]
    assert (res.generated != model.mask_id).all()


class Kill(Potential):
    """Zero weight for every particle whose first generated token is 0."""

    def log_potential(self, prev, step):
        first = step.state.tokens[..., step.state.canvas.prompt_length]
        return torch.where(first == 0, float("-inf"), 0.0).to(torch.float64)


def test_all_dead_raises_or_flags():
    model = ToyDenoiser.random(2, 3, seed=1)
    k = UnmaskingKernel(Categorical(0.0), TopK(), EvenSplit(2), block_length=1)  # greedy: all particles equal
    # find a prompt whose greedy first token is 0
    prompts = torch.tensor([[0], [1]])
    smc = SMC(k, [Kill()], n_particles=3)
    first = SMC(k, [], n_particles=1).run(model, prompts, 2, seed=0).generated[:, 0, 0]
    assert (first == 0).any() and (first != 0).any()  # this toy joint kills one prompt, not the other
    with pytest.raises(AllParticlesDeadError, match="zero weight"):
        smc.run(model, prompts, 2, seed=0)
    flagged = SMC(k, [Kill()], n_particles=3, on_all_dead="flag").run(model, prompts, 2, seed=0)
    dead = first == 0
    assert flagged.dead.tolist() == dead.tolist()
    assert torch.isneginf(flagged.log_Z[dead]).all()
    assert torch.isfinite(flagged.log_Z[~dead]).all()
    assert not torch.isnan(flagged.normalized_weights).any()


def test_chunked_forward_is_bit_identical(model):
    a = SMC(kernel(), [TrajectoryConfidence()], n_particles=4).run(model, PROMPTS, 4, seed=2)
    b = SMC(kernel(), [TrajectoryConfidence()], n_particles=4, max_rows=3).run(model, PROMPTS, 4, seed=2)
    assert_same_result(a, b)


def test_functional_init_step_matches_run(model):
    smc = SMC(kernel(), [TrajectoryConfidence()], n_particles=3, resampling=AlwaysResample())
    st = smc.init(model, PROMPTS, 4, seed=6)
    recs = []
    while not st.done:
        st, r = smc.step(model, st)
        recs.append(r)
    assert_same_result(smc.result(st, recs), smc.run(model, PROMPTS, 4, seed=6))
