"""``python -m smcdiff.train <model> [options]`` -- one training command per shipped model.

Models: ``sudoku`` (train; see :mod:`smcdiff.train.sudoku`), ``sudoku-eval``
(accuracy table of saved weights on the test splits), ``text-mdlm`` (train; see
:mod:`smcdiff.train.text_mdlm`), ``text-mdlm-eval`` (samples and Gen-PPL against baselines),
``policy`` (a learned unmasking policy for the Sudoku model, GRPO; :mod:`smcdiff.train.policy`).
"""

from __future__ import annotations

import sys

COMMANDS = {
    "sudoku": ("smcdiff.train.sudoku", "main"),
    "sudoku-eval": ("smcdiff.train.sudoku", "eval_main"),
    "text-mdlm": ("smcdiff.train.text_mdlm", "main"),
    "text-mdlm-eval": ("smcdiff.train.text_eval", "main"),
    "policy": ("smcdiff.train.policy", "main"),
    "policy-eval": ("smcdiff.train.policy_eval", "main"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: python -m smcdiff.train {" + ",".join(COMMANDS) + "} [options]  (--help after the name)")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    import importlib

    mod, fn = COMMANDS[argv[0]]
    return getattr(importlib.import_module(mod), fn)(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
