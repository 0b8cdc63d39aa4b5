"""The main demo: samplers compared on the shipped models (``smcdiff demo``; the toy one is ``--toy``).

1. **Sudoku** (``load("sudoku")``): a few easy and hard held-out puzzles filled one cell
   per step by: random order and largest-margin order (greedy digits, one sample); and,
   at temperature 1 with N particles each (N x the particle-forwards): best-of-N by
   fewest violations, SR-SMC (trajectory confidence, resampling every 8 steps), and a
   verifier SMC (``ViolationPotential``, target ``p * exp(-lam * violations)``).
2. **Text** (``load("text-mdlm")``): prompts continued by MDLM's ancestral sampler (one
   sample), SR-SMC with N particles, and RWS tilted towards positive VADER sentiment;
   fluency is the SmolLM2 NLL per token of the continuation given the prompt (needs the
   ``scorers`` extra), with entropy and distinct-2 beside it.

Tables come from :func:`smcdiff.eval.evaluate` (means with 95 % bootstrap intervals over
items; compute per item). Two plots of one SR-SMC Sudoku run (unmasking order, ESS trace)
are written to ``out`` and their paths printed. Small sizes keep it to a few minutes on
2 CPU cores; the intervals are correspondingly wide.
"""

from __future__ import annotations

import time
from pathlib import Path


__all__ = ["models_demo"]


def _sudoku_methods(n: int, lam: float):
    from . import SMC, AdaptiveResampling, Categorical, EvenSplit, TopK, UnmaskingKernel, recipes
    from .eval import Method
    from .policies import EveryKSteps, NeverResample
    from .potentials.verifier import ViolationPotential
    from .proposals import Margin, RandomK
    from .tasks import sudoku as task

    def kern(temp, score, selector=None):
        return UnmaskingKernel(Categorical(temp), selector or TopK(), EvenSplit(81), score, block_length=None)

    return [
        Method("random order, greedy", SMC(kern(0.0, Margin(), RandomK())), select="first"),
        Method("margin order, greedy", SMC(kern(0.0, Margin())), select="first"),
        Method(f"best-of-{n} by violations (T=1)", SMC(kern(1.0, Margin()), n_particles=n,
                                                      resampling=NeverResample()), select=task.fewest_violations),
        Method(f"SR-SMC N={n} (T=1)", recipes.sr_smc(SMC(kern(1.0, Margin())), n_particles=n,
                                                    when=EveryKSteps(8)), select="trajectory_confidence"),
        Method(f"verifier SMC N={n}, lam={lam:g} (T=1)",
               SMC(kern(1.0, Margin()), [ViolationPotential(task.violations_ids, lam)], n_particles=n,
                   resampling=AdaptiveResampling(kappa=0.5)), select="weight"),
    ]


def _text_methods(n: int, gen_length: int, reward):
    from . import recipes
    from .eval import Method
    from .rewards import NormalizedReward

    return [
        Method("MDLM, one sample", recipes.mdlm(steps=gen_length, gen_length=gen_length), select="first",
               gen_length=gen_length),
        Method(f"SR-SMC N={n}", recipes.sr_smc(recipes.mdlm(steps=gen_length, gen_length=gen_length),
                                               n_particles=n, when="every_step"),
               select="trajectory_confidence", gen_length=gen_length),
        Method("RWS (VADER +)", recipes.rws(NormalizedReward(reward, mu=0.0, sigma=0.5), gen_length=gen_length,
                                           temperature=1.0), select="first", gen_length=gen_length),
    ]


def models_demo(n_puzzles: int = 6, n_particles: int = 4, lam: float = 3.0, text_prompts: int = 4,
                gen_length: int = 32, seed: int = 0, out: str | Path = "runs/demo", text: bool = True) -> str:
    """Run the comparison and return the printable report (see the module docstring)."""
    from .eval import evaluate
    from .models import load
    from .plots import ess_trace, unmasking_order
    from .tasks import sudoku as task

    t0 = time.perf_counter()
    out = Path(out)
    lines = ["# smcdiff demo: samplers on the shipped models", ""]
    sudoku = load("sudoku")
    methods = _sudoku_methods(n_particles, lam)
    for split in ("test_easy", "test_hard"):
        rep = evaluate(sudoku, task.SudokuTask(split, n=n_puzzles), methods, seeds=[seed], progress=False)
        lines += [f"## Sudoku, {split} ({n_puzzles} puzzles, seed {seed})", "", rep.to_markdown(digits=2), ""]
    # one SR-SMC run for the plots
    sr = methods[3].sampler
    res = sr.infill(sudoku, sudoku.encode_batch([p for p, _ in task.load_split("test_hard")[:2]]), seed=seed)
    p1 = out / "sudoku_unmasking_order.png"
    p2 = out / "sudoku_ess_trace.png"
    unmasking_order(res, b=0, path=p1, title=f"SR-SMC N={n_particles} on a hard puzzle: step of each cell")
    ess_trace(res, path=p2, title=f"SR-SMC N={n_particles}: ESS over steps (triangles: resampled)")
    import matplotlib.pyplot as plt

    plt.close("all")
    if text:
        try:
            from .scoring import VaderReward
            from .tasks.text import PROMPTS, TextTask

            vader = VaderReward()
            model = load("text-mdlm")
            ttask = TextTask(PROMPTS[:text_prompts], rewards={"sentiment": vader})
            tmethods = _text_methods(n_particles, gen_length, vader)
            rep = evaluate(model, ttask, tmethods, seeds=[seed], progress=False)
            lines += [f"## Text MDLM, {text_prompts} prompts x {gen_length} tokens (seed {seed})", "",
                      "nll: SmolLM2-135M NLL per token of the continuation (lower is more fluent; "
                      "Gen-PPL = exp); sentiment: VADER compound in [-1, 1].", "",
                      rep.to_markdown(digits=2), ""]
            for m in tmethods:
                lines.append(f"- {m.label}: " + repr(_first_text(model, ttask, m, seed)))
            lines.append("")
        except Exception as e:  # the text part needs the optional scorers; say so, never hide it
            lines += ["## Text MDLM", "", f"skipped: {type(e).__name__}: {e}", ""]
    lines += [f"Plots: {p1}", f"       {p2}", f"Total time {time.perf_counter() - t0:.0f} s."]
    return "\n".join(lines)


def _first_text(model, ttask, method, seed: int) -> str:
    """The first prompt's continuation under ``method`` (the harness's per-row seed for item 0)."""
    from .eval import SEED_STRIDE, select_outputs

    prompt = ttask.items()[0]
    res = method.sampler.run(model, [model.encode(prompt)], seed=[seed * SEED_STRIDE], gen_length=method.gen_length)
    row = res.sequences[0, int(select_outputs(res, method.select)[0])]
    return prompt + ttask.render(model, ttask.continuation(model, prompt, row))
