"""Models larger than one device: ``from_pretrained(device_map="auto")`` (accelerate) loads and samples exactly as
the plain load on a CPU-only machine; the engine keeps its state on the device of the model's output; cached KV
layers are gathered on their own devices."""

import pytest
import torch

from smcdiff import ConfigError, recipes
from smcdiff.models import DreamDenoiser, KVCache, LLaDADenoiser, MaskedLMDenoiser, output_device
from smcdiff.models.tiny import tiny_bert, tiny_dream, tiny_llada

pytest.importorskip("accelerate")


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


@pytest.mark.parametrize("kind", ["llada", "dream", "mlm"])
def test_device_map_auto_equals_the_plain_load(tmp_path, kind):
    if kind == "llada":
        tiny_llada(seed=1).save_pretrained(tmp_path)
        cls = LLaDADenoiser
    elif kind == "dream":
        tiny_dream(seed=2).save_pretrained(tmp_path)
        cls = DreamDenoiser
    else:
        tiny_bert(save_dir=str(tmp_path), seed=3)
        cls = MaskedLMDenoiser
    plain = cls.from_pretrained(str(tmp_path))
    split = cls.from_pretrained(str(tmp_path), device_map="auto")
    assert output_device(split) == torch.device("cpu")
    x = torch.randint(5, 40, (2, 7))
    assert torch.equal(plain.logits(x), split.logits(x))
    smc = recipes.llada(steps=4, gen_length=4, block_length=2, temperature=1.0, n_particles=2)
    a, b = smc.run(plain, [[5, 6], [7]], seed=3), smc.run(split, [[5, 6], [7]], seed=3)
    assert torch.equal(a.sequences, b.sequences) and torch.equal(a.weights.log_w, b.weights.log_w)


def test_explicit_module_map(tmp_path):
    tiny_llada(seed=1).save_pretrained(tmp_path)
    plain = LLaDADenoiser.from_pretrained(str(tmp_path))
    split = LLaDADenoiser.from_pretrained(
        str(tmp_path), device_map={"embed_tokens": "cpu", "blocks": "cpu", "norm": "cpu", "lm_head": "cpu"})
    x = torch.randint(5, 40, (3, 6))
    assert torch.equal(plain.logits(x), split.logits(x))


def test_device_and_device_map_together_are_refused(tmp_path):
    tiny_llada(seed=1).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="device_map"):
        LLaDADenoiser.from_pretrained(str(tmp_path), device="cpu", device_map="auto")


def test_engine_state_lives_on_the_output_device():
    """The engine places its state where the logits come out (``output_device``), not where the inputs go: a
    model reporting inputs on an unusable device ('cuda:7' here) and outputs on the CPU samples on the CPU."""

    class Split:
        def __init__(self, inner):
            self.inner = inner
            self.mask_id, self.vocab_size, self.eos_ids, self.pad_id = inner.mask_id, inner.vocab_size, (), None
            self.device = torch.device("cuda", 7)
            self.output_device = torch.device("cpu")

        def logits(self, tokens, attention_mask=None):
            return self.inner.logits(tokens, attention_mask)

    model = Split(LLaDADenoiser.wrap(tiny_llada(seed=1)))
    assert output_device(model) == torch.device("cpu")
    res = recipes.llada(steps=2, gen_length=2, block_length=2).run(model, [[5]], seed=0)
    assert res.sequences.device == torch.device("cpu")


def test_kv_cache_rows_are_gathered_on_each_layer_device():
    k = torch.arange(12.0).reshape(3, 1, 2, 2)
    cache = KVCache(((k, k + 1), (k.clone(), k.clone())), 2)
    out = cache.index_select(torch.tensor([2, 0]))
    assert torch.equal(out.layers[0][0], k[[2, 0]]) and torch.equal(out.layers[1][1], k[[2, 0]])
