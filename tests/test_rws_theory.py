"""The RWS theorems (reconstructed in rws.md §2.2-2.3), reproduced to the stated digits."""

import math

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from smcdiff.theory_checks.expected_reward import (
    exp_tilt_derivative,
    exp_tilt_expectation,
    is_comonotone,
    is_non_decreasing_in,
    logit_scaling_derivative,
    logit_scaling_expectation,
    tilt_gain,
    tilted_expectation,
)
from smcdiff.theory_checks.rank_reversal import (
    compare,
    confidence,
    crossings,
    gaps,
    large_r_winner,
    log_one_minus_confidence,
    log_S,
    margin,
    rws_select,
    small_r_winner,
    total_gap,
    two_level_case,
    two_level_confidence,
    two_level_crossing,
)

A = [0, -0.1] + [-10] * 18
B = [0] + [-2] * 19


def test_example1_sharpening_reversal():
    assert confidence(A, 1) == pytest.approx(0.5248, abs=5e-5)
    assert confidence(B, 1) == pytest.approx(0.2800, abs=5e-5)
    assert confidence(A, 1.5) == pytest.approx(0.5374, abs=5e-5) and confidence(B, 1.5) == pytest.approx(0.5139, abs=5e-5)
    assert confidence(A, 2) == pytest.approx(0.5498, abs=5e-5) and confidence(B, 2) == pytest.approx(0.7418, abs=5e-5)
    (r,) = crossings(A, B)
    assert r == pytest.approx(1.5497, abs=1e-4)
    assert two_level_crossing(1, 0.1, 19, 2.0) == pytest.approx(math.log(19) / 1.9, abs=1e-12)
    assert math.log(19) / 1.9 == pytest.approx(1.54970, abs=1e-5)
    assert large_r_winner(A, B) == -1 and margin(B) == (2.0, 19) and margin(A)[0] == pytest.approx(0.1)
    assert total_gap(A) == pytest.approx(180.1) and total_gap(B) == pytest.approx(38.0)
    assert small_r_winner(A, B) == 1  # below r* the order never reverses here


def test_example2_flattening_reversal():
    I, J = [0, -3, -3], [0, -1.5, -20]
    assert confidence(I, 1) == pytest.approx(0.9094, abs=5e-5) and confidence(J, 1) == pytest.approx(0.8176, abs=5e-5)
    assert confidence(I, 0.3) == pytest.approx(0.5515, abs=5e-5) and confidence(J, 0.3) == pytest.approx(0.6097, abs=5e-5)
    (r,) = crossings(I, J)
    assert r == pytest.approx(0.46197, abs=1e-5)
    assert two_level_crossing(2, 3, 1, 1.5) == pytest.approx(0.46210, abs=1e-5)
    assert small_r_winner(I, J) == -1 and total_gap(J) == pytest.approx(21.5) and total_gap(I) == pytest.approx(6.0)


def test_example3_no_reversal_possible():
    assert confidence([0, -1], 0.1) == pytest.approx(0.525, abs=5e-4)
    assert confidence([0, -2], 0.1) == pytest.approx(0.550, abs=5e-4)
    assert crossings([0, -1], [0, -2]) == []  # binary vocabulary: the larger margin always wins
    P, Q = [0, -1, -2, -3], [0, -0.5, -1.5, -2.5]
    assert confidence(P, 1) == pytest.approx(0.6439, abs=5e-5) and confidence(Q, 1) == pytest.approx(0.5231, abs=5e-5)
    for r in np.linspace(1e-3, 50, 2000):
        assert compare(P, Q, r) >= 0  # sorted-gap dominance


def test_example4_double_crossing_uniqueness_fails():
    a = [0, -2.072, -2.292, -0.123, -3.175]
    b = [0, -0.349, -25.572, -1.743, -0.549]
    assert confidence(a, 1) == pytest.approx(0.4645, abs=5e-5) and confidence(b, 1) == pytest.approx(0.4068, abs=5e-5)
    assert confidence(a, 0.05) == pytest.approx(0.2155, abs=5e-5) and confidence(b, 0.05) == pytest.approx(0.2409, abs=5e-5)
    assert confidence(a, 5) == pytest.approx(0.6491, abs=5e-5) and confidence(b, 5) == pytest.approx(0.8071, abs=5e-5)
    roots = crossings(a, b)
    assert len(roots) == 2
    assert roots[0] == pytest.approx(0.3280, abs=1e-4) and roots[1] == pytest.approx(2.2162, abs=1e-4)
    assert small_r_winner(a, b) == -1 and large_r_winner(a, b) == -1  # b has larger D and larger margin


