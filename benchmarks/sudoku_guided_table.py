"""Best-of-N and FK steering on the shipped Sudoku model, next to SR-SMC and verifier SMC (sudoku_smc_table.py).

``python benchmarks/sudoku_guided_table.py [--n 100] [--splits test_easy test_hard]`` runs, through the evaluation
harness (first ``n`` puzzles of each split, seed 0), on the kernel of ``sudoku_smc_table.py`` (margin order, one
cell per step, tokens at T = 1):

* best-of-N by violations (N independent samples; the output is the first with the fewest conflicts);
* FK steering (arXiv 2501.06848): reward ``-violations`` of the predicted clean grid x0-hat after every step,
  "difference" potential, lambda = 3, with the terminal correction that makes the target exactly
  ``p(x) exp(-3 violations(x))``; resampling at ESS < N/2 every step, output by weight;

for N in {2, 4, 8}, and writes ``results/sudoku_guided.json`` and ``docs/results/sudoku_guided.md`` (solved with
95 % bootstrap intervals, violations, NFE, particle-forwards and reward calls per puzzle).
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
from smcdiff.policies import AdaptiveResampling, NeverResample
from smcdiff.potentials import FKSteering
from smcdiff.proposals import Categorical, Margin, PerStep, TopK, UnmaskingKernel
from smcdiff.rewards import CallableReward
from smcdiff.tasks.sudoku import SudokuTask, violations, violations_ids

ROOT = Path(__file__).resolve().parent.parent


def fewest_violations(res):
    b, m, _ = res.sequences.shape
    return violations_ids(res.sequences.reshape(b * m, -1)).reshape(b, m).argmin(dim=1)


def methods(model, ns=(2, 4, 8)):
    sampled = UnmaskingKernel(Categorical(1.0), TopK(), PerStep(1), Margin())
    every = AdaptiveResampling(0.5, when="every_step")
    reward = CallableReward(lambda prompt, text: -float(violations(text)))
    out = []
    for n in ns:
        out.append(Method(f"best-of-{n} by violations", SMC(sampled, n_particles=n, resampling=NeverResample()),
                          fewest_violations))
    for n in ns:
        fk = FKSteering(reward, lam=3.0, potential="difference", decode=lambda ids, cut_eos=True: model.decode(ids) if len(ids) else "")
        out.append(Method(f"FK steering N={n} (lambda=3)", SMC(sampled, [fk], n_particles=n, resampling=every),
                          "weight"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--splits", nargs="+", default=["test_easy", "test_hard"])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load("sudoku")
    t0 = time.perf_counter()
    rows, md = [], []
    for split in args.splits:
        rep = evaluate(model, SudokuTask(split, n=args.n), methods(model), seeds=[0], batch_size=25, progress=False)
        for r in rep.table():
            rows.append({"split": split, "method": r["method"], **{k: r["solved"][k] for k in ("mean", "lo", "hi")},
                         "violations": r["violations"]["mean"], "nfe": r["nfe_per_item"],
                         "particle_forwards": r["particle_forwards_per_item"]})
        md.append(f"### {split}\n\n" + rep.to_markdown())
        print(md[-1], flush=True)
    wall = time.perf_counter() - t0
    cmd = "python benchmarks/sudoku_guided_table.py --n %d --splits %s" % (args.n, " ".join(args.splits))
    (ROOT / "results" / "sudoku_guided.json").write_text(json.dumps({"command": cmd, "wall_s": round(wall, 1),
                                                                     "rows": rows}, indent=1) + "\n")
    (ROOT / "docs" / "results" / "sudoku_guided.md").write_text(
        f"# Best-of-N and FK steering on the Sudoku model\n\n`{cmd}` ({wall:.0f} s)\n\n" + "\n".join(md))
    print(f"{wall:.0f} s")


if __name__ == "__main__":
    main()
