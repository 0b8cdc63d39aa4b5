"""Text MDLM pieces: the BPE tokenizer trainer, the SUBS/log-linear loss, save/load, the shipped model."""

import math

import pytest
import torch

from smcdiff import recipes
from smcdiff.models import available, load
from smcdiff.models.llada_arch import SMCDiffLLaDAConfig, SMCDiffLLaDAModel
from smcdiff.models.text_mdlm import EOS_ID, MASK_ID, PAD_ID, TextMDLM, make_tokenizer
from smcdiff.train.common import lr_schedule
from smcdiff.train.text_mdlm import mdlm_loss, stratified_t, token_stream, train_tokenizer, windows

DOCS = [
    ("a", "In the beginning God created the heaven and the earth.\nAnd the earth was without form, and void.\n"),
    ("b", "ROMEO.\nBut, soft! what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n"),
] * 3


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    train_tokenizer(DOCS, 300, d / "tok.json")
    tok = make_tokenizer(d / "tok.json")
    cfg = SMCDiffLLaDAConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, mask_token_id=MASK_ID, eos_token_id=EOS_ID, eot_token_id=EOS_ID,
                             pad_token_id=PAD_ID, rope_theta=10000.0)
    torch.manual_seed(0)
    return SMCDiffLLaDAModel(cfg).eval(), tok


def test_tokenizer_specials_and_round_trip(tiny):
    _, tok = tiny
    assert [tok.convert_ids_to_tokens(i) for i in (0, 1, 2)] == ["<pad>", "<mask>", "<eos>"]
    assert (tok.pad_token_id, tok.mask_token_id, tok.eos_token_id) == (PAD_ID, MASK_ID, EOS_ID)
    for text in ["And the earth was without form.\n\nROMEO.\n  Soft!", "unseen wörds & 123 \t tabs"]:
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == text  # byte-level: lossless
    s = token_stream(tok, DOCS[:2])
    assert s.dtype == torch.int32 and int((s == EOS_ID).sum()) == 2 and int(s[-1]) == EOS_ID


def test_loss_is_the_subs_loglinear_nelbo(tiny):
    model, tok = tiny
    s = token_stream(tok, DOCS)
    x0 = windows(s, torch.tensor([0, 5, 9]), 16)
    t = torch.tensor([0.9, 0.3, 0.05])
    u = torch.rand(3, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = mdlm_loss(model, x0, t, u)
    # by hand: mask where u < t, softmax without the mask token, -log p of the clean token at masked positions
    for b in range(3):
        m = u[b] < t[b]
        xt = torch.where(m, torch.full_like(x0[b], MASK_ID), x0[b])
        with torch.no_grad():
            lg = model(input_ids=xt[None]).logits[0].double()
        lg[:, MASK_ID] = -math.inf
        lp = torch.log_softmax(lg, -1).gather(1, x0[b][:, None])[:, 0]
        want = float(-(lp * m).sum() / t[b] / 16)
        assert abs(float(got[b]) - want) < 1e-4
    # nothing masked: zero loss; the mask token never receives probability
    with torch.no_grad():
        zero = mdlm_loss(model, x0, torch.tensor([0.5] * 3), torch.ones(3, 16))
    assert float(zero.abs().max()) == 0.0
    ts = stratified_t(8, 1e-3, torch.Generator().manual_seed(0))
    assert bool((ts >= 1e-3).all() and (ts < 1).all()) and len(set((ts * 8).long().tolist())) == 8


def test_save_load_round_trip(tiny, tmp_path):
    model, tok = tiny
    den = TextMDLM.build(model, tok, {"note": "test"})
    den.save(tmp_path, "m")
    back = TextMDLM.from_files(tmp_path, "m")
    x = torch.tensor([den.encode("And the earth")])
    a, b = den.logits(x), back.logits(x)
    assert torch.equal(a, b)
    assert bool(torch.isinf(a[..., [PAD_ID, MASK_ID]]).all())
    assert back.meta["note"] == "test" and back.decode(back.encode("light breaks")) == "light breaks"
    with pytest.raises(FileNotFoundError, match="text MDLM files missing"):
        TextMDLM.from_files(tmp_path, "nope")


def test_lr_schedule():
    assert lr_schedule(0, 1.0, 10) == pytest.approx(0.1)
    assert lr_schedule(50, 1.0, 10) == 1.0
    assert lr_schedule(10, 1.0, 10, decay_steps=100, decay_from=10, min_lr=0.1) == pytest.approx(1.0)
    assert lr_schedule(60, 1.0, 10, decay_steps=100, decay_from=10, min_lr=0.1) == pytest.approx(0.55)
    assert lr_schedule(500, 1.0, 10, decay_steps=100, decay_from=10, min_lr=0.1) == pytest.approx(0.1)


def test_shipped_text_mdlm_loads_and_samples():
    row = next(r for r in available() if r["name"] == "text-mdlm")
    assert row["files_present"] and row["size_bytes"] <= 16 * 2**20
    m = load("text-mdlm")
    assert (m.mask_id, m.pad_id, m.eos_ids) == (MASK_ID, PAD_ID, (EOS_ID,))
    text = "And God said, Let there be light: and there was light."
    assert m.decode(m.encode(text)) == text
    res = recipes.mdlm(steps=8, gen_length=8).run(m, [m.encode("And God said,")], seed=0)
    g = res.generated[0, 0]
    assert g.shape == (8,) and not bool(((g == MASK_ID) | (g == PAD_ID)).any())
