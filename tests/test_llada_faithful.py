"""``recipes.llada(faithful=True)`` against the released ML-GSAI/LLaDA ``generate``, re-implemented in loop form
(tests/upstream_ref.py ``llada_generate_released``): the mask token inside the softmax, the confidence in the model's
dtype (float32 and bfloat16), ``torch.topk`` over canvas rows with tied confidences, and at temperature > 0 the
replayed Gumbel noise stream (one generator, ``[1, P + L, V]`` float64 uniforms per step) for any prompt and any
number of blocks."""

import pytest
import torch

import upstream_ref as ref
from smcdiff import recipes
from smcdiff.errors import ConfigError, ModelOutputError
from smcdiff.models import CallableDenoiser
from smcdiff.models.tiny import tiny_llada
from smcdiff.proposals import CanvasTopK, Confidence, GumbelMax

V = 48


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


def _net(scale, dtype=torch.float32, seed=3):
    net = tiny_llada(vocab_size=V, hidden_size=32, num_layers=2, num_heads=4, seed=seed)
    with torch.no_grad():
        net.lm_head.weight.mul_(scale)
    return net.to(dtype)


def _mask_third(fn, mask_id):
    """Wrap logits so that the mask token has the third-largest logit at every position (real probability that
    varies by position, never the argmax)."""

    def out(x, am):
        z = fn(x, am).clone()
        third = z.float().topk(3, dim=-1).values[..., 2]
        z[..., mask_id] = third.to(z.dtype)
        return z

    return out


def _mask_low(fn, mask_id):
    """The mask token keeps a small probability (its logit 20 below the row's lowest): at T > 0 it is then not
    drawn (upstream would commit it as a mask, which smcdiff refuses)."""

    def out(x, am):
        z = fn(x, am).clone()
        z[..., mask_id] = (z.float().min(dim=-1).values - 20.0).to(z.dtype)
        return z

    return out


def _prompts(b, p, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, 40, (b, p), generator=g)


def _ours(model, prompts, seed=None, **kw):
    res = recipes.llada(faithful=True, **kw).run(model, prompts, seed=seed if seed is not None else 0)
    return res.sequences[:, 0], res.commit_step[:, 0]


def _model(fn, mask_id):
    return CallableDenoiser(fn, mask_id=mask_id, vocab_size=V, eos_ids=(1, 2))


