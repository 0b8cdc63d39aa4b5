"""CDR-H3 infilling with AntiBERTy: one sample, greedy, SR-SMC and best-of-N, with intervals and compute.

``python benchmarks/antibody_table.py [--n 100] [--seeds 0 1]`` refills CDR-H3 of ``n`` held-out PDB heavy
chains (``smcdiff.tasks.antibody``) through the evaluation harness and writes ``results/antibody.json`` and
``docs/results/antibody.md``: recovery of the native loop, the loop's pseudo-log-likelihood under AntiBERTy
(mean log p per residue, one position masked at a time; the native loop's value as a reference), NFE and
particle-forwards per chain, each a mean with a 95 % bootstrap interval.

Methods (one residue per step in order of confidence, tokens at T = 1 unless greedy):

* one sample at T = 1; greedy (arg-max tokens, confidence order);
* SR-SMC N in {4, 8} (trajectory confidence, resampling at ESS < N/2 every step, output by trajectory
  confidence);
* best-of-4 by trajectory confidence (4 independent samples, no resampling), SR-SMC N = 4's equal-compute
  baseline.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from smcdiff import SMC, AdaptiveResampling, NeverResample, TrajectoryConfidence
from smcdiff.eval import Method, evaluate
from smcdiff.models import load
from smcdiff.proposals import Categorical, Confidence, Greedy, PerStep, TopK, UnmaskingKernel
from smcdiff.tasks.antibody import AntibodyTask

ROOT = Path(__file__).resolve().parent.parent


def methods() -> list[Method]:
    sampled = UnmaskingKernel(Categorical(1.0), TopK(), PerStep(1), Confidence())
    greedy = UnmaskingKernel(Greedy(), TopK(), PerStep(1), Confidence())
    every = AdaptiveResampling(0.5, when="every_step")
    out = [Method("one sample, T=1", SMC(sampled), "first"), Method("greedy", SMC(greedy), "first")]
    for n in (4, 8):
        out.append(Method(f"SR-SMC N={n}", SMC(sampled, [TrajectoryConfidence()], n_particles=n, resampling=every),
                          "trajectory_confidence"))
    out.append(Method("best-of-4 by confidence",
                      SMC(sampled, [TrajectoryConfidence()], n_particles=4, resampling=NeverResample()),
                      "trajectory_confidence"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load("antiberty")
    task = AntibodyTask(n=args.n)
    t0 = time.perf_counter()
    rep = evaluate(model, task, methods(), seeds=args.seeds, batch_size=25, progress=False)
    wall = time.perf_counter() - t0
    cmd = f"python benchmarks/antibody_table.py --n {args.n} --seeds {' '.join(map(str, args.seeds))}"
    md = [
        "# CDR-H3 infilling with AntiBERTy",
        "",
        f"`{cmd}` ({wall:.0f} s on {args.threads} CPU threads). {args.n} held-out heavy chains from the PDB "
        f"(the ANARCI sdist's `pdb_sequences.fa`, see `smcdiff.tasks.antibody`) x {len(args.seeds)} seeds; "
        "CDR-H3 (Kabat-like, 3-25 residues, mean 11.9 over the table) masked and refilled one residue per step in "
        "order of confidence. recovery: fraction of loop residues equal to the native; pll: mean log p(x_i | rest) "
        "over the loop under AntiBERTy (higher = more typical for the model); native_pll: the same for the native "
        "loop. Means with 95 % bootstrap intervals over chains x seeds.",
        "",
        rep.to_markdown(digits=3),
    ]
    (ROOT / "docs" / "results" / "antibody.md").write_text("\n".join(md) + "\n")
    (ROOT / "results" / "antibody.json").write_text(
        json.dumps({"command": cmd, "wall_s": wall, "table": rep.table()}, indent=1) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
