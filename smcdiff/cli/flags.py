"""Recipe options as command-line flags, generated from the spec schema (:func:`smcdiff.spec.recipe_options`).

Every option of a recipe becomes ``--option-name`` (underscores as dashes). A
flag's text is read as JSON when it parses (``0.5``, ``null``, ``[1, 2]``,
``{"type": "TopK"}``), else as a YAML flow mapping or list (``{type: TopK}``,
``[{type: TrajectoryConfidence}]``), else as a plain string (``every_step``);
``none`` is ``null``. A ``bool`` option is a pair ``--name`` / ``--no-name``.
The values go into a recipe node ``{recipe: NAME, options: {...}}`` that
:func:`smcdiff.spec.build` validates exactly as it validates a spec file, so
flags and files cannot drift apart.
"""

from __future__ import annotations

import argparse
import inspect
import json
from typing import Any

from ..spec import _annotation_tokens, _param_doc, recipe_options

__all__ = ["add_recipe_flags", "recipe_node", "parse_value", "flag_name"]


def flag_name(option: str) -> str:
    return "--" + option.replace("_", "-")


def parse_value(text: str) -> Any:
    """A flag's text as a spec value (see the module docstring)."""
    if text.strip().lower() in ("none", "null", "~"):
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    s = text.strip()
    if s[:1] in "{[":
        import yaml

        try:
            v = yaml.safe_load(s)
        except yaml.YAMLError as e:
            raise argparse.ArgumentTypeError(f"cannot read {text!r} as a mapping or list: {str(e).splitlines()[0]}")
        return v
    return text


def _is_bool(p: inspect.Parameter) -> bool:
    toks = _annotation_tokens(p.annotation)
    return toks == {"bool"}


def add_recipe_flags(parser: argparse.ArgumentParser, recipe: str) -> list[str]:
    """Add one flag per option of ``recipe`` (dest ``opt_<option>``, absent unless given); returns the options.

    An option whose flag the command already has (``sr_smc``'s ``family`` beside the
    model's ``--family``) is spelled ``--<recipe>-<option>`` (``--sr-smc-family``).
    """
    group = parser.add_argument_group(f"options of recipe {recipe!r} (from smcdiff.spec.recipe_options)")
    names = []
    taken = set(parser._option_string_actions)
    for name, p in recipe_options(recipe).items():
        flag = flag_name(name)
        if flag in taken:
            flag = flag_name(f"{recipe}_{name}")
        doc = _param_doc(p)
        default = doc.get("default", "required")
        ann = doc.get("annotation") or "value"
        help_ = f"{ann} (default: {json.dumps(default) if not isinstance(default, str) else default})"
        if _is_bool(p):
            group.add_argument(flag, dest=f"opt_{name}", action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_)
        else:
            group.add_argument(flag, dest=f"opt_{name}", type=parse_value, default=argparse.SUPPRESS,
                               metavar=name.upper(), help=help_)
        names.append(name)
    return names


def recipe_node(args: argparse.Namespace, recipe: str, names: list[str]) -> dict:
    """The recipe node ``{recipe, options}`` of the flags that were given."""
    opts = {n: getattr(args, f"opt_{n}") for n in names if hasattr(args, f"opt_{n}")}
    return {"recipe": recipe, "options": opts}
