"""SR-SMC and verifier SMC against one sample on the shipped Sudoku model, N in {1, 2, 4, 8}.

``python benchmarks/sudoku_smc_table.py [--n 100] [--splits test_easy test_hard]`` runs every method
through the evaluation harness (first ``n`` puzzles of each split, seed 0) and writes
``results/sudoku_smc.json`` and ``docs/results/sudoku_smc.md``: solved with 95 % bootstrap intervals,
NFE and particle-forwards per puzzle. The kernel is margin order, one cell per step, tokens drawn at
T = 1 (so particles differ); greedy margin decoding is the deterministic reference.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from smcdiff import SMC
from smcdiff.eval import Method, evaluate
from smcdiff.models import load
from smcdiff.policies import AdaptiveResampling
from smcdiff.potentials import TrajectoryConfidence, ViolationPotential
from smcdiff.proposals import Categorical, Greedy, Margin, PerStep, TopK, UnmaskingKernel
from smcdiff.tasks.sudoku import SudokuTask, violations_ids

ROOT = Path(__file__).resolve().parent.parent


def methods(ns=(2, 4, 8)):
    greedy = UnmaskingKernel(Greedy(), TopK(), PerStep(1), Margin())
    sampled = UnmaskingKernel(Categorical(1.0), TopK(), PerStep(1), Margin())
    out = [Method("margin, greedy", SMC(greedy), "first"), Method("margin, T=1, one sample", SMC(sampled), "first")]
    every = AdaptiveResampling(0.5, when="every_step")
    for n in ns:
        out.append(Method(f"SR-SMC N={n}", SMC(sampled, [TrajectoryConfidence()], n_particles=n, resampling=every),
                          "trajectory_confidence"))
    for n in ns:
        out.append(Method(f"verifier SMC N={n} (lambda=3)",
                          SMC(sampled, [ViolationPotential(violations_ids, 3.0)], n_particles=n, resampling=every),
                          "weight"))
    return out


def run_table(doc: str, script: str, stem: str, make_methods, heading: str = "") -> None:
    """Parse ``--n --splits --threads``, evaluate ``make_methods(model)`` on each split (seed 0) and write
    ``results/<stem>.json`` and ``docs/results/<stem>.md`` (``heading`` above the command line)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--splits", nargs="+", default=["test_easy", "test_hard"])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load("sudoku")
    t0 = time.perf_counter()
    rows, md = [], []
    for split in args.splits:
        rep = evaluate(model, SudokuTask(split, n=args.n), make_methods(model), seeds=[0], batch_size=25,
                       progress=False)
        for r in rep.table():
            rows.append({"split": split, "method": r["method"], **{k: r["solved"][k] for k in ("mean", "lo", "hi")},
                         "violations": r["violations"]["mean"], "nfe": r["nfe_per_item"],
                         "particle_forwards": r["particle_forwards_per_item"]})
        md.append(f"### {split}\n\n" + rep.to_markdown())
        print(md[-1], flush=True)
    wall = time.perf_counter() - t0
    cmd = "python benchmarks/%s --n %d --splits %s" % (script, args.n, " ".join(args.splits))
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / f"{stem}.json").write_text(json.dumps({"command": cmd, "wall_s": round(wall, 1),
                                                               "rows": rows}, indent=1) + "\n")
    (ROOT / "docs" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "docs" / "results" / f"{stem}.md").write_text(heading + f"`{cmd}` ({wall:.0f} s)\n\n" + "\n".join(md))
    print(f"{wall:.0f} s")


def main() -> None:
    run_table(__doc__, "sudoku_smc_table.py", "sudoku_smc", lambda model: methods())


if __name__ == "__main__":
    main()
