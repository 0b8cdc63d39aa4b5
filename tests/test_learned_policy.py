"""Learned unmasking policies (arXiv 2512.09106): exact action probabilities, SMC weighting, GRPO."""

import itertools
import math

import pytest
import torch

from smcdiff import SMC, AlwaysResample, ToyDenoiser, TrajectoryConfidence
from smcdiff import spec as S
from smcdiff.proposals.learned import (PolicyBernoulli, PolicyPlackettLuce, UnmaskingPolicyNet, bernoulli_log_prob,
                                       policy_kernel)
from smcdiff.proposals.selectors import StepPlan
from smcdiff.theory_checks import check_components


def _net(seed=0, scale=2.0):
    torch.manual_seed(seed)
    net = UnmaskingPolicyNet()
    with torch.no_grad():  # a non-trivial policy: random modulation and head
        net.ada[1].weight.normal_(0, 0.05)
        net.head.weight.normal_(0, scale)
        net.head.bias.fill_(0.0)
    return net.double().eval()  # float64: the exact checks compare sums over paths to 1e-9


def test_network_shape_size_and_initialisation():
    net = UnmaskingPolicyNet()
    assert 0.30e6 < sum(p.numel() for p in net.parameters()) < 0.36e6
    assert torch.count_nonzero(net.ada[1].weight) == 0 and float(net.head.bias.detach()) == -2.0
    z = net(torch.rand(2, 9), torch.rand(2, 9) > 0.5, torch.tensor([0.0, 0.5]))
    assert z.shape == (2, 9) and torch.isfinite(z).all()


def _all_subsets(lb):
    return [torch.tensor(bits, dtype=torch.bool) for bits in itertools.product([False, True], repeat=lb)]


