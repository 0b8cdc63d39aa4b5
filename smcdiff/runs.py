"""Reproducible runs: a record with everything needed to replay a run exactly, and its execution.

A run record is a JSON-ready dict::

    {"record_version": 1,
     "spec": <smcdiff.spec.to_spec(smc)>,
     "model": {"name": "sudoku" | "/path/to/checkpoint", "family": null | "llada" | "dream" | "mlm",
               "dtype": null | "float32" | ...},
     "mode": "run" | "infill",
     "inputs": [[token ids], ...],          # prompts (run) or templates (infill), one list per row
     "gen_length": 64 | null,               # run only
     "seed": 0,                             # an int >= 0 (smcdiff.engine.SEED_RULE)
     "device": "cpu",
     "versions": {"smcdiff": ..., "torch": ..., "transformers": ..., "python": ...},
     "wall_s": 1.23}                        # added by execute()

:func:`execute` runs a record (loading the model by name or path unless one is
given); :func:`replay` re-executes the record stored in a saved result and returns
both, so ``torch.equal(saved.sequences, replayed.sequences)`` checks the replay.
The same seed, spec, model and inputs give bit-identical sequences on the same
device and library versions.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from . import distributed
from .errors import ConfigError, check_int

__all__ = ["RECORD_VERSION", "make_record", "execute", "replay", "load_model"]

RECORD_VERSION = 1
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def _versions() -> dict[str, str]:
    from . import __version__

    out = {"smcdiff": __version__, "torch": torch.__version__, "python": platform.python_version()}
    try:
        import transformers

        out["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    return out


def load_model(name: str, family: str | None = None, device: str | None = None, dtype: str | None = None):
    """A Denoiser from a registered name or a checkpoint directory (see :func:`smcdiff.models.load`)."""
    from .models import load

    if dtype is not None and dtype not in _DTYPES:
        raise ConfigError(f"dtype must be one of {sorted(_DTYPES)} or None; got {dtype!r}")
    return load(name, device=device, dtype=None if dtype is None else _DTYPES[dtype], family=family)


def make_record(smc, model: str, inputs: Sequence[Sequence[int]], seed: int, *, mode: str = "run",
                gen_length: int | None = None, family: str | None = None, dtype: str | None = None,
                device: str = "cpu") -> dict[str, Any]:
    """The record of running ``smc`` on ``inputs`` with ``seed`` (see the module docstring)."""
    from .spec import to_spec

    if mode not in ("run", "infill"):
        raise ConfigError(f"mode must be 'run' or 'infill'; got {mode!r}")
    seed = check_int("seed", seed, minimum=0)
    rows = [[int(t) for t in row] for row in inputs]
    return {
        "record_version": RECORD_VERSION,
        "spec": to_spec(smc),
        "model": {"name": str(model), "family": family, "dtype": dtype},
        "mode": mode,
        "inputs": rows,
        "gen_length": None if gen_length is None else check_int("gen_length", gen_length, minimum=1),
        "seed": seed,
        "device": str(device),
        "versions": _versions(),
    }


def execute(record: dict[str, Any], model=None, progress: bool = False):
    """Run a record; returns the :class:`~smcdiff.results.SMCResult` (``record["wall_s"]`` is set).

    ``model``: the Denoiser to use (default: loaded from ``record["model"]``).
    """
    from .spec import build

    if not isinstance(record, dict) or record.get("record_version") != RECORD_VERSION:
        raise ConfigError(f"not a run record of version {RECORD_VERSION}: "
                          f"{record.get('record_version') if isinstance(record, dict) else type(record).__name__!r}")
    smc = build(record["spec"])
    if model is None:
        m = record["model"]
        model = load_model(m["name"], m.get("family"), record.get("device"), m.get("dtype"))
    t0 = time.perf_counter()
    if record["mode"] == "infill":
        if distributed.world()[1] > 1:
            raise ConfigError("infilling is not sharded over ranks yet (distributed runs cover prefix generation); "
                              "run templates in a single process")
        result = smc.infill(model, record["inputs"], seed=record["seed"], progress=progress)
    else:  # sharded over the ranks when launched with torchrun; smc.run otherwise
        result = distributed.run(smc, model, record["inputs"], record.get("gen_length"), seed=record["seed"],
                                 progress=progress)
    record["wall_s"] = round(time.perf_counter() - t0, 4)
    return result


def replay(path: str | Path, model=None, progress: bool = False):
    """``(saved, replayed)``: the result saved at ``path`` and the re-execution of its run record."""
    from .io import load_result

    saved, meta = load_result(path)
    record = meta.get("run") if isinstance(meta, dict) else None
    if record is None:
        raise ConfigError(f"{path} holds no run record (saved without meta={{'run': ...}}); it cannot be replayed")
    return saved, execute(dict(record), model=model, progress=progress)
