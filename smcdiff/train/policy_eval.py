"""Accuracy against NFE for learned policies and heuristics on Sudoku (``python -m smcdiff.train policy-eval``).

Every method runs through the evaluation harness (:mod:`smcdiff.eval`) on the shipped Sudoku
model with greedy (arg-max) tokens, in full diffusion (one block of 81 cells) and
semi-autoregressive mode (blocks of 27 cells, three grid rows), and reports the solved
fraction with its 95 % bootstrap interval and the NFE per puzzle. Heuristics: random order,
top probability and margin at k cells per step, Fast-dLLM's threshold at several lambda,
EB-sampler at several gamma. Learned policies: each shipped ``policy-sudoku-*`` with the
arg-max fallback, and at test-time scalings ``beta``. With ``--smc``: the first policy as
the selector inside SR-SMC and inside verifier SMC (N = 4 particles), against alone.
Writes a JSON report, a Markdown table and the frontier plots.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parent.parent.parent


def methods(mode: str, policies: Sequence[str], betas: Sequence[float], smc: bool):
    from .. import SMC
    from ..eval import Method
    from ..policies import AdaptiveResampling
    from ..potentials import TrajectoryConfidence, ViolationPotential
    from ..proposals import (AdaptiveSteps, Confidence, EntropyBound, Greedy, Margin, NegEntropy, PerStep, RandomK,
                             Threshold, TopK, UnmaskingKernel)
    from ..proposals.learned import policy_kernel
    from ..tasks.sudoku import violations_ids

    bl = None if mode == "full" else 27
    out = []

    def add(label, kernel, family, **kw):
        out.append((family, Method(f"{label} [{mode}]", SMC(kernel, **kw), "first")))

    add("random, 1/step", UnmaskingKernel(Greedy(), RandomK(), PerStep(1), Confidence(), block_length=bl), "random")
    for k in (1, 2, 3):
        add(f"top-prob, {k}/step", UnmaskingKernel(Greedy(), TopK(), PerStep(k), Confidence(), block_length=bl),
            "top-prob")
        add(f"margin, {k}/step", UnmaskingKernel(Greedy(), TopK(), PerStep(k), Margin(), block_length=bl), "margin")
    for lam in (0.5, 0.7, 0.9, 0.99):
        add(f"Fast-dLLM lambda={lam:g}",
            UnmaskingKernel(Greedy(), Threshold(lam), AdaptiveSteps(), Confidence(), block_length=bl), "Fast-dLLM")
    for g in (0.01, 0.1, 1.0):
        add(f"EB-sampler gamma={g:g}",
            UnmaskingKernel(Greedy(), EntropyBound(g), AdaptiveSteps(), NegEntropy(), block_length=bl), "EB-sampler")
    for name in policies:
        for beta in betas:
            add(f"policy {name}" + ("" if beta == 1 else f" beta={beta:g}"),
                policy_kernel(name, beta=beta, block_length=bl), f"policy {name}")
    if smc and policies:
        name = policies[0]
        k = policy_kernel(name, block_length=bl)
        out.append(("SMC", Method(f"policy {name} + SR-SMC N=4 [{mode}]",
                                  SMC(k, [TrajectoryConfidence()], n_particles=4,
                                      resampling=AdaptiveResampling(0.5, when="every_step")),
                                  "trajectory_confidence")))
        out.append(("SMC", Method(f"policy {name} + verifier SMC N=4 [{mode}]",
                                  SMC(k, [ViolationPotential(violations_ids, 3.0)], n_particles=4,
                                      resampling=AdaptiveResampling(0.5, when="every_step")), "weight")))
    return out


def frontier_plot(rows: list[dict], path: Path, title: str) -> None:
    from ..plots import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    fams = []
    for r in rows:
        if r["family"] not in fams:
            fams.append(r["family"])
    for fam in fams:
        pts = sorted([r for r in rows if r["family"] == fam], key=lambda r: r["nfe"])
        xs = [p["nfe"] for p in pts]
        ys = [p["solved"] for p in pts]
        err = [[p["solved"] - p["lo"] for p in pts], [p["hi"] - p["solved"] for p in pts]]
        ax.errorbar(xs, ys, yerr=err, marker="o", ms=4, capsize=2, lw=1, label=fam,
                    ls="-" if len(pts) > 1 else "none")
    ax.set_xlabel("NFE per puzzle")
    ax.set_ylabel("solved")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    from ..eval import evaluate
    from ..models import load
    from ..proposals.learned import available_policies
    from ..tasks.sudoku import SudokuTask

    ap = argparse.ArgumentParser(prog="python -m smcdiff.train policy-eval", description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", default="test_easy")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--modes", nargs="+", default=["full", "semi-ar"], choices=("full", "semi-ar"))
    ap.add_argument("--policies", nargs="*", default=None, help="shipped policy names (default: all)")
    ap.add_argument("--betas", type=float, nargs="+", default=[1.0])
    ap.add_argument("--smc", action="store_true", help="also the first policy inside SR-SMC and verifier SMC")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "results" / "policy_frontier.json"))
    ap.add_argument("--docs", default=str(REPO / "docs" / "results"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    policies = args.policies if args.policies is not None else sorted(available_policies())
    model = load("sudoku")
    task = SudokuTask(args.split, n=args.n)
    rows, tables = [], []
    t0 = time.perf_counter()
    for mode in args.modes:
        fam_methods = methods(mode, policies, args.betas, args.smc)
        report = evaluate(model, task, [m for _, m in fam_methods], seeds=args.seeds, batch_size=25,
                          progress=False)
        fam = {m.label: f for f, m in fam_methods}
        for r in report.table():
            rows.append({"mode": mode, "family": fam[r["method"]], "method": r["method"],
                         "solved": r["solved"]["mean"], "lo": r["solved"]["lo"], "hi": r["solved"]["hi"],
                         "nfe": r["nfe_per_item"], "particle_forwards": r["particle_forwards_per_item"],
                         "violations": r["violations"]["mean"]})
        tables.append(f"### {mode}\n\n" + report.to_markdown())
        print(report.to_markdown(), flush=True)
    wall = time.perf_counter() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python -m smcdiff.train policy-eval " + " ".join(argv if argv is not None else __import__("sys").argv[2:])
    out.write_text(json.dumps({"command": command, "split": args.split, "n": args.n, "seeds": args.seeds,
                               "policies": policies, "wall_s": round(wall, 1), "rows": rows}, indent=1) + "\n")
    docs = Path(args.docs)
    for mode in args.modes:
        frontier_plot([r for r in rows if r["mode"] == mode and r["family"] != "SMC"],
                      docs / f"policy_frontier_{args.split}_{mode}.png",
                      f"Sudoku {args.split} ({args.n} puzzles), {mode}: solved vs NFE")
    (docs / f"policy_frontier_{args.split}.md").write_text(
        f"`{command}` ({wall:.0f} s)\n\n" + "\n".join(tables))
    print(f"wrote {out} and {docs} in {wall:.0f} s")
    return 0
