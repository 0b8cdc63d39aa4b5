"""AntiBERTy adapter (optional extra ``smcdiff[bio]``): loads offline, never writes special tokens, infills a CDR."""

import pytest
import torch

pytest.importorskip("antiberty")

from smcdiff import ConfigError, recipes  # noqa: E402
from smcdiff.models import available, load  # noqa: E402
from smcdiff.models.antiberty import AminoAcidTokenizer, antiberty_dir  # noqa: E402

pytestmark = pytest.mark.bio

# Trastuzumab heavy-chain variable domain; CDR-H3 (with the conserved C-terminal W) below
VH = "EVQLVESGGGLVQPGGSLRLSCAASGFNIKDTYIHWVRQAPGKGLEWVARIYPTNGYTRYADSVKGRFTISADTSKNTAYLQMNSLRAEDTAVYYCSRWGGDGFYAMDYWGQGTLVTVSS"
CDR_H3 = "WGGDGFYAMDY"


@pytest.fixture(scope="module")
def model():
    return load("antiberty")


def test_tokenizer_round_trip_and_errors():
    tok = AminoAcidTokenizer.from_file(antiberty_dir() / "vocab.txt")
    assert tok.vocab_size == 25 and tok.mask_token_id == 4 and tok.all_special_ids == [0, 1, 2, 3, 4]
    ids = tok.encode(VH)
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id and len(ids) == len(VH) + 2
    assert tok.decode(ids) == VH
    assert tok.encode("ev q*l", add_special_tokens=False) == tok.encode("EVQ*L", add_special_tokens=False)
    assert tok.encode("A*C", add_special_tokens=False)[1] == tok.mask_token_id
    with pytest.raises(ConfigError, match=r"seq\[2\] = 'B' is not an amino acid"):
        tok.encode("ACBD")
    with pytest.raises(ConfigError, match="token id 25 is outside"):
        tok.decode([25])


def test_loads_by_name_and_is_listed(model):
    row = next(r for r in available() if r["name"] == "antiberty")
    assert row["installed"] and row["files_present"] and row["extra"] == "bio"
    assert row["size_bytes"] > 50_000_000  # the package's fp32 weights
    assert sum(p.numel() for p in model.model.parameters()) == 25_759_769
    assert model.mask_id == 4 and model.pad_id == 0 and model.suppress_ids == (0, 1, 2, 3, 4)


def test_logits_suppress_specials_and_know_antibodies(model):
    x = torch.tensor([model.encode(VH)])
    lg = model.logits(x)
    assert lg.shape == (1, len(VH) + 2, 25)
    assert torch.isinf(lg[..., :5]).all() and bool((lg[..., :5] < 0).all())
    # unmasked, the model reads back nearly every residue of a real antibody
    assert (lg[0, 1:-1].argmax(-1) == x[0, 1:-1]).float().mean() > 0.9


def test_smc_infills_cdr_h3_without_special_tokens(model):
    i = VH.index(CDR_H3)
    template = VH[:i] + "*" * len(CDR_H3) + VH[i + len(CDR_H3):]
    ids = model.encode(template)
    smc = recipes.sr_smc(recipes.llada(steps=len(CDR_H3), gen_length=len(CDR_H3), block_length=None,
                                       temperature=1.0), n_particles=4, when="every_step")
    res = smc.infill(model, [ids], seed=0)
    seqs = res.sequences[0]
    assert seqs.shape == (4, len(ids))
    assert not bool((seqs == model.mask_id).any())
    fixed = torch.tensor(ids) != model.mask_id
    assert torch.equal(seqs[:, fixed], torch.tensor(ids)[fixed].expand(4, -1))  # framework never moves
    free = seqs[:, ~fixed]
    assert bool((free >= 5).all())  # only the 20 amino acids are ever written
    for p in range(4):
        filled = model.decode(res.filled(0, p))
        assert len(filled) == len(CDR_H3) and set(filled) <= set(AminoAcidTokenizer.from_file(
            antiberty_dir() / "vocab.txt").residues)
    # the same seed gives the same loops
    again = smc.infill(model, [ids], seed=0)
    assert torch.equal(again.sequences, res.sequences)


def test_missing_package_error_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "antiberty" else real(name, *a))
    with pytest.raises(ConfigError, match=r"smcdiff\[bio\]"):
        load("antiberty")