def test_example5_whole_rws_step():
    pos = [[0] + [-4] * 19, [0, -0.1] + [-10] * 18, [0] + [-1] * 19, [0] + [-2] * 19]
    sel, conf = rws_select(pos, 2, 1.0)
    assert sel == [0, 1]
    assert conf == pytest.approx([0.7418, 0.5248, 0.1252, 0.2800], abs=5e-5)
    for r in (0.25, 0.5, 1.5):
        assert rws_select(pos, 2, r)[0] == [0, 1]
    sel, conf = rws_select(pos, 2, 2.0)
    assert sel == [0, 3]
    assert conf == pytest.approx([0.9937, 0.5498, 0.2800, 0.7418], abs=5e-5)


def test_log_space_comparisons_do_not_saturate():
    z1, z2 = [0, -1.0, -1.0], [0, -1.2, -30.0]
    r = 200.0
    assert confidence(z1, r) == 1.0 and confidence(z2, r) == 1.0  # float64 saturates
    assert compare(z2, z1, r) == 1  # larger margin wins, visible in log space
    assert log_one_minus_confidence(z1, r) == pytest.approx(math.log(2) - 200, abs=1e-9)
    # far past the point where log S = log(1 + n e^{-r Delta}) rounds to 0 (r Delta > ~745)
    assert compare([0, -3, -50, -50, -50], [0, -2, -2], 400.0) == 1
    assert compare([0, -2, -2], [0, -2], 1e4) == -1  # same margin: fewer runners-up wins
    assert compare([0, 0, -5], [0, -1e-3], 1e6) == -1  # two tied maxima never beat one
    assert large_r_winner([0, 0, -1], [0, -1, -1]) == -1  # c -> 1/2 against c -> 1, whatever the runners-up
    assert rws_select([[0, -2, -2], [0, -3, -50], [0, -2]], 1, 1e4)[0] == [1]


# Each property test below draws inputs that satisfy its proposition's hypotheses by
# construction, so its assertions run on every example; hypothesis.event records which case
# each example exercises (see `pytest --hypothesis-show-statistics`).

finite = st.floats(-8, 8, allow_nan=False)


@st.composite
def same_size_pairs_with_distinct_D(draw):
    """Two logit vectors of one size V with total gaps D at least 1e-2 apart, either one larger.

    Arbitrary vectors, then the smallest logit of the one with the smaller D is lowered until
    its D exceeds the other's by a drawn g (lowering a non-maximal logit by x raises D by x).
    """
    v = draw(st.integers(2, 8))
    a = draw(st.lists(finite, min_size=v, max_size=v))
    b = draw(st.lists(finite, min_size=v, max_size=v))
    g = draw(st.floats(1e-2, 10))
    lo, hi = (a, b) if total_gap(a) <= total_gap(b) else (b, a)
    k = int(np.argmin(lo))
    lo[k] -= total_gap(hi) - total_gap(lo) + g  # now D(lo) = D(hi) + g
    winner_is_i = draw(st.booleans())
    return (lo, hi) if winner_is_i else (hi, lo), (1 if winner_is_i else -1)


@given(same_size_pairs_with_distinct_D())
def test_proposition_1_larger_total_gap_wins_for_small_r(pair):
    (zi, zj), expected = pair
    di, dj = total_gap(zi), total_gap(zj)
    assert abs(di - dj) > 5e-3
    assert small_r_winner(zi, zj) == expected
    # How small is small enough: 1 - x <= e^-x <= 1 - x + x^2/2 gives
    # V - r D <= S(r) <= V - r D + r^2 Q / 2 with Q = sum_v d_v^2, so the larger D wins for every
    # r < 2 |D_i - D_j| / max(Q_i, Q_j); r0 below is half that bound (and at most 1e-2).
    q = max(float(np.sum(gaps(zi) ** 2)), float(np.sum(gaps(zj) ** 2)))
    r0 = min(1e-2, abs(di - dj) / q)
    for r in (r0, r0 * 1e-3):
        assert compare(zi, zj, r) == expected
        assert compare(zj, zi, r) == -expected
    event(f"P1: position {'i' if expected == 1 else 'j'} has the larger D")
    base = compare(zi, zj, 1.0)
    event("P1: the r = 1 order " + ("agrees with" if base == expected else "is reversed from" if base else "ties") + " the small-r order")


