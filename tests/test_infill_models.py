"""Infilling and padding on tiny transformers (LLaDA-, Dream- and BERT-style): batch invariance,
user-padded tensors, Dream's shift at the first real position, the prefix cache on templates,
and a masked LM infilling a middle span with SR-SMC (order metrics in canvas order)."""

import pytest
import torch

from smcdiff import ConfigError, TrajectoryConfidence, recipes
from smcdiff.metrics import order_metrics
from smcdiff.models import DreamDenoiser, LLaDADenoiser, MaskedLMDenoiser
from smcdiff.models.tiny import tiny_bert, tiny_dream, tiny_dream_4d, tiny_llada

# Tolerance for log weights between a row alone and the same row in a padded batch: the tokens must
# be identical; float32 matrix products round differently with the batch shape, which moves the
# float64 sums of log-probabilities by about 1e-7 (measured max over these tests: see the asserts).
ATOL = 1e-6


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


@pytest.fixture(scope="module", params=["llada", "dream", "dream4d", "bert"])
def model(request, tmp_path_factory):
    if request.param == "llada":
        return LLaDADenoiser.wrap(tiny_llada(seed=5))
    if request.param == "dream":
        return DreamDenoiser.wrap(tiny_dream(seed=5))
    if request.param == "dream4d":
        return DreamDenoiser.wrap(tiny_dream_4d(seed=5))
    d = tmp_path_factory.mktemp("bert")
    tiny_bert(save_dir=str(d), seed=5)
    return MaskedLMDenoiser.from_pretrained(str(d))


def sampler(n=2, block_length=2):
    base = recipes.llada(steps=8, gen_length=8, block_length=block_length, temperature=1.0)
    return recipes.sr_smc(base, n_particles=n, when="every_step", kappa=1.0)


def templates_for(model):
    m = model.mask_id
    return [
        [7, m, m, 8, 9, m],  # masks at the start of the free region and in two spans
        [m, m, 10],  # short, masks first
        [11, 12, 13, 14, m, m, m, 15, 16],  # a middle span
    ]


def test_templates_batched_equal_templates_alone(model):
    temps = templates_for(model)
    seeds = [3, 4, 5]
    smc = sampler()
    batched = smc.infill(model, temps, seed=seeds)
    for b, (t, s) in enumerate(zip(temps, seeds)):
        alone = smc.infill(model, [t], seed=[s])
        n = len(t)
        assert torch.equal(alone.sequences[0], batched.sequences[b, :, :n])
        assert torch.equal(alone.commit_step[0], batched.commit_step[b, :, :n])
        assert torch.allclose(alone.log_weights[0], batched.log_weights[b], atol=ATOL, rtol=0)
        assert torch.allclose(alone.log_Z[0], batched.log_Z[b], atol=ATOL, rtol=0)
        # padding stays padding, fixed tokens stay, nothing masked is left
        assert (batched.sequences[b, :, n:] == model.pad_id).all()
        fixed = torch.tensor(t) != model.mask_id
        assert torch.equal(batched.sequences[b, :, :n][:, fixed], torch.tensor(t)[fixed].expand(2, -1))
    assert not bool((batched.sequences == model.mask_id).any())


def test_empty_prompt_batched_with_long_ones_equals_alone(model):
    # Dream reads position i's prediction from output i - 1; a left-padded empty prompt's first
    # generated position must read its own output (as alone), not a padding column's
    smc = recipes.llada(steps=8, gen_length=8, block_length=4, temperature=1.0, n_particles=2,
                        potentials=[TrajectoryConfidence()])
    prompts = [[], [10, 11, 12, 13, 14, 15], [16, 17, 18]]
    batched = smc.run(model, prompts, seed=[5, 6, 7])
    alone = smc.run(model, [[]], seed=[5])
    assert torch.equal(alone.generated[0], batched.generated[0])
    assert torch.allclose(alone.log_weights[0], batched.log_weights[0], atol=ATOL, rtol=0)


@pytest.mark.parametrize("side", ["left", "right"])
def test_user_padded_tensor_with_attention_mask_equals_lists(model, side):
    rows = [[20, 21, 22, 23], [24, 25]]
    pad = model.pad_id
    t = torch.full((2, 4), pad)
    am = torch.zeros(2, 4, dtype=torch.bool)
    for i, r in enumerate(rows):
        sl = slice(4 - len(r), 4) if side == "left" else slice(0, len(r))
        t[i, sl] = torch.tensor(r)
        am[i, sl] = True
    smc = recipes.llada(steps=4, gen_length=4, block_length=4, temperature=1.0, n_particles=2)
    a = smc.run(model, rows, seed=1)
    b = smc.run(model, t, seed=1, attention_mask=am)
    assert torch.equal(a.sequences, b.sequences)
    assert torch.equal(a.log_weights, b.log_weights)


def test_a_tensor_starting_with_pad_and_no_mask_warns(model):
    smc = recipes.llada(steps=2, gen_length=2, block_length=2)
    t = torch.tensor([[model.pad_id, 20, 21], [22, 23, 24]])
    with pytest.warns(UserWarning, match="attention_mask"):
        smc.run(model, t, seed=0)


def test_bert_infills_a_middle_span_with_sr_smc(tmp_path):
    tiny_bert(save_dir=str(tmp_path), seed=2)
    mlm = MaskedLMDenoiser.from_pretrained(str(tmp_path))
    tok = mlm.tokenizer
    left = tok.convert_tokens_to_ids(["w1", "w2", "w3"])
    right = tok.convert_tokens_to_ids(["w7", "w8"])
    m = mlm.mask_id
    template = [left + [m] * 4 + right, left[:2] + [m] * 3 + right]
    smc = recipes.sr_smc(recipes.llada(steps=4, gen_length=4, block_length=None, temperature=1.0), n_particles=4,
                         when="every_step")
    res = smc.infill(mlm, template, seed=0)
    assert not bool((res.sequences == m).any())
    # special tokens ([PAD] [UNK] [CLS] [SEP]) are never generated in the span
    for b in range(2):
        for i in range(4):
            assert all(x >= 5 for x in res.filled(b, i))
    assert torch.equal(res.sequences[0, :, :3], torch.tensor(left).expand(4, -1))
    assert torch.equal(res.sequences[0, :, 7:], torch.tensor(right).expand(4, -1))
    # commit steps only at the span, in canvas positions
    assert (res.commit_step[0, :, 3:7] > 0).all() and (res.commit_step[0, :, :3] == -1).all()
    om = order_metrics(res)
    assert om["kendall_tau"].shape == (2, 4)
    assert om["tokens_per_forward"][0] == pytest.approx(4 / res.nfe[0].item())
    best, _ = res.best("trajectory_confidence")
    assert best.shape[0] == 2


def test_prefix_cache_on_suffix_templates_and_refused_otherwise():
    model = DreamDenoiser.wrap(tiny_dream(vocab_size=50, seed=1))
    m = model.mask_id
    fast = recipes.fast_dllm(gen_length=6, block_length=3, temperature=1.0, threshold=0.5, cache="prefix", n_particles=2)
    prompts = torch.randint(2, 48, (2, 4), generator=torch.Generator().manual_seed(0))
    ran = fast.run(model, prompts, seed=2)
    filled = fast.infill(model, torch.cat([prompts, torch.full((2, 6), m)], dim=1), seed=2)
    assert torch.equal(ran.sequences, filled.sequences)
    with pytest.raises(ConfigError, match="cache=None"):
        fast.infill(model, [[5, m, m, 6, m, m]], seed=0)
