"""Measure E[Z_hat]/Z on templates (infilling) over layouts, N, schemes, check timings and selectors.

Prints a table and writes benchmarks/results/infill_unbiasedness.json. Each entry is the mean of
Z_hat / Z over R independent runs (R rows of one batch) with its standard error; Z is exact
(enumeration with template=). Templates on a V = 3, L = 5 toy joint: masks at the start, in the middle,
in two separate spans, and everywhere. Kernels: top-k with LLaDA's even split in windows of 2,
threshold selection (particles finish windows at different steps and idle), and Plackett-Luce with
a proposal-only score tilt (weights log K - log q). Potential: trajectory confidence.

    python benchmarks/infill_unbiasedness_report.py [R]
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

import torch

from smcdiff import (SMC, AdaptiveResampling, AlwaysResample, Categorical, EvenSplit, Threshold, ToyDenoiser,
                     TopK, TrajectoryConfidence, UnmaskingKernel)
from smcdiff.proposals import AdaptiveSteps, LogitsFn, PlackettLuce
from smcdiff.theory_checks import check_unbiasedness, exact_log_Z

R = int(sys.argv[1]) if len(sys.argv) > 1 else 4000


def kernels():
    tilt = LogitsFn(lambda z, ctx: 0.5 * z, stage="score", in_target=False)
    pl = UnmaskingKernel(Categorical(1.0), PlackettLuce(0.7), EvenSplit(4), block_length=2, transforms=[tilt])
    return {
        "topk/windows2": (UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(4), block_length=2), None),
        "threshold/windows3": (UnmaskingKernel(Categorical(1.0), Threshold(0.4), AdaptiveSteps(), block_length=3), None),
        "plackett-luce+tilt/windows2": (pl, pl.reference),
    }


def main() -> None:
    torch.set_num_threads(1)
    model = ToyDenoiser.random(3, 5, seed=404)
    m = model.mask_id
    layouts = {"start": [m, m, 1, 0, 2], "middle": [1, m, m, m, 0], "two_spans": [m, 2, m, 0, m],
               "full": [m, m, m, m, m]}
    pots = [TrajectoryConfidence()]
    rows = []
    t0 = time.time()
    print(f"{'layout':>9} {'kernel':>28} {'N':>3} {'scheme':>12} {'check':>10} {'E[Z_hat]/Z':>11} {'SE':>7} {'z':>6}")
    for lname, template in layouts.items():
        for kname, (kernel, ref) in kernels().items():
            lz = exact_log_Z(ref or kernel, model, potentials=pots, template=template, max_seconds=None)
            for n in (1, 4, 16):
                for scheme in ("systematic", "stratified", "residual", "multinomial"):
                    for when in ("every_step", "block_end"):
                        if n == 1 and (scheme != "systematic" or when != "every_step"):
                            continue  # N = 1 never resamples anything
                        smc = SMC(kernel, pots, n_particles=n, resampling=AdaptiveResampling(1.0, scheme, when))
                        rep = check_unbiasedness(smc, model, template=template, n_runs=R, seed=len(rows) + 1,
                                                 log_Z=lz)
                        rows.append(dict(layout=lname, template=template, kernel=kname, N=n, scheme=scheme,
                                         check=when, log_Z=lz, ratio=rep.ratio_mean, se=rep.standard_error,
                                         z=rep.z_score, R=R))
                        print(f"{lname:>9} {kname:>28} {n:>3} {scheme:>12} {when:>10} {rep.ratio_mean:>11.4f} "
                              f"{rep.standard_error:>7.4f} {rep.z_score:>+6.2f}", flush=True)
    zs = torch.tensor([r["z"] for r in rows])
    print(f"{len(rows)} configurations, R = {R}: max |z| = {float(zs.abs().max()):.2f}, mean z = "
          f"{float(zs.mean()):+.3f}, sd z = {float(zs.std()):.3f}; {time.time() - t0:.0f} s")
    out = pathlib.Path(__file__).parent / "results" / "infill_unbiasedness.json"
    out.write_text(json.dumps(rows, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
