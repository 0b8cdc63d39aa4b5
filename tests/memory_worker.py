"""Print, as JSON, the measured peak and the engine's estimate for a few tiny-model runs (see test_memory.py).

Run in a fresh process with MALLOC_MMAP_THRESHOLD_ set so that freed tensors go back to the system at once and the
process's peak resident size follows the live tensors.
"""

import json

import torch

from smcdiff import recipes
from smcdiff.models import LLaDADenoiser
from smcdiff.models.tiny import tiny_llada

CASES = [  # dtype, cfg_scale, temperature, B, N, gen, block
    ("float32", 0.0, 1.0, 2, 4, 128, 32),
    ("float32", 0.0, 0.0, 1, 8, 64, 64),
    ("bfloat16", 0.0, 1.0, 2, 4, 128, 32),
    ("float32", 1.5, 1.0, 2, 2, 64, 16),
    ("float64", 0.0, 1.0, 1, 4, 64, 32),
]


def main():
    torch.set_num_threads(1)
    out = []
    for dt, cfg, temp, b, n, gen, blk in CASES:
        net = tiny_llada(vocab_size=32000, hidden_size=32, num_layers=1, num_heads=4, seed=1).to(getattr(torch, dt))
        model = LLaDADenoiser.wrap(net)
        smc = recipes.llada(steps=8, gen_length=gen, block_length=blk, temperature=temp, n_particles=n, cfg_scale=cfg)
        with torch.no_grad():
            smc.run(model, [[5, 6, 7]] * b, seed=0)  # warm up
            res = smc.run(model, [[5, 6, 7]] * b, seed=0)
        out.append(dict(case=[dt, cfg, temp, b, n, gen, blk], **res.timings))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
