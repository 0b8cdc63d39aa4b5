"""Harness tasks: Sudoku (exact metrics on hand-made grids) and text (entropy, distinct-2, rendering)."""

import math

import numpy as np
import pytest
import torch

from smcdiff import SMC, Categorical, EvenSplit, TopK, UnmaskingKernel
from smcdiff.eval import Method, evaluate
from smcdiff.proposals import Margin
from smcdiff.tasks import sudoku as task
from smcdiff.metrics import unigram_entropy as entropy
from smcdiff.tasks.text import TextTask, distinct_n


def test_sudoku_task_metrics_on_hand_made_grids():
    t = task.SudokuTask("test_easy", n=2)
    (p, sol), (p2, sol2) = t.items()
    wrong = list(sol2)
    blank = next(i for i, c in enumerate(p2) if c == "0")
    wrong[blank] = str(int(wrong[blank]) % 9 + 1)  # one blank cell changed: conflicts appear
    out = torch.tensor([task.encode(sol), task.encode("".join(wrong))])
    m = t.score(None, t.items(), out, None)
    assert m["solved"] == [1.0, 0.0]
    n_blank = p2.count("0")
    assert m["cell_accuracy"][0] == 1.0 and m["cell_accuracy"][1] == pytest.approx((n_blank - 1) / n_blank)
    assert m["violations"][0] == 0.0 and m["violations"][1] >= 2.0  # the changed digit clashes in row, col, box
    assert t.inputs(None, t.items())[0] == task.encode(p)
    with pytest.raises(ValueError, match="n must be an int"):
        task.SudokuTask("test_easy", n=0)


def test_sudoku_task_through_the_harness_on_the_shipped_model():
    from smcdiff.models import load

    model = load("sudoku")
    greedy = SMC(UnmaskingKernel(Categorical(0.0), TopK(), EvenSplit(81), Margin(), block_length=None))
    rep = evaluate(model, task.SudokuTask("test_easy", n=4), [Method("margin", greedy, select="first")],
                   progress=False)
    run = rep.runs["margin"][0]
    assert len(run["metrics"]["solved"]) == 4
    # every solved grid has no violation and all cells right
    for s, c, v in zip(run["metrics"]["solved"], run["metrics"]["cell_accuracy"], run["metrics"]["violations"]):
        assert s == 0.0 or (c == 1.0 and v == 0.0)


def test_entropy_and_distinct():
    assert entropy([]) == 0.0 and entropy([5, 5, 5]) == 0.0
    assert entropy([1, 2, 3, 4]) == pytest.approx(math.log(4))
    assert distinct_n([1, 2, 1, 2, 1, 2]) == pytest.approx(2 / 5)
    assert distinct_n([7]) == 1.0 and distinct_n([1, 2, 3], n=3) == 1.0


class _Tok:
    def decode(self, ids):
        return " ".join(f"w{i}" for i in ids)


class _Model:
    mask_id, pad_id, eos_ids = 1, 0, (2,)

    def decode(self, ids):
        return _Tok().decode(ids)

    def encode(self, text):
        return [10 + len(w) for w in text.split()]


class _Scorer:
    """Deterministic scorer for the plumbing test: NLL per token = number of characters / 10."""

    def token_nll(self, texts, contexts=None):
        return [np.full(max(1, len(t.split())), len(t) / 10.0) for t in texts]


def test_text_task_renders_eos_and_scores():
    t = TextTask(prompts=["a b", "c"], scorer=_Scorer())
    m = _Model()
    assert t.inputs(m, t.items()) == [[11, 11], [11]]
    assert TextTask.render(m, [5, 2, 6]) == "w5\n\nw6"
    assert TextTask.render(m, [2, 2]) == "\n\n\n\n"  # never empty
    out = torch.tensor([[11, 11, 5, 6, 5, 1], [11, 2, 7, 7, 7, 0]])
    s = t.score(m, t.items(), out, None)
    assert s["entropy"][0] == pytest.approx(-(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3))
    assert s["distinct2"][1] == pytest.approx(2 / 3)  # (2,7) (7,7) (7,7)
    assert s["nll"][0] == pytest.approx(len("w5 w6 w5") / 10)
    with pytest.raises(ValueError, match="prompts must be"):
        TextTask(prompts=[])
