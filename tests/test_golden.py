"""Golden behaviour: each recipe equals an independent loop-form re-implementation of its upstream
algorithm (tests/upstream_ref.py) on tiny random models — the committed positions at every step and the
final tokens. At temperature 0 the runs are deterministic; at temperature > 0 both sides use the same
per-row uniforms (the same Gumbel noise)."""

import pytest
import torch

import upstream_ref as ref
from smcdiff import recipes, row_seeds
from smcdiff.models import DreamDenoiser, LLaDADenoiser
from smcdiff.models.tiny import tiny_dream, tiny_llada

B, P, SEED = 3, 5, 11


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


def peaked(model, scale):
    with torch.no_grad():
        model.lm_head.weight.mul_(scale)
    return model


@pytest.fixture(scope="module")
def llada_net():
    return peaked(tiny_llada(vocab_size=48, hidden_size=32, num_layers=2, num_heads=4, seed=3), 40.0)


@pytest.fixture(scope="module")
def dream_net():
    return peaked(tiny_dream(vocab_size=48, hidden_size=32, num_layers=2, num_heads=4, seed=4), 40.0)


@pytest.fixture(scope="module")
def prompts():
    g = torch.Generator().manual_seed(0)
    return torch.randint(3, 40, (B, P), generator=g)


def per_prompt(reference, prompts, **kw):
    """Run a reference one prompt at a time (upstream batch-size-1 behaviour) with that row's noise."""
    seeds = row_seeds(SEED, prompts.shape[0])
    xs, cs = [], []
    with torch.no_grad():
        for b in range(prompts.shape[0]):
            x, c = reference(prompts[b : b + 1], noise=ref.Noise([seeds[b]]), **kw)
            xs.append(x)
            cs.append(c)
    return torch.cat(xs), torch.cat(cs)


def run(smc, model, prompts):
    res = smc.run(model, prompts, seed=SEED)
    return res.sequences[:, 0], res.commit_step[:, 0]


def assert_same(ours, theirs):
    xo, co = ours
    xr, cr = theirs
    assert torch.equal(co, cr), f"commit steps differ:\n{co}\n{cr}"
    assert torch.equal(xo, xr), f"tokens differ:\n{xo}\n{xr}"


LLADA_CASES = [
    dict(temperature=0.0),
    dict(temperature=0.0, remasking="random"),
    dict(temperature=0.7),
    dict(temperature=1.0, remasking="random"),
    dict(temperature=0.0, cfg_scale=1.5),
    dict(temperature=0.0, logits_eos_inf=True),
    dict(temperature=0.8, confidence_eos_eot_inf=True),
]


@pytest.mark.parametrize("kw", LLADA_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
@pytest.mark.parametrize("geom", [(16, 8, 8), (12, 12, 5)], ids=["blocks", "full"])
def test_llada_recipe_matches_upstream(llada_net, prompts, kw, geom):
    gen, bl, steps = geom
    if gen % bl or steps % (gen // bl):
        pytest.skip("inconsistent geometry")
    model = LLaDADenoiser.wrap(llada_net)
    smc = recipes.llada(steps=steps, gen_length=gen, block_length=bl, sampler="gumbel", **kw)
    fn = lambda x, am: llada_net(x, attention_mask=am).logits  # noqa: E731
    theirs = ref.llada_generate(
        fn, prompts, steps=steps, gen_length=gen, block_length=bl, mask_id=model.mask_id,
        eos_id=model.eos_ids[0], eot_id=model.eos_ids[1], noise=ref.Noise.from_seed(SEED, B), **kw,
    )
    assert_same(run(smc, model, prompts), theirs)


DREAM_CASES = [
    dict(alg="origin", temperature=0.0),
    dict(alg="origin", temperature=0.8, top_p=0.9),
    dict(alg="maskgit_plus", temperature=0.0),
    dict(alg="maskgit_plus", temperature=0.5, top_k=5),
    dict(alg="topk_margin", temperature=0.0),
    dict(alg="entropy", temperature=0.0),
    dict(alg="maskgit_plus", temperature=0.0, alg_temp=0.5),
]


@pytest.mark.parametrize("kw", DREAM_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_dream_recipe_matches_upstream(dream_net, prompts, kw):
    model = DreamDenoiser.wrap(dream_net)
    gen, steps = 10, 6
    smc = recipes.dream(steps=steps, gen_length=gen, sampler="gumbel", **kw)
    fn = lambda x, am: dream_net(x).logits  # noqa: E731
    theirs = ref.dream_sample(fn, prompts, gen, steps=steps, mask_id=model.mask_id, noise=ref.Noise.from_seed(SEED, B), **kw)
    assert_same(run(smc, model, prompts), theirs)


FAST_CASES = [
    dict(threshold=0.6),
    dict(threshold=0.6, use_cache=True),
    dict(threshold=None, factor=1.0),
    dict(threshold=None, factor=1.0, use_cache=True, temperature=0.9),
    dict(threshold=None, use_cache=True),
    dict(threshold=0.6, temperature=0.6),
]


@pytest.mark.parametrize("kw", FAST_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_fast_dllm_recipe_matches_upstream(llada_net, prompts, kw):
    model = LLaDADenoiser.wrap(llada_net)
    kw = dict(kw)
    use_cache = kw.pop("use_cache", False)
    gen, bl, steps = 16, 8, 8
    smc = recipes.fast_dllm(
        steps=steps, gen_length=gen, block_length=bl, cache="prefix" if use_cache else None, sampler="gumbel", **kw
    )
    theirs = per_prompt(
        lambda pr, noise, **k: ref.fast_dllm_generate(llada_net, pr, noise=noise, **k), prompts,
        steps=steps, gen_length=gen, block_length=bl, mask_id=model.mask_id, use_cache=use_cache, **kw,
    )
    assert_same(run(smc, model, prompts), theirs)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("bl", [None, 4])
def test_mdlm_recipe_matches_ancestral_sampling(llada_net, prompts, kind, bl):
    model = LLaDADenoiser.wrap(llada_net)
    gen, steps = 8, 5
    smc = recipes.mdlm(steps=steps, gen_length=gen, block_length=bl, schedule=kind, temperature=1.0, sampler="gumbel")
    fn = lambda x, am: llada_net(x).logits  # noqa: E731
    theirs = per_prompt(
        lambda pr, noise: ref.mdlm_sample(fn, pr, gen, steps, block_length=bl, kind=kind, mask_id=model.mask_id, noise=noise),
        prompts,
    )
    assert_same(run(smc, model, prompts), theirs)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 3.0])
def test_eb_sampler_recipe_matches_reference(llada_net, prompts, gamma):
    model = LLaDADenoiser.wrap(llada_net)
    smc = recipes.eb_sampler(gamma=gamma, gen_length=10)
    fn = lambda x, am: llada_net(x).logits  # noqa: E731
    theirs = per_prompt(lambda pr, noise: ref.eb_generate(fn, pr, 10, gamma=gamma, mask_id=model.mask_id), prompts)
    assert_same(run(smc, model, prompts), theirs)
