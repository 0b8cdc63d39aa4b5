import math

import pytest
import torch

from smcdiff import ConfigError, available_schemes, resample
from smcdiff.errors import AllParticlesDeadError
from smcdiff.resampling import counts_from_ancestors, get_scheme

SCHEMES = ["systematic", "stratified", "residual", "multinomial"]


def gens(b, seed=0):
    return [torch.Generator().manual_seed(seed * 1000 + i) for i in range(b)]


def test_registry_lists_all_schemes():
    assert set(SCHEMES) <= set(available_schemes())


def test_unknown_scheme_error_names_it():
    with pytest.raises(ConfigError, match=r"unknown resampling scheme 'sistematic'.*systematic"):
        resample(torch.ones(1, 3) / 3, gens(1), "sistematic")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_expected_counts_equal_nw_within_5_se(scheme):
    # R replicates of one weight vector, as R rows with independent generators.
    # Tolerance: 5 standard errors of the mean count, estimated from the replicates
    # (plus a tiny floor for particles whose count has no variance).
    n, r = 7, 4000
    w = torch.tensor([0.31, 0.02, 0.17, 0.0, 0.25, 0.05, 0.20], dtype=torch.float64)
    W = w.expand(r, n).contiguous()
    anc = resample(W, gens(r, seed=3), scheme)
    counts = counts_from_ancestors(anc, n).to(torch.float64)
    mean = counts.mean(0)
    se = counts.std(0) / math.sqrt(r)
    assert torch.all((mean - n * w).abs() <= 5 * se + 1e-9), (scheme, mean, n * w, se)
    # weight-0 particle never chosen
    assert counts[:, 3].sum() == 0


@pytest.mark.parametrize("scheme", SCHEMES)
def test_zero_weight_never_chosen_and_one_hot(scheme):
    W = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.5, 0.0, 0.0, 0.5]], dtype=torch.float64)
    for s in range(50):
        anc = resample(W, gens(2, seed=s), scheme)
        assert anc[0].tolist() == [2, 2, 2, 2]
        assert set(anc[1].tolist()) <= {0, 3}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_single_particle(scheme):
    anc = resample(torch.ones(3, 1, dtype=torch.float64), gens(3), scheme)
    assert anc.tolist() == [[0], [0], [0]]


def _random_weights(r, n, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(r, n, generator=g, dtype=torch.float64) ** 3
    w[:, 0] = 0.0
    return w / w.sum(1, keepdim=True)


def test_systematic_counts_are_floor_or_ceil():
    r, n = 500, 9
    W = _random_weights(r, n, 1)
    c = counts_from_ancestors(resample(W, gens(r), "systematic"), n).to(torch.float64)
    nw = n * W
    assert torch.all((c >= torch.floor(nw) - 1e-12) & (c <= torch.ceil(nw) + 1e-12))


def test_residual_counts_at_least_floor():
    r, n = 500, 9
    W = _random_weights(r, n, 2)
    c = counts_from_ancestors(resample(W, gens(r), "residual"), n).to(torch.float64)
    assert torch.all(c >= torch.floor(n * W) - 1e-12)
    assert torch.all(c.sum(1) == n)


def test_stratified_counts_within_two():
    r, n = 500, 9
    W = _random_weights(r, n, 3)
    c = counts_from_ancestors(resample(W, gens(r), "stratified"), n).to(torch.float64)
    assert torch.all((c - n * W).abs() < 2)


def test_systematic_uniform_weights_is_identity():
    W = torch.full((4, 6), 1 / 6, dtype=torch.float64)
    assert resample(W, gens(4), "systematic").tolist() == [list(range(6))] * 4


@pytest.mark.parametrize("scheme", SCHEMES)
def test_rows_do_not_depend_on_batch_composition(scheme):
    W = _random_weights(3, 5, 4)
    joint = resample(W, gens(3, seed=9), scheme)
    g = gens(3, seed=9)
    for b in range(3):
        alone = resample(W[b : b + 1], [g[b]], scheme)
        assert torch.equal(alone[0], joint[b])


def test_all_dead_row_raises():
    with pytest.raises(AllParticlesDeadError, match=r"\[1\]"):
        resample(torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64), gens(2))


def test_generator_count_must_match():
    with pytest.raises(ConfigError, match="one generator per prompt"):
        resample(torch.ones(2, 3) / 3, gens(1))


@pytest.mark.parametrize("scheme", ["systematic", "stratified", "multinomial"])
def test_a_point_rounding_to_one_never_picks_a_trailing_zero_weight(scheme):
    # (k + U) / M can round to exactly 1.0; it must go to the last particle of positive weight
    W = torch.tensor([[0.5, 0.5, 0.0, 0.0]], dtype=torch.float64)
    U = torch.full((1, 4), 1.0 - 2.0**-53, dtype=torch.float64)
    anc = get_scheme(scheme).fn(W, U[:, : get_scheme(scheme).n_uniforms(4)], 4)
    assert anc.max().item() == 1


@pytest.mark.parametrize("bad", [float("nan"), -0.1, float("inf")])
def test_invalid_weights_are_refused(bad):
    W = torch.tensor([[0.6, 0.4, 0.0]], dtype=torch.float64)
    W[0, 2] = bad
    with pytest.raises(ConfigError, match="NaN, infinite or negative"):
        resample(W, [torch.Generator().manual_seed(0)], "systematic")
