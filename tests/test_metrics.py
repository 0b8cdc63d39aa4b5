import math

import pytest
import torch

from smcdiff import metrics, recipes
from smcdiff.models import ToyDenoiser


def test_god_toy_example_is_one():
    # L = 6, k = 2, order {0,5}, {1,4}, {2,3}  (rws.md §3.1)
    steps = [1, 2, 3, 3, 2, 1]
    assert metrics.god(steps, 2) == pytest.approx(1.0)


def test_left_to_right_and_right_to_left():
    ltr = [1, 1, 2, 2, 3, 3]
    assert metrics.god(ltr, 2) == 0.0
    assert metrics.kendall_tau_order([1, 2, 3, 4, 5, 6]) == pytest.approx(1.0)
    # tau-b with tied steps: 12 concordant pairs, 0 discordant, 3 ties in steps: 12 / sqrt(15 * 12)
    assert metrics.kendall_tau_order(ltr) == pytest.approx(12 / math.sqrt(15 * 12), abs=1e-12)
    assert metrics.local_ar_ness([1, 2, 3, 4, 5, 6]) == 1.0
    assert metrics.global_ar_ness([1, 2, 3, 4, 5, 6]) == 1.0
    rtl = [6, 5, 4, 3, 2, 1]
    assert metrics.kendall_tau_order(rtl) == pytest.approx(-1.0)
    assert metrics.local_ar_ness(rtl) == 0.0
    assert metrics.global_ar_ness(rtl) == pytest.approx(1 / 6)
    assert metrics.god(rtl, 1) == pytest.approx((5 + 3 + 1 + 1 + 3 + 5) / 6)


def test_ar_ness_with_k_and_parallel_steps():
    # order 0,2,1,3: jumps +2, -1, +2
    steps = [1, 3, 2, 4]
    assert metrics.commit_order(steps) == [0, 2, 1, 3]
    assert metrics.local_ar_ness(steps, 1) == 0.0
    assert metrics.local_ar_ness(steps, 2) == pytest.approx(2 / 3)
    # global@2: events 0 (leftmost), 2 (2nd leftmost of {1,2,3}), 1 (leftmost), 3 -> all within 2
    assert metrics.global_ar_ness(steps, 2) == 1.0
    assert metrics.global_ar_ness(steps, 1) == pytest.approx(3 / 4)


def test_god_excluding_trailing_eos():
    # EOS (id 9) filled first at the end, then left to right
    tokens = [5, 6, 7, 9, 9]
    steps = [2, 3, 4, 1, 1]
    with_eos = metrics.god(steps, 1)
    without = metrics.god(steps, 1, tokens=tokens, eos_ids=[9])
    assert without == 0.0 and with_eos > 0.0
    # EOS committed in between (step 2) does not count against the content positions either
    tokens = [5, 6, 7, 9, 9]
    steps = [1, 3, 4, 2, 5]
    assert metrics.god(steps, 1, tokens=tokens, eos_ids=[9]) == 0.0
    assert metrics.god([1, 3, 2, 4, 5], 1, tokens=tokens, eos_ids=[9]) == pytest.approx(2 / 3)


def test_unigram_entropy_and_tokens_per_forward():
    assert metrics.unigram_entropy([1, 1, 2, 2]) == pytest.approx(math.log(2))
    assert metrics.unigram_entropy([3, 3, 3]) == 0.0
    assert metrics.tokens_per_forward(128, 32) == 4.0


def test_order_metrics_on_a_result():
    m = ToyDenoiser.random(3, 5, seed=0)
    res = recipes.llada(steps=2, gen_length=4, block_length=4, temperature=1.0, n_particles=3).run(m, torch.tensor([[0], [1]]), seed=0)
    out = metrics.order_metrics(res)
    assert out["god"].shape == (2, 3) and (out["god"] >= 0).all()
    assert out["nfe"].tolist() == [2, 2] and out["tokens_per_forward"].tolist() == [2.0, 2.0]


def test_incomplete_sequence_rejected():
    with pytest.raises(Exception, match="commit steps must be >= 1"):
        metrics.god([1, -1], 1)
