"""smcdiff.eval: bootstrap coverage, batch-size invariance, the cache, output rules, the table."""

import json

import numpy as np
import pytest
import torch

from smcdiff import SMC, Categorical, ConfigError, EvenSplit, TopK, ToyDenoiser, TrajectoryConfidence, UnmaskingKernel
from smcdiff import recipes
from smcdiff.eval import Method, bootstrap_ci, evaluate, select_outputs


class ParityTask:
    """Toy prefix task: metric = 1 if the generated tokens sum to an even number; also their mean."""

    name = "parity"
    mode = "run"

    def __init__(self, n=6):
        self.n = n
        self.scored = 0

    def items(self):
        return list(range(self.n))

    def inputs(self, model, items):
        return [[k % 3] for k in items]

    def score(self, model, items, outputs, result):
        self.scored += len(items)
        gen = outputs[:, 1:]
        return {"even": [float(int(g.sum()) % 2 == 0) for g in gen], "mean_token": gen.double().mean(1).tolist()}


@pytest.fixture(scope="module")
def model():
    return ToyDenoiser.random(vocab_size=3, length=5, seed=0)


def _methods():
    kernel = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(steps=4), block_length=None)
    return [
        Method("one sample", SMC(kernel), select="first", gen_length=4),
        Method("SR-SMC N=4", SMC(kernel, [TrajectoryConfidence()], n_particles=4), select="trajectory_confidence",
               gen_length=4),
    ]


def test_bootstrap_interval_covers_at_nominal_rate():
    # 400 synthetic data sets of 60 exponential values (true mean 1); 95 % nominal coverage.
    # Tolerance: 3 binomial standard errors, sqrt(0.95 * 0.05 / 400) = 0.011, so [0.917, 0.983];
    # the percentile bootstrap is known to undercover a little on skewed data, hence a one-sided slack of 0.015.
    rng = np.random.default_rng(0)
    hits = 0
    for k in range(400):
        _, lo, hi = bootstrap_ci(rng.exponential(1.0, size=60), n_boot=1000, seed=k)
        hits += lo <= 1.0 <= hi
    cov = hits / 400
    assert 0.917 - 0.015 <= cov <= 0.983, cov


def test_bootstrap_rejects_bad_values():
    with pytest.raises(ConfigError, match="non-finite"):
        bootstrap_ci([1.0, float("nan")])
    with pytest.raises(ConfigError, match="at least one value"):
        bootstrap_ci([])
    with pytest.raises(ConfigError, match="level must be"):
        bootstrap_ci([1.0], level=1.5)


def test_batch_size_does_not_change_results(model):
    a = evaluate(model, ParityTask(), _methods(), seeds=[0, 1], batch_size=1, progress=False)
    b = evaluate(model, ParityTask(), _methods(), seeds=[0, 1], batch_size=4, progress=False)
    for label in a.runs:
        for s in (0, 1):
            assert a.runs[label][s]["metrics"] == b.runs[label][s]["metrics"]
            assert a.runs[label][s]["compute"]["particle_forwards"] == b.runs[label][s]["compute"]["particle_forwards"]


def test_compute_columns_and_table(model):
    rep = evaluate(model, ParityTask(n=4), _methods(), seeds=[0], progress=False)
    rows = {r["method"]: r for r in rep.table()}
    one, smc = rows["one sample"], rows["SR-SMC N=4"]
    assert one["nfe_per_item"] == 4 and one["particle_forwards_per_item"] == 4  # 4 steps, 1 particle
    assert smc["particle_forwards_per_item"] == 16  # 4 steps x 4 particles
    m = one["even"]
    assert m["lo"] <= m["mean"] <= m["hi"]
    md = rep.to_markdown()
    assert "| one sample |" in md and "| SR-SMC N=4 |" in md and "particle-fwd/item" in md


