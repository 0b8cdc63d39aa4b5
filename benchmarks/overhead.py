"""Sampler overhead = wall time / time in model forwards - 1, each measured in one run.

Setting (the project's CPU target): a LLaDA-architecture model with d 256, 4 layers,
vocabulary 32k; prompt 32, gen 128, block 32, 128 steps, temperature 1. For
B x N in {1x1, 1x4, 8x4} it times

* smcdiff: ``recipes.llada`` for N = 1 and SR-SMC (trajectory confidence,
  ESS < N/2 resampling at block ends) for N > 1, B prompts x N particles as one batch;
* naive: the released code's way (float64 Gumbel noise and softmax over every
  position and the whole vocabulary, a Python loop over rows), see naive.py; for
  N > 1 it runs the released SR-SMC loop once per prompt (it handles B = 1 only).

Usage: python benchmarks/overhead.py [--device cuda] [--configs 1x1,1x4,8x4:32] [--shape llada8b]
Prints a table and writes benchmarks/results/overhead_<device>_<shape>.json. A
configuration ``BxN:K`` (or ``--max-steps K``) stops after K steps: the ratio is
per step, so this only shortens the run; the table says how many steps ran.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import time

import torch

from common import Timed, bench_model
from naive import llada_naive, sr_smc_naive
from smcdiff import AdaptiveResampling, TrajectoryConfidence, recipes


def ours(model, b, n, args):
    smc = recipes.llada(
        steps=args.steps, gen_length=args.gen, block_length=args.block, temperature=1.0, n_particles=n,
        potentials=[TrajectoryConfidence()] if n > 1 else (),
        resampling=AdaptiveResampling(0.5, when="block_end") if n > 1 else None,
    )
    prompts = torch.randint(0, model.vocab_size - 200, (b, args.prompt), generator=torch.Generator().manual_seed(b))
    st = smc.init(model, prompts.to(model.device), seed=0)
    model.reset()
    t = time.perf_counter()
    k = 0
    while not st.done and (args.max_steps is None or k < args.max_steps):
        st, _ = smc.step(model, st)
        k += 1
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t
    return dict(wall=wall, forward=model.seconds, overhead=wall / model.seconds - 1, steps=k)


def naive(model, b, n, args):
    prompts = torch.randint(0, model.vocab_size - 200, (b, args.prompt), generator=torch.Generator().manual_seed(b))
    fn = lambda x: model.logits(x.to(model.device))  # noqa: E731
    model.reset()
    t = time.perf_counter()
    k = 0
    if n == 1:
        _, k = llada_naive(fn, prompts, args.steps, args.gen, args.block, 1.0, model.mask_id, args.max_steps)
    else:
        for i in range(b):
            _, k = sr_smc_naive(fn, prompts[i : i + 1], n, args.steps, args.gen, args.block, 1.0, model.mask_id, args.max_steps)
    wall = time.perf_counter() - t
    return dict(wall=wall, forward=model.seconds, overhead=wall / model.seconds - 1, steps=k)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--configs", default="1x1,1x4,8x4:32",
                    help="comma-separated BxN[:K]; K stops that configuration after K steps")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--shape", default="tiny", choices=["tiny", "llada8b"])
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(2)
    dtype = getattr(torch, args.dtype)
    if args.shape == "tiny":
        inner = bench_model(device=args.device, dtype=dtype)
        shape = "d 256, 4 layers, vocab 32000"
    else:
        inner = bench_model(d=4096, layers=32, vocab=126464, heads=32, device=args.device, dtype=dtype)
        shape = "LLaDA-8B shape: d 4096, 32 layers, vocab 126464"
    model = Timed(inner)
    # warm up
    ours(model, 1, 1, argparse.Namespace(**{**vars(args), "max_steps": 2}))
    rows = []
    print(f"{shape}; prompt {args.prompt}, gen {args.gen}, block {args.block}, {args.steps} steps, T = 1, {args.device}")
    print(f"{'B x N':>6} {'impl':>8} {'steps':>6} {'wall s':>9} {'forward s':>10} {'overhead':>9}")
    for cfg in args.configs.split(","):
        cfg, _, k = cfg.partition(":")
        b, n = map(int, cfg.split("x"))
        run_args = argparse.Namespace(**{**vars(args), "max_steps": int(k) if k else args.max_steps})
        impls = [("smcdiff", ours)] + ([] if args.skip_naive else [("naive", naive)])
        for name, fn in impls:
            r = fn(model, b, n, run_args)
            rows.append(dict(B=b, N=n, impl=name, **r))
            print(f"{cfg:>6} {name:>8} {r['steps']:>6} {r['wall']:>9.2f} {r['forward']:>10.2f} {r['overhead']:>9.3f}")
    out = pathlib.Path(__file__).parent / "results" / f"overhead_{args.device}_{args.shape}.json"
    out.parent.mkdir(exist_ok=True)
    meta = dict(shape=shape, device=args.device, dtype=args.dtype, torch=torch.__version__, machine=platform.machine(),
                threads=torch.get_num_threads(), settings=dict(prompt=args.prompt, gen=args.gen, block=args.block, steps=args.steps))
    if args.device == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(0)
    out.write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
