"""Data parallelism: a 2-process gloo run under torchrun (started here, bounded in time) gathers results equal to
one process bit for bit (llada, sr_smc, rws; five prompts of different lengths, so uneven shards and re-padding);
shard arithmetic and result merging without a process group."""

import os
import subprocess
import sys

import pytest
import torch

import dist_worker as W
from smcdiff import distributed, recipes
from smcdiff.errors import ConfigError

HERE = os.path.dirname(__file__)


def _equal(a, b, where):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _equal(a[k], b[k], f"{where}.{k}")
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def single():
    m = W.model()
    with torch.no_grad():
        return {name: W.result_fields(make().run(m, W.PROMPTS, seed=seed)) for name, (make, seed) in W.cases().items()}


@pytest.mark.parametrize("nproc", [2])
def test_torchrun_gloo_equals_one_process(tmp_path, single, nproc):
    out = tmp_path / "gathered.pt"
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()), PYTHONPATH=os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           os.path.join(HERE, "dist_worker.py"), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = torch.load(out, weights_only=False)
    assert got["world_size"] == nproc
    for name in W.cases():
        _equal(got[name], single[name], name)


def test_without_a_process_group_run_is_smc_run(single):
    m = W.model()
    make, seed = W.cases()["sr_smc"]
    with torch.no_grad():
        _equal(W.result_fields(distributed.run(make(), m, W.PROMPTS, seed=seed)), single["sr_smc"], "sr_smc")
    assert distributed.world() == (0, 1)


def test_shards_cover_the_prompts_in_order():
    for n in range(0, 12):
        for size in range(1, 5):
            bounds = [distributed.shard_bounds(n, r, size) for r in range(size)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            sizes = [hi - lo for lo, hi in bounds]
            assert max(sizes) - min(sizes) <= 1


def test_concat_of_separate_runs_equals_one_batch(single):
    """Merging per-shard results (different prompt lengths and step counts) is what a single batch gives."""
    m = W.model()
    make, seed = W.cases()["llada"]
    from smcdiff import row_seeds
    from smcdiff.engine import prepare_prompts

    seeds = row_seeds(seed, len(W.PROMPTS))
    toks, am = prepare_prompts(W.PROMPTS, None, m.pad_id, m.mask_id, "cpu")
    with torch.no_grad():  # shards of the padded batch keep its width (a tensor with its attention mask)
        parts = [make().run(m, toks[i:j], seed=seeds[i:j], attention_mask=am[i:j]) for i, j in [(0, 1), (1, 3), (3, 5)]]
    assert parts[0].sequences.shape == (1, 2, 13)
    merged = distributed.concat_results(parts, pad_id=m.pad_id)
    _equal(W.result_fields(merged), single["llada"], "llada")
    with torch.no_grad():  # unpadded lists: each shard its own width; tokens agree, padding columns are re-added
        parts = [make().run(m, W.PROMPTS[i:j], seed=seeds[i:j]) for i, j in [(0, 1), (1, 3), (3, 5)]]
    merged = distributed.concat_results(parts, pad_id=m.pad_id)
    assert torch.equal(merged.sequences, single["llada"]["sequences"])
    assert torch.equal(merged.commit_step, single["llada"]["commit_step"])


def test_merge_errors():
    m = W.model()
    with torch.no_grad():
        a = recipes.llada(steps=4, gen_length=4, block_length=4).run(m, [[5]], seed=0)
        b = recipes.llada(steps=4, gen_length=8, block_length=8).run(m, [[5]], seed=0)
    with pytest.raises(ConfigError, match="different lengths"):
        distributed.concat_results([a, b], pad_id=0)
    with pytest.raises(ConfigError, match="at least one"):
        distributed.concat_results([])


def test_cli_generate_under_torchrun_writes_the_single_process_output(tmp_path):
    """``torchrun -m smcdiff generate``: three prompts over two ranks; rank 0 writes exactly the lines of a
    single-process run (the toy model is exact per row)."""
    args = ["generate", "--model", "toy", "--recipe", "sr_smc", "--base",
            "{recipe: llada, options: {steps: 4, gen_length: 4, block_length: 2, temperature: 1.0}}",
            "--n-particles", "3", "--when", "every_step", "--prompt-ids", "1 0", "--prompt-ids", "2 3",
            "--prompt-ids", "3 1", "--seed", "5", "-q"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    p = subprocess.run([sys.executable, "-m", "smcdiff", *args, "--out", str(one)], env=env, capture_output=True,
                       text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                        "smcdiff", *args, "--out", str(two)], env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    assert one.read_text() == two.read_text() and len(one.read_text().splitlines()) == 3
