"""Memory: the engine's estimate (logits of one forward, block copies, particle state) against the measured peak on
tiny models with a large vocabulary (within 25 %), the refusal before allocating, and the timings of a result."""

import json
import os
import subprocess
import sys

import pytest
import torch

from smcdiff import ConfigError, ToyDenoiser, memory, recipes

HERE = os.path.dirname(__file__)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc to measure peak RSS")
def test_estimate_within_25_percent_of_the_measured_peak():
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, os.path.join(HERE, "memory_worker.py")], env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = json.loads(p.stdout.strip().splitlines()[-1])
    assert len(rows) == 5
    for r in rows:
        peak, est = r["peak_memory_bytes"], r["memory_estimate_bytes"]
        assert peak and peak > 20e6, r
        assert abs(est - peak) <= 0.25 * peak, f"{r['case']}: estimate {est / 1e6:.1f} MB, peak {peak / 1e6:.1f} MB"


def test_estimate_arithmetic():
    e = memory.estimate(rows=8, length=100, block_length=10, vocab=1000, dtype=torch.bfloat16)
    assert e.logits == 8 * 100 * 1000 * 2 and e.working == 2 * 8 * 10 * 1000 * 4 and e.state == 8 * 100 * 24
    assert e.total == e.state + e.logits + e.working
    g = memory.estimate(rows=8, length=100, block_length=10, vocab=1000, dtype=torch.float32, cfg=True)
    assert g.logits == 4 * 8 * 100 * 1000 * 4 and g.total == g.state + g.logits
    assert "GiB" in e.describe()


def test_result_timings_and_refusal():
    model = ToyDenoiser.random(4, 6, seed=0)
    smc = recipes.llada(steps=4, gen_length=4, block_length=2, temperature=1.0, n_particles=3)
    res = smc.run(model, [[0, 1], [2, 3]], seed=0)
    t = res.timings
    assert t["wall_s"] > 0 and t["memory_estimate_bytes"] == smc.memory_estimate(model, 2, 6, 2).total
    assert set(t) >= {"peak_memory_bytes", "peak_memory_source"}
    assert memory.logits_dtype(model) in (torch.float64, torch.float32)
    big = recipes.llada(steps=4, gen_length=4, block_length=2, n_particles=10**13)
    with pytest.raises(ConfigError, match="GiB"):
        big.run(model, [[0, 1]], seed=0)
