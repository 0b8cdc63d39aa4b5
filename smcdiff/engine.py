"""The SMC engine: a functional ``init`` / ``step`` core and a ``run`` loop.

Model
-----
B prompts, N particles each, all advanced as one batch. At every step each
particle of an active prompt moves with the proposal ``q`` and its log weight is
incremented by

    log G_t                             (the potentials)
    + log K_t(choice) - log q_t(choice) (only if q is not the model kernel K).

After reweighting, the resampling policy may resample a prompt; its weights are
then reset to zero (uniform). The running estimate of the normalising constant is

    log Z_hat = sum_{resampling events r} log mean_i w_i^(r)  +  log mean_i w_i^(now),

the standard estimator under adaptive resampling: ``E[Z_hat] = Z`` for every
N, resampling scheme and policy (checked numerically in
:mod:`smcdiff.theory_checks`). ``Z`` is the mass of the unnormalised target
``gamma(x_{0:T}) = prod_t K_t * prod_t G_t``.

Randomness
----------
Prompt ``b`` uses only its own ``torch.Generator``; an integer ``seed`` gives row
``b`` the seed ``SeedSequence(seed, spawn_key=(b,))``, so a prompt run inside a
batch of B gives the same result as that prompt run alone with ``seed=[row
seed]`` (see :func:`row_seeds`). Every seed goes through :func:`make_generators`,
which applies the one rule of :data:`SEED_RULE` (int >= 0, None for fresh entropy,
B ints or B distinct generators; everything else is refused).
"""

from __future__ import annotations

import inspect
import logging
import numbers
import time
import warnings
from dataclasses import dataclass, replace
from typing import Literal, Sequence

import numpy as np
import torch
from torch import Tensor

from .errors import AllParticlesDeadError, ConfigError, check_int
from . import memory
from .memory import MemoryEstimate
from .models.base import output_device, validate_denoiser
from .policies import AdaptiveResampling, CheckEvent, ResamplingPolicy
from .potentials.base import Potential, apply_potentials
from .proposals.base import Proposal, ProposalStep
from .resampling import resample
from .results import Genealogy, SMCResult, StepRecord
from .rewards import reward_tally
from .state import Canvas, ParticleState, template_layout
from .weights import Weights

_log = logging.getLogger("smcdiff")

__all__ = ["SMC", "SMCState", "SEED_RULE", "row_seeds", "make_generators", "prepare_prompts", "prepare_templates"]


SEED_RULE = """Seeds (``seed=`` of ``SMC.run``, ``SMC.infill``, ``SMC.init``, ``SMC.init_template`` and
``SMCResult.sample``) follow one rule:

* an ``int >= 0`` (Python or NumPy integer): prompt ``b`` gets the seed
  ``SeedSequence(seed, spawn_key=(b,))`` (:func:`row_seeds`), so a prompt's stream does
  not depend on the batch size;
* ``None``: fresh, unpredictable entropy from the operating system (not reproducible),
  spread over the prompts by the same rule as an int;
* a list (tuple, 1-D integer array or tensor) of exactly B entries, one per prompt,
  each an ``int`` in ``[0, 2**64)`` (used directly as that prompt's
  ``torch.Generator.manual_seed``) or a ``torch.Generator`` on the model's device type,
  never the same generator object twice (two prompts would share one stream and
  depend on each other);
* a single ``torch.Generator`` only for one prompt (B = 1).

Everything else is refused with :class:`~smcdiff.errors.ConfigError`: negative integers,
``bool``, floats (``1.5`` and also ``2.0``), strings and bytes (never read as a list of
characters), nested lists, and a list whose length is not B.
"""

_SEED_MAX = 2**64


def row_seeds(seed: int, batch_size: int) -> list[int]:
    """Per-prompt seeds derived from one integer: row ``b`` gets ``SeedSequence(seed, spawn_key=(b,))``.

    The seed of row ``b`` does not depend on ``batch_size``. ``seed`` must be an integer >= 0.
    """
    seed = check_int("seed", seed, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=0)
    return [
        int(np.random.SeedSequence(seed, spawn_key=(b,)).generate_state(1, np.uint64)[0] >> 1)
        for b in range(batch_size)
    ]


def _generator_ok(g: torch.Generator, device: torch.device | str, where: str) -> torch.Generator:
    want = torch.device(device).type
    if g.device.type != want:
        raise ConfigError(
            f"{where} is a torch.Generator on device {g.device.type!r} but the model runs on {want!r}; "
            f"create it with torch.Generator(device={want!r})"
        )
    return g


