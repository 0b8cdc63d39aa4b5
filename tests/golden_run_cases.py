"""Fixed-seed outputs of ``SMC.run`` (prompt + suffix) for every recipe, stored before infilling landed.

``python tests/golden_run_cases.py --write`` regenerates ``tests/data/golden_run.safetensors``; the test
``test_golden_run.py`` checks that today's code reproduces the stored tensors bit for bit. The file was
written by the code of commit 2dcb83d (before ``SMC.infill``); rewriting it is only legitimate for a
deliberate, documented change of sampling behaviour.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

import torch

from smcdiff import AlwaysResample, SMC, ToyDenoiser, TrajectoryConfidence, recipes
from smcdiff.models import LLaDADenoiser
from smcdiff.models.tiny import tiny_llada
from smcdiff.rewards import CallableReward

PATH = os.path.join(os.path.dirname(__file__), "data", "golden_run.safetensors")


def _toy():
    return ToyDenoiser.random(4, 8, seed=5)


_NET = {}


def _llada():
    if "m" not in _NET:
        net = tiny_llada(vocab_size=48, hidden_size=32, num_layers=2, num_heads=4, seed=3)
        with torch.no_grad():
            net.lm_head.weight.mul_(8.0)
        _NET["m"] = LLaDADenoiser.wrap(net)
    return _NET["m"]


def _reward():
    return CallableReward(lambda prompt, text: 0.05 * sum(int(t) % 7 for t in text))


TOY_PROMPTS = torch.tensor([[0, 1], [3, 2], [1, 1]])
LLADA_PROMPTS = [[5, 6, 7, 8], [9, 10], [11, 12, 13, 14]]  # left-padded with pad_id 0

# name -> (model factory, prompts, sampler factory)
CASES: dict[str, tuple[Callable, object, Callable[[], SMC]]] = {
    "toy/llada_t0": (_toy, TOY_PROMPTS, lambda: recipes.llada(steps=6, gen_length=6, block_length=3, temperature=0.0)),
    "toy/llada_t1_n3": (_toy, TOY_PROMPTS, lambda: recipes.llada(steps=6, gen_length=6, block_length=2, temperature=1.0, n_particles=3)),
    "toy/llada_random": (_toy, TOY_PROMPTS, lambda: recipes.llada(steps=3, gen_length=6, block_length=6, temperature=1.0, remasking="random", n_particles=2)),
    "toy/dream_origin": (_toy, TOY_PROMPTS, lambda: recipes.dream(steps=4, gen_length=6, temperature=1.0, n_particles=2)),
    "toy/dream_margin": (_toy, TOY_PROMPTS, lambda: recipes.dream(steps=4, gen_length=6, temperature=0.7, alg="topk_margin", n_particles=2)),
    "toy/dream_entropy_pl": (_toy, TOY_PROMPTS, lambda: recipes.dream(steps=4, gen_length=6, temperature=0.7, alg="entropy", alg_temp=0.5, n_particles=2)),
    "toy/fast_dllm": (_toy, TOY_PROMPTS, lambda: recipes.fast_dllm(gen_length=6, block_length=3, temperature=1.0, threshold=0.5, n_particles=2)),
    "toy/fast_dllm_factor": (_toy, TOY_PROMPTS, lambda: recipes.fast_dllm(gen_length=6, block_length=2, temperature=1.0, threshold=None, factor=1.0, n_particles=2)),
    "toy/mdlm": (_toy, TOY_PROMPTS, lambda: recipes.mdlm(steps=4, gen_length=6, eps=0.2, n_particles=2)),
    "toy/mdlm_blocks": (_toy, TOY_PROMPTS, lambda: recipes.mdlm(steps=3, gen_length=6, block_length=3, schedule="cosine", n_particles=2)),
    "toy/mdlm_fh": (_toy, TOY_PROMPTS, lambda: recipes.mdlm(gen_length=6, block_length=3, first_hitting=True, n_particles=2)),
    "toy/eb": (_toy, TOY_PROMPTS, lambda: recipes.eb_sampler(gamma=0.5, gen_length=6, block_length=3, temperature=1.0, n_particles=2)),
    "toy/sr_smc": (_toy, TOY_PROMPTS, lambda: recipes.sr_smc(recipes.fast_dllm(gen_length=6, block_length=3, temperature=1.0, threshold=0.6), n_particles=4)),
    "toy/sr_smc_llada_every": (_toy, TOY_PROMPTS, lambda: recipes.sr_smc(recipes.llada(steps=6, gen_length=6, block_length=3, temperature=1.0), n_particles=4, when="every_step", kappa=1.0)),
    "toy/rws": (_toy, TOY_PROMPTS, lambda: recipes.rws(_reward(), gen_length=6, steps=3, temperature=1.0, n_particles=2)),
    "toy/rws_pl": (_toy, TOY_PROMPTS, lambda: recipes.rws(_reward(), gen_length=6, steps=3, temperature=1.0, selection="plackett_luce", n_particles=3)),
    "toy/tc_always": (_toy, TOY_PROMPTS, lambda: SMC(recipes.llada(steps=6, gen_length=6, block_length=3, temperature=1.0).proposal, [TrajectoryConfidence()], n_particles=3, resampling=AlwaysResample(), gen_length=6)),
    "llada/llada_t0": (_llada, LLADA_PROMPTS, lambda: recipes.llada(steps=8, gen_length=8, block_length=4, temperature=0.0)),
    "llada/llada_t1": (_llada, LLADA_PROMPTS, lambda: recipes.llada(steps=8, gen_length=8, block_length=4, temperature=1.0, n_particles=2)),
    "llada/llada_cfg": (_llada, LLADA_PROMPTS, lambda: recipes.llada(steps=4, gen_length=8, block_length=8, temperature=0.5, cfg_scale=1.0, n_particles=2)),
    "llada/dream_alg": (_llada, LLADA_PROMPTS, lambda: recipes.dream(steps=5, gen_length=8, temperature=0.8, alg="maskgit_plus", n_particles=2)),
    "llada/fast_dllm": (_llada, LLADA_PROMPTS, lambda: recipes.fast_dllm(gen_length=8, block_length=4, temperature=1.0, threshold=0.3, n_particles=2)),
    "llada/fast_dllm_cache": (_llada, LLADA_PROMPTS, lambda: recipes.fast_dllm(gen_length=8, block_length=4, temperature=1.0, threshold=0.3, cache="prefix", n_particles=2)),
    "llada/mdlm": (_llada, LLADA_PROMPTS, lambda: recipes.mdlm(steps=4, gen_length=8, eps=0.2, n_particles=2)),
    "llada/eb": (_llada, LLADA_PROMPTS, lambda: recipes.eb_sampler(gamma=1.0, gen_length=8, block_length=4, temperature=1.0, n_particles=2)),
    "llada/sr_smc": (_llada, LLADA_PROMPTS, lambda: recipes.sr_smc(recipes.fast_dllm(gen_length=8, block_length=4, temperature=1.0, threshold=0.3), n_particles=4, when="every_step")),
    "llada/rws": (_llada, LLADA_PROMPTS, lambda: recipes.rws(_reward(), gen_length=8, steps=4, temperature=1.0, n_particles=2)),
}

FIELDS = ("sequences", "log_w", "log_Z", "commit_step", "committed_logp", "nfe", "ancestors")


def compute(name: str) -> dict[str, torch.Tensor]:
    model_fn, prompts, make = CASES[name]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # float reductions (the toy's joint sums, matmuls) depend on the thread count
    try:
        with torch.no_grad():
            res = make().run(model_fn(), prompts, seed=17)
    finally:
        torch.set_num_threads(threads)
    return {
        "sequences": res.sequences.clone(),
        "log_w": res.weights.log_w.detach().clone().to(torch.float64),
        "log_Z": res.log_Z.detach().clone().to(torch.float64),
        "commit_step": res.commit_step.clone(),
        "committed_logp": res.committed_logp.clone().to(torch.float64),
        "nfe": res.nfe.clone(),
        "ancestors": res.genealogy.ancestors.clone(),
    }


def write(path: str = PATH) -> None:
    from safetensors.torch import save_file

    out = {}
    for name in CASES:
        for k, v in compute(name).items():
            out[f"{name}::{k}"] = v.contiguous()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file(out, path)
    print(f"wrote {len(out)} tensors for {len(CASES)} cases to {path}")


if __name__ == "__main__":
    if "--write" not in sys.argv:
        sys.exit("usage: python tests/golden_run_cases.py --write")
    write()
