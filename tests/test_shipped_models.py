"""Shipped and packaged models give their recorded fixed-seed outputs (tests/data/shipped_golden.json).

Each record holds the SHA-256 of the weight file it was made with, a summary of
the logits on a fixed input (compared with a tolerance), greedy outputs and
seeded sampled outputs (compared exactly). After retraining, re-record with

    python tests/test_shipped_models.py --record
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from smcdiff import SMC, Categorical, EvenSplit, TopK, UnmaskingKernel, recipes
from smcdiff.models import load
from smcdiff.models.registry import weights_path
from smcdiff.proposals import Margin

GOLDEN = Path(__file__).parent / "data" / "shipped_golden.json"
VH = "EVQLVESGGGLVQPGGSLRLSCAASGFNIKDTYIHWVRQAPGKGLEWVARIYPTNGYTRYADSVKGRFTISADTSKNTAYLQMNSLRAEDTAVYYCSRWGGDGFYAMDYWGQGTLVTVSS"
CDR_H3 = "WGGDGFYAMDY"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _logit_summary(z: torch.Tensor) -> list[float]:
    z = z.double().masked_fill(torch.isinf(z), 0.0)
    return [float(z.sum()), float(z.abs().sum()), float((z * torch.arange(z.shape[-1])).sum())]


def run_sudoku() -> dict:
    from smcdiff.tasks import sudoku as task

    m = load("sudoku")
    puzzles = [p for p, _ in task.load_split("test_easy")[:3]]
    x = m.encode_batch(puzzles)
    greedy = SMC(UnmaskingKernel(Categorical(0.0), TopK(), EvenSplit(81), Margin(), block_length=None)).infill(
        m, x, seed=0)
    sampled = SMC(UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(81), Margin(), block_length=None),
                  n_particles=2).infill(m, x[:1], seed=0)
    return {
        "sha256": _sha(weights_path("sudoku.safetensors")),
        "logits": _logit_summary(m.logits(x)),
        "greedy": [m.decode(greedy.sequences[b, 0]) for b in range(3)],
        "sampled": [m.decode(sampled.sequences[0, i]) for i in range(2)],
    }


def run_text_mdlm() -> dict:
    m = load("text-mdlm")
    prompt = m.encode("And God said,")
    greedy = recipes.llada(steps=16, gen_length=16, block_length=16, temperature=0.0).run(m, [prompt], seed=0)
    sampled = recipes.mdlm(steps=16, gen_length=16).run(m, [prompt], seed=0)
    return {
        "sha256": _sha(weights_path("text-mdlm.safetensors")),
        "logits": _logit_summary(m.logits(torch.tensor([prompt]))),
        "greedy": greedy.generated[0, 0].tolist(),
        "sampled": sampled.generated[0, 0].tolist(),
        "sampled_text": m.decode(sampled.generated[0, 0].tolist()),
    }


def run_antiberty() -> dict:
    from smcdiff.models.antiberty import antiberty_dir

    m = load("antiberty")
    i = VH.index(CDR_H3)
    ids = m.encode(VH[:i] + "*" * len(CDR_H3) + VH[i + len(CDR_H3):])
    greedy = recipes.llada(steps=len(CDR_H3), gen_length=len(CDR_H3), block_length=None, temperature=0.0).infill(
        m, [ids], seed=0)
    sampled = recipes.sr_smc(recipes.llada(steps=len(CDR_H3), gen_length=len(CDR_H3), block_length=None,
                                           temperature=1.0), n_particles=4, when="every_step").infill(
        m, [ids], seed=0)
    return {
        "sha256": _sha(antiberty_dir() / "AntiBERTy_md_smooth" / "pytorch_model.bin"),
        "logits": _logit_summary(m.logits(torch.tensor([m.encode(VH)]))),
        "greedy": m.decode(greedy.filled(0, 0)),
        "sampled": [m.decode(sampled.filled(0, p)) for p in range(4)],
    }


RUNNERS = {"sudoku": run_sudoku, "text-mdlm": run_text_mdlm, "antiberty": run_antiberty}


def _check(name: str) -> None:
    rec = json.loads(GOLDEN.read_text())[name]
    got = RUNNERS[name]()
    assert got["sha256"] == rec["sha256"], (
        f"the {name} weights changed since the golden output was recorded; if that was intended, re-record with "
        f"`python tests/test_shipped_models.py --record`")
    for a, b in zip(got["logits"], rec["logits"]):
        assert abs(a - b) <= 1e-4 * max(1.0, abs(b)), (name, got["logits"], rec["logits"])
    for key in rec:
        if key not in ("sha256", "logits"):
            assert got[key] == rec[key], (name, key)


def test_sudoku_recorded_output():
    _check("sudoku")


def test_text_mdlm_recorded_output():
    _check("text-mdlm")


@pytest.mark.bio
@pytest.mark.skipif(importlib.util.find_spec("antiberty") is None, reason="needs smcdiff[bio]")
def test_antiberty_recorded_output():
    _check("antiberty")


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/test_shipped_models.py --record")
    out = {name: fn() for name, fn in RUNNERS.items()}
    GOLDEN.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
