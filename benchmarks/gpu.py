"""The GPU benchmark: sampler overhead, wall time per generated token and peak memory at LLaDA-8B's shape.

On a CUDA device: a LLaDA-8B-shaped model (d 4096, 32 layers, 32 heads, MLP 12288, vocabulary 126,464) with
random weights in bfloat16, prompt 32, generation 256, blocks of 32. Without a GPU the same script runs on the CPU
at a small shape (d 256, 4 layers, vocabulary 32,000, float32, generation 64) and says so in its output.

Configurations (B prompts x N particles), each timed in one run:

* ``llada``: the LLaDA baseline (``recipes.llada``, one token per step, temperature 0), B in {1, 8};
* ``fast_dllm``: Fast-dLLM's threshold rule (0.9) without cache, with the prefix cache and with the dual cache;
* ``sr_smc``: SR-SMC on LLaDA's kernel at temperature 1 (trajectory confidence, ESS < N/2 at block ends),
  N in {1, 2, 4, 8}, B in {1, 8}.

Measured per configuration: steps run, wall time, time inside the model's forward passes (each call timed with a
device synchronisation), overhead = wall / forward - 1, wall time per generated token (wall / (B * tokens generated
in the steps run)), and peak memory above the model's weights (CUDA: allocated tensors; CPU: the process's peak resident size). A configuration may be stopped after
``--max-steps`` steps (``:K`` in ``--configs``): the ratios are per step, so that only shortens the run; the table
says how many steps ran. With random weights Fast-dLLM's threshold is rarely reached, so it commits about one token
per step like the baseline: its rows measure the cost of the caches, not their speed-up on a trained model.

Usage: python benchmarks/gpu.py [--device cuda|cpu] [--out-dir benchmarks/results] [--markdown FILE]
Writes ``benchmarks/results/gpu_<device>.json`` and prints a markdown table (also written to ``--markdown``).
Targets (GPU, LLaDA-8B shape): overhead <= 0.03; SR-SMC N = 4 wall <= 1.6 x N = 1 at B = 1.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time

import torch

from common import Timed, bench_model
from smcdiff import memory, recipes

GPU_SHAPE = dict(d=4096, layers=32, vocab=126464, heads=32)
CPU_SHAPE = dict(d=256, layers=4, vocab=32000, heads=4)


def samplers(gen: int, block: int):
    """name -> (factory(N), temperature)."""

    def sr(n):  # N = 1 runs the same composition (potential and checks), so N = 4 / N = 1 is like for like
        base = recipes.llada(steps=gen, gen_length=gen, block_length=block, temperature=1.0)
        return recipes.sr_smc(base, n_particles=n)

    out = {
        "llada": lambda n: recipes.llada(steps=gen, gen_length=gen, block_length=block, temperature=0.0),
        "fast_dllm": lambda n: recipes.fast_dllm(gen_length=gen, block_length=block, threshold=0.9),
        "fast_dllm+prefix": lambda n: recipes.fast_dllm(gen_length=gen, block_length=block, threshold=0.9, cache="prefix"),
        "fast_dllm+dual": lambda n: recipes.fast_dllm(gen_length=gen, block_length=block, threshold=0.9, cache="dual"),
        "sr_smc": sr,
    }
    return out


def default_configs(device: str) -> list[tuple[str, int, int, int | None]]:
    """(sampler, B, N, step cap)."""
    cap_big = 48 if device == "cuda" else 16
    rows = [("llada", 1, 1, None), ("llada", 8, 1, None)]
    for c in ("fast_dllm", "fast_dllm+prefix", "fast_dllm+dual"):
        rows += [(c, 1, 1, None), (c, 8, 1, cap_big)]
    for n in (1, 2, 4, 8):
        rows.append(("sr_smc", 1, n, None if device == "cuda" else 32))
    for n in (1, 2, 4, 8):
        rows.append(("sr_smc", 8, n, cap_big))
    return rows


def run_one(model: Timed, smc, b: int, prompt_len: int, cap: int | None, device: torch.device) -> dict:
    vocab_hi = model.vocab_size - 200
    prompts = torch.randint(0, vocab_hi, (b, prompt_len), generator=torch.Generator().manual_seed(b)).to(device)
    st = smc.init(model, prompts, seed=0)
    model.reset()
    gen0 = int((st.particles.tokens == model.mask_id).sum())
    with memory.peak_memory(device) as peak:  # above what is allocated now (the weights, the initial state)
        t = time.perf_counter()
        k = 0
        while not st.done and (cap is None or k < cap):
            st, _ = smc.step(model, st)
            k += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - t
    n = st.particles.n_particles
    generated = (gen0 - int((st.particles.tokens == model.mask_id).sum())) / n  # tokens of each prompt's output
    peak_b = peak["peak_memory_bytes"]
    return dict(steps=k, finished=bool(st.done), wall_s=wall, forward_s=model.seconds, forward_calls=model.calls,
                overhead=wall / model.seconds - 1 if model.seconds > 0 else None,
                wall_per_token_ms=1000 * wall / max(generated, 1), tokens=generated,
                peak_memory_gib=None if peak_b is None else peak_b / 2**30, peak_memory_source=peak["peak_memory_source"])


def table(meta: dict, rows: list[dict]) -> str:
    lines = [
        f"{meta['title']}",
        "",
        "| sampler | B | N | steps | wall s | forward s | overhead | ms / token | peak GiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        peak = f"{r['peak_memory_gib']:.2f}" if r.get("peak_memory_gib") is not None else "n/a"
        ov = f"{r['overhead']:.3f}" if r["overhead"] is not None else "n/a"
        lines.append(f"| {r['sampler']} | {r['B']} | {r['N']} | {r['steps']}{'' if r['finished'] else ' (capped)'} | "
                     f"{r['wall_s']:.2f} | {r['forward_s']:.2f} | {ov} | {r['wall_per_token_ms']:.2f} | {peak} |")
    sr = {(r["B"], r["N"]): r for r in rows if r["sampler"] == "sr_smc"}
    notes = []
    if (1, 1) in sr and (1, 4) in sr:
        a, b = sr[(1, 1)], sr[(1, 4)]
        ratio = (b["wall_s"] / b["steps"]) / (a["wall_s"] / a["steps"])
        notes.append(f"SR-SMC N = 4 / N = 1 wall per step at B = 1: {ratio:.2f} (target <= 1.6 on a GPU).")
    base = [r for r in rows if r["sampler"] == "llada" and r["overhead"] is not None]
    if base:
        notes.append("LLaDA baseline overhead: " + ", ".join(f"B = {r['B']}: {r['overhead']:.3f}" for r in base)
                     + " (target <= 0.03 on a GPU at LLaDA-8B shape).")
    return "\n".join(lines + [""] + notes) + "\n"


def _reexec_for_cpu_memory() -> None:
    """On the CPU the peak is read from the process's resident size; glibc keeps freed blocks below its
    (adaptive) mmap threshold, so fix the threshold low before the process starts, or the peak reads ~0."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
        os.execve(sys.executable, [sys.executable] + sys.argv, env)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--configs", default=None, help="comma-separated sampler:BxN[:K], e.g. llada:1x1,sr_smc:1x4:32")
    ap.add_argument("--gen", type=int, default=None)
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--out-dir", default=str(pathlib.Path(__file__).parent / "results"))
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    if not gpu:
        _reexec_for_cpu_memory()
    shape = GPU_SHAPE if gpu else CPU_SHAPE
    dtype = torch.bfloat16 if gpu else torch.float32
    gen = args.gen or (256 if gpu else 64)
    if not gpu:
        torch.set_num_threads(max(1, torch.get_num_threads()))
    t_build = time.perf_counter()
    model = Timed(bench_model(device=device, dtype=dtype, **shape))
    build_s = time.perf_counter() - t_build
    name = torch.cuda.get_device_name(device) if gpu else f"no GPU available: CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    title = (f"{'LLaDA-8B shape' if gpu else 'Small CPU shape'} (d {shape['d']}, {shape['layers']} layers, vocab "
             f"{shape['vocab']}, {str(dtype).replace('torch.', '')}), random weights; prompt {args.prompt}, gen {gen}, "
             f"block {args.block}; device: {name}")
    print(title)
    makers = samplers(gen, args.block)
    if args.configs:
        configs = []
        for c in args.configs.split(","):
            parts = c.split(":")
            b, n = map(int, parts[1].split("x"))
            configs.append((parts[0], b, n, int(parts[2]) if len(parts) > 2 else None))
    else:
        configs = default_configs(device.type)
    # warm-up (kernels, allocator)
    run_one(model, makers["llada"](1), 1, args.prompt, 2, device)
    rows = []
    for sampler, b, n, cap in configs:
        with torch.no_grad():
            r = run_one(model, makers[sampler](n), b, args.prompt, cap, device)
        r.update(sampler=sampler, B=b, N=n)
        rows.append(r)
        ov = f"{r['overhead']:.3f}" if r["overhead"] is not None else "n/a"
        print(f"{sampler:>17} B={b} N={n} steps={r['steps']:>4} wall={r['wall_s']:.2f}s forward={r['forward_s']:.2f}s "
              f"overhead={ov} ms/token={r['wall_per_token_ms']:.2f}"
              + (f" peak={r['peak_memory_gib']:.2f}GiB" if "peak_memory_gib" in r else ""), flush=True)
    meta = dict(title=title, device=str(device), gpu=name if gpu else None, gpu_available=gpu, shape=shape,
                dtype=str(dtype), gen=gen, block=args.block, prompt=args.prompt, torch=torch.__version__,
                model_build_s=build_s)
    out = pathlib.Path(args.out_dir) / f"gpu_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
    md = table(meta, rows)
    print(md)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(md)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
