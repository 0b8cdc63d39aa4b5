"""Saved runs: an exact round trip without pickle, replayable, and clear errors."""

import dataclasses
import json

import pytest
import torch

from smcdiff import (SMC, AdaptiveResampling, Categorical, ConfigError, EvenSplit, TopK, ToyDenoiser,
                     TrajectoryConfidence, UnmaskingKernel)
from smcdiff.io import load_result, result_to_dict, save_result


def _same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    return a == b


@pytest.fixture(scope="module")
def run():
    model = ToyDenoiser.random(vocab_size=3, length=6, seed=2)
    kernel = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(steps=5), block_length=None)
    smc = SMC(kernel, [TrajectoryConfidence()], n_particles=4,
              resampling=AdaptiveResampling(kappa=0.99, when="every_step"))
    return model, smc, smc.run(model, [[0], [2]], gen_length=5, seed=[3, 4])


def test_round_trip_is_exact(run, tmp_path):
    _, _, res = run
    p = save_result(res, tmp_path / "run", meta={"seeds": [3, 4], "recipe": "toy sr-smc"})
    assert p.name == "run.safetensors" and p.stat().st_size > 0
    back, meta = load_result(p)
    assert meta == {"seeds": [3, 4], "recipe": "toy sr-smc"}
    for f in dataclasses.fields(res):
        a, b = getattr(res, f.name), getattr(back, f.name)
        if f.name == "weights":
            assert torch.equal(a.log_w, b.log_w)
        elif f.name == "genealogy":
            assert torch.equal(a.ancestors, b.ancestors)
        elif f.name == "extras":
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        elif f.name == "records":
            assert len(a) == len(b) > 0
            for ra, rb in zip(a, b):
                for g in dataclasses.fields(ra):
                    assert _same(getattr(ra, g.name), getattr(rb, g.name)), g.name
        else:
            assert _same(a, b), f.name
    assert torch.equal(res.log_Z, back.log_Z) and torch.equal(res.ess_trace, back.ess_trace)
    assert bool(res.resampled.any())  # the round trip covered resampling records


def test_saved_seeds_replay_the_run(run, tmp_path):
    model, smc, res = run
    save_result(res, tmp_path / "r.safetensors", meta={"seeds": [3, 4]})
    back, meta = load_result(tmp_path / "r.safetensors")
    again = smc.run(model, [[0], [2]], gen_length=5, seed=meta["seeds"])
    assert torch.equal(again.sequences, back.sequences) and torch.equal(again.weights.log_w, back.weights.log_w)


def test_no_pickle_and_clear_errors(run, tmp_path):
    _, _, res = run
    p = save_result(res, tmp_path / "x")
    assert b"pickle" not in p.read_bytes()[:200] and p.read_bytes()[8:9] == b"{"  # a JSON safetensors header
    with pytest.raises(ConfigError, match="meta must be JSON-serialisable"):
        save_result(res, tmp_path / "y", meta={"f": object()})
    with pytest.raises(ConfigError, match="result must be an SMCResult"):
        save_result({"a": 1}, tmp_path / "z")
    with pytest.raises(FileNotFoundError, match="no saved result"):
        load_result(tmp_path / "missing")
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ConfigError, match="is not a saved smcdiff result"):
        load_result(tmp_path / "other.safetensors")


def test_result_to_dict_is_json(run):
    _, _, res = run
    d = result_to_dict(res, decode=lambda ids: " ".join(map(str, ids)))
    s = json.dumps(d)
    assert json.loads(s)["texts"][1][0] == " ".join(map(str, res.filled(1, 0)))
    assert len(d["normalized_weights"]) == 2 and len(d["log_Z"]) == 2