def make_generators(
    seed: int | None | Sequence[int] | Sequence[torch.Generator] | torch.Generator,
    batch_size: int,
    device: torch.device | str,
) -> list[torch.Generator]:
    """One ``torch.Generator`` per prompt from ``seed``, following :data:`SEED_RULE`.

    The single helper that every seed of the library goes through: an ``int >= 0``
    (per-prompt seeds via :func:`row_seeds`), ``None`` (fresh OS entropy, not
    reproducible), B ints in ``[0, 2**64)`` or B distinct generators, or one generator
    for a single prompt. Anything else raises :class:`~smcdiff.errors.ConfigError`
    naming ``seed``, the value and what is accepted.
    """
    if seed is None:
        return make_generators(int(np.random.SeedSequence().entropy), batch_size, device)
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        if int(seed) < 0:
            raise ConfigError(
                f"seed must be an integer >= 0, None (fresh entropy), or a list of one seed or torch.Generator "
                f"per prompt; got {int(seed)}"
            )
        seeds: list = row_seeds(int(seed), batch_size)
    elif isinstance(seed, torch.Generator):
        if batch_size != 1:
            raise ConfigError(
                f"seed is a single torch.Generator but there are {batch_size} prompts; one generator cannot be "
                f"shared by several prompts (their streams would depend on each other): give a list of "
                f"{batch_size} generators or an int"
            )
        return [_generator_ok(seed, device, "seed")]
    elif isinstance(seed, (str, bytes, float, bool, dict, set)) or not (
        isinstance(seed, (Sequence, np.ndarray)) or (isinstance(seed, Tensor) and seed.dim() == 1)
    ):
        raise ConfigError(
            f"seed must be an integer >= 0, None (fresh entropy), a list of one seed or torch.Generator per "
            f"prompt, or a single generator for one prompt; got {seed!r} ({type(seed).__name__})"
        )
    else:
        seeds = seed.tolist() if isinstance(seed, (Tensor, np.ndarray)) else list(seed)
        if len(seeds) != batch_size:
            raise ConfigError(
                f"seed: got {len(seeds)} seeds/generators for {batch_size} prompts; give exactly one per prompt"
            )
    gens: list[torch.Generator] = []
    seen: dict[int, int] = {}
    for i, s in enumerate(seeds):
        if isinstance(s, torch.Generator):
            if id(s) in seen:
                raise ConfigError(
                    f"seed[{seen[id(s)]}] and seed[{i}] are the same torch.Generator object; each prompt needs its "
                    f"own generator (a shared one makes a prompt's result depend on the others)"
                )
            seen[id(s)] = i
            gens.append(_generator_ok(s, device, f"seed[{i}]"))
            continue
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or not 0 <= int(s) < _SEED_MAX:
            raise ConfigError(
                f"seed[{i}] must be an integer in [0, 2**64) or a torch.Generator; got {s!r} ({type(s).__name__})"
            )
        g = torch.Generator(device=device)
        g.manual_seed(int(s))
        gens.append(g)
    return gens


def _check_attention_mask(attention_mask, shape: tuple, what: str) -> Tensor:
    """A user attention mask as a bool tensor of ``shape`` (True = real token)."""
    am = torch.as_tensor(attention_mask)
    if tuple(am.shape) != tuple(shape):
        raise ConfigError(f"attention_mask must have the shape of {what}, {tuple(shape)}; got {tuple(am.shape)}")
    if am.dtype != torch.bool:
        if am.dtype.is_floating_point or am.dtype.is_complex or not bool(((am == 0) | (am == 1)).all()):
            raise ConfigError(
                f"attention_mask must be bool or hold only 0/1 integers (1 = real token); got dtype {am.dtype}"
            )
        am = am == 1
    return am


def _token_rows(rows, name: str) -> list[list[int]]:
    """A list of token-id lists (``prompts`` or ``templates``) as Python ints, refusing anything else by name.

    Refused: a string or bytes, a flat list of ids (a single prompt: wrap it), rows that
    are not sequences, and entries that are not integers (``1.5`` or ``2.0`` are not token
    ids and are never truncated; ``bool`` neither).
    """
    if isinstance(rows, (str, bytes)) or not isinstance(rows, (Sequence, np.ndarray)):
        raise ConfigError(
            f"{name} must be a [B, L] integer tensor or a list of token-id lists; got {type(rows).__name__}"
            + (f" {rows!r}" if isinstance(rows, (str, bytes)) else "")
            + ("; tokenize text first" if isinstance(rows, (str, bytes)) else "")
        )
    rows = list(rows)
    if rows and all(isinstance(r, numbers.Number) or (isinstance(r, Tensor) and r.dim() == 0) for r in rows):
        raise ConfigError(
            f"{name} must be a list of token-id lists (one per row); got a flat list {rows[:8]!r}"
            f"{'...' if len(rows) > 8 else ''}; wrap a single row in a list: {name}=[[...]]"
        )
    out = []
    for i, r in enumerate(rows):
        if isinstance(r, Tensor):
            if r.dim() != 1:
                raise ConfigError(f"{name}[{i}] must be a 1-D list of token ids; got a tensor of shape {tuple(r.shape)}")
            if r.dtype.is_floating_point or r.dtype.is_complex or r.dtype == torch.bool:
                raise ConfigError(f"{name}[{i}] must hold integer token ids; got a tensor of dtype {r.dtype}")
            r = r.tolist()
        elif isinstance(r, (str, bytes)) or not isinstance(r, (Sequence, np.ndarray)):
            raise ConfigError(f"{name}[{i}] must be a list of token ids; got {type(r).__name__} {r!r}")
        row = []
        for j, x in enumerate(r.tolist() if isinstance(r, np.ndarray) else r):
            if isinstance(x, bool) or not isinstance(x, numbers.Integral):
                raise ConfigError(
                    f"{name} must hold integer token ids; {name}[{i}][{j}] is {x!r} ({type(x).__name__}), which is "
                    f"never rounded or truncated to an id"
                )
            row.append(int(x))
        out.append(row)
    return out


def _check_device(t: Tensor, name: str) -> None:
    """Refuse a tensor on a device that holds no data (``meta``) or that this machine cannot use."""
    if t.device.type == "meta":
        raise ConfigError(f"{name} is on the 'meta' device, which holds no data; give real token ids (e.g. on 'cpu')")
    if t.device.type == "cuda" and not torch.cuda.is_available():  # pragma: no cover - needs a broken CUDA setup
        raise ConfigError(f"{name} is on {t.device} but CUDA is not available here")


