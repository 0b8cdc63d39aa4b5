"""Models that load offline by name: ``smcdiff.models.load(name)`` and ``available()``.

Each entry names its weights (package data under ``smcdiff/weights``), the
optional packages it needs and a loader. ``load`` returns a ready
:class:`~smcdiff.models.Denoiser` that carries its tokenizer (``encode``,
``decode``). Nothing here touches the network.

To add a model, add a :class:`ModelSpec` to :data:`REGISTRY`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import ConfigError

__all__ = ["ModelSpec", "REGISTRY", "load", "available", "weights_path"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    loader: Callable[..., Any]  # loader(spec, device, dtype) -> Denoiser
    files: tuple[str, ...] = ()  # package-data files under smcdiff/weights
    requires: tuple[str, ...] = ()  # importable module names of optional packages
    extra: str | None = None  # pip extra that installs them, e.g. "bio"
    meta: dict = field(default_factory=dict)
    external: Callable[[], list[Path]] | None = None  # weight files that an optional package provides


def weights_path(filename: str) -> Path:
    """Filesystem path of a shipped weights file (``smcdiff/weights/<filename>``)."""
    res = resources.files("smcdiff") / "weights" / filename
    return Path(str(res))


def _load_sudoku(spec: ModelSpec, device, dtype):
    from .sudoku_net import SudokuDenoiser

    return SudokuDenoiser.from_pretrained(weights_path("sudoku.safetensors"), device=device, dtype=dtype)


def _load_text_mdlm(spec: ModelSpec, device, dtype):
    from .text_mdlm import TextMDLM

    return TextMDLM.from_files(weights_path(""), "text-mdlm", device=device, dtype=dtype)


def _load_antiberty(spec: ModelSpec, device, dtype):
    from .antiberty import AntiBERTy

    return AntiBERTy.load(device=device, dtype=dtype)


def _antiberty_files() -> list[Path]:
    from .antiberty import antiberty_dir

    return [antiberty_dir() / "AntiBERTy_md_smooth" / "pytorch_model.bin"]


def _load_toy(spec: ModelSpec, device, dtype):
    from .toy import ToyDenoiser

    return ToyDenoiser.random(4, 6, seed=0)


REGISTRY: dict[str, ModelSpec] = {
    "toy": ModelSpec(
        name="toy",
        description="exact toy model: a random joint table over 4 tokens x 6 positions (Dirichlet(1), seed 0), "
                    "mask id 4, no tokenizer (give token ids); every quantity is enumerable",
        loader=_load_toy,
    ),
    "sudoku": ModelSpec(
        name="sudoku",
        description="9x9 Sudoku masked-diffusion denoiser (peer-attention transformer, 81 cell tokens, mask id 9)",
        loader=_load_sudoku,
        files=("sudoku.safetensors", "sudoku.json"),
    ),
    "text-mdlm": ModelSpec(
        name="text-mdlm",
        description="English text MDLM (KJV Bible + Shakespeare; 3.3M parameters, 4,096-token byte-level BPE, "
                    "128-token windows, SUBS, log-linear schedule)",
        loader=_load_text_mdlm,
        files=("text-mdlm.safetensors", "text-mdlm.json", "text-mdlm.tokenizer.json"),
    ),
    "antiberty": ModelSpec(
        name="antiberty",
        description="AntiBERTy antibody masked LM (BERT, 25.8M parameters, 20 amino acids; weights from the "
                    "antiberty==0.1.3 package)",
        loader=_load_antiberty,
        requires=("antiberty",),
        extra="bio",
        external=_antiberty_files,
    ),
}


def _installed(spec: ModelSpec) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in spec.requires)


def available() -> list[dict[str, Any]]:
    """One row per registered model: ``name``, ``description``, ``size_bytes`` (its weight files: shipped
    ones, or those of the optional package when installed; 0 if absent), ``files_present``, ``requires``,
    ``extra`` (the pip extra that installs them) and ``installed`` (optional packages importable)."""
    rows = []
    for spec in REGISTRY.values():
        paths = [weights_path(f) for f in spec.files]
        if spec.external is not None and _installed(spec):
            try:
                paths += spec.external()
            except ConfigError:
                paths.append(Path("/nonexistent"))
        present = all(p.exists() for p in paths) and (spec.external is None or _installed(spec))
        rows.append({
            "name": spec.name,
            "description": spec.description,
            "size_bytes": sum(p.stat().st_size for p in paths if p.exists()),
            "files_present": present,
            "requires": list(spec.requires),
            "extra": spec.extra,
            "installed": _installed(spec),
        })
    return rows


FAMILIES = ("llada", "dream", "mlm")


def load(name: str, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
         family: str | None = None):
    """A ready Denoiser (eval mode, offline): a registered model by ``name``, or a local checkpoint directory.

    For a directory (a transformers ``save_pretrained`` checkpoint), ``family`` says
    which adapter wraps it: ``"llada"`` (:class:`~smcdiff.models.hf.LLaDADenoiser`),
    ``"dream"`` (:class:`~smcdiff.models.hf.DreamDenoiser`) or ``"mlm"`` (a BERT-style
    masked LM, :class:`~smcdiff.models.hf.MaskedLMDenoiser`). ``dtype`` casts the weights.
    """
    if not isinstance(name, (str, Path)):
        raise ConfigError(f"model must be a registered name or a checkpoint directory; got {type(name).__name__}")
    if family is not None and family not in FAMILIES:
        raise ConfigError(f"family must be one of {FAMILIES}; got {family!r}")
    spec = REGISTRY.get(str(name))
    if spec is None:
        path = Path(name)
        if path.is_dir():
            if family is None:
                raise ConfigError(f"model {str(name)!r} is a checkpoint directory: say which adapter wraps it with "
                                  f"family= (one of {FAMILIES})")
            from .hf import DreamDenoiser, LLaDADenoiser, MaskedLMDenoiser

            cls = {"llada": LLaDADenoiser, "dream": DreamDenoiser, "mlm": MaskedLMDenoiser}[family]
            return cls.from_pretrained(str(path), device=device, dtype=dtype)
        raise ConfigError(f"unknown model {str(name)!r}: neither a registered name ({sorted(REGISTRY)}) nor a "
                          f"checkpoint directory")
    if family is not None:
        raise ConfigError(f"family applies to checkpoint directories, not to the registered model {name!r}")
    if not _installed(spec):
        missing = [m for m in spec.requires if importlib.util.find_spec(m) is None]
        hint = f" (pip install 'smcdiff[{spec.extra}]')" if spec.extra else ""
        raise ConfigError(f"model {name!r} needs the optional package(s) {missing}{hint}")
    for f in spec.files:
        if not weights_path(f).exists():
            raise ConfigError(f"model {name!r}: shipped file smcdiff/weights/{f} is missing from this install")
    return spec.loader(spec, device, dtype)
