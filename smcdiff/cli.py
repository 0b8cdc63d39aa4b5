"""Command-line entry point: ``smcdiff demo`` (also ``python -m smcdiff demo``)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smcdiff", description="SMC for masked diffusion language models")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="SR-SMC on an exact toy model: exact log Z vs SMC estimates, ESS trace")
    demo.add_argument("--particles", type=int, default=8)
    demo.add_argument("--prompts", type=int, default=3)
    demo.add_argument("--runs", type=int, default=2000, help="runs used to average Z_hat / Z")
    demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import toy_demo

        print(toy_demo(n_particles=args.particles, n_prompts=args.prompts, n_runs=args.runs, seed=args.seed))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
