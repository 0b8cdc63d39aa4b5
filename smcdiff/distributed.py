"""Data-parallel sampling over ``torch.distributed``: prompts sharded over ranks, results gathered.

Launched with ``torchrun`` (or ``accelerate launch``, which sets the same
environment: ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...), :func:`run` splits the
B prompts into contiguous shards, one per rank (sizes differ by at most one; a
rank may get none). Each prompt keeps its N particles on one rank, so resampling
stays local, and each prompt keeps the seed it has in a single-process run
(``row_seeds(seed, B)[b]`` for an integer seed, entry ``b`` of a list), whatever
the number of ranks. Since a prompt's trajectory does not depend on which other
prompts share its batch, the gathered :class:`~smcdiff.results.SMCResult` equals
the single-process result: the same tokens, weights, ``log Z``, commit steps,
per-step records and genealogy (shards that finish in fewer engine steps are
padded with idle steps, exactly what a finished prompt records in a shared run).

Without a process group (and without ``WORLD_SIZE > 1`` in the environment)
:func:`run` is ``smc.run``. Nothing here opens sockets or spawns processes
itself: :func:`init` calls ``torch.distributed.init_process_group`` with the
launcher's environment (``gloo`` on CPU, ``nccl`` on CUDA).

Numerical caveat: equality is bit for bit when the model's output for a row does
not depend on the other rows of its batch. That holds on CPU and for the tiny
models of the tests; large GPU matmuls may pick different kernels for different
batch sizes, as they would for a different ``max_rows`` in one process.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from .engine import SMC, make_generators, prepare_prompts, row_seeds
from .errors import ConfigError
from .results import Genealogy, SMCResult, StepRecord
from .weights import Weights

__all__ = ["init", "world", "is_launched", "shard_bounds", "run", "concat_results"]


def is_launched() -> bool:
    """True when a launcher (torchrun, accelerate) started this process as one of several ranks."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def init(backend: str | None = None) -> bool:
    """Initialise the default process group from the launcher's environment, if launched and not yet done.

    Returns True when a process group of more than one rank is active. ``backend``
    defaults to ``nccl`` when CUDA is available and ``gloo`` otherwise.
    """
    import torch.distributed as dist

    if not dist.is_available():
        return False
    if dist.is_initialized():
        return dist.get_world_size() > 1
    if not is_launched():
        return False
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl" and "LOCAL_RANK" in os.environ:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend=backend)
    return dist.get_world_size() > 1


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the active process group, or ``(0, 1)`` without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_bounds(n_prompts: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[lo, hi)``: the contiguous prompts of ``rank``; the first ``n_prompts % world_size`` ranks get one more."""
    base, extra = divmod(int(n_prompts), int(world_size))
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def _global_seeds(seed, n: int) -> list[int]:
    """Per-prompt integer seeds, the same on every rank (a ``None`` seed is drawn on rank 0 and broadcast)."""
    import torch.distributed as dist

    if seed is None:
        box = [int(np.random.SeedSequence().entropy) % (2**63)]
        dist.broadcast_object_list(box, src=0)
        seed = box[0]
    if isinstance(seed, torch.Generator) or (
        isinstance(seed, (list, tuple)) and any(isinstance(s, torch.Generator) for s in seed)
    ):
        raise ConfigError(
            "seed: torch.Generator objects cannot be shared between ranks; give an int >= 0 or one int per prompt"
        )
    if isinstance(seed, (list, tuple)):
        if len(seed) != n:
            raise ConfigError(f"seed: a list needs one entry per prompt ({n}); got {len(seed)}")
        make_generators(list(seed), n, "cpu")  # the library's seed rule: refuses floats, bools, negatives, ...
        return list(seed)
    return row_seeds(seed, n)


def run(
    smc: SMC,
    model,
    prompts: Tensor | Sequence[Sequence[int]],
    gen_length: int | None = None,
    seed: int | Sequence[int] | None = 0,
    *,
    attention_mask: Tensor | None = None,
    progress: bool = False,
) -> SMCResult:
    """``smc.run`` with the prompts sharded over the ranks of the process group; every rank gets the full result.

    Without an active group of more than one rank this is exactly
    ``smc.run(model, prompts, gen_length, seed, attention_mask=attention_mask)``.
    ``seed`` follows the library's seed rule, except that generators cannot be
    sent to other ranks (give integers).
    """
    import torch.distributed as dist

    rank, size = world()
    if size == 1:
        return smc.run(model, prompts, gen_length, seed, attention_mask=attention_mask, progress=progress)
    toks, am = prepare_prompts(prompts, None, getattr(model, "pad_id", None), int(model.mask_id), "cpu", attention_mask)
    n = toks.shape[0]
    seeds = _global_seeds(seed, n)
    lo, hi = shard_bounds(n, rank, size)
    part = None
    if hi > lo:  # every shard keeps the batch's width: attention over padding of another width rounds differently
        part = smc.run(model, toks[lo:hi], gen_length, seeds[lo:hi], progress=progress and rank == 0,
                       attention_mask=None if am is None else am[lo:hi])
        part = _to_cpu(part)
    parts: list = [None] * size
    dist.all_gather_object(parts, part)
    return concat_results([p for p in parts if p is not None], pad_id=getattr(model, "pad_id", None))


def _to_cpu(res: SMCResult) -> SMCResult:
    def cpu(x):
        if isinstance(x, Tensor):
            return x.cpu()
        if isinstance(x, Weights):
            return Weights(x.log_w.cpu())
        if isinstance(x, StepRecord):
            return StepRecord(**{k: cpu(getattr(x, k)) for k in x.__dataclass_fields__})
        if isinstance(x, Genealogy):
            return Genealogy(x.ancestors.cpu())
        if isinstance(x, dict):
            return {k: cpu(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(cpu(v) for v in x)
        return x

    return SMCResult(**{k: cpu(getattr(res, k)) for k in res.__dataclass_fields__})


def _left_pad(x: Tensor, width: int, value) -> Tensor:
    short = width - x.shape[-1]
    if short == 0:
        return x
    pad = torch.full(x.shape[:-1] + (short,), value, dtype=x.dtype, device=x.device)
    return torch.cat([pad, x], dim=-1)


def _idle_record(step: int, last_weights: Weights, like: StepRecord) -> StepRecord:
    b, n = last_weights.shape
    zl = torch.zeros(b, dtype=torch.long)
    ess = last_weights.ess
    return StepRecord(
        step=step,
        active=torch.zeros(b, dtype=torch.bool),
        log_weight_increment=torch.zeros(b, n, dtype=torch.float64),
        ess_before=ess,
        ess_after=ess,
        resampled=torch.zeros(b, dtype=torch.bool),
        ancestors=torch.arange(n).expand(b, n).clone(),
        log_Z_increment=torch.zeros(b, dtype=torch.float64),
        block_end=torch.zeros(b, dtype=torch.bool),
        nfe=zl.clone(),
        particle_forwards=None if like.particle_forwards is None else zl.clone(),
        reward_calls=None if like.reward_calls is None else zl.clone(),
        reward_texts=None if like.reward_texts is None else zl.clone(),
    )


def _cat(xs: list, what: str) -> Tensor | None:
    if all(x is None for x in xs):
        return None
    if any(x is None for x in xs):
        raise ConfigError(f"cannot merge results: {what} is missing from some shards")
    return torch.cat(xs, dim=0)


def concat_results(parts: Sequence[SMCResult], pad_id: int | None = None) -> SMCResult:
    """One result for the prompts of ``parts`` in order (prefix generation; shards of one sampler).

    Shards with shorter prompts are left-padded to the longest (``pad_id`` tokens,
    commit step -1, log-probability 0, as padding is in a single batch); shards that
    took fewer engine steps get idle steps (inactive, zero increments, identity
    ancestors). The result equals the single-process run over all prompts.
    """
    parts = list(parts)
    if not parts:
        raise ConfigError("concat_results needs at least one result")
    if any(p.is_template for p in parts):
        raise ConfigError("concat_results merges prefix generations only (results of SMC.run, not SMC.infill)")
    if len({p.best_by for p in parts}) != 1 or len({p.sequences.shape[1] for p in parts}) != 1:
        raise ConfigError("concat_results: the shards come from different samplers (output rule or N differ)")
    if len(parts) == 1:
        return parts[0]
    gen = {p.sequences.shape[-1] - p.prompt_length for p in parts}
    if len(gen) != 1:
        raise ConfigError(f"concat_results: the shards generated different lengths {sorted(gen)}")
    width = max(p.sequences.shape[-1] for p in parts)
    p_len = max(p.prompt_length for p in parts)
    if pad_id is None and any(p.sequences.shape[-1] != width for p in parts):
        raise ConfigError("concat_results: shards of different prompt lengths need the model's pad_id")
    t_max = max(len(p.records) for p in parts)
    records: list[StepRecord] = []
    for t in range(t_max):
        per = [
            p.records[t] if t < len(p.records) else _idle_record(t + 1, p.weights, p.records[-1])
            for p in parts
        ]
        fields = {}
        for k in StepRecord.__dataclass_fields__:
            if k == "step":
                fields[k] = t + 1
            else:
                fields[k] = _cat([getattr(r, k) for r in per], f"records[{t}].{k}")
        records.append(StepRecord(**fields))
    n = parts[0].sequences.shape[1]
    anc = []
    for p in parts:
        a = p.genealogy.ancestors
        if a.shape[0] < t_max:
            b = a.shape[1]
            ident = torch.arange(n).expand(t_max - a.shape[0], b, n)
            a = torch.cat([a, ident.to(a.dtype)], dim=0)
        anc.append(a)
    extras = {}
    for k in parts[0].extras:
        vals = [p.extras.get(k) for p in parts]
        if all(isinstance(v, Tensor) for v in vals):
            extras[k] = torch.cat(vals, dim=0)
    return SMCResult(
        sequences=torch.cat([_left_pad(p.sequences, width, pad_id) for p in parts], dim=0),
        weights=Weights(torch.cat([p.weights.log_w for p in parts], dim=0)),
        log_Z=torch.cat([p.log_Z for p in parts]),
        records=records,
        genealogy=Genealogy(torch.cat(anc, dim=1)),
        prompt_length=p_len,
        committed_logp=torch.cat([_left_pad(p.committed_logp, width, 0.0) for p in parts], dim=0),
        commit_step=torch.cat([_left_pad(p.commit_step, width, -1) for p in parts], dim=0),
        nfe=torch.cat([p.nfe for p in parts]),
        dead=torch.cat([p.dead for p in parts]),
        extras=extras,
        free=None,
        particle_forwards=_cat([p.particle_forwards for p in parts], "particle_forwards"),
        reward_calls=_cat([p.reward_calls for p in parts], "reward_calls"),
        reward_texts=_cat([p.reward_texts for p in parts], "reward_texts"),
        best_by=parts[0].best_by,
        timings=_merged_timings(parts),
    )


def _merged_timings(parts: Sequence[SMCResult]) -> dict:
    """The slowest shard's wall time and the largest peak and estimate (each rank has its own device)."""
    out: dict = {"shards": len(parts)}
    for key in ("wall_s", "peak_memory_bytes", "memory_estimate_bytes"):
        vals = [p.timings.get(key) for p in parts if p.timings.get(key) is not None]
        if vals:
            out[key] = max(vals)
    srcs = {p.timings.get("peak_memory_source") for p in parts} - {None}
    if srcs:
        out["peak_memory_source"] = ", ".join(sorted(srcs))
    return out
