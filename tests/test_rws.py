"""RWS (arXiv 2509.00707) as a reward-tilted kernel; reward adapters; reward potentials and twists."""

import json
import math

import pytest
import torch

from smcdiff import SMC, AlwaysResample, ConfigError, ToyDenoiser, TrajectoryConfidence, recipes
from smcdiff.models import CallableDenoiser, MaskedLMDenoiser
from smcdiff.models.tiny import tiny_bert
from smcdiff.potentials.reward import RewardPotential
from smcdiff.proposals import Categorical, EvenSplit, PlackettLuce, ScoreFn, TopK, UnmaskingKernel
from smcdiff.proposals.reward_tilt import Affine, Direct, ExpClip, RewardTilt
from smcdiff.rewards import (
    CallableReward,
    CountingReward,
    Decoder,
    NormalizedReward,
    SequenceClassifierReward,
    VerifierReward,
)
from smcdiff.theory_checks import check_components, check_proper_weighting, check_unbiasedness


def sum_reward(c=0.3):
    """A toy reward on token tuples: c * (sum of tokens)."""
    return CallableReward(lambda prompt, text: c * sum(text))


def test_scale_maps():
    s = torch.tensor([-10.0, 0.0, 0.5, 10.0], dtype=torch.float64)
    assert ExpClip(1.0, 0.25, 4.0)(s).tolist() == pytest.approx([0.25, 1.0, math.exp(0.5), 4.0])
    assert Affine(1.0, 0.05)(s).tolist() == pytest.approx([0.05, 1.0, 1.5, 11.0])
    assert Direct()(torch.tensor([0.5, 2.0])).tolist() == [0.5, 2.0]
    # a min-max normalised reward is 0 at (or below 0 under) the baseline minimum: the smallest scale, no crash
    assert Direct(1e-3)(torch.tensor([0.0, -0.2], dtype=torch.float64)).tolist() == [1e-3, 1e-3]
    with pytest.raises(ConfigError, match="NaN"):
        Direct()(torch.tensor([float("nan")]))
    with pytest.raises(ConfigError, match="r_min must be > 0"):
        Direct(0.0)


def test_r_equal_one_reproduces_the_baseline_exactly():
    model = ToyDenoiser.random(4, 6, seed=1)
    prompts = torch.tensor([[0], [3]])
    for tau in (0.0, 1.0):
        base = recipes.llada(steps=3, gen_length=5, block_length=5, temperature=tau, n_particles=2).run(model, prompts, seed=7)
        zero = CallableReward(lambda p, t: 0.0)  # normalised reward 0 -> r = exp(0) = 1
        res = recipes.rws(zero, gen_length=5, steps=3, temperature=tau, n_particles=2).run(model, prompts, seed=7)
        assert torch.equal(res.sequences, base.sequences)
        assert torch.equal(res.commit_step, base.commit_step)


def fixed_logits_model(rows):
    """A denoiser whose logits at generated position i are rows[i], whatever the canvas."""
    table = torch.tensor(rows, dtype=torch.float32)
    v = table.shape[1]

    def fn(tokens, am=None):
        out = torch.zeros(tokens.shape[0], tokens.shape[1], v)
        out[:, 1:] = table
        return out

    return CallableDenoiser(fn, mask_id=v, vocab_size=v)


def test_rws_step_reverses_ranks_as_in_example5():
    # rws.md §2.2 example 5: with r = 1 positions {0, 1} commit first, with r = 2 positions {0, 3};
    # the tokens are the same arg-max tokens either way.
    rows = [[0] + [-4] * 19, [0, -0.1] + [-10] * 18, [0] + [-1] * 19, [0] + [-2] * 19]
    model = fixed_logits_model(rows)
    first = {}
    for r in (1.0, 2.0):
        rew = CallableReward(lambda p, t, r=r: r)
        res = recipes.rws(rew, gen_length=4, steps=2, scale=Direct()).run(model, torch.tensor([[0]]), seed=0)
        cs = res.commit_step[0, 0, 1:]
        first[r] = sorted(torch.nonzero(cs == 1).flatten().tolist())
        assert (res.generated == 0).all()
    assert first[1.0] == [0, 1] and first[2.0] == [0, 3]


def test_greedy_rws_commits_the_untilted_argmax_tokens():
    model = ToyDenoiser.random(4, 6, seed=2)
    rew = sum_reward(0.7)
    res = recipes.rws(rew, gen_length=5, steps=5, temperature=0.0, n_particles=1).run(model, torch.tensor([[1], [2]]), seed=0)
    for b in range(2):
        seq, steps = res.sequences[b, 0], res.commit_step[b, 0]
        for pos in range(1, 6):
            before = seq.clone()
            before[(steps >= steps[pos]) & (steps > 0)] = model.mask_id
            cond = model.conditionals(before[None])[0, pos]
            assert int(seq[pos]) == int(cond.argmax())


