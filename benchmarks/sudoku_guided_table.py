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

from sudoku_smc_table import run_table

from smcdiff import SMC
from smcdiff.eval import Method
from smcdiff.policies import AdaptiveResampling, NeverResample
from smcdiff.potentials import FKSteering
from smcdiff.proposals import Categorical, Margin, PerStep, TopK, UnmaskingKernel
from smcdiff.rewards import CallableReward
from smcdiff.tasks.sudoku import fewest_violations, violations


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
    run_table(__doc__, "sudoku_guided_table.py", "sudoku_guided", methods,
              heading="# Best-of-N and FK steering on the Sudoku model\n\n")


if __name__ == "__main__":
    main()
