import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from smcdiff import AllParticlesDeadError, ConfigError, Weights
from smcdiff.weights import ess_from_log_weights


def test_uniform_and_basic_quantities():
    w = Weights.uniform(2, 4)
    assert w.log_w.dtype == torch.float64
    assert torch.allclose(w.ess, torch.tensor([4.0, 4.0], dtype=torch.float64))
    assert torch.allclose(w.log_mean, torch.zeros(2, dtype=torch.float64))
    assert torch.allclose(w.normalized(), torch.full((2, 4), 0.25, dtype=torch.float64))


def test_ess_matches_definition_in_float64():
    lw = torch.tensor([[0.0, math.log(2.0), math.log(3.0), -math.inf]], dtype=torch.float64)
    w = torch.exp(lw)
    expected = w.sum() ** 2 / (w**2).sum()
    assert Weights(lw).ess.item() == pytest.approx(expected.item(), rel=1e-14)


def test_one_hot_ess_is_one():
    lw = torch.tensor([[-math.inf, 3.0, -math.inf]])
    assert Weights(lw).ess.item() == 1.0
    assert torch.equal(Weights(lw).normalized(), torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64))


def test_nan_is_refused_not_read_as_zero_weight():
    # a NaN is a bug upstream; it must not silently become weight zero (issue 9)
    with pytest.raises(ConfigError, match=r"prompt\(s\) \[1\] contain NaN"):
        Weights(torch.tensor([[0.0, 0.0], [float("nan"), 0.0]]))
    with pytest.raises(ConfigError, match="increment"):
        Weights.uniform(1, 2).add(torch.tensor([[float("nan"), 0.0]]))
    w = Weights(torch.tensor([[-math.inf, 0.0]]))  # -inf is the way to say weight zero
    assert w.normalized()[0].tolist() == [0.0, 1.0]


def test_dead_row_is_reported_not_nan():
    w = Weights(torch.tensor([[-math.inf, -math.inf], [0.0, 1.0]]))
    assert w.dead.tolist() == [True, False]
    assert w.ess[0].item() == 0.0
    assert torch.isneginf(w.log_mean[0])
    with pytest.raises(AllParticlesDeadError, match=r"prompt\(s\) \[0\]"):
        w.normalized()
    nz = w.normalized(allow_dead=True)
    assert not torch.isnan(nz).any()
    assert nz[0].tolist() == [0.0, 0.0]


def test_add_keeps_minus_inf_and_is_immutable():
    w = Weights(torch.tensor([[-math.inf, 0.0]]))
    w2 = w.add(torch.tensor([[-math.inf, 1.5]]))
    assert torch.isneginf(w2.log_w[0, 0]) and w2.log_w[0, 1].item() == 1.5
    assert w.log_w[0, 1].item() == 0.0


def test_bad_shapes_and_plus_inf():
    with pytest.raises(ConfigError, match=r"\[B, N\]"):
        Weights(torch.zeros(3))
    with pytest.raises(ConfigError, match=r"\+inf"):
        Weights(torch.tensor([[0.0, math.inf]]))
    with pytest.raises(ConfigError, match="n_particles"):
        Weights.uniform(1, 0)


def test_reset_rows():
    w = Weights(torch.tensor([[1.0, 2.0], [3.0, 4.0]])).reset(torch.tensor([True, False]))
    assert w.log_w.tolist() == [[0.0, 0.0], [3.0, 4.0]]


log_w_rows = st.lists(
    st.one_of(st.floats(-50, 50), st.just(-math.inf)), min_size=1, max_size=12
).filter(lambda r: any(x != -math.inf for x in r))


@pytest.mark.thorough
@given(log_w_rows, st.floats(-100, 100))
def test_ess_in_range_and_shift_invariant(row, c):
    lw = torch.tensor([row], dtype=torch.float64)
    ess = Weights(lw).ess.item()
    assert 1.0 <= ess <= len(row) + 1e-9
    # the value itself (the range alone is guaranteed by clamping): (sum w)^2 / sum w^2 after normalising
    W = [math.exp(x - max(row)) for x in row]
    assert ess == pytest.approx(sum(W) ** 2 / sum(x * x for x in W), rel=1e-12)
    shifted = Weights(lw + c).ess.item()
    assert shifted == pytest.approx(ess, rel=1e-9, abs=1e-9)
    w = Weights(lw).normalized()
    assert w.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(Weights(lw + c).normalized(), w, atol=1e-12)


@given(st.integers(1, 20))
def test_ess_uniform_is_n(n):
    assert ess_from_log_weights(torch.zeros(1, n, dtype=torch.float64)).item() == pytest.approx(n)