@pytest.mark.parametrize("fallback", [False, True])
@pytest.mark.parametrize("beta", [1.0, 0.5, 3.0])
def test_bernoulli_probabilities_sum_to_one_and_fallback_is_never_empty(fallback, beta):
    torch.manual_seed(1)
    logits = torch.randn(3, 4, dtype=torch.float64) * 2
    elig = torch.tensor([[1, 1, 0, 1], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    total = torch.zeros(3, dtype=torch.float64)
    for c in _all_subsets(4):
        lp = bernoulli_log_prob(logits, elig, c.expand(3, 4), 0.7, beta, fallback)
        total += torch.exp(lp)
        if fallback:
            assert torch.isneginf(lp[~c.any().expand(3)]).all()
    assert torch.allclose(total, torch.ones(3, dtype=torch.float64), atol=1e-12)


class _RNG:
    def __init__(self, seed, rows):
        self.g = torch.Generator().manual_seed(seed)
        self.rows = rows

    def uniform(self, *shape):
        return torch.rand((self.rows,) + shape, generator=self.g, dtype=torch.float64)


def test_fallback_draws_are_never_empty_and_match_their_log_prob():
    sel = PolicyBernoulli(_net(scale=0.1), temperature=1.0, beta=0.05, fallback=True)  # tiny p: often empty
    scores = torch.rand(64, 6, dtype=torch.float64)
    elig = torch.rand(64, 6) > 0.3
    elig[:, 0] = True
    plan = StepPlan(k=elig.sum(-1), time=torch.rand(64, dtype=torch.float64))
    d = sel.draw(scores, elig, plan, _RNG(0, 64))
    assert d.commit.any(dim=-1).all() and not (d.commit & ~elig).any()
    assert torch.allclose(d.log_prob, sel.log_prob(scores, elig, plan, d.commit))


def test_dynamic_plackett_luce_probabilities_sum_to_one():
    sel = PolicyPlackettLuce(_net(2), temperature=0.8, stop_logit=0.3)
    scores = torch.rand(2, 4, dtype=torch.float64)
    elig = torch.tensor([[1, 1, 0, 1], [0, 1, 0, 0]], dtype=torch.bool)
    plan = StepPlan(k=elig.sum(-1), time=torch.tensor([0.2, 0.7], dtype=torch.float64))
    total = torch.zeros(2, dtype=torch.float64)
    for size in range(0, 5):
        for perm in itertools.permutations(range(4), size):
            commit = torch.zeros(2, 4, dtype=torch.bool)
            rank = torch.full((2, 4), -1)
            for j, pos in enumerate(perm):
                commit[:, pos] = True
                rank[:, pos] = j
            total += torch.exp(sel.log_prob(scores, elig, plan, commit, rank))
    assert torch.allclose(total, torch.ones(2, dtype=torch.float64), atol=1e-12)


def test_dynamic_plackett_luce_draws_follow_their_law():
    sel = PolicyPlackettLuce(_net(3), temperature=1.0, stop_logit=0.0)
    r = 20000
    scores = torch.tensor([[0.9, 0.2, 0.5]], dtype=torch.float64).expand(r, 3)
    elig = torch.ones(r, 3, dtype=torch.bool)
    plan = StepPlan(k=elig.sum(-1), time=torch.full((r,), 0.3, dtype=torch.float64))
    d = sel.draw(scores, elig, plan, _RNG(5, r))
    keys = [tuple(row) for row in d.rank.tolist()]
    counts = {k: keys.count(k) for k in set(keys)}
    for key, c in counts.items():
        rank = torch.tensor([key])
        p = math.exp(float(sel.log_prob(scores[:1], elig[:1], StepPlan(k=elig[:1].sum(-1), time=plan.time[:1]),
                                        rank >= 0, rank)))
        se = math.sqrt(p * (1 - p) / r)
        assert abs(c / r - p) < 5 * se + 1e-12, (key, c / r, p)


@pytest.mark.parametrize("mode", ["bernoulli", "dpls"])
def test_policy_selector_inside_smc_is_properly_weighted_and_unbiased(mode):
    model = ToyDenoiser.random(3, 4, seed=3)
    kernel = policy_kernel(_net(4), mode=mode, temperature=1.0, beta=1.0, block_length=None, tokens="sample")
    rep = check_components(kernel, model, [1], 3, [TrajectoryConfidence()], n_particles=4,
                           resampling=AlwaysResample(), n_runs=3000, seed=0, k=4.0)
    assert rep.proper_weighting.passed, rep.proper_weighting
    assert rep.sampling_law.passed, rep.sampling_law
    assert rep.unbiasedness.passed, rep.unbiasedness


def test_greedy_policy_kernel_runs_in_blocks_and_round_trips_through_a_spec(tmp_path):
    net = _net(5)
    net.save(tmp_path, "pol", meta={"description": "test"})
    kernel = policy_kernel(str(tmp_path / "pol"), block_length=2)
    smc = SMC(kernel, n_particles=2, gen_length=4)
    model = ToyDenoiser.random(3, 5, seed=0)
    a = smc.run(model, [[0]], seed=1)
    assert not (a.sequences == model.mask_id).any()
    b = S.build(S.to_spec(smc)).run(model, [[0]], seed=1)
    assert torch.equal(a.sequences, b.sequences)
    with pytest.raises(Exception, match="policy"):
        S.to_spec(SMC(policy_kernel(_net(6)), gen_length=4))  # an unsaved network cannot be written


# --- GRPO --------------------------------------------------------------------------------------
from smcdiff.train.policy import Rollouts, advantages, grpo_loss, grpo_step, rollout  # noqa: E402


def test_advantages_are_group_centred_without_std_normalisation():
    r = torch.tensor([1.0, 0.0, 0.5, 0.5, 0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    assert torch.allclose(advantages(r, 4), torch.tensor([0.5, -0.5, 0, 0, -0.25, -0.25, -0.25, 0.75],
                                                         dtype=torch.float64))


def test_grpo_loss_equals_a_hand_computation():
    net = _net(7).float()
    torch.manual_seed(0)
    conf = torch.rand(3, 5)
    masked = torch.tensor([[1, 1, 0, 1, 0], [1, 0, 0, 0, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    action = torch.tensor([[1, 0, 0, 0, 0], [0, 0, 0, 0, 1], [1, 1, 0, 0, 0]], dtype=torch.bool)
    time_ = torch.tensor([0.0, 0.2, 0.0])
    row = torch.tensor([0, 0, 1])  # steps 0 and 1 belong to episode 0, step 2 to episode 1
    with torch.no_grad():
        lp = bernoulli_log_prob(net(conf, masked, time_).double(), masked, action)
    shift = torch.tensor([0.0, math.log(3.0), 0.0], dtype=torch.float64)  # step 1: ratio 1/3
    ro = Rollouts(tokens=torch.zeros(2, 5), nfe=torch.tensor([2, 1]), correct=torch.tensor([True, False]),
                  reward=torch.tensor([1.0, 0.0], dtype=torch.float64), conf=conf, masked=masked, time=time_,
                  action=action, old_log_prob=lp + shift, row=row)
    for a0, a1 in ((0.5, -0.5), (-0.5, 0.5)):
        adv = torch.tensor([a0, a1], dtype=torch.float64)
        # episode 0: step 0 ratio 1 -> a0; step 1 ratio 1/3 -> min(a0/3, clip(1/3, .5, 1.5) a0 = a0/2)
        ep0 = (a0 + min(a0 / 3, a0 / 2)) / 2
        ep1 = a1  # ratio 1
        want = -(ep0 + ep1) / 2
        assert float(grpo_loss(net, ro, adv, clip=0.5).detach()) == pytest.approx(want, abs=1e-6)


def test_grpo_skips_a_batch_without_signal():
    net = _net(8).float()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    ro = Rollouts(torch.zeros(2, 3), torch.ones(2), torch.ones(2, dtype=torch.bool), torch.ones(2, dtype=torch.float64),
                  torch.rand(2, 3), torch.ones(2, 3, dtype=torch.bool), torch.zeros(2),
                  torch.ones(2, 3, dtype=torch.bool), torch.zeros(2, dtype=torch.float64), torch.tensor([0, 1]))
    before = [p.clone() for p in net.parameters()]
    assert grpo_step(net, opt, ro, group=2) == (0.0, True)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_short_grpo_run_on_a_toy_task_raises_mean_reward():
    # toy task: every completion is correct, reward ((n - NFE + 1) / n): the policy must learn to commit more
    model = ToyDenoiser.random(4, 8, seed=0)
    torch.manual_seed(0)
    net = UnmaskingPolicyNet()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, betas=(0.9, 0.99), weight_decay=0.1)
    gen = torch.Generator().manual_seed(0)
    templates = torch.full((4 * 8, 8), model.mask_id, dtype=torch.long)
    rewards = []
    for _ in range(30):
        ro = rollout(model, net.eval(), templates, lambda r, tok: True, 1.0, gen, fallback=True)
        rewards.append(float(ro.reward.mean()))
        grpo_step(net.train(), opt, ro, group=8)
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > first + 0.15, (first, last)  # stated margin: +0.15 of mean reward in 30 rounds


def test_shipped_policies_load_offline_by_name():
    from smcdiff import recipes
    from smcdiff.models import load
    from smcdiff.proposals.learned import _weights_dir, available_policies, load_policy

    names = available_policies()
    assert {"sudoku-a0.3", "sudoku-a1", "sudoku-a3"} <= set(names)
    for name in ("sudoku-a0.3", "sudoku-a1", "sudoku-a3"):
        assert (_weights_dir() / f"policy-{name}.safetensors").stat().st_size <= 2 * 2**20
        net = load_policy(name)
        assert net.meta["command"].startswith("python -m smcdiff.train policy --alpha")
    sudoku = load("sudoku")
    puzzle = "530070000600195000098000060800060003400803001700020006060000280000419005000080079"
    res = recipes.learned_policy("sudoku-a1", gen_length=81).infill(sudoku, [sudoku.encode(puzzle)], seed=0)
    grid = sudoku.decode(res.sequences[0, 0])
    assert "0" not in grid and all(g == p for g, p in zip(grid, puzzle) if p != "0")
    assert 1 <= int(res.nfe[0]) <= 51


def test_semi_autoregressive_rollouts_commit_only_in_the_current_window():
    model = ToyDenoiser.random(3, 7, seed=1)
    torch.manual_seed(0)
    net = UnmaskingPolicyNet()
    m = model.mask_id
    templates = torch.tensor([[0, m, m, 1, m, m, m]] * 6)  # windows of 2 from the first free position 1
    ro = rollout(model, net.eval(), templates, lambda r, tok: True, 1.0, torch.Generator().manual_seed(0),
                 fallback=True, block_length=2)
    window = (torch.arange(7) - 1).div(2, rounding_mode="floor")
    for s in range(ro.action.shape[0]):
        cur = int(window[ro.masked[s]].min())
        assert (ro.action[s] <= ro.eligible[s]).all() and (window[ro.action[s]] == cur).all()
        assert ro.action[s].any()  # the fallback
    assert not (ro.tokens == m).any()
    # the same layout the kernel uses: windows {1, 2}, {3, 4}, {5, 6}
    kernel_blocks = policy_kernel(net, block_length=2)
    res = SMC(kernel_blocks).infill(model, templates[:1], seed=0)
    steps = res.commit_step[0, 0]
    assert int(steps[1:3].max()) < int(steps[4:7].min())