def test_exactly_one_reward_call_per_row_per_step():
    model = ToyDenoiser.random(3, 6, seed=3)
    rew = CountingReward(sum_reward())
    res = recipes.rws(rew, gen_length=5, steps=5, n_particles=3).run(model, torch.tensor([[0], [1]]), seed=0)
    assert rew.calls == len(res.records) == 5
    assert rew.history == [2 * 3] * 5  # 2 prompts x 3 particles, once per step


def test_rws_reports_reward_and_scale_per_step():
    model = ToyDenoiser.random(3, 6, seed=3)
    kernel = recipes.rws(sum_reward(), gen_length=5, steps=5).proposal
    st = SMC(kernel, gen_length=5).init(model, torch.tensor([[0]]), seed=0)
    ps = kernel.propose(st.particles, model, st.generators)
    assert "rws_reward" in ps.aux and "rws_scale" in ps.aux
    assert ps.aux["rws_scale"].shape == (1, 1)
    assert ps.aux["rws_scale"].item() == pytest.approx(min(4.0, max(0.25, math.exp(ps.aux["rws_reward"].item()))))


@pytest.mark.parametrize("with_conf", [False, True])
@pytest.mark.parametrize("scale_sampling", [True, False])
def test_rws_inside_smc_is_properly_weighted(with_conf, scale_sampling):
    model = ToyDenoiser.random(3, 4, seed=4)
    smc = recipes.rws(sum_reward(1.0), gen_length=3, steps=3, temperature=1.0, selection="plackett_luce",
                      alg_temp=0.5, scale_sampling=scale_sampling, scale=ExpClip(1.0, 0.1, 10.0))
    kernel = smc.proposal
    assert not kernel.is_model_kernel
    pots = [TrajectoryConfidence()] if with_conf else []
    rep = check_proper_weighting(kernel, model, [1], 3, pots)
    assert rep.passed, str(rep)


def test_rws_smc_unbiased_and_user_check():
    model = ToyDenoiser.random(3, 4, seed=5)
    smc = recipes.rws(sum_reward(1.0), gen_length=3, steps=3, temperature=1.0, selection="plackett_luce",
                      n_particles=4, potentials=[TrajectoryConfidence()], resampling=AlwaysResample())
    rep = check_unbiasedness(smc, model, [2], 3, n_runs=1500, seed=1, k=5.0)
    assert rep.passed, str(rep)
    both = check_components(smc.proposal, model, [2], 3, [TrajectoryConfidence()], n_runs=800)
    assert both.passed, str(both)


def test_greedy_topk_rws_inside_smc_needs_target_proposal():
    from smcdiff.errors import UndefinedWeightError

    tilt = RewardTilt(sum_reward(), in_target=False)
    with pytest.raises(UndefinedWeightError):
        SMC(UnmaskingKernel(Categorical(0.0), TopK(), EvenSplit(3), transforms=[tilt]), n_particles=2)


def test_reward_twist_telescopes_and_final_potential_tilts():
    model = ToyDenoiser.random(3, 4, seed=6)
    kernel = UnmaskingKernel(Categorical(1.0), PlackettLuce(1.0), EvenSplit(3))
    rew = sum_reward(0.5)
    plain = check_proper_weighting(kernel, model, [0], 3, [])
    twisted = check_proper_weighting(kernel, model, [0], 3, [RewardPotential(rew, 1.0).as_twist()], target=plain.target)
    assert twisted.passed, str(twisted)
    law = model.target_given_prompt([0])
    # random order at temperature 1, one token per step: the kernel law is the joint, so the final
    # reward potential gives gamma(s) = p(s) exp(lam R(s))
    uniform_order = ScoreFn(lambda logits, cand, lp: torch.zeros(cand.shape))  # Plackett-Luce on equal scores
    k1 = UnmaskingKernel(Categorical(1.0), PlackettLuce(1.0), EvenSplit(3), score=uniform_order)
    fin = check_proper_weighting(k1, model, [0], 3, [RewardPotential(rew, 2.0).final_only()],
                                 target={s: p * math.exp(2.0 * 0.5 * sum(s)) for s, p in law.items()})
    assert fin.passed, str(fin)


def test_twist_keeps_Z_unbiased():
    model = ToyDenoiser.random(3, 4, seed=7)
    kernel = UnmaskingKernel(Categorical(1.0), PlackettLuce(1.0), EvenSplit(3))
    smc = SMC(kernel, [TrajectoryConfidence(), RewardPotential(sum_reward(1.0), 1.0).as_twist()], n_particles=4,
              resampling=AlwaysResample())
    rep = check_unbiasedness(smc, model, [1], 3, n_runs=1500, seed=3, k=5.0)
    assert rep.passed, str(rep)