GEOMS = [(16, 8, 8), (12, 12, 6), (24, 8, 12)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("geom", GEOMS, ids=["2blocks", "1block", "3blocks"])
@pytest.mark.parametrize("extra", [{}, {"cfg_scale": 1.5}, {"confidence_eos_eot_inf": True}, {"logits_eos_inf": True}],
                         ids=["plain", "cfg", "eos_eot_conf", "eos_logit"])
def test_temperature_zero_matches_released(dtype, geom, extra):
    gen, bl, steps = geom
    net = _net(8.0, dtype)
    mask_id = V - 1
    fn = _mask_third(lambda x, am: net(x, attention_mask=am).logits, mask_id)
    prompts = _prompts(3, 5)
    kw = dict(steps=steps, gen_length=gen, block_length=bl, **extra)
    theirs = ref.llada_generate_released(fn, prompts, mask_id=mask_id, eos_id=1, eot_id=2, **kw)
    ref.assert_same(_ours(_model(fn, mask_id), prompts, **kw), theirs)


def test_bf16_confidences_tie_and_the_order_follows_topk():
    """In bfloat16 many confidences tie; the faithful run still equals upstream, and the principled default
    (float64 confidence, mask suppressed, ties to the lower index) commits in a different order."""
    net = _net(2.0, torch.bfloat16)
    mask_id = V - 1
    fn = _mask_third(lambda x, am: net(x, attention_mask=am).logits, mask_id)
    prompts = _prompts(4, 5, seed=1)
    kw = dict(steps=16, gen_length=16, block_length=16)
    z = fn(torch.cat([prompts, torch.full((4, 16), mask_id)], 1), None)
    conf = torch.softmax(z, -1).max(-1).values[:, 5:]
    ties = sum(int(len(set(r.tolist())) < r.numel()) for r in conf)
    assert ties >= 2, "the test needs tied bf16 confidences"
    theirs = ref.llada_generate_released(fn, prompts, mask_id=mask_id, eos_id=1, eot_id=2, **kw)
    ref.assert_same(_ours(_model(fn, mask_id), prompts, **kw), theirs)
    default = recipes.llada(**kw).run(_model(fn, mask_id), prompts, seed=0).commit_step[:, 0]
    assert not torch.equal(default, theirs[1])


def test_exactly_tied_confidences():
    """Every position has the same logits, so all confidences are equal: the commit order is torch.topk's."""
    mask_id = V - 1
    base = torch.randn(V, generator=torch.Generator().manual_seed(5))

    def fn(x, am):
        return base.expand(x.shape[0], x.shape[1], V).clone()

    prompts = _prompts(2, 3)
    for gen, bl, steps in [(16, 16, 4), (32, 8, 8)]:
        kw = dict(steps=steps, gen_length=gen, block_length=bl)
        theirs = ref.llada_generate_released(fn, prompts, mask_id=mask_id, eos_id=1, eot_id=2, **kw)
        ref.assert_same(_ours(_model(fn, mask_id), prompts, **kw), theirs)


def test_mask_probability_changes_the_ranking():
    """A model that gives the mask token real probability, more at some positions than others: upstream's
    confidence p(x) (1 - p_mask)-like ranks positions differently from p(x) with the mask removed. The faithful
    switch reproduces upstream; the default does not (by construction)."""
    mask_id = V - 1
    L = 8

    def fn(x, am):
        z = torch.full((x.shape[0], x.shape[1], V), -4.0)
        pos = torch.arange(x.shape[1])
        z[:, :, 5] = 3.0 + 0.05 * pos  # later positions are more confident without the mask ...
        z[:, :, mask_id] = z[:, :, 5] - 1.0 + 0.1 * pos  # ... but give the mask token more (never the most)
        return z

    prompts = _prompts(1, 2)
    kw = dict(steps=L, gen_length=L, block_length=L)
    theirs = ref.llada_generate_released(fn, prompts, mask_id=mask_id, eos_id=1, eot_id=2, **kw)
    ref.assert_same(_ours(_model(fn, mask_id), prompts, **kw), theirs)
    default = recipes.llada(**kw).run(_model(fn, mask_id), prompts, seed=0)
    assert not torch.equal(default.commit_step[:, 0], theirs[1])
    # upstream commits left to right (the mask takes more from later positions), ours right to left
    assert theirs[1][0, 2:].tolist() == list(range(1, L + 1))


@pytest.mark.parametrize("geom", GEOMS, ids=["2blocks", "1block", "3blocks"])
@pytest.mark.parametrize(
    "extra",
    [dict(temperature=1.0), dict(temperature=0.7), dict(temperature=1.0, remasking="random"),
     dict(temperature=0.8, cfg_scale=1.0), dict(temperature=0.9, confidence_eos_eot_inf=True),
     dict(temperature=1.0, logits_eos_inf=True)],
    ids=["T1", "T0.7", "random", "cfg", "eos_eot_conf", "eos_logit"],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
def test_gumbel_replay_matches_released_stream(geom, extra, dtype):
    """B = 1, any prompt length, any number of blocks: same seed, same tokens and the same steps."""
    gen, bl, steps = geom
    net = _net(6.0, dtype, seed=4)
    mask_id = V - 1
    fn = _mask_low(lambda x, am: net(x, attention_mask=am).logits, mask_id)
    kw = dict(steps=steps, gen_length=gen, block_length=bl, **extra)
    for p, s in [(1, 3), (6, 11), (9, 12345)]:
        prompt = _prompts(1, p, seed=s)
        theirs = ref.llada_generate_released(
            fn, prompt, mask_id=mask_id, eos_id=1, eot_id=2, generator=torch.Generator().manual_seed(s), **kw
        )
        ref.assert_same(_ours(_model(fn, mask_id), prompt, seed=[s], **kw), theirs)


def test_reference_stream_is_the_global_generator_stream():
    """The reference's explicit generator draws what upstream's ``torch.manual_seed(s); torch.rand_like`` draws."""
    like = torch.zeros(1, 7, V, dtype=torch.float64)
    torch.manual_seed(99)
    a = torch.rand_like(like, dtype=torch.float64)
    b = torch.rand(like.shape, generator=torch.Generator().manual_seed(99), dtype=torch.float64)
    assert torch.equal(a, b)


def test_left_padding_does_not_change_the_replayed_stream():
    """A left-padded row draws over its own canvas and runs torch.topk over it: it equals the same prompt run
    alone. (Float32: in bfloat16 the padded width changes the model's own logits, so no sampler can match.)"""
    net = _net(6.0, seed=4)
    mask_id = V - 1
    fn = _mask_low(lambda x, am: net(x, attention_mask=am).logits, mask_id)
    model = CallableDenoiser(fn, mask_id=mask_id, vocab_size=V, eos_ids=(1, 2), pad_id=0)
    rows = [_prompts(1, 6, seed=1)[0].tolist(), _prompts(1, 3, seed=2)[0].tolist()]
    for kw in (dict(temperature=1.0), dict(temperature=0.0), dict(temperature=1.0, remasking="random")):
        smc = recipes.llada(steps=8, gen_length=16, block_length=8, faithful=True, **kw)
        both = smc.run(model, rows, seed=[21, 22])
        alone = smc.run(model, [rows[1]], seed=[22])
        assert torch.equal(both.sequences[1, 0, 3:], alone.sequences[0, 0]), kw
        assert torch.equal(both.commit_step[1, 0, 3:], alone.commit_step[0, 0]), kw


def test_committing_the_mask_token_is_refused_not_diverged():
    mask_id = V - 1

    def fn(x, am):
        z = torch.zeros(x.shape[0], x.shape[1], V)
        z[:, :, mask_id] = 5.0  # the mask token is the argmax everywhere
        return z

    with pytest.raises(ModelOutputError, match="mask token itself"):
        recipes.llada(steps=4, gen_length=4, block_length=4, faithful=True).run(_model(fn, mask_id), [[3, 4]], seed=0)
    # the default never draws it
    out = recipes.llada(steps=4, gen_length=4, block_length=4).run(_model(fn, mask_id), [[3, 4]], seed=0)
    assert not bool((out.sequences == mask_id).any())


def test_faithful_switch_composition_and_errors():
    k = recipes.llada(steps=4, gen_length=4, faithful=True).proposal
    assert k.mask_token == "keep" and isinstance(k.selector, CanvasTopK)
    assert k.score == Confidence(in_model_dtype=True) and k.sampler == GumbelMax(0.0, replay="llada")
    with pytest.raises(ConfigError, match="sampler"):
        recipes.llada(steps=4, gen_length=4, faithful=True, sampler="categorical")
    with pytest.raises(ConfigError, match="faithful"):
        recipes.llada(steps=4, gen_length=4, faithful=1)
    with pytest.raises(ConfigError, match="replay"):
        GumbelMax(1.0, top_k=5, replay="llada")
    with pytest.raises(ConfigError, match="replay"):
        GumbelMax(1.0, replay="dream")
    with pytest.raises(ConfigError, match="tempered"):
        Confidence(tempered=True, in_model_dtype=True)


def test_canvas_topk_breaks_ties_over_the_unpadded_row():
    """bf16 confidences with many ties: a row with 7 padding positions in front picks what the row alone picks."""
    from smcdiff.proposals.selectors import StepPlan

    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        lb, pad, length = 16, 7, 24
        scores = (torch.rand(1, lb, generator=g) * 4).round().div(4).to(torch.bfloat16)  # 5 values: ties
        eligible = torch.rand(1, lb, generator=g) < 0.8
        k = torch.tensor([int(torch.randint(1, 6, (1,), generator=g))])
        pos = torch.arange(length - lb, length)[None]
        alone = CanvasTopK().draw(scores, eligible, StepPlan(k=k, canvas=(length, pos, None)), None).commit
        padded = CanvasTopK().draw(scores, eligible, StepPlan(k=k, canvas=(length + pad, pos + pad, [pad])),
                                   None).commit
        assert torch.equal(alone, padded)


def test_canvas_topk_ignores_ineligible_slots_that_repeat_a_position():
    """Slots past a template's end point at an earlier position; only eligible slots may write the row."""
    from smcdiff.proposals.selectors import StepPlan

    scores = torch.tensor([[0.9, 0.1, 0.5, 0.2, 0.3, 0.0, 0.0, 0.0]])
    eligible = torch.tensor([[True, True, False, True, False, False, False, False]])
    plan = StepPlan(k=torch.tensor([1]), canvas=(5, torch.tensor([[0, 1, 2, 3, 4, 0, 0, 0]]), None))
    commit = CanvasTopK().draw(scores, eligible, plan, None).commit
    assert commit.tolist() == [[True] + [False] * 7]


def test_faithful_infill_of_a_short_template():
    net = _net(6.0, seed=4)
    mask_id = V - 1
    fn = _mask_third(lambda x, am: net(x, attention_mask=am).logits, mask_id)
    smc = recipes.llada(steps=3, gen_length=3, block_length=8, faithful=True)
    res = smc.infill(_model(fn, mask_id), [[mask_id, 5, mask_id, mask_id, 7]], seed=0)
    assert not bool((res.sequences == mask_id).any())
    # the most confident masked position commits first, as upstream's topk over the row would choose
    z = fn(torch.tensor([[mask_id, 5, mask_id, mask_id, 7]]), None)
    conf = torch.softmax(z, -1).max(-1).values[0, [0, 2, 3]]
    first = [0, 2, 3][int(conf.argmax())]
    assert int(res.commit_step[0, 0, first]) == 1


@pytest.mark.parametrize("selector", ["topk", "random"])
def test_faithful_kernel_is_exact_on_a_toy_model(selector):
    """The replayed sampler and the canvas selectors, as a kernel inside SMC on an enumerable toy model: proper
    weighting (exact), the sampling law of the draws and E[Z_hat]/Z = 1 (both within 4 standard errors, seed 0)."""
    from smcdiff import AlwaysResample, ToyDenoiser, TrajectoryConfidence
    from smcdiff.proposals import EvenSplit, UnmaskingKernel
    from smcdiff.theory_checks import check_components

    model = ToyDenoiser.random(3, 4, seed=3)
    kernel = UnmaskingKernel(GumbelMax(1.0, replay="llada"), CanvasTopK(random=selector == "random"), EvenSplit(3),
                             Confidence(in_model_dtype=True), mask_token="keep")
    rep = check_components(kernel, model, [1], 3, [TrajectoryConfidence()], n_particles=4,
                           resampling=AlwaysResample(), n_runs=2000, seed=0, k=4.0)
    assert rep.proper_weighting.passed, rep.proper_weighting
    assert rep.sampling_law.passed, rep.sampling_law
    assert rep.unbiasedness.passed, rep.unbiasedness
