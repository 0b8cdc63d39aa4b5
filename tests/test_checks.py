"""The user-facing checks can fail: each is fed a deliberately wrong component."""

from dataclasses import replace

import pytest

from smcdiff import Categorical, EvenSplit, RandomK, ToyDenoiser, TopK, TrajectoryConfidence, UnmaskingKernel
from smcdiff.theory_checks import check_components, check_proper_weighting, check_sampling_law

MODEL = ToyDenoiser.random(3, 4, seed=21)


class InflatedKernel(UnmaskingKernel):
    """Reports log q + 0.7 at every step: its path probabilities sum to e^{2.1}, not 1."""

    def evaluate(self, state, model, choice, **kw):
        ps = super().evaluate(state, model, choice, **kw)
        return replace(ps, log_q=ps.log_q + 0.7 * ps.active[:, None])


class LyingSampler(Categorical):
    """Draws at temperature 0.5 but reports the temperature-1 probabilities."""

    def draw(self, logits, rng):
        tok, _ = Categorical(0.5).draw(logits, rng)
        return tok, self.log_prob(logits, tok)


def test_self_referential_check_still_requires_normalised_path_probabilities():
    good = check_proper_weighting(UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(3)), MODEL, [0], 3)
    assert good.passed and good.self_referential and good.total_q == pytest.approx(1.0, abs=1e-12)
    bad = check_proper_weighting(InflatedKernel(Categorical(1.0), TopK(), EvenSplit(3)), MODEL, [0], 3)
    assert not bad.passed and bad.total_q == pytest.approx(2.718281828**2.1, rel=1e-6)
    assert "only the normalisation" in str(bad)


def test_independent_target_is_not_self_referential():
    kernel = UnmaskingKernel(Categorical(1.0), RandomK(), EvenSplit(3))
    rep = check_proper_weighting(kernel, MODEL, [0], 3, target=MODEL.target_given_prompt([0]))
    assert rep.passed and not rep.self_referential


@pytest.mark.parametrize("selector", [TopK(), RandomK()], ids=["top-k", "random"])
def test_sampling_law_passes_for_honest_samplers(selector):
    kernel = UnmaskingKernel(Categorical(0.8), selector, EvenSplit(3))
    rep = check_sampling_law(kernel, MODEL, [0], 3, n_draws=3000, seed=1, k=5.0)
    assert rep.passed, str(rep)


def test_sampling_law_catches_a_sampler_that_misreports_its_law():
    kernel = UnmaskingKernel(LyingSampler(1.0), TopK(), EvenSplit(3))
    # the exact check only sees the reported probabilities, so it cannot tell ...
    assert check_proper_weighting(kernel, MODEL, [0], 3, [TrajectoryConfidence()]).passed
    # ... but the draws do not follow them
    rep = check_sampling_law(kernel, MODEL, [0], 3, n_draws=3000, seed=1, k=5.0)
    assert not rep.passed and rep.max_z > 10, str(rep)
    both = check_components(kernel, MODEL, [0], 3, [TrajectoryConfidence()], n_runs=1500)
    assert not both.passed and "do NOT follow" in str(both)
