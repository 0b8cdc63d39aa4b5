"""Model adapters: offline save/load round trips, Dream's shift, padding, prefix cache, chunking."""

import pytest
import torch

from smcdiff import SMC, AlwaysResample, ConfigError, TrajectoryConfidence, recipes
from smcdiff.models import CallableDenoiser, DreamDenoiser, KVCache, LLaDADenoiser, MaskedLMDenoiser
from smcdiff.models.llada_arch import SMCDiffLLaDAModel
from smcdiff.models.tiny import tiny_bert, tiny_dream, tiny_dream_4d, tiny_llada
from smcdiff.proposals import Categorical, EvenSplit, PrefixCacheStore, TopK, UnmaskingKernel
from smcdiff.proposals.cache import CacheSegment


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


def test_llada_round_trip_through_remote_code(tmp_path):
    net = tiny_llada(seed=1)
    net.save_pretrained(tmp_path)
    assert (tmp_path / "llada_arch.py").exists()  # the architecture travels with the checkpoint
    model = LLaDADenoiser.from_pretrained(str(tmp_path))
    x = torch.randint(0, 60, (2, 9))
    assert torch.equal(model.logits(x), net(x).logits)
    assert model.mask_id == 63 and model.eos_ids == (1, 2) and model.pad_id == 0
    half = LLaDADenoiser.from_pretrained(str(tmp_path), dtype="bfloat16")  # dtype= or torch_dtype= by version
    assert next(half.model.parameters()).dtype == torch.bfloat16