def test_reward_adapters(tmp_path):
    batched = CallableReward(lambda ps, ts: [len(t) for t in ts], batched=True)
    assert batched.score(["a", "b"], ["xy", "z"]).tolist() == [2.0, 1.0]
    ver = VerifierReward(lambda p, t: t == "42")
    assert ver.score(["q", "q"], ["42", "41"]).tolist() == [1.0, 0.0]
    with pytest.raises(ConfigError, match="2 prompts for 1 texts"):
        CallableReward(lambda p, t: 0.0).score(["a", "b"], ["x"])
    norm = NormalizedReward.fit(batched, ["p"] * 4, ["a", "bb", "ccc", "dddd"])
    assert norm.mu == pytest.approx(2.5)
    assert norm.score(["p"], ["bb"]).item() == pytest.approx((2 - 2.5) / norm.sigma)
    path = tmp_path / "stats.json"
    norm.save_stats(str(path))
    again = NormalizedReward.load_stats(batched, str(path))
    assert (again.mu, again.sigma) == (norm.mu, norm.sigma)
    path.write_text(json.dumps({"mu": 0, "sigma": 1, "sgima": 2}))
    with pytest.raises(ConfigError, match="unknown keys"):
        NormalizedReward.load_stats(batched, str(path))


def test_sequence_classifier_reward_round_trip(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    _, tok = tiny_bert(save_dir=str(tmp_path))
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                     intermediate_size=64, num_labels=1)
    torch.manual_seed(0)
    BertForSequenceClassification(cfg).save_pretrained(str(tmp_path))
    rm = SequenceClassifierReward.from_pretrained(str(tmp_path))
    s = rm.score(["w1 w2", "w3"], ["w4 w5", "w6 w7 w8"])
    assert s.shape == (2,) and torch.isfinite(s).all()
    again = SequenceClassifierReward.from_pretrained(str(tmp_path)).score(["w1 w2", "w3"], ["w4 w5", "w6 w7 w8"])
    assert torch.allclose(s, again)


def test_rws_with_text_decoder(tmp_path):
    tiny_bert(save_dir=str(tmp_path), seed=1)
    model = MaskedLMDenoiser.from_pretrained(str(tmp_path))
    dec = Decoder.for_model(model)
    seen = []
    rew = CallableReward(lambda p, t: seen.append((p, t)) or float(len(t)) / 10)
    recipes.rws(rew, gen_length=4, steps=2).run(model, torch.tensor([[5, 6]]), seed=0)
    assert seen and all(isinstance(t, str) for _, t in seen)
    assert seen[0][0] == dec([5, 6], cut_eos=False) == "w0 w1"


def test_tokens_per_step_on_templates_with_spans_of_different_lengths():
    # k positions per step whatever the span: spans of 5 and 2 at k = 2 commit 2, 2, 1 and 2 positions, which
    # no fixed number of steps does for both rows (EvenSplit spreads each span over the same number of steps)
    from smcdiff.proposals import Confidence, PerStep

    model = ToyDenoiser.random(4, 8, seed=5)
    m = model.mask_id
    templates = torch.tensor([[0, m, m, m, m, m, 1, 2], [2, 3, m, m, 1, 0, 0, 1]])
    zero = CountingReward(CallableReward(lambda p, t: 0.0))
    res = recipes.rws(zero, temperature=1.0, tokens_per_step=2, n_particles=2).infill(model, templates, seed=3)
    assert res.nfe.tolist() == [3, 1]
    per_step = [[int((res.commit_step[b, 0] == t).sum()) for t in (1, 2, 3)] for b in range(2)]
    assert per_step == [[2, 2, 1], [2, 0, 0]]
    assert zero.history == [2 * 2, 1 * 2, 1 * 2]  # one reward row per live particle per step: the tilt ran
    for steps in (1, 2, 3, 5):
        fixed = recipes.rws(zero, temperature=1.0, steps=steps, n_particles=2).infill(model, templates, seed=3)
        assert [[int((fixed.commit_step[b, 0] == t).sum()) for t in (1, 2, 3)] for b in range(2)] != per_step
    # with r = 1 it is the untilted kernel with the same PerStep schedule, bit for bit
    base = SMC(UnmaskingKernel(Categorical(1.0), TopK(), PerStep(2), Confidence()), n_particles=2)
    ref = base.infill(model, templates, seed=3)
    assert torch.equal(res.sequences, ref.sequences) and torch.equal(res.commit_step, ref.commit_step)
    with pytest.raises(ConfigError, match="not both"):
        recipes.rws(zero, steps=4, tokens_per_step=1)
    for bad in (0, 1.5, True):
        with pytest.raises(ConfigError, match="tokens_per_step"):
            recipes.rws(zero, tokens_per_step=bad)