def test_cache_resumes_and_gives_the_same_report(model, tmp_path):
    t1 = ParityTask()
    r1 = evaluate(model, t1, _methods(), seeds=[0, 1], cache_dir=tmp_path, progress=False)
    assert t1.scored == 2 * 2 * 6
    t2 = ParityTask()
    r2 = evaluate(model, t2, _methods(), seeds=[0, 1], cache_dir=tmp_path, progress=False)
    assert t2.scored == 0  # everything came from the cache
    strip = lambda rep: [{k: v for k, v in r.items() if k != "wall_s_per_item"} for r in rep.table()]  # noqa: E731
    assert strip(r1) == strip(r2)
    # a new seed computes only what is missing
    t3 = ParityTask()
    evaluate(model, t3, _methods(), seeds=[0, 1, 2], cache_dir=tmp_path, progress=False)
    assert t3.scored == 2 * 6
    r1.save(tmp_path / "rep.json")
    assert json.loads((tmp_path / "rep.json").read_text())["n_items"] == 6


def test_cache_key_changes_with_the_sampler_settings(model, tmp_path):
    # the key hashes the sampler's settings: a changed setting under the same label is recomputed, not read back
    def method(n, tau=1.0):
        return Method("same label", recipes.llada(steps=4, gen_length=4, block_length=4, temperature=tau, n_particles=n))

    keys = {method(2).cache_key(), method(4).cache_key(), method(2, 0.5).cache_key()}
    assert len(keys) == 3 and method(2).cache_key() == method(2).cache_key()
    assert "n_particles=4" in repr(method(4).sampler) and "temperature=0.5" in repr(method(2, 0.5).sampler)
    # a reward's normalisation is part of the key (components print the rewards they hold)
    from smcdiff.rewards import CallableReward, NormalizedReward

    def rws(mu):
        return Method("rws", recipes.rws(NormalizedReward(CallableReward(lambda p, t: 0.0), mu, 1.0), gen_length=4))

    assert rws(0.0).cache_key() != rws(0.5).cache_key()
    t1, t2 = ParityTask(), ParityTask()
    evaluate(model, t1, [method(2)], seeds=[0], cache_dir=tmp_path, progress=False)
    evaluate(model, t2, [method(4)], seeds=[0], cache_dir=tmp_path, progress=False)
    assert t1.scored == t2.scored == 6


def test_select_rules(model):
    kernel = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(steps=4), block_length=None)
    res = SMC(kernel, [TrajectoryConfidence()], n_particles=4).run(model, [[0], [1]], gen_length=4, seed=0)
    assert select_outputs(res, "first").tolist() == [0, 0]
    assert torch.equal(select_outputs(res, "weight"), res.weights.log_w.argmax(1))
    assert torch.equal(select_outputs(res, "trajectory_confidence"), res.best("trajectory_confidence")[1])
    assert select_outputs(res, lambda r: [3, 2]).tolist() == [3, 2]
    with pytest.raises(ConfigError, match="select must be"):
        select_outputs(res, "best")
    with pytest.raises(ConfigError, match="2 prompts"):
        select_outputs(res, lambda r: [0])


def test_bad_arguments(model):
    with pytest.raises(ConfigError, match="labels must be distinct"):
        evaluate(model, ParityTask(), _methods() * 2, progress=False)
    with pytest.raises(ConfigError, match="seeds must be"):
        evaluate(model, ParityTask(), _methods(), seeds=[1.5], progress=False)
    with pytest.raises(ConfigError, match="task must have"):
        evaluate(model, object(), _methods(), progress=False)
    with pytest.raises(ConfigError, match="batch_size"):
        evaluate(model, ParityTask(), _methods(), batch_size=0, progress=False)


def test_recipes_work_as_methods(model):
    rep = evaluate(model, ParityTask(n=3), [Method("llada", recipes.llada(steps=4, gen_length=4, block_length=4),
                                                   select="first")], progress=False)
    assert len(rep.runs["llada"][0]["metrics"]["even"]) == 3
