import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from smcdiff import Categorical, ConfigError, EvenSplit, FixedCounts, Greedy, GumbelMax, RandomK, TopK
from smcdiff.proposals import RowRNG, StepPlan, even_split_counts, top_k_mask
from smcdiff.state import Canvas


def rng(seed=0, n=1):
    return RowRNG([torch.Generator().manual_seed(seed)], [0], n, torch.device("cpu"))


def logits_vector(v, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(v, generator=g, dtype=torch.float64) * 2.0
    z[3] = float("-inf")  # a zero-probability token
    return z


@pytest.mark.parametrize("v", [5, 300])
@pytest.mark.parametrize(
    "sampler", [Categorical(1.0), Categorical(0.5), Categorical(2.0), GumbelMax(1.0), GumbelMax(0.7)], ids=repr
)
def test_sampler_frequencies_match_tempered_softmax(sampler, v):
    # R draws (R block positions with identical logits). Tokens expected at least 25
    # times are their own bin, the rarer ones are pooled into one bin; each bin's
    # frequency must lie within 5 binomial standard errors of softmax(z / T).
    r = 20000
    z = logits_vector(v, 1)
    logits = z.expand(1, r, v).to(torch.float32).contiguous()
    tok, lp = sampler.draw(logits, rng(7))
    p = torch.softmax(z / sampler.temperature, dim=0)
    freq = torch.bincount(tok.flatten(), minlength=v).to(torch.float64) / r
    assert freq[3] == 0.0
    big = p * r >= 25
    pb = torch.cat([p[big], p[~big].sum()[None]])
    fb = torch.cat([freq[big], freq[~big].sum()[None]])
    se = torch.sqrt(pb * (1 - pb) / r)
    assert torch.all((fb - pb).abs() <= 5 * se + 1e-12)
    # reported log-probabilities agree with log_prob of the same tokens
    again = sampler.log_prob(logits, tok)
    assert torch.equal(lp.model, again.model)
    assert torch.allclose(lp.proposal, again.proposal, atol=1e-12, rtol=0)
    assert torch.allclose(
        lp.proposal, torch.log_softmax(logits.double() / sampler.temperature, -1).gather(-1, tok[..., None])[..., 0],
        atol=1e-5,
    )


def test_categorical_float64_logits_give_float64_exact_logprobs():
    z = logits_vector(7, 2)
    logits = z.expand(1, 50, 7).contiguous()
    tok, lp = Categorical(1.0).draw(logits, rng(1))
    ref = torch.log_softmax(z, 0)[tok]
    assert torch.allclose(lp.model, ref, atol=1e-14, rtol=0)


def test_greedy_and_temperature_zero():
    logits = torch.tensor([[[0.0, 2.0, 2.0, -1.0]]])
    for s in (Greedy(), Categorical(0.0), GumbelMax(0.0)):
        tok, lp = s.draw(logits, rng())
        assert tok.item() == 1  # first maximum
        assert lp.proposal.item() == 0.0
        other = s.log_prob(logits, torch.tensor([[2]]))
        assert other.proposal.item() == float("-inf")


def test_negative_temperature_rejected():
    with pytest.raises(ConfigError, match="temperature must be finite and >= 0"):
        Categorical(-0.5)
    with pytest.raises(ConfigError, match="temperature must be finite and >= 0"):
        GumbelMax(-1.0)


def test_gumbel_argmax_matches_llada_formula():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 6, 11, generator=g)
    u = torch.rand(4, 6, 11, generator=g, dtype=torch.float64)
    tau = 0.8
    llada = (logits.double().exp() / (-torch.log(u)) ** tau).argmax(-1)
    assert torch.equal(GumbelMax(tau).gumbel_argmax(logits, u), llada)


def test_top_k_ties_break_to_lowest_index_and_respect_eligibility():
    scores = torch.tensor([[0.5, 0.9, 0.9, 0.9, 0.1]])
    elig = torch.tensor([[True, True, False, True, True]])
    m = top_k_mask(scores, elig, torch.tensor([2]))
    assert m.tolist() == [[False, True, False, True, False]]
    assert top_k_mask(scores, elig, torch.tensor([10])).tolist() == elig.tolist()


@pytest.mark.parametrize("m,k", [(4, 1), (4, 2), (5, 3), (3, 3)])
def test_random_k_probabilities_sum_to_one(m, k):
    lb = m + 1
    elig = torch.tensor([[True] * m + [False]])
    total = 0.0
    for sub in itertools.product([False, True], repeat=lb):
        c = torch.tensor([sub])
        total += math.exp(RandomK().log_prob(torch.zeros(1, lb), elig, StepPlan(torch.tensor([k])), c).item())
    assert total == pytest.approx(1.0, abs=1e-12)


def test_random_k_draws_are_uniform_subsets():
    # 4 eligible, k = 2: each of the 6 subsets within 5 SE of 1/6 over R draws.
    r = 6000
    elig = torch.ones(r, 4, dtype=torch.bool)
    d = RandomK().draw(torch.zeros(r, 4), elig, StepPlan(torch.full((r,), 2)), rng(3, n=r))
    commit, lp = d.commit, d.log_prob
    assert torch.all(commit.sum(1) == 2)
    assert torch.allclose(lp, torch.full((r,), -math.log(6), dtype=torch.float64))
    keys = (commit.long() * torch.tensor([1, 2, 4, 8])).sum(1)
    freq = torch.bincount(keys, minlength=16).double()[keys.unique()] / r
    se = math.sqrt((1 / 6) * (5 / 6) / r)
    assert torch.all((freq - 1 / 6).abs() <= 5 * se)


def test_topk_log_prob_is_point_mass():
    s = torch.tensor([[0.2, 0.7, 0.4]])
    e = torch.ones(1, 3, dtype=torch.bool)
    k = StepPlan(torch.tensor([1]))
    assert TopK().log_prob(s, e, k, torch.tensor([[False, True, False]])).item() == 0.0
    assert TopK().log_prob(s, e, k, torch.tensor([[True, False, False]])).item() == float("-inf")


@given(st.integers(0, 200), st.integers(1, 64))
def test_even_split_sums_to_masks(n, steps):
    c = even_split_counts(n, steps)
    assert sum(c) == n and len(c) == steps
    assert max(c) - min(c) <= 1 and c == sorted(c, reverse=True)


def test_schedules_validate():
    canvas = Canvas(prompt_length=0, gen_length=8, block_length=4, mask_id=9)
    EvenSplit(8).validate(canvas)
    with pytest.raises(ConfigError, match="multiple of the number of blocks"):
        EvenSplit(3).validate(canvas)
    with pytest.raises(ConfigError, match="could not unmask everything"):
        FixedCounts([1, 1]).validate(canvas)
    FixedCounts([2, 2]).validate(canvas)
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        EvenSplit(0)
