"""The ``smcdiff`` command line (also ``python -m smcdiff``).

Commands::

    smcdiff generate  --model NAME|DIR [--family F] (--recipe NAME [--option ...] | --spec FILE)
                      (--prompt TEXT | --prompts-file F | --template TEXT | --templates-file F) ...
    smcdiff replay    RUN.safetensors          re-execute a saved run and compare
    smcdiff eval      --task sudoku:SPLIT|text --model ... (--recipe ... | --spec FILE ...)
    smcdiff check     (--recipe NAME [--option ...] | --spec FILE)   theory checks on a toy model
    smcdiff plot      RUN.safetensors | --report REPORT.json   --out DIR
    smcdiff spec      show|check|schema        write, validate or list specs
    smcdiff models                             the shipped and installable models
    smcdiff demo                               samplers compared on the shipped models

Bad usage or a bad spec exits with code 2 and one line on stderr naming the
flag or the spec path; a failed check exits with code 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import SMCDiffError
from ..spec import SpecError

__all__ = ["main", "UsageError"]


class UsageError(Exception):
    """Bad command-line usage: reported on one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit code 2
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def _add_common_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a shipped model name (smcdiff models) or a checkpoint directory")
    p.add_argument("--family", choices=("llada", "dream", "mlm"), default=None,
                   help="adapter for a checkpoint directory")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default=None, choices=("float32", "float16", "bfloat16", "float64"))


