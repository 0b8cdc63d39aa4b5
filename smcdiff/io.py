"""Saving and loading SMC results without pickle: safetensors for tensors, JSON for the rest.

``save_result(result, path, meta=None)`` writes ``<path>`` (a ``.safetensors`` file;
the suffix is added when missing) holding every tensor of the result, with a JSON
header (``__metadata__``) that records the format version, the scalar fields, the
library version and ``meta`` (e.g. the sampler spec, the seeds, the model name). It
never executes code when loading (``torch.load`` with pickles is not involved).

``load_result(path) -> (result, meta)`` rebuilds an equal
:class:`~smcdiff.results.SMCResult`: every tensor bit for bit, the step records,
the genealogy, the extras and the weights.

Field handling is generic over the dataclasses, so fields added to
``SMCResult`` / ``StepRecord`` later are saved as long as they are tensors, ``None``,
``int``, ``float``, ``bool`` or ``str``; any other type is refused with an error
naming the field.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError

__all__ = ["save_result", "load_result", "FORMAT_VERSION", "result_to_dict"]

FORMAT_VERSION = 1
_SCALARS = (int, float, bool, str)


def _path(path: str | Path) -> Path:
    p = Path(path)
    return p if p.suffix == ".safetensors" else p.with_name(p.name + ".safetensors")


def _split(obj, prefix: str, tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> None:
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if isinstance(v, torch.Tensor):
            tensors[key] = v.detach().cpu().contiguous()
        elif v is None or isinstance(v, _SCALARS):
            scalars[key] = v
        else:
            raise ConfigError(f"cannot save field {key!r} of type {type(v).__name__} (tensors and plain scalars only)")


def save_result(result, path: str | Path, meta: dict | None = None) -> Path:
    """Write ``result`` to ``path`` (``.safetensors``); returns the path written. ``meta`` must be JSON-serialisable."""
    from safetensors.torch import save_file

    from . import __version__
    from .results import SMCResult

    if not isinstance(result, SMCResult):
        raise ConfigError(f"result must be an SMCResult; got {type(result).__name__}")
    try:
        meta_json = json.dumps(meta or {})
    except TypeError as e:
        raise ConfigError(f"meta must be JSON-serialisable: {e}") from None
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    special = {"weights", "records", "genealogy", "extras"}
    for f in dataclasses.fields(result):
        if f.name in special:
            continue
        v = getattr(result, f.name)
        if isinstance(v, torch.Tensor):
            tensors[f.name] = v.detach().cpu().contiguous()
        elif v is None or isinstance(v, _SCALARS):
            scalars[f.name] = v
        elif f.name == "timings" and isinstance(v, dict):
            scalars[f.name] = {k: x for k, x in v.items() if x is None or isinstance(x, _SCALARS)}
        else:
            raise ConfigError(f"cannot save SMCResult field {f.name!r} of type {type(v).__name__}")
    tensors["weights.log_w"] = result.weights.log_w.detach().cpu().contiguous()
    tensors["genealogy.ancestors"] = result.genealogy.ancestors.detach().cpu().contiguous()
    for k, v in result.extras.items():
        if not isinstance(v, torch.Tensor):
            raise ConfigError(f"cannot save extras[{k!r}] of type {type(v).__name__}")
        tensors[f"extras.{k}"] = v.detach().cpu().contiguous()
    for i, rec in enumerate(result.records):
        _split(rec, f"records.{i}.", tensors, scalars)
    header = {
        "format": "smcdiff-result", "format_version": str(FORMAT_VERSION), "smcdiff_version": __version__,
        "torch_version": torch.__version__, "n_records": str(len(result.records)),
        "scalars": json.dumps(scalars), "meta": meta_json,
    }
    p = _path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(p), metadata=header)
    return p


def load_result(path: str | Path):
    """``(SMCResult, meta)`` from a file written by :func:`save_result`."""
    from safetensors import safe_open

    from .results import Genealogy, SMCResult, StepRecord
    from .weights import Weights

    p = _path(path)
    if not p.exists():
        raise FileNotFoundError(f"no saved result at {p}")
    with safe_open(str(p), framework="pt") as f:
        header = f.metadata() or {}
        if header.get("format") != "smcdiff-result":
            raise ConfigError(f"{p} is not a saved smcdiff result (format {header.get('format')!r})")
        version = int(header.get("format_version", "0"))
        if version > FORMAT_VERSION:
            raise ConfigError(f"{p} has format version {version}; this smcdiff reads up to {FORMAT_VERSION}")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    scalars = json.loads(header["scalars"])
    n_rec = int(header["n_records"])
    records = []
    for i in range(n_rec):
        pre = f"records.{i}."
        kw = {}
        for fld in dataclasses.fields(StepRecord):
            key = pre + fld.name
            kw[fld.name] = tensors[key] if key in tensors else scalars.get(key)
        records.append(StepRecord(**kw))
    kw = {}
    for fld in dataclasses.fields(SMCResult):
        if fld.name == "weights":
            kw["weights"] = Weights(tensors["weights.log_w"])
        elif fld.name == "records":
            kw["records"] = records
        elif fld.name == "genealogy":
            kw["genealogy"] = Genealogy(tensors["genealogy.ancestors"])
        elif fld.name == "extras":
            kw["extras"] = {k[len("extras."):]: v for k, v in tensors.items() if k.startswith("extras.")}
        elif fld.name in tensors:
            kw[fld.name] = tensors[fld.name]
        elif fld.name in scalars:
            kw[fld.name] = scalars[fld.name]
    return SMCResult(**kw), json.loads(header["meta"])


def result_to_dict(result, decode=None) -> dict:
    """A JSON-ready summary: sequences, normalised weights, log Z, NFE, particle-forwards, reward calls,
    and, with ``decode(ids) -> str``, the generated texts (``texts[b][i]``)."""
    out: dict[str, Any] = {
        "sequences": result.sequences.tolist(),
        "normalized_weights": result.normalized_weights.tolist(),
        "log_Z": result.log_Z.tolist(),
        "nfe": result.nfe.tolist(),
        "ess": result.ess.tolist(),
    }
    for k in ("particle_forwards", "reward_calls", "dead"):
        v = getattr(result, k, None)
        if isinstance(v, torch.Tensor):
            out[k] = v.tolist()
    if decode is not None:
        b, n = result.sequences.shape[:2]
        out["texts"] = [[decode(result.filled(i, j)) for j in range(n)] for i in range(b)]
    return out
