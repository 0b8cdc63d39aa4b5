"""A catalogue of bad inputs through the public API (issue 9).

Every case must be refused with the library's error class and a message that names
the offending parameter and, where there is one, the value. Nothing may be accepted
silently with a changed meaning (a float token id truncated, a NaN read as zero, a
string read as several seeds...). Below the catalogue: the seed rule, ties in
``best()``, dead prompts, the SR-SMC single-block trap, special tokens without a
tokenizer and the compute counters.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings

import numpy as np
import pytest
import torch

from smcdiff import (
    SMC,
    AdaptiveResampling,
    AllParticlesDeadError,
    Categorical,
    ConfigError,
    EvenSplit,
    EveryKSteps,
    FixedCounts,
    ModelOutputError,
    PlackettLuce,
    Potential,
    RewardPotential,
    Threshold,
    TopK,
    ToyDenoiser,
    TrajectoryConfidence,
    UnmaskingKernel,
    Weights,
    make_generators,
    recipes,
    register_scheme,
    resample,
)
from smcdiff.models import CallableDenoiser
from smcdiff.proposals import AdaptiveSteps, Confidence
from smcdiff.proposals.reward_tilt import ExpClip
from smcdiff.rewards import CallableReward, check_decode

NAN = float("nan")


# ---------------------------------------------------------------------- fixtures (built lazily, cached)
_CACHE: dict = {}


def toy():
    if "toy" not in _CACHE:
        _CACHE["toy"] = ToyDenoiser.random(vocab_size=3, length=5, seed=0)  # mask id 3, L = 5
    return _CACHE["toy"]


def kernel(**kw):
    return UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(steps=4), block_length=2, **kw)


def smc(n=4, **kw):
    return SMC(kernel(), [TrajectoryConfidence()], n_particles=n, **kw)


P2 = torch.tensor([[0], [1]])


def run(prompts=P2, gen_length=4, seed=0, **kw):
    return smc().run(toy(), prompts, gen_length, seed, **kw)


def infill(templates, seed=0, **kw):
    return smc().infill(toy(), templates, seed, **kw)


def callable_model(fn, v=4, mask=3):
    return CallableDenoiser(fn, mask_id=mask, vocab_size=v)


def run_callable(fn):
    return smc(n=2).run(callable_model(fn), P2, 4, seed=0)


class Kill(Potential):
    """A hard constraint that nothing satisfies: every particle gets weight zero."""

    def log_potential(self, prev, step):
        return torch.full(step.log_q.shape, -math.inf, dtype=torch.float64)


def dead_result():
    s = SMC(kernel(), [Kill()], n_particles=3, on_all_dead="flag")
    return s.run(toy(), P2, 4, seed=0)


def live_result():
    if "res" not in _CACHE:
        _CACHE["res"] = run()
    return _CACHE["res"]


def reward():
    return CallableReward(lambda p, t: float(len(t)))


def bert_without_tokenizer_config():
    from smcdiff.models import MaskedLMDenoiser
    from smcdiff.models.tiny import tiny_bert

    net, _ = tiny_bert(seed=0)
    net.config.pad_token_id = None
    d = tempfile.mkdtemp(prefix="smcdiff-bert-notok-")
    net.save_pretrained(d)
    return MaskedLMDenoiser.from_pretrained(d, mask_id=4)


def bert_too_long():
    from smcdiff.models import MaskedLMDenoiser
    from smcdiff.models.tiny import tiny_bert

    net, _ = tiny_bert(seed=0)  # max_position_embeddings = 256
    model = MaskedLMDenoiser(net, mask_id=4, pad_id=0, suppress_ids=[0, 1, 2, 3])
    return recipes.llada(steps=4, gen_length=300, block_length=300).run(model, [[5, 6, 7]], seed=0)


def shared_generator():
    g = torch.Generator()
    g.manual_seed(0)
    return run(seed=[g, g])


def lone_generator_for_two():
    g = torch.Generator()
    return run(seed=g)


def register_the_wrong_way():
    def scheme(W, U, M):  # the scheme function given where n_uniforms belongs
        return torch.zeros(W.shape[0], M, dtype=torch.long)

    return register_scheme("issue9_wrong_way", scheme)


def register_bare():
    @register_scheme  # without arguments
    def scheme(W, U, M):
        return torch.zeros(W.shape[0], M, dtype=torch.long)


# ---------------------------------------------------------------------- the catalogue
# (id, thunk, error class, substrings the message must contain: the parameter and the value)
CASES = [
    # prompts
    ("prompt-float-id", lambda: run([[1.5], [1]]), ConfigError, ["prompts[0][0]", "1.5"]),
    ("prompt-integral-float-id", lambda: run([[1.0], [1]]), ConfigError, ["prompts[0][0]", "1.0"]),
    ("prompt-numpy-float-id", lambda: run([[np.float64(2.0)], [1]]), ConfigError, ["prompts[0][0]", "2.0"]),
    ("prompt-bool-id", lambda: run([[True], [1]]), ConfigError, ["prompts[0][0]", "True"]),
    ("prompt-flat-list", lambda: run([0, 1]), ConfigError, ["prompts", "flat list", "[0, 1]"]),
    ("prompt-string", lambda: run("ab"), ConfigError, ["prompts", "'ab'"]),
    ("prompt-row-string", lambda: run([[0], "ab"]), ConfigError, ["prompts[1]", "'ab'"]),
    ("prompt-empty", lambda: run([]), ConfigError, ["prompts", "empty"]),
    ("prompt-float-tensor", lambda: run(torch.tensor([[0.0], [1.0]])), ConfigError, ["prompts", "float32"]),
    ("prompt-1d-tensor", lambda: run(torch.tensor([0, 1])), ConfigError, ["prompts", "1-D", "(2,)"]),
    ("prompt-meta-device", lambda: run(P2.to("meta")), ConfigError, ["prompts", "meta"]),
    ("prompt-out-of-vocab", lambda: run([[7], [1]]), ConfigError, ["prompt token ids", "holds 7"]),
    ("prompt-holds-mask", lambda: run([[3], [1]]), ConfigError, ["prompt", "mask id 3"]),
    ("prompt-mask-wrong-shape", lambda: run(attention_mask=torch.ones(2, 3, dtype=torch.bool)), ConfigError,
     ["attention_mask", "(2, 3)"]),
    ("batch-size-float", lambda: smc().run(toy(), None, 5, batch_size=1.5), ConfigError, ["batch_size", "1.5"]),
    ("gen-length-float", lambda: run(gen_length=2.5), ConfigError, ["gen_length", "2.5"]),
    ("prompt-longer-than-model", bert_too_long, ConfigError, ["gen_length 300", "256", "max_position_embeddings"]),
    # templates (SMC.infill)
    ("template-float-id", lambda: infill([[0, 1.5, 3, 3, 3]]), ConfigError, ["templates[0][1]", "1.5"]),
    ("template-flat-list", lambda: infill([0, 3, 3]), ConfigError, ["templates", "flat list"]),
    ("template-string", lambda: infill("a??"), ConfigError, ["templates", "'a??'"]),
    ("template-3d-tensor", lambda: infill(torch.full((1, 1, 5), 3)), ConfigError, ["templates", "(1, 1, 5)"]),
    ("template-no-mask", lambda: infill([[0, 1, 2, 0, 1]]), ConfigError, ["template row(s) [0]", "mask id 3"]),
    ("template-out-of-vocab", lambda: infill([[0, 9, 3, 3, 3]]), ConfigError, ["template token ids", "holds 9"]),
    ("template-meta-device", lambda: infill(torch.full((1, 5), 3, device="meta")), ConfigError,
     ["templates", "meta"]),
    # seeds
    ("seed-float", lambda: run(seed=1.5), ConfigError, ["seed", "1.5"]),
    ("seed-integral-float", lambda: run(seed=2.0), ConfigError, ["seed", "2.0"]),
    ("seed-negative", lambda: run(seed=-1), ConfigError, ["seed", "-1"]),
    ("seed-string", lambda: run(seed="ab"), ConfigError, ["seed", "'ab'"]),
    ("seed-bytes", lambda: run(seed=b"ab"), ConfigError, ["seed", "b'ab'"]),
    ("seed-bool", lambda: run(seed=True), ConfigError, ["seed", "True"]),
    ("seed-list-float", lambda: run(seed=[1.5, 2]), ConfigError, ["seed[0]", "1.5"]),
    ("seed-list-negative", lambda: run(seed=[3, -2]), ConfigError, ["seed[1]", "-2"]),
    ("seed-list-too-big", lambda: run(seed=[2**64, 0]), ConfigError, ["seed[0]", str(2**64)]),
    ("seed-list-nested", lambda: run(seed=[[0], [1]]), ConfigError, ["seed[0]", "[0]"]),
    ("seed-list-wrong-length", lambda: run(seed=[0]), ConfigError, ["seed", "1 seeds", "2 prompts"]),
    ("seed-shared-generator", shared_generator, ConfigError, ["seed[0] and seed[1]", "same torch.Generator"]),
    ("seed-lone-generator-two-prompts", lone_generator_for_two, ConfigError, ["seed", "single torch.Generator", "2"]),
    ("seed-dict", lambda: run(seed={0: 1}), ConfigError, ["seed", "{0: 1}"]),
    ("sample-seed-negative", lambda: live_result().sample(2, seed=-5), ConfigError, ["seed", "-5"]),
    # recipes and their options
    ("llada-steps-float", lambda: recipes.llada(steps=2.5), ConfigError, ["steps", "2.5"]),
    ("llada-cfg-nan", lambda: recipes.llada(cfg_scale=NAN), ConfigError, ["cfg_scale", "nan"]),
    ("llada-cfg-negative", lambda: recipes.llada(cfg_scale=-1.0), ConfigError, ["cfg_scale", "-1.0"]),
    ("llada-remasking", lambda: recipes.llada(remasking="best"), ConfigError, ["remasking", "'best'"]),
    ("llada-sampler", lambda: recipes.llada(sampler="beam"), ConfigError, ["sampler", "'beam'"]),
    ("llada-n-particles-float", lambda: recipes.llada(n_particles=2.5), ConfigError, ["n_particles", "2.5"]),
    ("llada-gen-length-zero", lambda: recipes.llada(gen_length=0), ConfigError, ["gen_length", "0"]),
    ("llada-block-length-float", lambda: recipes.llada(block_length=1.5), ConfigError, ["block_length", "1.5"]),
    ("fast-dllm-threshold-above-one", lambda: recipes.fast_dllm(threshold=1.5), ConfigError, ["threshold", "1.5"]),
    ("fast-dllm-threshold-negative", lambda: recipes.fast_dllm(threshold=-0.1), ConfigError, ["threshold", "-0.1"]),
    ("fast-dllm-factor-nan", lambda: recipes.fast_dllm(factor=NAN), ConfigError, ["factor", "nan"]),
    ("dream-eps", lambda: recipes.dream(eps=2.0), ConfigError, ["eps", "2.0"]),
    ("dream-alg", lambda: recipes.dream(alg="greedy"), ConfigError, ["alg", "'greedy'"]),
    ("dream-top-p", lambda: recipes.dream(top_p=1.5), ConfigError, ["top_p", "1.5"]),
    ("dream-alg-temp-nan", lambda: recipes.dream(alg="entropy", alg_temp=NAN), ConfigError, ["alg_temp", "nan"]),
    ("mdlm-steps-float", lambda: recipes.mdlm(steps=1.5), ConfigError, ["steps", "1.5"]),
    ("eb-gamma-nan", lambda: recipes.eb_sampler(gamma=NAN), ConfigError, ["gamma", "nan"]),
    ("sr-smc-family", lambda: recipes.sr_smc(family="gpt"), ConfigError, ["family", "'gpt'"]),
    ("sr-smc-kappa", lambda: recipes.sr_smc(kappa=1.5), ConfigError, ["kappa", "1.5"]),
    ("rws-decode-not-callable", lambda: recipes.rws(reward(), decode=3), ConfigError, ["decode", "3"]),
    ("rws-decode-wrong-signature", lambda: recipes.rws(reward(), decode=lambda: ""), ConfigError,
     ["decode", "cut_eos"]),
    ("rws-selection", lambda: recipes.rws(reward(), selection="best"), ConfigError, ["selection", "'best'"]),
    ("build-unknown-recipe", lambda: recipes.build("nope"), ConfigError, ["recipe", "'nope'"]),
    ("build-unknown-setting", lambda: recipes.build("llada", stepz=4), ConfigError, ["stepz", "'llada'"]),
    # kernels, policies, resampling
    ("kernel-no-schedule", lambda: UnmaskingKernel(Categorical(1.0)), ConfigError, ["schedule"]),
    ("kernel-threshold-confidence", lambda: UnmaskingKernel(Categorical(1.0), Threshold(1.2), AdaptiveSteps()),
     ConfigError, ["threshold", "1.2"]),
    ("kernel-block-length-zero", lambda: UnmaskingKernel(schedule=EvenSplit(4), block_length=0), ConfigError,
     ["block_length", "0"]),
    ("kernel-cfg-inf", lambda: kernel(cfg_scale=math.inf), ConfigError, ["cfg_scale", "inf"]),
    ("sampler-temperature-nan", lambda: Categorical(NAN), ConfigError, ["temperature", "nan"]),
    ("sampler-top-k-float", lambda: Categorical(1.0, top_k=1.5), ConfigError, ["top_k", "1.5"]),
    ("sampler-top-p-zero", lambda: Categorical(1.0, top_p=0.0), ConfigError, ["top_p", "0.0"]),
    ("schedule-steps-zero", lambda: EvenSplit(steps=0), ConfigError, ["steps", "0"]),
    ("schedule-counts-float", lambda: FixedCounts([1, 1.5]), ConfigError, ["counts_per_step[1]", "1.5"]),
    ("selector-plackett-luce-nan", lambda: PlackettLuce(NAN), ConfigError, ["temperature", "nan"]),
    ("selector-threshold-string", lambda: Threshold("high"), ConfigError, ["threshold", "'high'"]),
    ("policy-kappa-nan", lambda: AdaptiveResampling(kappa=NAN), ConfigError, ["kappa", "nan"]),
    ("policy-scheme-unknown", lambda: AdaptiveResampling(scheme="lottery"), ConfigError, ["lottery"]),
    ("policy-every-k-float", lambda: EveryKSteps(2.5), ConfigError, ["k", "2.5"]),
    ("smc-max-rows-zero", lambda: smc(max_rows=0), ConfigError, ["max_rows", "0"]),
    ("smc-on-all-dead", lambda: smc(on_all_dead="ignore"), ConfigError, ["on_all_dead", "'ignore'"]),
    ("smc-best-by", lambda: smc(best_by="length"), ConfigError, ["best_by", "'length'"]),
    ("smc-too-many-particles", lambda: smc(n=10**13).run(toy(), P2, 4), ConfigError,
     ["n_particles=10000000000000", "GiB"]),
    ("register-scheme-wrong-way", register_the_wrong_way, ConfigError, ["n_uniforms", "scheme", "3 required"]),
    ("register-scheme-bare", register_bare, ConfigError, ["name", "@register_scheme("]),
    # potentials and rewards
    ("potential-power-nan", lambda: TrajectoryConfidence() ** NAN, ConfigError, ["exponent", "nan"]),
    ("potential-power-string", lambda: TrajectoryConfidence() ** "2", ConfigError, ["exponent", "'2'"]),
    ("reward-potential-lam-nan", lambda: RewardPotential(reward(), lam=NAN), ConfigError, ["lam", "nan"]),
    ("reward-potential-no-score", lambda: RewardPotential(3), ConfigError, ["reward", "int"]),
    ("reward-potential-decode", lambda: RewardPotential(reward(), decode=lambda a, b, c: a), ConfigError,
     ["decode", "cut_eos"]),
    ("reward-potential-fill", lambda: RewardPotential(reward(), fill="zeros"), ConfigError, ["fill", "'zeros'"]),
    ("reward-scale-lam-nan", lambda: ExpClip(lam=NAN), ConfigError, ["lam", "nan"]),
    ("check-decode-none-callable", lambda: check_decode("tokenizer"), ConfigError, ["decode", "'tokenizer'"]),
    ("weights-nan", lambda: Weights(torch.tensor([[0.0, NAN]])), ConfigError, ["NaN", "prompt(s) [0]"]),
    ("weights-posinf", lambda: Weights(torch.tensor([[0.0, math.inf]])), ConfigError, ["+inf", "prompt(s) [0]"]),
    ("weights-normalized-dead", lambda: Weights(torch.full((2, 2), -math.inf)).normalized(), AllParticlesDeadError,
     ["prompt(s) [0, 1]", "allow_dead=True"]),
    ("resample-dead-row", lambda: resample(torch.zeros(1, 3, dtype=torch.float64), [torch.Generator()]),
     AllParticlesDeadError, ["prompt(s) [0]", "Weights.dead"]),
    ("resample-nan-weights", lambda: resample(torch.tensor([[NAN, 1.0]], dtype=torch.float64), [torch.Generator()]),
     ConfigError, ["prompt(s) [0]", "NaN"]),
    # models
    ("callable-mask-outside-vocab", lambda: callable_model(lambda t, a: None, v=4, mask=10), ConfigError,
     ["mask_id 10", "vocab_size=4"]),
    ("callable-mask-negative", lambda: callable_model(lambda t, a: None, mask=-1), ConfigError, ["mask_id", "-1"]),
    ("callable-vocab-float", lambda: CallableDenoiser(lambda t, a: None, mask_id=3, vocab_size=2.5), ConfigError,
     ["vocab_size", "2.5"]),
    ("callable-not-callable", lambda: CallableDenoiser(3, mask_id=0, vocab_size=2), ConfigError, ["fn", "3"]),
    ("callable-device", lambda: CallableDenoiser(lambda t, a: None, mask_id=3, vocab_size=3, device="gpu9"),
     ConfigError, ["device", "'gpu9'"]),
    ("model-integer-logits", lambda: run_callable(lambda t, a: torch.zeros(*t.shape, 4, dtype=torch.long)),
     ModelOutputError, ["logits", "torch.int64"]),
    ("model-list-logits", lambda: run_callable(lambda t, a: torch.zeros(*t.shape, 4).tolist()), ModelOutputError,
     ["logits", "list"]),
    ("model-all-neg-inf-logits", lambda: run_callable(lambda t, a: torch.full((*t.shape, 4), -math.inf)),
     ModelOutputError, ["-inf for every token", "prompt(s) [0, 1]"]),
    ("model-only-mask-finite", lambda: run_callable(
        lambda t, a: torch.tensor([-math.inf, -math.inf, -math.inf, 0.0]).expand(*t.shape, 4).clone()),
     ModelOutputError, ["-inf for every token", "mask token"]),
    ("model-nan-logits", lambda: run_callable(lambda t, a: torch.full((*t.shape, 4), NAN)), ModelOutputError,
     ["NaN logits", "prompt(s) [0, 1]"]),
    ("model-wrong-width", lambda: run_callable(lambda t, a: torch.zeros(*t.shape, 5)), ModelOutputError,
     ["5 entries", "vocab_size=4"]),
    ("model-not-a-denoiser", lambda: smc().run(object(), P2, 4), ConfigError, ["Denoiser", "logits"]),
    ("masked-lm-no-tokenizer-no-special-ids", bert_without_tokenizer_config, ConfigError,
     ["suppress_ids", "no tokenizer"]),
    # results
    ("result-sample-k-float", lambda: live_result().sample(1.5), ConfigError, ["k", "1.5"]),
    ("result-sample-k-zero", lambda: live_result().sample(0), ConfigError, ["k", "0"]),
    ("result-best-by", lambda: live_result().best("length"), ConfigError, ["by", "'length'"]),
    ("result-best-tempered-missing", lambda: live_result().best("trajectory_confidence", tempered=True),
     ConfigError, ["tempered", "TrajectoryConfidence(tempered=True)"]),
    ("result-per-prompt-range", lambda: live_result().per_prompt(5), ConfigError, ["prompt index 5", "2 prompts"]),
    ("result-per-prompt-float", lambda: live_result().per_prompt(0.5), ConfigError, ["prompt index", "0.5"]),
    ("result-best-dead", lambda: dead_result().best(), AllParticlesDeadError, ["prompt(s) [0, 1]", "mask ids"]),
    ("result-sample-dead", lambda: dead_result().sample(2), AllParticlesDeadError, ["prompt(s) [0, 1]", "result.dead"]),
]


def test_the_catalogue_is_large_and_distinct():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 50


@pytest.mark.parametrize("thunk, error, needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_by_name(thunk, error, needles):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. the config-ids warning of a tokenizer-less checkpoint
        with pytest.raises(error) as info:
            thunk()
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, f"{needle!r} not in the message: {msg}"


# ---------------------------------------------------------------------- the seed rule
def test_seed_rule_accepted_forms():
    a = [g.initial_seed() for g in make_generators(7, 3, "cpu")]
    assert a == [g.initial_seed() for g in make_generators(np.int64(7), 3, "cpu")]  # numpy ints are ints
    assert a[:2] == [g.initial_seed() for g in make_generators(7, 2, "cpu")]  # a row's seed ignores B
    assert [g.initial_seed() for g in make_generators([5, 2**64 - 1], 2, "cpu")] == [5, 2**64 - 1]
    assert [g.initial_seed() for g in make_generators(torch.tensor([1, 2]), 2, "cpu")] == [1, 2]
    g = torch.Generator()
    assert make_generators(g, 1, "cpu")[0] is g  # one generator for one prompt
    # None: fresh entropy, different every time (not reproducible)
    fresh = {make_generators(None, 1, "cpu")[0].initial_seed() for _ in range(4)}
    assert len(fresh) == 4
    # and the runs themselves follow it
    assert torch.equal(run(seed=3).sequences, run(seed=[*(s for s in _row_seeds(3, 2))]).sequences)
    run(seed=None)


def _row_seeds(seed, b):
    from smcdiff.engine import row_seeds

    return row_seeds(seed, b)


def test_seed_rule_is_documented_where_seeds_are_taken():
    from smcdiff import engine, results

    for doc in (SMC.run.__doc__, SMC.init.__doc__, engine.SEED_RULE, make_generators.__doc__):
        assert "None" in doc and "2**64" in doc
    for doc in (SMC.infill.__doc__, results.SMCResult.sample.__doc__):
        assert "SEED_RULE" in doc


# ---------------------------------------------------------------------- results: ties, dead prompts
def test_best_by_weight_warns_on_ties_between_different_sequences():
    res = smc(n=6, resampling=AdaptiveResampling(kappa=1.0, when="every_step", final=True)).run(
        toy(), P2, 4, seed=1
    )
    assert bool((res.log_weights == res.log_weights[:, :1]).all())  # a final resampling equalises the weights
    with pytest.warns(UserWarning, match="tie for the best score"):
        res.best("weight")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        seqs, idx = res.best("trajectory_confidence")
    conf = res.trajectory_log_confidence
    assert torch.equal(conf[torch.arange(2), idx], conf.max(dim=1).values)


def test_best_default_is_the_samplers_rule():
    base = recipes.llada(steps=4, gen_length=4, block_length=2, temperature=1.0)
    res = recipes.sr_smc(base, n_particles=4).run(toy(), P2, seed=0)
    assert res.best_by == "trajectory_confidence"
    assert torch.equal(res.best()[1], res.best("trajectory_confidence")[1])
    assert run().best_by == "weight"


def test_best_on_dead_prompts_never_returns_masks_silently():
    res = dead_result()
    assert bool(res.dead.all())
    with pytest.raises(AllParticlesDeadError) as info:
        res.best()
    assert "on_all_dead='flag' to" not in str(info.value)  # no advice that is already followed
    seqs, idx = res.best(allow_dead=True)
    assert idx.tolist() == [-1, -1]
    assert bool((seqs == toy().mask_id).any())  # the unfinished canvas, flagged by index -1


def test_best_never_picks_a_particle_of_weight_zero():
    class KillOdd(Potential):
        def log_potential(self, prev, step):
            out = torch.zeros(step.log_q.shape, dtype=torch.float64)
            out[:, 1::2] = -math.inf
            return out

    from smcdiff import NeverResample

    res = SMC(kernel(), [KillOdd()], n_particles=4, resampling=NeverResample()).run(toy(), P2, 4, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, idx = res.best("trajectory_confidence")
    assert bool((idx % 2 == 0).all())


# ---------------------------------------------------------------------- SR-SMC with a single block
def test_sr_smc_single_block_warns_and_says_how_to_resample():
    one_block = recipes.llada(steps=4, gen_length=4, block_length=4, temperature=1.0)
    with pytest.warns(UserWarning, match=r"never resampled.*when='every_step'.*EveryKSteps"):
        recipes.sr_smc(one_block, n_particles=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recipes.sr_smc(one_block, n_particles=4, when="every_step")
        recipes.sr_smc(one_block, n_particles=4, when=EveryKSteps(2))
        recipes.sr_smc(recipes.llada(steps=4, gen_length=4, block_length=2, temperature=1.0), n_particles=4)


# ---------------------------------------------------------------------- special tokens without a tokenizer
def test_masked_lm_without_tokenizer_takes_special_ids_from_the_config(tmp_path):
    from smcdiff.models import MaskedLMDenoiser
    from smcdiff.models.tiny import tiny_bert

    net, _ = tiny_bert(seed=0)
    net.save_pretrained(str(tmp_path))
    assert not os.path.exists(tmp_path / "vocab.txt")
    with pytest.warns(UserWarning, match=r"\[UNK\]"):
        m = MaskedLMDenoiser.from_pretrained(str(tmp_path), mask_id=4)
    assert m.suppress_ids == (0,)  # [PAD] from config.pad_token_id
    named = MaskedLMDenoiser.from_pretrained(str(tmp_path), mask_id=4, suppress_ids=[0, 1, 2, 3])
    assert named.suppress_ids == (0, 1, 2, 3)
    out = named.logits(torch.tensor([[5, 4, 6]]))
    assert bool(torch.isneginf(out[..., :4]).all())


# ---------------------------------------------------------------------- compute counters
def test_particle_forwards_and_reward_calls_are_counted():
    res = run()
    assert torch.equal(res.particle_forwards, res.nfe * 4)
    cfg = SMC(kernel(cfg_scale=1.0), n_particles=3).run(toy(), P2, 4, seed=0)
    assert torch.equal(cfg.particle_forwards, cfg.nfe * 3 * 2)  # guidance runs every row twice

    calls = []

    def score(prompt, text):
        calls.append(1)
        return float(len(text))

    pot = RewardPotential(CallableReward(score), lam=0.1)
    res = SMC(kernel(), [pot], n_particles=3).run(toy(), P2, 4, seed=0)
    moves = torch.stack([r.active for r in res.records]).sum(dim=0)
    assert torch.equal(res.reward_calls, moves)  # one batched call per step that moved the prompt
    assert int(res.reward_texts.sum()) == len(calls)  # every scored text is counted once
    assert torch.equal(res.per_prompt(1).reward_texts, res.reward_texts[1:])
    assert int(run().reward_calls.sum()) == 0