Q = 64  # dyadic logits (k / 64): gaps are exact in float64, so equal margins are really equal


def dyadic(lo, hi):
    return st.integers(int(lo * Q), int(hi * Q)).map(lambda k: k / Q)


@st.composite
def structured_position(draw, m, n, delta):
    """m tied maxima, n runners-up at gap delta, then a tail at gaps of at least delta + 1/64.

    With n = 0 every logit is a maximum (margin inf).
    """
    top = draw(dyadic(-8, 8))
    tail = draw(st.lists(st.integers(1, 6 * Q), max_size=4)) if n else []
    z = [top] * m + [top - delta] * n + [top - delta - k / Q for k in tail]
    return draw(st.permutations(z))


@st.composite
def pairs_with_large_r_winner(draw):
    """A pair decided at large r by a drawn rule of Proposition 2, with the expected winner."""
    rule = draw(st.sampled_from(["fewer tied maxima", "larger margin", "fewer runners-up"]))
    one_to = lambda k: st.integers(1, k)  # noqa: E731
    if rule == "fewer tied maxima":
        mi, mj = draw(st.lists(one_to(4), min_size=2, max_size=2, unique=True))
        # n = 0: all logits tied (margin inf); kept to m >= 2 so that V >= 2
        ni, nj = draw(st.integers(0 if mi > 1 else 1, 3)), draw(st.integers(0 if mj > 1 else 1, 3))
        ai, aj = draw(dyadic(1 / Q, 5)), draw(dyadic(1 / Q, 5))
        expected = 1 if mi < mj else -1
    elif rule == "larger margin":
        mi = mj = draw(one_to(3))
        ni, nj = draw(one_to(3)), draw(one_to(3))
        small = draw(dyadic(1 / Q, 5))
        big = small + draw(dyadic(1 / Q, 4))
        expected = draw(st.sampled_from([1, -1]))
        ai, aj = (big, small) if expected == 1 else (small, big)
    else:
        mi = mj = draw(one_to(3))
        ai = aj = draw(dyadic(1 / Q, 5))
        ni, nj = draw(st.lists(one_to(4), min_size=2, max_size=2, unique=True))
        expected = 1 if ni < nj else -1
    zi = draw(structured_position(mi, ni, ai))
    zj = draw(structured_position(mj, nj, aj))
    return rule, zi, zj, expected


@given(pairs_with_large_r_winner())
def test_proposition_2_tied_maxima_then_margin_then_runners_up_win_for_large_r(case):
    rule, zi, zj, expected = case
    event(f"P2 rule: {rule}")
    assert large_r_winner(zi, zj) == expected
    assert large_r_winner(zj, zi) == -expected
    # Large enough: every gap that decides the order (margins, their difference, the step from a
    # margin to the next gap) is a multiple of 1/64, so at r = 64 (30 + ln 2V) each neglected term
    # is below e^-30 / (2V) of the one that decides.
    r0 = Q * (30 + math.log(2 * max(len(zi), len(zj))))
    for r in (r0, 4 * r0):
        assert compare(zi, zj, r) == expected
        assert compare(zj, zi, r) == -expected
    base = compare(zi, zj, 1.0)
    event("P2: the r = 1 order " + ("agrees with" if base == expected else "is reversed from" if base else "ties") + " the large-r order")


# logits on a 1e-12 grid: a positive margin is then at least ~1e-12, so r = 60 / margin stays finite
grid_logit = st.floats(-8, 8, allow_nan=False).map(lambda x: round(x, 12))
logit_vec = st.lists(grid_logit, min_size=2, max_size=8)
# logits drawn from a few values, so that tied maxima (m > 1) and all-equal vectors are common
tied_logit_vec = st.lists(grid_logit, min_size=1, max_size=3, unique=True).flatmap(
    lambda pool: st.lists(st.sampled_from(pool), min_size=2, max_size=8)
)


