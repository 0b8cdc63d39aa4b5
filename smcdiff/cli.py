"""Command-line entry point: ``smcdiff demo`` (also ``python -m smcdiff demo``).

``smcdiff demo`` compares samplers on the shipped models (:mod:`smcdiff.demo_models`);
``smcdiff demo --toy`` is the exact toy-model demo (:mod:`smcdiff.demo`).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smcdiff", description="SMC for masked diffusion language models")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="samplers compared on the shipped Sudoku and text models "
                                        "(--toy: SR-SMC on an exact toy model)")
    demo.add_argument("--toy", action="store_true", help="the exact toy-model demo instead")
    demo.add_argument("--particles", type=int, default=None, help="particles per SMC method (default 4; toy 8)")
    demo.add_argument("--puzzles", type=int, default=6, help="Sudoku puzzles per split")
    demo.add_argument("--text-prompts", type=int, default=4)
    demo.add_argument("--gen-length", type=int, default=32, help="tokens generated per text prompt")
    demo.add_argument("--no-text", action="store_true", help="skip the text part")
    demo.add_argument("--out", default="runs/demo", help="directory for the plots")
    demo.add_argument("--prompts", type=int, default=3, help="toy demo: prompts")
    demo.add_argument("--runs", type=int, default=2000, help="toy demo: runs used to average Z_hat / Z")
    demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.toy:
            from .demo import toy_demo

            print(toy_demo(n_particles=args.particles or 8, n_prompts=args.prompts, n_runs=args.runs,
                           seed=args.seed))
        else:
            from .demo_models import models_demo

            print(models_demo(n_puzzles=args.puzzles, n_particles=args.particles or 4,
                              text_prompts=args.text_prompts, gen_length=args.gen_length, seed=args.seed,
                              out=args.out, text=not args.no_text))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