def test_llada_defaults_without_config_ids():
    net = tiny_llada(vocab_size=126464 // 1024 * 8)  # small vocabulary, LLaDA ids do not fit
    with pytest.raises(ConfigError, match="mask_id 126336 is not a token of this model"):
        LLaDADenoiser(net, mask_id=126336)


def test_config_ids_of_zero_are_kept():
    # 0 is a valid token id: a config's mask/EOS id of 0 must not fall back to the LLaDA/Dream defaults
    llada = LLaDADenoiser.wrap(tiny_llada(mask_token_id=0, pad_token_id=3))
    assert llada.mask_id == 0 and llada.pad_id == 3
    assert LLaDADenoiser.wrap(tiny_llada(eos_token_id=0, eot_token_id=2)).eos_ids == (0, 2)
    dream = DreamDenoiser.wrap(tiny_dream(mask_token_id=0, pad_token_id=3))
    assert dream.mask_id == 0 and dream.pad_id == 3
    net = tiny_dream(eos_token_id=1)
    net.generation_config.eos_token_id = 0  # the generation config wins over the model config, even at 0
    assert DreamDenoiser.wrap(net).eos_ids == (0,)
    assert DreamDenoiser.wrap(tiny_dream_4d(mask_token_id=0, pad_token_id=3)).mask_id == 0
    # the whole sampler runs with mask id 0: no generated token is the mask
    res = recipes.llada(steps=4, gen_length=4, block_length=4).run(llada, [[5, 6, 7]], seed=0)
    assert (res.generated != 0).all()


def test_dream_round_trip_and_shift(tmp_path):
    net = tiny_dream(seed=2)
    net.save_pretrained(tmp_path)
    model = DreamDenoiser.from_pretrained(str(tmp_path))
    assert model.mask_id == 63 and model.eos_ids == (1,)
    wide = DreamDenoiser.from_pretrained(str(tmp_path), dtype=torch.float64)
    assert next(wide.model.parameters()).dtype == torch.float64
    x = torch.randint(0, 60, (2, 7))
    raw = net(x).logits
    out = model.logits(x)
    assert torch.equal(out[:, 1:], raw[:, :-1])  # position i is predicted by output i - 1
    assert torch.equal(out[:, 0], raw[:, 0])


def test_masked_lm_round_trip_with_tokenizer(tmp_path):
    net, tok = tiny_bert(save_dir=str(tmp_path), seed=3)
    model = MaskedLMDenoiser.from_pretrained(str(tmp_path))
    assert model.mask_id == tok.mask_token_id == 4
    assert model.suppress_ids == (0, 1, 2, 3)
    x = torch.randint(5, 45, (2, 6))
    out = model.logits(x)
    assert torch.isneginf(out[..., :4]).all()
    assert torch.allclose(out[..., 4:], net(x).logits[..., 4:])
    res = recipes.llada(steps=6, gen_length=6, block_length=6).run(model, x[:, :3], seed=0)
    assert (res.generated >= 5).all()  # special tokens never generated
    assert model.decode(res.generated[0, 0]).count("w") == 6


def test_callable_denoiser():
    m = CallableDenoiser(lambda t, am: torch.zeros(t.shape[0], t.shape[1], 5), mask_id=5, vocab_size=5)
    res = recipes.llada(steps=2, gen_length=2, block_length=2, temperature=1.0).run(m, torch.tensor([[0]]), seed=0)
    assert res.generated.shape == (1, 1, 2)
    with pytest.raises(ConfigError, match="callable"):
        CallableDenoiser(3, mask_id=0, vocab_size=2)


@pytest.mark.parametrize("family", ["llada", "dream", "dream4d", "bert"])
def test_prompt_alone_equals_prompt_batched_with_longer_ones(family, tmp_path):
    # Left padding: a prompt gives the same greedy generation and (to float rounding) the same
    # weights alone and batched with longer prompts.
    if family == "llada":
        model = LLaDADenoiser.wrap(tiny_llada(seed=5))
    elif family == "dream":
        model = DreamDenoiser.wrap(tiny_dream(seed=5))
    elif family == "dream4d":
        model = DreamDenoiser.wrap(tiny_dream_4d(seed=5))
        assert model.attention_mask_format == "4d"
    else:
        net, tok = tiny_bert(save_dir=str(tmp_path), seed=5)
        model = MaskedLMDenoiser.from_pretrained(str(tmp_path))
    short = [7, 8, 9]
    others = [[10, 11, 12, 13, 14, 15], [16, 17, 18, 19, 20]]
    smc = recipes.llada(steps=8, gen_length=8, block_length=4, n_particles=2, potentials=[TrajectoryConfidence()])
    alone = smc.run(model, [short], seed=[5])
    batched = smc.run(model, [short] + others, seed=[5, 6, 7])
    assert torch.equal(alone.generated[0], batched.generated[0])
    assert torch.allclose(alone.log_weights[0], batched.log_weights[0], atol=1e-4, rtol=0)


def test_dream_4d_attention_mask_left_padding():
    # Dream's remote code (model_type "Dream") takes a 4-D query x key mask; the stand-in refuses 2-D
    # masks, so equal logits here show the adapter's 4-D path. Tolerance 1e-5: padding changes only the
    # batch shape of the CPU matrix products (rounding ~1e-7).
    net = tiny_dream_4d(seed=3)
    model = DreamDenoiser.wrap(net)
    assert model.attention_mask_format == "4d" and model.shift == 1
    m = model.mask_id
    short = torch.tensor([[7, 8, 9, m, m, m]])
    batch = torch.tensor([[0, 0, 0, 0, 7, 8, 9, m, m, m], [10, 11, 12, 13, 14, 15, 16, m, m, m]])
    am = batch != 0
    alone = model.logits(short)
    padded = model.logits(batch, am)
    # position 0 of a prompt has no predecessor (the shift puts a pad's output there when padded)
    assert torch.allclose(padded[0, 5:], alone[0, 1:], atol=1e-5, rtol=0)
    # the prefix cache goes through the same 4-D mask (query rows of the suffix only)
    lg, kv = model.prefill(batch, am, 7)
    assert torch.allclose(lg, padded, atol=1e-5, rtol=0)
    cached = model.cached_logits(batch, am, kv)
    assert torch.allclose(cached, padded[:, kv.start :], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="4-D attention mask"):
        DreamDenoiser.wrap(net, attention_mask_format="2d").logits(batch, am)


class OfficialStyleLLaDA(SMCDiffLLaDAModel):
    """Like the GSAI-ML LLaDA remote code: no position_ids, and the forward refuses a key/value cache."""

    def forward(self, input_ids, attention_mask=None, past_key_values=None, use_cache=None, **kwargs):
        assert past_key_values is None and not use_cache, "The kvcache is not supported for MDM."
        return super().forward(input_ids, attention_mask=attention_mask)


def test_prefix_cache_refused_clearly_for_a_model_without_kv_cache():
    net = tiny_llada(vocab_size=50, seed=2)
    official = OfficialStyleLLaDA(net.config).eval()
    official.load_state_dict(net.state_dict())
    model = LLaDADenoiser.wrap(official)
    assert not model.supports_prefix_cache
    assert model.n_forward == 0  # the capability probe is not counted
    prompts = torch.randint(3, 48, (2, 5), generator=torch.Generator().manual_seed(2))
    # refused at SMC.init, before any forward pass, naming the cause and the fixes
    with pytest.raises(ConfigError, match=r"(?s)prefix cache.*kvcache is not supported.*Fast-dLLM.*cache=None"):
        cached_smc("prefix").init(model, prompts, seed=0)
    with pytest.raises(ConfigError, match="Fast-dLLM"):
        model.prefill(prompts, None, 3)
    assert model.n_forward == 0
    # without the cache it runs, and computes what the same weights compute in the capable architecture
    capable = LLaDADenoiser.wrap(net)
    assert capable.supports_prefix_cache and capable.n_forward == 0
    a = cached_smc(None).run(model, prompts, seed=3)
    b = cached_smc(None).run(capable, prompts, seed=3)
    assert torch.equal(a.sequences, b.sequences)
    # a model whose forward has no cache argument at all is refused the same way
    bert, _ = tiny_bert(seed=1)
    mlm = MaskedLMDenoiser(bert, mask_id=4)
    assert not mlm.supports_prefix_cache
    with pytest.raises(ConfigError, match="takes no past_key_values"):
        cached_smc("prefix").init(mlm, [[5, 6, 7]], seed=0)


def cached_smc(cache, max_rows=None, block_length=4):
    kernel = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(8), block_length=block_length, cache=cache)
    return SMC(kernel, [TrajectoryConfidence()], n_particles=4, resampling=AlwaysResample("multinomial"),
               max_rows=max_rows, gen_length=16)