@given(st.one_of(logit_vec, tied_logit_vec), st.floats(0.01, 20), st.floats(0.01, 20), st.floats(-5, 5))
def test_lemma0(z, r1, r2, shift):
    lo, hi = sorted([r1, r2])
    argmax = int(np.argmax(z))
    assert int(np.argmax(hi * np.asarray(z))) == argmax  # positive scaling keeps the arg-max
    assert log_S(z, hi) <= log_S(z, lo) + 1e-12  # confidence non-decreasing in r
    assert log_S(np.asarray(z) + shift, lo) == pytest.approx(log_S(z, lo), abs=1e-9)  # shift invariance
    v = len(z)
    m = int(np.sum(np.isclose(np.asarray(z), max(z), rtol=0, atol=0)))
    assert confidence(z, 1e-9) == pytest.approx(1 / v, rel=1e-6)
    # c -> 1/m as r -> inf: at r = 60 / margin every non-maximal term is below e^-60
    delta = margin(z)[0]
    r_inf = 60.0 / delta if math.isfinite(delta) else 1.0  # all tied: S = V = m for every r
    assert log_S(z, r_inf) == pytest.approx(math.log(m), abs=1e-9)
    event("L0: " + ("all logits tied" if m == v else f"{'one maximum' if m == 1 else 'tied maxima'}"))


P3_CASES = ["above", "below", "never: m_j > m_i, d_j < d_i", "never: m_j = m_i, d_j < d_i", "never: m_j > m_i, d_j = d_i"]


@st.composite
def two_level_pairs(draw, sub):
    """Two-level positions (m_i, d_i), (m_j, d_j) whose baseline prefers i, in case ``sub`` of Prop. 3.

    above: m_j > m_i, d_j = d_i + f ln(m_j / m_i), so r* = 1 / f > 1;
    below: m_j < m_i, d_i = d_j + ln(m_i / m_j) / f, so r* = f < 1;
    never: m_j >= m_i and d_j <= d_i, not both equal (j has more, closer alternatives).
    """
    kind = sub.split(":")[0]
    d = st.floats(0.05, 5)
    if kind == "above":
        mi = draw(st.integers(1, 19))
        mj = draw(st.integers(mi + 1, 20))
        di = draw(d)
        dj = di + draw(st.floats(0.02, 0.98)) * math.log(mj / mi)
    elif kind == "below":
        mj = draw(st.integers(1, 19))
        mi = draw(st.integers(mj + 1, 20))
        dj = draw(d)
        di = dj + math.log(mi / mj) / draw(st.floats(0.02, 0.98))
    else:
        mi = draw(st.integers(1, 19))
        mj = mi if "m_j = m_i" in sub else draw(st.integers(mi + 1, 20))
        di = draw(d)
        dj = di if sub.endswith("d_j = d_i") else di - draw(st.floats(1e-3, 1.0)) * (di - 0.01)
    return mi, di, mj, dj


# one run per case (each with the profile's full number of examples), so no case depends on
# how the profile happens to spread its draws
@pytest.mark.parametrize("sub", P3_CASES, ids=["above", "below", "never-more-closer", "never-same-m", "never-same-d"])
@given(data=st.data())
def test_proposition3_two_level_cases(sub, data):
    mi, di, mj, dj = data.draw(two_level_pairs(sub))
    kind = sub.split(":")[0]
    event(f"P3 case: {sub}")
    assert mi * math.exp(-di) < mj * math.exp(-dj)  # the baseline prefers i
    case = two_level_case(mi, di, mj, dj)
    assert case.kind == kind
    grid = np.geomspace(1e-3, 200, 400)
    # c_j > c_i  <=>  m_j e^{-r d_j} < m_i e^{-r d_i}, compared in log space (no saturation)
    rev = [math.log(mj) - r * dj < math.log(mi) - r * di for r in grid]
    assert two_level_confidence(mi, di, 1.0) > two_level_confidence(mj, dj, 1.0)
    if case.kind == "above":
        assert case.r_star > 1
        assert all(rv == (r > case.r_star) for r, rv in zip(grid, rev) if abs(r - case.r_star) > 1e-6)
        assert any(rev)  # the grid reaches past r*: the reversal really happens
    elif case.kind == "below":
        assert case.r_star < 1
        assert all(rv == (r < case.r_star) for r, rv in zip(grid, rev) if abs(r - case.r_star) > 1e-6)
        assert any(rev)
    else:
        assert not any(rev)


def test_corollary_predicts_reversal_direction():
    # the baseline prefers A; B has the larger margin, so some r > 1 reverses (example 1)
    assert compare(A, B, 1.0) == 1 and compare(A, B, 10.0) == -1 and large_r_winner(A, B) == -1


