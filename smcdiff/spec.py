"""Declarative sampler specs: any :class:`~smcdiff.engine.SMC` as a plain dict (JSON / YAML) and back.

A spec is a mapping with a schema version and a sampler::

    smcdiff_spec: 1
    sampler:
      type: SMC
      n_particles: 4
      gen_length: 64
      proposal:
        type: UnmaskingKernel
        sampler: {type: Categorical, temperature: 1.0, top_p: null, top_k: null}
        selector: {type: TopK}
        schedule: {type: EvenSplit, steps: 64}
        score: {type: Confidence, tempered: false}
        block_length: 32
        ...
      potentials: [{type: TrajectoryConfidence, tempered: false, anneal: null}]
      resampling: {type: AdaptiveResampling, kappa: 0.5, scheme: systematic, when: block_end, final: false}
      ...

Every node is one of

* a plain value (``null``, a bool, a number, a string, a list of nodes);
* a **component** ``{type: NAME, <argument>: <node>, ...}``: the registered class
  ``NAME`` called with those keyword arguments (all of them are written by
  :func:`to_spec`, defaults included, so a spec documents the whole sampler);
* a **named value** ``{ref: NAME}``: an object registered under ``NAME`` (a
  function, a reward instance, a scorer loaded on first use);
* a **recipe** ``{recipe: NAME, options: {...}}``: ``smcdiff.recipes.build(NAME,
  **options)`` (a sampler node only).

:func:`to_spec` always writes the fully composed form; :func:`build` reads all
three. The round trip is exact: ``build(to_spec(smc))`` samples identically to
``smc`` for the same seed, and ``to_spec(build(s)) == s`` for a spec written by
:func:`to_spec`.

Validation is strict and names the place: an unknown key, component or recipe
name, a value of the wrong type or out of range raises :class:`SpecError` whose
message starts with the path of the offending key (``sampler.proposal.schedule.steps``)
and suggests the closest valid name.

User components take part by registering: ``register("MySelector", MySelector)``
for a class (dataclasses work as they are; other classes need attributes named
like their ``__init__`` parameters or a ``spec_args()`` method returning them),
``register("my_reward", obj)`` for a value, ``register("scorer", factory, lazy=True)``
for a value created on first use.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import json
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import ConfigError

__all__ = [
    "SCHEMA_VERSION",
    "SpecError",
    "register",
    "registered",
    "to_spec",
    "build",
    "load",
    "dump",
    "schema",
    "recipe_options",
]

SCHEMA_VERSION = 1
_TOP_KEYS = ("smcdiff_spec", "sampler")


class SpecError(ConfigError):
    """A spec that cannot be built or written; ``path`` is where in the spec (``sampler.proposal...``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


# ---------------------------------------------------------------------- registry
@dataclass
class _Type:
    name: str
    target: Any  # a class, or "module:qualname" resolved on first use
    args: Callable[[Any], dict] | None = None

    def cls(self):
        if isinstance(self.target, str):
            mod, qual = self.target.split(":")
            obj: Any = importlib.import_module(mod)
            for part in qual.split("."):
                obj = getattr(obj, part)
            self.target = obj
        return self.target

    def qualname(self) -> str:
        if isinstance(self.target, str):
            return self.target
        return f"{self.target.__module__}:{self.target.__qualname__}"


@dataclass
class _Value:
    name: str
    obj: Any
    lazy: bool = False
    made: bool = False

    def get(self):
        if self.lazy and not self.made:
            self.obj, self.made = self.obj(), True
        return self.obj


_TYPES: dict[str, _Type] = {}
_BY_QUALNAME: dict[str, str] = {}
_VALUES: dict[str, _Value] = {}


def register(name: str, obj: Any, *, args: Callable[[Any], dict] | None = None, lazy: bool = False,
             replace: bool = False) -> Any:
    """Register a component class or a named value under ``name``; returns ``obj``.

    * a class: specs can name it as ``{type: name, ...}``; its arguments are read back
      from the instance by ``args(instance) -> dict`` if given, else by the instance's
      ``spec_args()`` method, else from its dataclass fields or from attributes named like
      its ``__init__`` parameters;
    * anything else: specs refer to that very object as ``{ref: name}`` (functions, reward
      instances); with ``lazy=True``, ``obj`` is a zero-argument factory called the first
      time the name is built.

    Re-registering a name raises unless ``replace=True``.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"register: name must be a non-empty string; got {name!r}")
    if not replace and (name in _TYPES or name in _VALUES):
        raise ConfigError(f"register: the name {name!r} is already registered; pass replace=True to replace it")
    _TYPES.pop(name, None)
    _VALUES.pop(name, None)
    if inspect.isclass(obj) or (isinstance(obj, str) and ":" in obj and not lazy):
        t = _Type(name, obj, args)
        _TYPES[name] = t
        _BY_QUALNAME[t.qualname()] = name
    else:
        if lazy and not callable(obj):
            raise ConfigError(f"register: lazy=True needs a zero-argument factory; got {type(obj).__name__}")
        _VALUES[name] = _Value(name, obj, lazy)
    return obj


def registered() -> dict[str, list[str]]:
    """The registered names: ``{"types": [...], "values": [...]}``."""
    return {"types": sorted(_TYPES), "values": sorted(_VALUES)}


def _fk_args(p) -> dict:
    return {"reward": p._r.reward, "lam": p.lam, "potential": p.kind, "start": p.start, "end": p.end,
            "every": p.every, "decode": p._r.decode, "pad_id": p._r.pad_id}


def _builtin() -> None:
    pairs = {
        "SMC": "smcdiff.engine:SMC",
        # kernel parts
        "UnmaskingKernel": "smcdiff.proposals.kernel:UnmaskingKernel",
        "Categorical": "smcdiff.proposals.tokens:Categorical",
        "GumbelMax": "smcdiff.proposals.tokens:GumbelMax",
        "Greedy": "smcdiff.proposals.tokens:Greedy",
        "TopK": "smcdiff.proposals.selectors:TopK",
        "CanvasTopK": "smcdiff.proposals.selectors:CanvasTopK",
        "RandomK": "smcdiff.proposals.selectors:RandomK",
        "Threshold": "smcdiff.proposals.selectors:Threshold",
        "FactorRule": "smcdiff.proposals.selectors:FactorRule",
        "EntropyBound": "smcdiff.proposals.selectors:EntropyBound",
        "PlackettLuce": "smcdiff.proposals.selectors:PlackettLuce",
        "Ancestral": "smcdiff.proposals.selectors:Ancestral",
        "EvenSplit": "smcdiff.proposals.schedules:EvenSplit",
        "FixedCounts": "smcdiff.proposals.schedules:FixedCounts",
        "PerStep": "smcdiff.proposals.schedules:PerStep",
        "AdaptiveSteps": "smcdiff.proposals.schedules:AdaptiveSteps",
        "DreamSchedule": "smcdiff.proposals.schedules:DreamSchedule",
        "AlphaSchedule": "smcdiff.proposals.schedules:AlphaSchedule",
        "Confidence": "smcdiff.proposals.scores:Confidence",
        "Margin": "smcdiff.proposals.scores:Margin",
        "NegEntropy": "smcdiff.proposals.scores:NegEntropy",
        "UniformRandom": "smcdiff.proposals.scores:UniformRandom",
        "TopProbability": "smcdiff.proposals.scores:TopProbability",
        "PolicyBernoulli": "smcdiff.proposals.learned:PolicyBernoulli",
        "PolicyPlackettLuce": "smcdiff.proposals.learned:PolicyPlackettLuce",
        "SuppressTokens": "smcdiff.proposals.transforms:SuppressTokens",
        "SuppressEOS": "smcdiff.proposals.transforms:SuppressEOS",
        "RewardTilt": "smcdiff.proposals.reward_tilt:RewardTilt",
        "ExpClip": "smcdiff.proposals.reward_tilt:ExpClip",
        "Affine": "smcdiff.proposals.reward_tilt:Affine",
        "Direct": "smcdiff.proposals.reward_tilt:Direct",
        # resampling policies and timings
        "AdaptiveResampling": "smcdiff.policies:AdaptiveResampling",
        "AlwaysResample": "smcdiff.policies:AlwaysResample",
        "NeverResample": "smcdiff.policies:NeverResample",
        "EveryStep": "smcdiff.policies:EveryStep",
        "AtBlockEnd": "smcdiff.policies:AtBlockEnd",
        "EveryKSteps": "smcdiff.policies:EveryKSteps",
        # potentials and their algebra
        "TrajectoryConfidence": "smcdiff.potentials.confidence:TrajectoryConfidence",
        "RewardPotential": "smcdiff.potentials.reward:RewardPotential",
        "ViolationPotential": "smcdiff.potentials.verifier:ViolationPotential",
        "ProductPotential": "smcdiff.potentials.base:ProductPotential",
        "PowerPotential": "smcdiff.potentials.base:PowerPotential",
        "TwistPotential": "smcdiff.potentials.base:TwistPotential",
        "Timed": "smcdiff.potentials.base:_Timed",
        # rewards
        "CallableReward": "smcdiff.rewards:CallableReward",
        "VerifierReward": "smcdiff.rewards:VerifierReward",
        "NormalizedReward": "smcdiff.rewards:NormalizedReward",
        "LogLikelihoodReward": "smcdiff.scoring:LogLikelihoodReward",
        "VaderReward": "smcdiff.scoring:VaderReward",
        "ProfanityReward": "smcdiff.scoring:ProfanityReward",
    }
    for n, q in pairs.items():
        register(n, q)
    register("FKSteering", "smcdiff.potentials.fk:FKSteering", args=_fk_args)

    def smollm2():
        from .scoring import CausalLMScorer

        return CausalLMScorer.smollm2()

    register("smollm2", smollm2, lazy=True)

    def sudoku_violations():
        from .tasks.sudoku import violations_ids

        return violations_ids

    register("sudoku.violations", sudoku_violations, lazy=True)


_builtin()


# ---------------------------------------------------------------------- to_spec
def _closest(word: str, options) -> str:
    m = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.5)
    return f" (did you mean {m[0]!r}?)" if m else ""


def _ref_name(v) -> str | None:
    r = getattr(v, "_spec_ref", None)
    if isinstance(r, str) and r in _VALUES:
        return r
    for name, val in _VALUES.items():
        if (not val.lazy or val.made) and val.obj is v:
            return name
    return None


def _init_params(cls) -> list[inspect.Parameter]:
    return [p for p in _init_params_fn(cls.__init__) if p.name != "self"]


def _component_args(name: str, v) -> dict:
    t = _TYPES[name]
    if t.args is not None:
        return dict(t.args(v))
    if hasattr(v, "spec_args") and callable(v.spec_args):
        return dict(v.spec_args())
    if dataclasses.is_dataclass(v):
        return {f.name: getattr(v, f.name) for f in dataclasses.fields(v) if f.init}
    out = {}
    for p in _init_params(type(v)):
        if not hasattr(v, p.name):
            raise SpecError("", f"cannot read argument {p.name!r} back from a {type(v).__name__}: give the class a "
                                f"spec_args() method or register it with args=...")
        out[p.name] = getattr(v, p.name)
    return out


def _encode(v, path: str):
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v)
    ref = _ref_name(v)
    if ref is not None:
        return {"ref": ref}
    if isinstance(v, (list, tuple)):
        return [_encode(x, f"{path}[{i}]") for i, x in enumerate(v)]
    q = f"{type(v).__module__}:{type(v).__qualname__}"
    name = _BY_QUALNAME.get(q)
    if name is None:
        what = getattr(v, "__name__", None) or type(v).__name__
        raise SpecError(path, f"cannot write {what!r} ({type(v).__name__}) into a spec: register its class with "
                              f"smcdiff.spec.register(name, cls) or the object itself with "
                              f"smcdiff.spec.register(name, obj)")
    try:
        args = _component_args(name, v)
    except SpecError as e:
        raise SpecError(path, str(e)) from None
    return {"type": name, **{k: _encode(a, f"{path}.{k}") for k, a in args.items()}}


def to_spec(smc) -> dict:
    """The spec of ``smc`` (an :class:`~smcdiff.engine.SMC`): ``{"smcdiff_spec": 1, "sampler": {...}}``.

    Raises :class:`SpecError` naming the path of any part that is not registered
    (e.g. a reward given as a bare lambda).
    """
    from .engine import SMC

    if not isinstance(smc, SMC):
        raise SpecError("", f"to_spec needs an smcdiff SMC; got {type(smc).__name__}")
    return {"smcdiff_spec": SCHEMA_VERSION, "sampler": _encode(smc, "sampler")}


# ---------------------------------------------------------------------- build
_SIMPLE = {"int", "float", "bool", "str", "None"}


def _annotation_tokens(ann) -> set[str] | None:
    if ann is inspect.Parameter.empty:
        return None
    s = ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))
    toks = {t.strip().strip("'\"") for t in s.replace("Optional[", "").replace("]", "").split("|")}
    return toks if toks <= _SIMPLE else None


def _check_type(value, ann, path: str) -> Any:
    toks = _annotation_tokens(ann)
    if toks is None or isinstance(value, dict):
        return value
    ok = (
        (value is None and "None" in toks)
        or (isinstance(value, bool) and "bool" in toks)
        or (isinstance(value, int) and not isinstance(value, bool) and ("int" in toks or "float" in toks))
        or (isinstance(value, float) and "float" in toks)
        or (isinstance(value, str) and "str" in toks)
    )
    if not ok:
        want = " or ".join(sorted("null" if t == "None" else t for t in toks))
        raise SpecError(path, f"expected {want}; got {value!r} ({type(value).__name__})")
    if isinstance(value, int) and not isinstance(value, bool) and "float" in toks and "int" not in toks:
        return float(value)
    if isinstance(value, float) and math.isnan(value):
        raise SpecError(path, "NaN is not a valid setting")
    return value


def _decode(node, path: str):
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [_decode(x, f"{path}[{i}]") for i, x in enumerate(node)]
    if not isinstance(node, Mapping):
        raise SpecError(path, f"expected a value, a list or a mapping; got {type(node).__name__}")
    for k in node:
        if not isinstance(k, str):
            raise SpecError(path, f"keys must be strings; got {k!r}")
    if "ref" in node:
        extra = sorted(set(node) - {"ref"})
        if extra:
            raise SpecError(f"{path}.{extra[0]}", "a {ref: NAME} node takes no other keys")
        name = node["ref"]
        if name not in _VALUES:
            raise SpecError(f"{path}.ref", f"unknown named value {name!r}{_closest(name, _VALUES)}; registered: "
                                           f"{', '.join(sorted(_VALUES)) or 'none'}")
        return _VALUES[name].get()
    if "recipe" in node:
        return _build_recipe(node, path)
    if "type" not in node:
        raise SpecError(path, f"a mapping needs a 'type' (a component), a 'ref' (a named value) or a 'recipe'; "
                              f"got keys {sorted(node)}{_closest(next(iter(node), ''), ['type', 'ref', 'recipe'])}")
    name = node["type"]
    if not isinstance(name, str) or name not in _TYPES:
        raise SpecError(f"{path}.type", f"unknown component {name!r}{_closest(name, _TYPES)}")
    cls = _TYPES[name].cls()
    return _bind_and_call(cls, {p.name: p for p in _init_params(cls)}, {k: v for k, v in node.items() if k != "type"},
                          path, path, f"argument of {name}", f"{name} needs the argument", f"{name}: ")


def _bind_and_call(fn, params: dict, given: Mapping, key_path: str, path: str, what: str, needs: str, prefix: str):
    """``fn(**given)`` after checking every key against ``params`` (name, annotation, required), each
    value decoded at ``key_path.<key>``; an error of ``fn`` itself is reported at ``path`` after ``prefix``."""
    kwargs = {}
    for k, v in given.items():
        if k not in params:
            valid = ", ".join(params) or "none"
            raise SpecError(f"{key_path}.{k}", f"unknown {what}{_closest(k, params)}; valid: {valid}")
        kwargs[k] = _check_type(_decode(v, f"{key_path}.{k}"), params[k].annotation, f"{key_path}.{k}")
    missing = [p for p, par in params.items() if par.default is inspect.Parameter.empty and p not in kwargs]
    if missing:
        raise SpecError(f"{key_path}.{missing[0]}", f"{needs} {missing[0]!r}")
    try:
        return fn(**kwargs)
    except SpecError:
        raise
    except (ConfigError, ValueError, TypeError) as e:
        raise SpecError(path, f"{prefix}{e}") from None


def _build_recipe(node: Mapping, path: str):
    from .recipes import RECIPES

    extra = sorted(set(node) - {"recipe", "options"})
    if extra:
        raise SpecError(f"{path}.{extra[0]}", f"a recipe node has only 'recipe' and 'options'"
                                              f"{_closest(extra[0], ['recipe', 'options'])}")
    name = node["recipe"]
    if not isinstance(name, str) or name not in RECIPES:
        raise SpecError(f"{path}.recipe", f"unknown recipe {name!r}{_closest(name, RECIPES)}; known: "
                                          f"{', '.join(sorted(RECIPES))}")
    opts = node.get("options") or {}
    if not isinstance(opts, Mapping):
        raise SpecError(f"{path}.options", f"expected a mapping of recipe options; got {type(opts).__name__}")
    return _bind_and_call(RECIPES[name], recipe_options(name), opts, f"{path}.options", path,
                          f"option of recipe {name}", f"recipe {name} needs the option", f"recipe {name}: ")


def build(spec: Mapping | str | Path):
    """The :class:`~smcdiff.engine.SMC` described by ``spec`` (a dict, or a ``.json`` / ``.yaml`` file path)."""
    from .engine import SMC

    if isinstance(spec, (str, Path)):
        spec = load(spec)
    if not isinstance(spec, Mapping):
        raise SpecError("", f"a spec must be a mapping; got {type(spec).__name__}")
    for k in spec:
        if k not in _TOP_KEYS:
            raise SpecError(str(k), f"unknown top-level key{_closest(k, _TOP_KEYS)}; a spec has "
                                    f"{', '.join(_TOP_KEYS)}")
    if "smcdiff_spec" not in spec:
        raise SpecError("smcdiff_spec", f"missing schema version (write smcdiff_spec: {SCHEMA_VERSION})")
    v = spec["smcdiff_spec"]
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= SCHEMA_VERSION:
        raise SpecError("smcdiff_spec", f"unsupported schema version {v!r}; this smcdiff reads 1..{SCHEMA_VERSION}")
    if "sampler" not in spec:
        raise SpecError("sampler", "missing the sampler")
    smc = _decode(spec["sampler"], "sampler")
    if not isinstance(smc, SMC):
        raise SpecError("sampler", f"must describe an SMC (type: SMC, or a recipe); got {type(smc).__name__}")
    return smc


def recipe_options(name: str) -> dict[str, inspect.Parameter]:
    """The options of recipe ``name``: ``{option: inspect.Parameter}`` (the flags of ``smcdiff generate``)."""
    from .recipes import RECIPES

    if name not in RECIPES:
        raise SpecError("recipe", f"unknown recipe {name!r}{_closest(name, RECIPES)}; known: {', '.join(sorted(RECIPES))}")
    return {p.name: p for p in _init_params_fn(RECIPES[name])}


def _init_params_fn(fn) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(fn).parameters.values()
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]


def _param_doc(p: inspect.Parameter) -> dict:
    ann = p.annotation
    d: dict[str, Any] = {"annotation": None if ann is inspect.Parameter.empty else
                         (ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann)))}
    if p.default is not inspect.Parameter.empty:
        try:
            d["default"] = _encode(p.default, p.name)
        except SpecError:
            d["default"] = repr(p.default)
    else:
        d["required"] = True
    return d


def schema() -> dict:
    """Every registered component and recipe with its arguments (annotation, default): the spec's schema."""
    from .recipes import RECIPES

    comps = {}
    for name, t in sorted(_TYPES.items()):
        cls = t.cls()
        doc = (inspect.getdoc(cls) or "").split("\n")[0]
        comps[name] = {"doc": doc, "args": {p.name: _param_doc(p) for p in _init_params(cls)}}
    recs = {n: {"doc": (inspect.getdoc(f) or "").split("\n")[0],
                "options": {p.name: _param_doc(p) for p in _init_params_fn(f)}} for n, f in sorted(RECIPES.items())}
    return {"smcdiff_spec": SCHEMA_VERSION, "components": comps, "recipes": recs, "values": sorted(_VALUES)}


# ---------------------------------------------------------------------- files
def _fmt(path: Path) -> str:
    s = path.suffix.lower()
    if s == ".json":
        return "json"
    if s in (".yaml", ".yml"):
        return "yaml"
    raise SpecError("", f"spec file {str(path)!r}: unknown format {s!r}; use .json, .yaml or .yml")


def load(path: str | Path) -> dict:
    """Read a spec file (``.json``, ``.yaml``, ``.yml``) into a dict (not yet built; see :func:`build`)."""
    p = Path(path)
    fmt = _fmt(p)
    if not p.exists():
        raise SpecError("", f"no spec file at {str(p)!r}")
    text = p.read_text()
    try:
        if fmt == "json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:  # parse errors of either format
        raise SpecError("", f"spec file {str(p)!r} is not valid {fmt.upper()}: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise SpecError("", f"spec file {str(p)!r} must hold a mapping; got {type(data).__name__}")
    return data


def dump(spec_or_smc, path: str | Path) -> Path:
    """Write a spec (or the spec of an ``SMC``) to ``path`` as JSON or YAML (by suffix)."""
    from .engine import SMC

    spec = to_spec(spec_or_smc) if isinstance(spec_or_smc, SMC) else spec_or_smc
    p = Path(path)
    fmt = _fmt(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        p.write_text(json.dumps(spec, indent=2) + "\n")
    else:
        import yaml

        p.write_text(yaml.safe_dump(spec, sort_keys=False))
    return p
