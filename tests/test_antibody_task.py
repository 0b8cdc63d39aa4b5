"""The antibody task: CDR-H3 extraction rule, the shipped chain table, and its metrics on hand-made cases."""

import math

import pytest
import torch

from smcdiff.errors import ConfigError
from smcdiff.tasks.antibody import DATA, AntibodyTask, extract_vh, hydropathy, load_chains

TRASTUZUMAB_VH = ("EVQLVESGGGLVQPGGSLRLSCAASGFNIKDTYIHWVRQAPGKGLEWVARIYPTNGYTRYADSVKGRFTISADTSKNTAYLQMNSLRAEDTAVYYCSR"
                  "WGGDGFYAMDYWGQGTLVTVSS")
KAPPA_LIGHT = ("DIQMTQSPSSLSASVGDRVTITCRASQDVNTAVAWYQQKPGKAPKLLIYSASFLYSGVPSRFSGSRSGTDFTLTISSLQPEDFATYYCQQHYTTPPTFGQ"
               "GTKVEIK")


def test_extraction_rule():
    dom, s, e = extract_vh("MKHLWFFLLLVAAPRWVLS" + TRASTUZUMAB_VH + "ASTKGPSVFPLAPSSKSTSGGTAALGCLVKDYFPEP")
    assert dom == TRASTUZUMAB_VH and dom[s:e] == "WGGDGFYAMDY"
    assert extract_vh(KAPPA_LIGHT) is None  # FR4 of a light chain is F-G-x-G
    assert extract_vh("EVQL" + "A" * 30) is None


def test_shipped_table():
    rows = load_chains()
    assert len(rows) >= 1000 and DATA.stat().st_size < 400_000
    assert len({r[1] for r in rows}) == len(rows) and len({r[1][r[2]:r[3]] for r in rows}) == len(rows)
    for name, dom, s, e in rows:
        assert extract_vh(dom) == (dom, s, e), name
    a, b = AntibodyTask(n=20).items(), AntibodyTask(n=20).items()
    assert a == b and len({x[0][:4] for x in a}) >= 15  # a fixed permutation spread over PDB entries


class _Uniform:
    """25 tokens like AntiBERTy's vocabulary; uniform logits over the 20 amino acids."""

    mask_id, pad_id, vocab_size, eos_ids, device = 4, 0, 25, (), torch.device("cpu")
    letters = "ACDEFGHIKLMNPQRSTVWY"

    def encode(self, seq):
        return [2] + [4 if c == "*" else 5 + self.letters.index(c) for c in seq] + [3]

    class tokenizer:
        @staticmethod
        def decode(ids):
            return "".join(_Uniform.letters[i - 5] for i in ids if i >= 5)

    def logits(self, tokens, attention_mask=None):
        z = torch.full(tokens.shape + (25,), -math.inf)
        z[..., 5:] = 0.0
        return z


def test_metrics_on_hand_made_outputs():
    task = AntibodyTask(n=2)
    model = _Uniform()
    items = task.items()
    native = [torch.tensor(model.encode(it[1])) for it in items]
    wrong = []
    for it, row in zip(items, native):
        r = row.clone()
        s, e = it[2] + 1, it[3] + 1
        r[s:e] = torch.where(r[s:e] == 5, 6, 5)  # every loop residue changed
        wrong.append(r)
    sc = task.score(model, items, native, None)
    assert sc["recovery"] == [1.0, 1.0]
    assert sc["pll"] == pytest.approx([math.log(1 / 20)] * 2) and sc["native_pll"] == pytest.approx(sc["pll"])
    assert task.score(model, items, wrong, None)["recovery"] == [0.0, 0.0]
    assert sc["hydropathy"] == pytest.approx([hydropathy(it[1][it[2]:it[3]]) for it in items])
    # the metric reads the output's loop, not the native one: A (1.8) everywhere, C (2.5) where it was A
    changed = [hydropathy("".join("C" if c == "A" else "A" for c in it[1][it[2]:it[3]])) for it in items]
    assert task.score(model, items, wrong, None)["hydropathy"] == pytest.approx(changed)
    assert task.masked(items[0]).count("*") == items[0][3] - items[0][2]


def test_hydropathy_by_hand():
    assert hydropathy("IVL") == pytest.approx((4.5 + 4.2 + 3.8) / 3)
    assert hydropathy("RK") == pytest.approx(-4.2)
    for bad in ("", "AXB"):
        with pytest.raises(ValueError):
            hydropathy(bad)


def test_loop_hydrophilicity_reward_finds_the_loop_by_framework():
    task = AntibodyTask(n=5)
    reward = task.hydrophilicity_reward()
    items = task.items()
    natives = [it[1] for it in items]
    assert reward.score(["", ""], natives[:2]).tolist() == pytest.approx(
        [-hydropathy(it[1][it[2]:it[3]]) for it in items[:2]])
    _, dom, s, e = items[0]
    charged = dom[:s] + "R" * (e - s) + dom[e:]
    greasy = dom[:s] + "I" * (e - s) + dom[e:]
    assert reward.score(["", ""], [charged, greasy]).tolist() == pytest.approx([4.5, -4.5])
    with pytest.raises(ConfigError, match="framework matches no item"):
        reward.score([""], ["W" + dom[1:]])
    with pytest.raises(ConfigError, match="length"):
        reward.score([""], [dom + "A" * 40])