# ---------------------------------------------------------------- Theorem 2


def test_t2a_example():
    p, R = [0.5, 0.3, 0.2], [0, 1, 2]
    assert exp_tilt_expectation(p, R, 0) == pytest.approx(0.7)
    assert exp_tilt_derivative(p, R, 0) == pytest.approx(0.61)
    assert exp_tilt_expectation(p, R, 0.5) == pytest.approx(1.0284, abs=5e-5)
    assert exp_tilt_expectation(p, R, 1.0) == pytest.approx(1.3501, abs=5e-5)
    assert exp_tilt_expectation(p, R, 2.0) == pytest.approx(1.7641, abs=5e-5)
    assert tilted_expectation(p, R, [1, 1.5, 1.5]) == pytest.approx(0.84)


def test_t2b_example_and_counterexample():
    z = [2, 1, 0]
    good = [logit_scaling_expectation(z, [1, 0.5, 0], r) for r in (0.5, 1, 2, 4)]
    assert good == pytest.approx([0.6601, 0.7876, 0.9255, 0.9907], abs=5e-5)
    bad = [logit_scaling_expectation(z, [0, 0, 1], r) for r in (0.5, 1, 2, 4)]
    assert bad == pytest.approx([0.1863, 0.0900, 0.0159, 0.0003], abs=5e-5)
    assert is_comonotone(z, [1, 0.5, 0]) and not is_comonotone(z, [0, 0, 1])
    assert all(a > b for a, b in zip(bad, bad[1:]))  # sharpening lowers reward without the precondition


probs = st.lists(st.floats(0.01, 1.0), min_size=2, max_size=7).map(lambda x: list(np.asarray(x) / np.sum(x)))


@given(probs, st.data())
def test_t2a_tilting_never_lowers_expected_reward(p, data):
    n = len(p)
    R = data.draw(st.lists(st.floats(-3, 3), min_size=n, max_size=n))
    raw = data.draw(st.lists(st.floats(0.0, 5.0), min_size=n, max_size=n))
    raw[data.draw(st.integers(0, n - 1))] = data.draw(st.floats(1e-3, 5.0))  # so that E_p[w] > 0
    # make w a non-decreasing function of R
    order = np.argsort(R, kind="stable")
    w = np.empty(n)
    w[order] = np.maximum.accumulate(np.asarray(raw)[order])
    for u in range(n):  # equal rewards get equal weights
        w[u] = max(w[v] for v in range(n) if R[v] == R[u])
    assert np.dot(p, w) > 0  # the tilt is defined (by construction above)
    event("T2a: " + ("w constant" if np.ptp(w) == 0 else "w not constant"))
    assert is_non_decreasing_in(R, w)
    gain, formula = tilt_gain(p, R, w)
    assert gain == pytest.approx(formula, abs=1e-9)
    assert gain >= -1e-12
    b1, b2 = sorted(data.draw(st.lists(st.floats(-3, 3), min_size=2, max_size=2)))
    assert exp_tilt_expectation(p, R, b2) >= exp_tilt_expectation(p, R, b1) - 1e-9
    beta = data.draw(st.floats(-2, 2))
    h = 1e-5
    num = (exp_tilt_expectation(p, R, beta + h) - exp_tilt_expectation(p, R, beta - h)) / (2 * h)
    assert num == pytest.approx(exp_tilt_derivative(p, R, beta), abs=1e-5)


@given(st.lists(st.floats(-4, 4), min_size=2, max_size=7), st.data())
def test_t2b_comonotone_reward_is_non_decreasing_in_r(z, data):
    z = np.asarray(z)
    # a reward that is a non-decreasing function of the logit
    R = np.tanh(z) + 0.1 * z
    r1, r2 = sorted(data.draw(st.lists(st.floats(0.01, 10), min_size=2, max_size=2)))
    assert is_comonotone(z, R)
    assert logit_scaling_expectation(z, R, r2) >= logit_scaling_expectation(z, R, r1) - 1e-9
    assert logit_scaling_derivative(z, R, r1) >= -1e-12
    h = 1e-5
    num = (logit_scaling_expectation(z, R, r1 + h) - logit_scaling_expectation(z, R, r1 - h)) / (2 * h)
    assert num == pytest.approx(logit_scaling_derivative(z, R, r1), abs=1e-5)