def test_prefix_cache_equals_no_cache_after_resampling_on_a_causal_model():
    # Tolerance: the cache changes floating-point summation order only (causal attention makes the
    # prefix keys/values independent of later tokens), so tokens must be equal and log weights within 1e-5.
    model = DreamDenoiser.wrap(tiny_dream(vocab_size=50, seed=1))
    prompts = torch.randint(2, 48, (3, 6), generator=torch.Generator().manual_seed(1))
    off = cached_smc(None).run(model, prompts, seed=4)
    on = cached_smc("prefix").run(model, prompts, seed=4)
    reordered = torch.stack([(r.ancestors != torch.arange(4)).any() for r in off.records])
    assert reordered.sum() >= 3  # resampling did reorder particles mid-block
    assert torch.equal(on.sequences, off.sequences)
    assert torch.allclose(on.log_weights, off.log_weights, atol=1e-5, rtol=0)
    # fewer rows per forward: prefix steps run only the suffix
    assert model.n_forward > 0


@pytest.mark.parametrize("prompt_len", [1, 2, 6])
def test_prefix_cache_with_shifted_logits_and_short_prompts(prompt_len):
    # Dream's shift moves the cache boundary one position left; a one-token prompt leaves nothing to
    # cache in the first block. Tokens equal, log weights within 1e-5 of the uncached run.
    model = DreamDenoiser.wrap(tiny_dream(vocab_size=50, seed=1))
    prompts = torch.randint(2, 48, (2, prompt_len), generator=torch.Generator().manual_seed(prompt_len))
    off = cached_smc(None).run(model, prompts, seed=4)
    on = cached_smc("prefix").run(model, prompts, seed=4)
    assert torch.equal(on.sequences, off.sequences)
    assert torch.allclose(on.log_weights, off.log_weights, atol=1e-5, rtol=0)


def test_prefix_cache_must_move_with_particles():
    # the same run with a cache that is NOT gathered on resampling gives different tokens
    model = DreamDenoiser.wrap(tiny_dream(vocab_size=50, seed=1))
    prompts = torch.randint(2, 48, (3, 6), generator=torch.Generator().manual_seed(1))
    good = cached_smc("prefix").run(model, prompts, seed=4)
    orig = PrefixCacheStore.gather
    try:
        PrefixCacheStore.gather = lambda self, anc: self
        bad = cached_smc("prefix").run(model, prompts, seed=4)
    finally:
        PrefixCacheStore.gather = orig
    assert not torch.allclose(good.log_weights, bad.log_weights, atol=1e-3)


@pytest.mark.parametrize("cache", [None, "prefix"])
def test_chunked_forward_equals_unchunked(cache):
    # Chunking only splits the batch. A transformer's CPU matrix products round differently for
    # different batch sizes (~1e-7), so here tokens must be equal and log weights within 1e-5; for a
    # model that computes rows independently the runs are bit-identical (test_engine.py).
    model = LLaDADenoiser.wrap(tiny_llada(vocab_size=50, seed=2))
    prompts = torch.randint(3, 48, (3, 5), generator=torch.Generator().manual_seed(2))
    a = cached_smc(cache).run(model, prompts, seed=8)
    b = cached_smc(cache, max_rows=5).run(model, prompts, seed=8)
    assert torch.equal(a.sequences, b.sequences)
    assert torch.allclose(a.log_weights, b.log_weights, atol=1e-5, rtol=0)


def test_cache_store_gather_reorders_rows():
    n = 3
    layers = ((torch.arange(6.0)[:, None, None, None].expand(6, 1, 2, 1).clone(),) * 2,)
    store = PrefixCacheStore((CacheSegment(torch.tensor([0, 2]), 4, KVCache(layers, 2)),), n)
    anc = torch.tensor([[2, 2, 0], [0, 1, 2], [1, 0, 0]])
    g = store.gather(anc)
    ids = g.segments[0].kv.layers[0][0][:, 0, 0, 0].tolist()
    # prompt 0 rows 0..2 -> ancestors (2, 2, 0); prompt 2 rows 3..5 -> (1, 0, 0) + 3
    assert ids == [2.0, 2.0, 0.0, 4.0, 3.0, 3.0]
    assert store.without_rows(torch.tensor([0])).segments[0].rows.tolist() == [2]