def _usable_device(device, what: str) -> torch.device:
    """``device`` as a :class:`torch.device`, checked to hold tensors (one empty allocation)."""
    try:
        dev = torch.device(device)
        if dev.type == "meta":
            raise RuntimeError("the meta device holds no data")
        torch.empty(0, device=dev)
    except (RuntimeError, AssertionError, TypeError, ValueError) as e:
        raise ConfigError(f"{what} {device!r} cannot be used on this machine ({type(e).__name__}: {e})") from e
    return dev


def _free_memory(device: torch.device) -> int | None:
    """Bytes that can still be allocated on ``device`` (None when it cannot be told)."""
    try:
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            return int(free) + int(torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
        if device.type == "cpu":
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
    except (OSError, RuntimeError, ValueError):  # pragma: no cover - platform without the information
        return None
    return None


def prepare_prompts(
    prompts: Tensor | Sequence[Sequence[int]] | None,
    batch_size: int | None,
    pad_id: int | None,
    mask_id: int,
    device: torch.device | str,
    attention_mask: Tensor | None = None,
    width: int | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Left-pad prompts to ``[B, P]``; return ``(tokens, attention_mask or None)``.

    A prompt tensor with an ``attention_mask`` (False on padding, on either side)
    gives its unpadded rows left-padded to the tensor's width. Lists are padded
    to the longest row, or to ``width`` if that is larger.
    """
    if prompts is None:
        if attention_mask is not None:
            raise ConfigError("attention_mask was given without prompts")
        if batch_size is None:
            raise ConfigError("without prompts, give batch_size >= 1 (the number of unconditional rows)")
        batch_size = check_int("batch_size", batch_size, minimum=1)
        return torch.zeros(batch_size, 0, dtype=torch.long, device=device), None
    if isinstance(prompts, Tensor):
        if prompts.dim() == 1:
            raise ConfigError(
                f"prompts must be a [B, P] tensor (or a list of token lists); got a 1-D tensor of shape "
                f"{tuple(prompts.shape)}; use prompts[None] for a single prompt"
            )
        if prompts.dim() != 2:
            raise ConfigError(f"prompts must have shape [B, P]; got {tuple(prompts.shape)}")
        if prompts.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ConfigError(f"prompts must hold integer token ids; got dtype {prompts.dtype}")
        _check_device(prompts, "prompts")
        toks = prompts.to(device=device, dtype=torch.long)
        am = None
        if attention_mask is not None:
            keep = _check_attention_mask(attention_mask, toks.shape, "prompts")
            # the same left-padded batch as the unpadded lists: pads are dropped wherever the user put them
            return prepare_prompts(
                [row[k].tolist() for row, k in zip(toks.cpu(), keep.cpu())], batch_size, pad_id, mask_id, device,
                width=toks.shape[1],
            )
        if pad_id is not None and toks.shape[1] > 0 and bool((toks[:, 0] == int(pad_id)).any()):
            rows = torch.nonzero(toks[:, 0] == int(pad_id)).flatten().tolist()
            warnings.warn(
                f"prompt row(s) {rows[:8]} start with the model's pad id {int(pad_id)} but no attention_mask was "
                f"given: the pads are treated as real tokens (attended, shifting positions). Pass "
                f"attention_mask= (False on padding) or a list of unpadded token lists.",
                UserWarning,
                stacklevel=3,
            )
    else:
        if attention_mask is not None:
            raise ConfigError("attention_mask is only for prompt tensors; a list of token lists is padded by smcdiff")
        rows = _token_rows(prompts, "prompts")
        if not rows:
            raise ConfigError("prompts is empty; give at least one prompt")
        p = max(max(len(r) for r in rows), int(width or 0))
        if any(len(r) != p for r in rows):
            if pad_id is None:
                raise ConfigError(
                    "prompts have different lengths and the model declares no pad_id; pad them yourself or "
                    "use a model adapter with a pad token"
                )
            if int(pad_id) == int(mask_id):
                raise ConfigError(f"pad_id ({pad_id}) must differ from mask_id ({mask_id})")
        toks = torch.full((len(rows), p), int(pad_id) if pad_id is not None else 0, dtype=torch.long)
        amask = torch.zeros(len(rows), p, dtype=torch.bool)
        for i, r in enumerate(rows):
            if r:
                toks[i, p - len(r) :] = torch.tensor(r, dtype=torch.long)
                amask[i, p - len(r) :] = True
        toks = toks.to(device)
        am = amask.to(device) if not bool(amask.all()) else None
    if batch_size is not None and check_int("batch_size", batch_size, minimum=1) != toks.shape[0]:
        raise ConfigError(f"batch_size={batch_size} but {toks.shape[0]} prompts were given")
    return toks, am


def prepare_templates(
    templates: Tensor | Sequence[Sequence[int]],
    pad_id: int | None,
    mask_id: int,
    vocab_upper: int,
    device: torch.device | str,
    attention_mask=None,
) -> tuple[Tensor, Tensor | None]:
    """Templates as ``[B, L]`` token ids and an attention mask (None when nothing is padded).

    A list of token lists of different lengths is right-padded with the model's
    ``pad_id`` (positions are taken from the attention mask, so the side does not
    matter to the adapters). Every row needs at least one masked, attended
    position; padding must not hold the mask id.
    """
    if isinstance(templates, Tensor):
        if templates.dim() != 2:
            raise ConfigError(
                f"templates must be a [B, L] tensor (or a list of token lists); got shape {tuple(templates.shape)}"
                + ("; use templates[None] for a single template" if templates.dim() == 1 else "")
            )
        if templates.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ConfigError(f"templates must hold integer token ids; got dtype {templates.dtype}")
        _check_device(templates, "templates")
        toks = templates.to(device=device, dtype=torch.long)
        am = None if attention_mask is None else _check_attention_mask(attention_mask, toks.shape, "templates").to(device)
    else:
        rows = _token_rows(templates, "templates")
        if not rows:
            raise ConfigError("templates is empty; give at least one template")
        if attention_mask is not None:
            raise ConfigError("attention_mask is only for template tensors; a list of token lists is padded by smcdiff")
        l = max(len(r) for r in rows)
        ragged = any(len(r) != l for r in rows)
        if ragged and pad_id is None:
            raise ConfigError(
                "templates have different lengths and the model declares no pad_id; pad them yourself and pass "
                "attention_mask, or use a model adapter with a pad token"
            )
        toks = torch.full((len(rows), l), int(pad_id) if ragged else 0, dtype=torch.long)
        amask = torch.zeros(len(rows), l, dtype=torch.bool)
        for i, r in enumerate(rows):
            toks[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            amask[i, : len(r)] = True
        toks = toks.to(device)
        am = amask.to(device) if ragged else None
    if toks.shape[1] < 1:
        raise ConfigError("templates must have at least one position")
    if am is not None and bool(am.all()):
        am = None
    if am is not None:
        padded_mask = (toks == mask_id) & ~am
        if bool(padded_mask.any()):
            r, c = (int(x) for x in torch.nonzero(padded_mask)[0])
            raise ConfigError(
                f"template row {r}, position {c} is padding (attention_mask False) but holds the mask id {mask_id}; "
                f"padding is never generated: put a pad token there, or set attention_mask True to generate it"
            )
    free = toks == mask_id if am is None else (toks == mask_id) & am
    none = torch.nonzero(~free.any(dim=1)).flatten().tolist()
    if none:
        raise ConfigError(
            f"template row(s) {none[:8]} have no masked position (mask id {mask_id}); a template marks every "
            f"position to generate with the model's mask id"
        )
    real = toks if am is None else torch.where(am, toks, 0)
    bad = (real != mask_id) & ((real < 0) | (real >= vocab_upper))
    if bool(bad.any()):
        r, c = (int(x) for x in torch.nonzero(bad)[0])
        raise ConfigError(
            f"template token ids must lie in [0, {vocab_upper}) or be the mask id; row {r}, position {c} holds "
            f"{int(toks[r, c])}"
        )
    return toks, am


@dataclass(frozen=True)
class SMCState:
    """The state of an SMC run between steps.

    Attributes:
        particles: the :class:`~smcdiff.state.ParticleState` ``[B, N, L]``.
        weights: current log weights ``[B, N]`` (reset to 0 at each resampling).
        log_Z_resampled: ``[B]``, sum of ``log mean w`` at past resampling events.
        generators: one ``torch.Generator`` per prompt (advanced by :meth:`SMC.step`).
        t: number of engine steps taken.
        dead: ``[B]`` prompts flagged as all-dead (``on_all_dead="flag"``).
    """

    particles: ParticleState
    weights: Weights
    log_Z_resampled: Tensor
    generators: tuple
    t: int
    dead: Tensor

    @property
    def log_Z(self) -> Tensor:
        """Current estimate ``log Z_hat`` per prompt ``[B]``."""
        lz = self.log_Z_resampled + self.weights.log_mean
        return torch.where(self.dead, torch.full_like(lz, float("-inf")), lz)

    @property
    def done(self) -> bool:
        return bool(self.particles.done.all())


def _progress_bar(progress: bool):
    """A tqdm bar on stderr (``progress=True``) counting steps, with the smallest ESS, the number of
    resampling events and the finished particles; or None."""
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(desc="smcdiff", unit="step", leave=False, dynamic_ncols=True)


class SMC:
    """Sequential Monte Carlo over unmasking trajectories.

    Args:
        proposal: how particles move, e.g. an :class:`~smcdiff.proposals.UnmaskingKernel`.
        potentials: potentials ``G_t`` multiplied into the weights (default none).
        n_particles: ``N >= 1`` particles per prompt.
        resampling: a policy from :mod:`smcdiff.policies` (default
            ``AdaptiveResampling(kappa=0.5, scheme="systematic", when="every_step")``).
        max_rows: split each forward pass into chunks of at most this many rows.
        on_all_dead: ``"raise"`` (default) raises :class:`AllParticlesDeadError` when
            every particle of a prompt has weight zero; ``"flag"`` stops that prompt,
            sets its ``log_Z`` to ``-inf`` and marks it in ``result.dead``.
        gen_length: default generation length for :meth:`init` / :meth:`run` (recipes set it).
        best_by: the output rule :meth:`SMCResult.best <smcdiff.results.SMCResult.best>` uses
            when called without ``by``: ``"weight"`` (default) or ``"trajectory_confidence"``
            (what :func:`smcdiff.recipes.sr_smc` sets, the SR-SMC paper's rule).

    Example:
        >>> kernel = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(steps=8), block_length=4)
        >>> smc = SMC(kernel, [TrajectoryConfidence()], n_particles=8)
        >>> result = smc.run(model, prompts, gen_length=8, seed=0)
        >>> result.log_Z, result.sequences.shape   # [B], [B, 8, L]
    """

    def __init__(
        self,
        proposal: Proposal,
        potentials: Sequence[Potential] | Potential = (),
        n_particles: int = 1,
        resampling: ResamplingPolicy | None = None,
        max_rows: int | None = None,
        on_all_dead: Literal["raise", "flag"] = "raise",
        gen_length: int | None = None,
        best_by: Literal["weight", "trajectory_confidence"] = "weight",
    ) -> None:
        if not isinstance(proposal, Proposal):
            raise ConfigError(f"proposal must be a smcdiff Proposal; got {type(proposal).__name__}")
        if isinstance(potentials, Potential):
            potentials = [potentials]
        potentials = list(potentials)
        for p in potentials:
            if not isinstance(p, Potential):
                raise ConfigError(f"potentials must be smcdiff Potential objects; got {type(p).__name__}")
        if isinstance(n_particles, bool) or not isinstance(n_particles, (int, np.integer)) or int(n_particles) < 1:
            raise ConfigError(f"n_particles must be an integer >= 1; got {n_particles!r}")
        if max_rows is not None:
            max_rows = check_int("max_rows", max_rows, minimum=1)
        if on_all_dead not in ("raise", "flag"):
            raise ConfigError(f"on_all_dead must be 'raise' or 'flag'; got {on_all_dead!r}")
        if hasattr(proposal, "check_weighting"):
            proposal.check_weighting()
        self.proposal = proposal
        self.potentials = potentials
        self.n_particles = int(n_particles)
        self.resampling = resampling if resampling is not None else AdaptiveResampling()
        if not hasattr(self.resampling, "decide"):
            raise ConfigError(f"resampling must be a policy from smcdiff.policies; got {self.resampling!r}")
        self.max_rows = None if max_rows is None else int(max_rows)
        self.on_all_dead = on_all_dead
        self.gen_length = None if gen_length is None else check_int("gen_length", gen_length, minimum=1)
        if best_by not in ("weight", "trajectory_confidence"):
            raise ConfigError(f"best_by must be 'weight' or 'trajectory_confidence'; got {best_by!r}")
        self.best_by = best_by

    def __repr__(self) -> str:
        """Every setting that changes the output (``max_rows`` only chunks the forwards, so it is left out).

        The evaluation harness hashes this text (memory addresses removed) into its cache keys.
        Components print their settings and the reward objects they hold (a dataclass reward such
        as :class:`~smcdiff.rewards.NormalizedReward` shows its normalisation; a plain object only
        its type).
        """
        pots = ", ".join(repr(p) for p in self.potentials)
        return (f"SMC(proposal={self.proposal!r}, potentials=[{pots}], n_particles={self.n_particles}, "
                f"resampling={self.resampling!r}, gen_length={self.gen_length}, best_by={self.best_by!r}, "
                f"on_all_dead={self.on_all_dead!r})")

    # ------------------------------------------------------------------ init
    def init(
        self,
        model,
        prompts: Tensor | Sequence[Sequence[int]] | None,
        gen_length: int | None = None,
        seed: int | Sequence[int] | Sequence[torch.Generator] = 0,
        *,
        batch_size: int | None = None,
        attention_mask: Tensor | None = None,
    ) -> SMCState:
        """Build the initial state: N copies of each prompt followed by ``gen_length`` masks.

        Args:
            model: a :class:`~smcdiff.models.Denoiser`.
            prompts: ``[B, P]`` token ids, a list of B token lists (left-padded with the
                model's ``pad_id``), or None with ``batch_size`` for unconditional runs.
            gen_length: ``G``, the number of positions to generate.
            seed: an int >= 0 (per-prompt seeds via :func:`row_seeds`), None (fresh OS
                entropy, not reproducible), B ints in ``[0, 2**64)``, B distinct generators, or
                one generator when B = 1; anything else (negative, float, bool, str, a
                generator shared by two prompts) raises ``ConfigError``. See :data:`SEED_RULE`.
            attention_mask: ``[B, P]`` (False on padding) for a prompt tensor you padded
                yourself; the rows are then exactly the unpadded prompts.
        """
        validate_denoiser(model)
        if hasattr(self.proposal, "check_model"):
            self.proposal.check_model(model)
        device = _usable_device(output_device(model), "the model's output device")
        mask_id = int(model.mask_id)
        toks, am = prepare_prompts(prompts, batch_size, getattr(model, "pad_id", None), mask_id, device, attention_mask)
        b, p = toks.shape
        if b < 1:
            raise ConfigError("need at least one prompt")
        if (toks == mask_id).any() and (am is None or ((toks == mask_id) & am).any()):
            raise ConfigError(
                f"a prompt contains the mask id {mask_id}; prompts must be fully observed (check the model's "
                f"mask_id and the tokenizer)"
            )
        upper = max(int(model.vocab_size), mask_id + 1)
        real = toks if am is None else torch.where(am, toks, 0)
        bad = (real < 0) | (real >= upper)
        if bool(bad.any()):
            r, c = (int(x) for x in torch.nonzero(bad)[0])
            raise ConfigError(
                f"prompt token ids must lie in [0, {upper}) (the model's vocabulary and mask id); prompts row {r}, "
                f"position {c} holds {int(toks[r, c])}"
            )
        if am is not None and not (0 <= int(model.pad_id) < upper):
            raise ConfigError(f"the model's pad_id {int(model.pad_id)} lies outside the vocabulary [0, {upper})")
        if gen_length is None:
            gen_length = self.gen_length
        if gen_length is None:
            raise ConfigError("give gen_length (the number of positions to generate)")
        gen_length = check_int("gen_length", gen_length, minimum=1)
        block_length = (
            self.proposal.canvas_block_length(int(gen_length))
            if hasattr(self.proposal, "canvas_block_length")
            else int(gen_length)
        )
        canvas = Canvas(prompt_length=p, gen_length=int(gen_length), block_length=int(block_length), mask_id=mask_id)
        if hasattr(model, "check_canvas"):
            model.check_canvas(canvas)
        self.proposal.setup(canvas)
        canvas_tokens = torch.full((b, canvas.length), mask_id, dtype=torch.long, device=device)
        canvas_tokens[:, :p] = toks
        particles = self._fresh_particles(
            canvas_tokens,
            canvas,
            model=model,
            attention_mask=None if am is None else torch.cat(
                [am, torch.ones(b, canvas.gen_length, dtype=torch.bool, device=device)], dim=1
            ),
        )
        return self._start(model, particles, seed)

    def _fresh_particles(self, canvas_tokens: Tensor, canvas: Canvas, model=None, **layout) -> ParticleState:
        """N copies of each row of ``canvas_tokens [B, L]``, nothing committed, at step 0."""
        b, l = canvas_tokens.shape
        n = self.n_particles
        dev = canvas_tokens.device
        if model is not None:
            self._check_memory(model, b, canvas, dev)
        return ParticleState(
            tokens=canvas_tokens[:, None, :].expand(b, n, l).clone(),
            committed_logp=torch.zeros(b, n, l, dtype=torch.float64, device=dev),
            commit_step=torch.full((b, n, l), -1, dtype=torch.long, device=dev),
            block=torch.zeros(b, dtype=torch.long, device=dev),
            block_step=torch.zeros(b, dtype=torch.long, device=dev),
            steps=torch.zeros(b, dtype=torch.long, device=dev),
            done=torch.zeros(b, dtype=torch.bool, device=dev),
            canvas=canvas,
            **layout,
        )

    def memory_estimate(self, model, n_prompts: int, length: int, block_length: int | None = None) -> MemoryEstimate:
        """Peak bytes of a step over ``n_prompts`` x N canvases of ``length`` positions (blocks of
        ``block_length``, default the whole canvas), with ``model``'s vocabulary and logits dtype.

        Counts the logits of one forward pass, the kernel's block copies and the particle
        state, not the network's activations (see :mod:`smcdiff.memory`).
        """
        n_prompts = check_int("n_prompts", n_prompts, minimum=1)
        length = check_int("length", length, minimum=1)
        lb = length if block_length is None else min(check_int("block_length", block_length, minimum=1), length)
        cfg = float(getattr(self.proposal, "cfg_scale", 0.0) or 0.0) > 0
        return memory.estimate(n_prompts * self.n_particles, length, lb, int(model.vocab_size),
                               memory.logits_dtype(model), cfg)

    def _check_memory(self, model, b: int, canvas: Canvas, device: torch.device) -> None:
        """Refuse, before allocating, a population that cannot fit in the device's free memory
        (:meth:`memory_estimate`: logits, block copies and particle state; a lower bound)."""
        need = self.memory_estimate(model, b, canvas.length, canvas.block_length)
        free = _free_memory(device)
        if free is not None and need.total > free:
            gib = 2.0**30
            raise ConfigError(
                f"n_particles={self.n_particles} for {b} prompt(s) on a canvas of {canvas.length} positions needs at "
                f"least {need.describe()} on {device} but only {free / gib:.3g} GiB is free; lower n_particles or "
                f"run fewer prompts at once"
            )

    def init_template(
        self,
        model,
        templates: Tensor | Sequence[Sequence[int]],
        seed: int | Sequence[int] | Sequence[torch.Generator] = 0,
        *,
        attention_mask: Tensor | None = None,
    ) -> SMCState:
        """Build the initial state for infilling: N copies of each template.

        Args:
            model: a :class:`~smcdiff.models.Denoiser`.
            templates: ``[B, L]`` token ids (or B token lists, right-padded with the
                model's ``pad_id``) in which the model's mask id marks every position to
                generate, anywhere and in any number of spans.
            seed: as for :meth:`init` (:data:`SEED_RULE`): an int >= 0, None (fresh entropy),
                B ints or B distinct generators, or one generator when B = 1.
            attention_mask: ``[B, L]``, False on padding (never attended, never generated).
        """
        validate_denoiser(model)
        if hasattr(self.proposal, "check_model"):
            self.proposal.check_model(model)
        device = _usable_device(output_device(model), "the model's output device")
        mask_id = int(model.mask_id)
        upper = max(int(model.vocab_size), mask_id + 1)
        toks, am = prepare_templates(templates, getattr(model, "pad_id", None), mask_id, upper, device, attention_mask)
        if am is not None and not (0 <= int(getattr(model, "pad_id", 0) or 0) < upper):
            raise ConfigError(f"the model's pad_id {model.pad_id} lies outside the vocabulary [0, {upper})")
        b, l = toks.shape
        free = toks == mask_id if am is None else (toks == mask_id) & am
        lengths = None if am is None else am.sum(dim=1)
        width, starts, sizes, nb, widths = template_layout(free, getattr(self.proposal, "block_length", None), lengths)
        canvas = Canvas(
            prompt_length=0, gen_length=l, block_length=width, mask_id=mask_id, template=True,
            max_blocks=int(nb.max()),
        )
        if hasattr(model, "check_canvas"):
            model.check_canvas(canvas)
        particles = self._fresh_particles(
            toks,
            canvas,
            model=model,
            attention_mask=am,
            free=free,
            block_starts=starts,
            block_sizes=sizes,
            num_blocks=nb,
            block_widths=widths,
        )
        if len(inspect.signature(self.proposal.setup).parameters) >= 2:
            self.proposal.setup(canvas, particles)
        else:  # a user proposal written against setup(canvas)
            self.proposal.setup(canvas)
        return self._start(model, particles, seed)

    def _start(self, model, particles: ParticleState, seed) -> SMCState:
        if hasattr(self.proposal, "init_state"):
            particles = self.proposal.init_state(particles, model)
        for pot in self.potentials:
            if hasattr(pot, "init_state"):
                particles = pot.init_state(particles)
        b, n = particles.tokens.shape[:2]
        device = particles.device
        gens = make_generators(seed, b, device)
        return SMCState(
            particles=particles,
            weights=Weights.uniform(b, n, device=device),
            log_Z_resampled=torch.zeros(b, dtype=torch.float64, device=device),
            generators=tuple(gens),
            t=0,
            dead=torch.zeros(b, dtype=torch.bool, device=device),
        )

    # ------------------------------------------------------------------ step
    def reweight(self, prev: ParticleState, ps: ProposalStep) -> Tensor:
        """The log-weight increment ``[B, N]`` of a proposal step (0 on inactive prompts)."""
        return self._reweight(prev, ps)[0]

    def _reweight(self, prev: ParticleState, ps: ProposalStep) -> tuple[Tensor, dict]:
        inc, extras = apply_potentials(self.potentials, prev, ps)
        if ps.log_k is not None:
            corr = ps.log_k - ps.log_q
            corr = torch.where(torch.isneginf(ps.log_k), float("-inf"), corr)
            inc = torch.where(torch.isneginf(inc) | torch.isneginf(corr), float("-inf"), inc + corr)
        active = ps.active[:, None].expand_as(inc)
        return torch.where(active, inc, torch.zeros_like(inc)), extras

    @torch.no_grad()
    def step(self, model, state: SMCState) -> tuple[SMCState, StepRecord]:
        """One SMC step: propose, reweight, and resample where the policy says so.

        Returns the new state and a :class:`~smcdiff.results.StepRecord`. The input
        state is not modified (its generators are advanced).
        """
        prev = state.particles
        with reward_tally(prev.batch_size) as tally:
            ps = self.proposal.propose(prev, model, state.generators, max_rows=self.max_rows)
            inc, extras = self._reweight(prev, ps)
        active = ps.active & ~state.dead
        old_log_Z = state.log_Z
        w = state.weights.add(inc)
        newly_dead = w.dead & ~state.dead
        dead = state.dead
        particles = ps.state.with_extras(**extras) if extras else ps.state
        if bool(newly_dead.any()):
            rows = torch.nonzero(newly_dead).flatten().tolist()
            if self.on_all_dead == "raise":
                raise AllParticlesDeadError(rows, f"after step {state.t + 1}")
            dead = dead | newly_dead
            particles = replace(particles, done=particles.done | newly_dead)
        event = CheckEvent(
            steps=particles.steps, block_end=ps.block_end, finished=ps.finished, active=active & ~dead
        )
        ess_before = w.ess
        do = self.resampling.decide(w, event) & ~dead
        b, n = w.shape
        ancestors = torch.arange(n, device=w.log_w.device).expand(b, n).clone()
        log_Z_res = state.log_Z_resampled
        if bool(do.any()):
            rows = torch.nonzero(do).flatten()
            W = w.normalized(allow_dead=True)[rows]
            anc = resample(W, [state.generators[int(r)] for r in rows], self.resampling.scheme)
            ancestors[rows] = anc
            particles = particles.gather(ancestors)
            log_Z_res = torch.where(do, log_Z_res + w.log_mean, log_Z_res)
            w = w.reset(do)
        new_state = SMCState(
            particles=particles,
            weights=w,
            log_Z_resampled=log_Z_res,
            generators=state.generators,
            t=state.t + 1,
            dead=dead,
        )
        new_log_Z = new_state.log_Z
        both_inf = torch.isneginf(new_log_Z) & torch.isneginf(old_log_Z)
        record = StepRecord(
            step=state.t + 1,
            active=ps.active,
            log_weight_increment=inc,
            ess_before=ess_before,
            ess_after=w.ess,
            resampled=do,
            ancestors=ancestors,
            log_Z_increment=torch.where(both_inf, torch.zeros_like(new_log_Z), new_log_Z - old_log_Z),
            block_end=ps.block_end,
            nfe=ps.nfe,
            particle_forwards=ps.nfe * prev.n_particles if ps.row_forwards is None else ps.row_forwards,
            reward_calls=tally.calls.to(ps.nfe.device),
            reward_texts=tally.texts.to(ps.nfe.device),
        )
        return new_state, record

    # ------------------------------------------------------------------ run
    def max_steps(self, canvas: Canvas) -> int:
        return canvas.num_blocks * (self.proposal.max_block_steps(canvas) + 1) + 1

    @torch.no_grad()
    def run(
        self,
        model,
        prompts: Tensor | Sequence[Sequence[int]] | None,
        gen_length: int | None = None,
        seed: int | Sequence[int] | Sequence[torch.Generator] = 0,
        *,
        batch_size: int | None = None,
        attention_mask: Tensor | None = None,
        progress: bool = False,
    ) -> SMCResult:
        """Generate ``gen_length`` tokens after each prompt; return an :class:`~smcdiff.results.SMCResult`.

        See :meth:`init` for the arguments. This is the template case "prompt + G
        masks" of :meth:`infill` (with the prefix layout's block rule).

        ``seed`` follows the library's one seed rule (:data:`SEED_RULE`): an ``int >= 0``
        gives prompt ``b`` the seed ``SeedSequence(seed, spawn_key=(b,))``; ``None`` draws
        fresh OS entropy (not reproducible); a list gives one entry per prompt, each an
        ``int`` in ``[0, 2**64)`` or a distinct ``torch.Generator``; a single generator is
        accepted for one prompt. Negative values, floats, ``bool``, strings and a
        generator shared by two prompts raise :class:`~smcdiff.errors.ConfigError`.
        Prompts must be a ``[B, P]`` integer tensor or a list of B lists of ``int`` token
        ids (a flat list, a string or a float id is refused, never truncated).
        ``progress=True`` shows a progress bar (tqdm, on stderr) with the step, the
        smallest ESS and the resampling events; the ``smcdiff`` logger reports each
        step and the totals at DEBUG level.
        """
        state = self.init(model, prompts, gen_length, seed, batch_size=batch_size, attention_mask=attention_mask)
        return self._loop(model, state, progress)

    @torch.no_grad()
    def infill(
        self,
        model,
        templates: Tensor | Sequence[Sequence[int]],
        seed: int | Sequence[int] | Sequence[torch.Generator] = 0,
        attention_mask: Tensor | None = None,
        progress: bool = False,
    ) -> SMCResult:
        """Fill the masked positions of templates; return an :class:`~smcdiff.results.SMCResult`.

        ``templates [B, L]``: token ids in which the model's mask id marks every
        position to generate, anywhere, in any number of spans per row;
        ``attention_mask [B, L]`` is False on padding (never attended, never
        generated). Blocks are windows of ``block_length`` canvas positions from each
        row's first masked position (see :mod:`smcdiff.state`); schedules count each
        block's masked positions. ``result.sequences`` are the filled templates and
        ``result.commit_step`` / the order metrics are in the template's positions.
        The weights satisfy the same identities as for :meth:`run`. ``seed`` follows the
        same rule as for :meth:`run` (:data:`SEED_RULE`); ``progress`` as for :meth:`run`.
        """
        state = self.init_template(model, templates, seed, attention_mask=attention_mask)
        return self._loop(model, state, progress)

    def _loop(self, model, state: SMCState, progress: bool = False) -> SMCResult:
        records: list[StepRecord] = []
        limit = self.max_steps(state.particles.canvas)
        bar = _progress_bar(progress)
        debug = _log.isEnabledFor(logging.DEBUG)
        n_resampled = 0
        t0 = time.perf_counter()
        try:
            with memory.peak_memory(state.particles.device) as measured:
                while not state.done:
                    if state.t >= limit:
                        raise ConfigError(f"the sampler did not finish within {limit} steps")
                    state, rec = self.step(model, state)
                    records.append(rec)
                    if bar is not None or debug:
                        res = rec.resampled.nonzero().flatten().tolist()
                        n_resampled += len(res)
                        ess = float(rec.ess_before.min())
                        done = state.particles.done
                        if debug:
                            _log.debug("step %d: min ESS %.2f of %d, resampled prompts %s, finished particles %d/%d",
                                       rec.step, ess, self.n_particles, res, int(done.sum()), done.numel())
                        if bar is not None:
                            bar.update(1)
                            bar.set_postfix_str(f"ESS min {ess:.2f}/{self.n_particles}, resampled {n_resampled}, "
                                                f"finished {int(done.sum())}/{done.numel()}", refresh=False)
        finally:
            if bar is not None:
                bar.close()
        if debug:
            _log.debug("finished in %d steps, %d resampling events", len(records),
                      sum(int(r.resampled.sum()) for r in records))
        canvas = state.particles.canvas
        timings = {
            "wall_s": time.perf_counter() - t0,
            **measured,
            "memory_estimate_bytes": self.memory_estimate(model, state.particles.batch_size, canvas.length,
                                                          canvas.block_length).total,
        }
        return replace(self.result(state, records), timings=timings)

    def result(self, state: SMCState, records: Sequence[StepRecord]) -> SMCResult:
        """Assemble an :class:`~smcdiff.results.SMCResult` from a final state and its records."""
        p = state.particles
        b, n = state.weights.shape
        anc = (
            torch.stack([r.ancestors for r in records])
            if records
            else torch.zeros(0, b, n, dtype=torch.long, device=p.device)
        )
        def total(name: str) -> Tensor:
            vals = [getattr(r, name) for r in records if getattr(r, name) is not None]
            return torch.stack(vals).sum(dim=0) if vals else torch.zeros(b, dtype=torch.long, device=p.device)

        nfe = total("nfe")
        return SMCResult(
            sequences=p.tokens,
            weights=state.weights,
            log_Z=state.log_Z,
            records=list(records),
            genealogy=Genealogy(anc),
            prompt_length=p.canvas.prompt_length,
            committed_logp=p.committed_logp,
            commit_step=p.commit_step,
            nfe=nfe,
            dead=state.dead,
            extras=dict(p.extras),
            free=p.free,
            particle_forwards=total("particle_forwards"),
            reward_calls=total("reward_calls"),
            reward_texts=total("reward_texts"),
            best_by=self.best_by,
        )