def _add_sampler_source(p: argparse.ArgumentParser, multiple_specs: bool = False) -> None:
    p.add_argument("--recipe", default=None, help="a recipe name (llada, dream, fast_dllm, mdlm, eb_sampler, "
                                                  "sr_smc, rws); its options become flags (--recipe NAME --help)")
    p.add_argument("--spec", default=None if not multiple_specs else [], action="append" if multiple_specs else None,
                   help="a spec file (.json / .yaml)" + (" (repeatable: one method each)" if multiple_specs else ""))
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import a Python module first (it may register components with smcdiff.spec.register)")


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The parser; with ``--recipe NAME`` in ``argv`` the recipe's option flags are added to the command."""
    from .flags import add_recipe_flags

    parser = _Parser(prog="smcdiff", description="SMC for masked diffusion language models")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", "-q", action="store_true", help="no progress bars or log lines")
    common.add_argument("--verbose", "-v", action="store_true", help="log every step (DEBUG)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add = sub.add_parser

    def add_parser(name, **kw):
        return _add(name, parents=[common], **kw)

    sub.add_parser = add_parser

    recipe = None
    if "--recipe" in argv:
        i = argv.index("--recipe")
        recipe = argv[i + 1] if i + 1 < len(argv) else None
    elif any(a.startswith("--recipe=") for a in argv):
        recipe = next(a for a in argv if a.startswith("--recipe="))[len("--recipe="):]
    names: list[str] = []

    def recipe_flags(p):
        nonlocal names
        from ..recipes import RECIPES

        if recipe in RECIPES:
            names = add_recipe_flags(p, recipe)

    g = sub.add_parser("generate", help="sample from a model with a recipe or a spec; JSONL out")
    _add_common_model(g)
    _add_sampler_source(g)
    g.add_argument("--prompt", action="append", default=[], help="a text prompt (repeatable)")
    g.add_argument("--prompts-file", default=None, help="one prompt per line")
    g.add_argument("--template", action="append", default=[],
                   help="a template to infill: [MASK] / [MASK*K] mark the positions (repeatable)")
    g.add_argument("--templates-file", default=None, help="one template per line")
    g.add_argument("--prompt-ids", action="append", default=[], metavar="IDS",
                   help="a prompt as token ids, e.g. '0 3 1' (repeatable; for models without a tokenizer)")
    g.add_argument("--template-ids", action="append", default=[], metavar="IDS",
                   help="a template as token ids, 'm' for a masked position, e.g. '0 m m 2' (repeatable)")
    if recipe is None or "gen_length" not in _recipe_names(recipe):
        g.add_argument("--gen-length", dest="opt_gen_length", type=int, default=argparse.SUPPRESS,
                       help="tokens to generate after each prompt (default: the sampler's)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", default=None, help="JSONL file (default: stdout)")
    g.add_argument("--save-run", default=None, metavar="FILE",
                   help="also save the whole run (.safetensors + run record; smcdiff replay / plot read it)")
    recipe_flags(g)

    r = sub.add_parser("replay", help="re-execute a saved run and check that it reproduces")
    r.add_argument("run", help="a file written by generate --save-run")
    r.add_argument("--device", default=None)

    e = sub.add_parser("eval", help="the evaluation harness: methods x seeds x items with 95%% intervals")
    e.add_argument("--task", required=True, help="sudoku:<split> (test_easy, test_hard, val) or text")
    _add_common_model(e)
    _add_sampler_source(e, multiple_specs=True)
    e.add_argument("--label", default=None, help="label of the --recipe method")
    e.add_argument("--select", default="weight", choices=("weight", "trajectory_confidence", "first"))
    e.add_argument("--n", type=int, default=None, help="items (default: the whole split)")
    e.add_argument("--seeds", type=int, nargs="+", default=[0])
    e.add_argument("--batch-size", type=int, default=16)
    e.add_argument("--prompts-file", default=None, help="text task: one prompt per line")
    if recipe is None or "gen_length" not in _recipe_names(recipe):
        e.add_argument("--gen-length", dest="opt_gen_length", type=int, default=argparse.SUPPRESS)
    e.add_argument("--out", default=None, help="write the report (JSON) here")
    e.add_argument("--markdown", default=None, help="write the table (Markdown) here")
    recipe_flags(e)

    c = sub.add_parser("check", help="proper weighting, sampling law and unbiasedness on an exact toy model")
    _add_sampler_source(c)
    c.add_argument("--vocab", type=int, default=3, help="toy vocabulary size")
    c.add_argument("--length", type=int, default=3, help="toy positions to generate")
    c.add_argument("--runs", type=int, default=2000, help="runs of the statistical checks")
    c.add_argument("--k", type=float, default=5.0, help="tolerance in standard errors")
    c.add_argument("--seed", type=int, default=0)
    recipe_flags(c)

    pl = sub.add_parser("plot", help="plots of a saved run (or the frontier of an eval report)")
    pl.add_argument("run", nargs="?", default=None, help="a file written by generate --save-run")
    pl.add_argument("--report", default=None, help="an eval report (JSON) for the accuracy-NFE frontier")
    pl.add_argument("--metric", default=None, help="frontier: the metric on the y axis (default: the first)")
    pl.add_argument("--kind", nargs="+", default=["order", "ess", "genealogy", "weights"],
                    choices=("order", "ess", "genealogy", "weights"))
    pl.add_argument("--prompt", type=int, default=0, help="prompt index for order / genealogy")
    pl.add_argument("--out", required=True, help="directory for the PNG files")

    s = sub.add_parser("spec", help="write (show), validate (check) or describe (schema) sampler specs")
    s.add_argument("action", choices=("show", "check", "schema"))
    s.add_argument("file", nargs="?", default=None, help="check: the spec file")
    _add_sampler_source(s)
    s.add_argument("--format", choices=("yaml", "json"), default="yaml")
    recipe_flags(s)

    sub.add_parser("models", help="the registered models: name, size, whether installed")

    d = sub.add_parser("demo", help="samplers compared on the shipped Sudoku and text models "
                                    "(--toy: SR-SMC on an exact toy model)")
    d.add_argument("--toy", action="store_true", help="the exact toy-model demo instead")
    d.add_argument("--particles", type=int, default=None, help="particles per SMC method (default 4; toy 8)")
    d.add_argument("--puzzles", type=int, default=6, help="Sudoku puzzles per split")
    d.add_argument("--text-prompts", type=int, default=4)
    d.add_argument("--gen-length", type=int, default=32, help="tokens generated per text prompt")
    d.add_argument("--no-text", action="store_true", help="skip the text part")
    d.add_argument("--out", default="runs/demo", help="directory for the plots")
    d.add_argument("--prompts", type=int, default=3, help="toy demo: prompts")
    d.add_argument("--runs", type=int, default=2000, help="toy demo: runs used to average Z_hat / Z")
    d.add_argument("--seed", type=int, default=0)
    return parser, names


def _recipe_names(recipe: str) -> list[str]:
    from ..recipes import RECIPES
    from ..spec import recipe_options

    return list(recipe_options(recipe)) if recipe in RECIPES else []


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser, names = build_parser(argv)
        args = parser.parse_args(argv)
        args.recipe_option_names = names
        level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose else logging.INFO)
        logging.basicConfig(level=level, format="smcdiff: %(message)s", stream=sys.stderr)
        logging.getLogger("smcdiff").setLevel(level)
        for mod in getattr(args, "imports", []) or []:
            try:
                importlib.import_module(mod)
            except ImportError as e:
                raise UsageError(f"smcdiff: error: --import {mod}: {e}")
        from .. import distributed
        from . import commands

        if args.command in ("generate", "eval") and distributed.is_launched():
            distributed.init()  # torchrun / accelerate launch: prompts are sharded, rank 0 writes the output
        return getattr(commands, f"cmd_{args.command}")(args)
    except UsageError as e:
        print(str(e), file=sys.stderr)
        return 2
    except SpecError as e:
        print(f"smcdiff: error: {e}", file=sys.stderr)
        return 2
    except (SMCDiffError, FileNotFoundError) as e:
        print(f"smcdiff: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
