"""Toy denoisers with an explicit joint distribution, small enough to enumerate.

:class:`ToyDenoiser` holds a probability table ``p(x)`` over ``V^L`` and
returns the *exact* conditionals: for a row with observed positions ``O`` and
masked positions ``M``, ``logits[i, v] = log p(x_i = v | x_O)`` for ``i`` in
``M``, and a point mass on the observed token for ``i`` in ``O`` (the SUBS
convention of masked diffusion models). With such a denoiser every quantity of
a sampler — path probabilities, the normalising constant, the target law of the
final sequence — can be computed exactly by enumeration
(:mod:`smcdiff.theory_checks`).

A prompt is a fixed prefix: rows whose first ``P`` tokens are given condition on
them like on any other observed positions.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, ModelOutputError

__all__ = ["ToyDenoiser", "random_joint"]


def random_joint(
    vocab_size: int, length: int, seed: int = 0, concentration: float = 1.0
) -> Tensor:
    """A random joint table ``[V] * L`` drawn from a symmetric Dirichlet(``concentration``).

    All entries are positive (with probability one), float64, and sum to one.
    """
    if vocab_size < 1 or length < 1:
        raise ConfigError(f"vocab_size and length must be >= 1; got {vocab_size}, {length}")
    if concentration <= 0:
        raise ConfigError(f"concentration must be > 0; got {concentration}")
    if vocab_size**length > 2_000_000:
        raise ConfigError(f"V^L = {vocab_size}^{length} is too large to enumerate")
    # normalised Gamma(a, 1) draws are Dirichlet(a, ..., a)
    w = np.random.default_rng(int(seed)).gamma(concentration, 1.0, size=vocab_size**length)
    w = torch.as_tensor(w, dtype=torch.float64)
    w = w / w.sum()
    return w.reshape((vocab_size,) * length)


class ToyDenoiser:
    """Exact denoiser of an explicit joint table ``p`` over ``V^L``.

    Args:
        joint: tensor of shape ``[V] * L`` (or ``[V**L]`` with ``length`` given),
            non-negative and summing to one (to 1e-9).
        length: sequence length ``L`` when ``joint`` is flat.
        atol: tolerance on the total mass.

    Attributes:
        mask_id: ``V`` (outside the vocabulary ``0..V-1``).
        vocab_size: ``V``.
        eos_ids: empty.
    """

    def __init__(self, joint: Tensor, length: int | None = None, atol: float = 1e-9, eos_ids: Sequence[int] = ()) -> None:
        j = torch.as_tensor(joint, dtype=torch.float64)
        if length is not None:
            if j.dim() != 1:
                raise ConfigError("give `length` only with a flat joint table")
            v = round(j.numel() ** (1.0 / length))
            if v**length != j.numel():
                raise ConfigError(f"a flat table of {j.numel()} entries is not V^{length} for an integer V")
            j = j.reshape((v,) * length)
        if j.dim() < 1:
            raise ConfigError("the joint table needs at least one dimension (one position)")
        v = j.shape[0]
        if any(s != v for s in j.shape):
            raise ConfigError(f"the joint table must have shape [V] * L; got {tuple(j.shape)}")
        if torch.isnan(j).any() or (j < 0).any():
            raise ConfigError("the joint table must be non-negative and free of NaN")
        total = float(j.sum())
        if abs(total - 1.0) > atol:
            raise ConfigError(f"the joint table must sum to 1 (within {atol}); it sums to {total!r}")
        self.length = j.dim()
        self.vocab_size = v
        self.mask_id = v
        self.eos_ids = tuple(int(e) for e in eos_ids)
        self.joint = j / total
        self._flat = self.joint.reshape(-1)
        # all configurations [C, L], C = V^L, in the row-major order of the table
        self.configs = torch.tensor(list(itertools.product(range(v), repeat=self.length)), dtype=torch.long)
        self._onehot = torch.nn.functional.one_hot(self.configs, v).to(torch.float64)  # [C, L, V]
        self.n_calls = 0
        self.n_rows = 0

    # ------------------------------------------------------------------ constructors
    @classmethod
    def random(cls, vocab_size: int, length: int, seed: int = 0, concentration: float = 1.0) -> "ToyDenoiser":
        """A toy model with a random Dirichlet joint (see :func:`random_joint`)."""
        return cls(random_joint(vocab_size, length, seed, concentration))

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    # ------------------------------------------------------------------ probabilities
    def log_prob(self, x: Tensor) -> Tensor:
        """``log p(x)`` for complete sequences ``x [..., L]``."""
        x = torch.as_tensor(x, dtype=torch.long)
        idx = torch.zeros(x.shape[:-1], dtype=torch.long)
        for i in range(self.length):
            idx = idx * self.vocab_size + x[..., i]
        return torch.log(self._flat[idx])

    def _consistent(self, tokens: Tensor) -> Tensor:
        """Bool ``[R, C]``: configurations that agree with every observed position of each row."""
        obs = tokens != self.mask_id  # [R, L]
        eq = self.configs[None, :, :] == tokens[:, None, :]  # [R, C, L]
        return (eq | ~obs[:, None, :]).all(dim=2)

    def evidence(self, tokens: Tensor) -> Tensor:
        """``p(x_O)``: probability of the observed positions of each row ``[R]``."""
        tokens = torch.as_tensor(tokens, dtype=torch.long)
        return (self._consistent(tokens).to(torch.float64) * self._flat[None, :]).sum(dim=1)

    def conditionals(self, tokens: Tensor) -> Tensor:
        """Exact ``p(x_i = v | x_O)`` for every position, ``[R, L, V]`` float64.

        Observed positions get a point mass on their token. Rows whose observed
        tokens have probability zero get NaN (the conditional is undefined).
        """
        tokens = torch.as_tensor(tokens, dtype=torch.long)
        if tokens.dim() != 2 or tokens.shape[1] != self.length:
            raise ConfigError(f"toy model expects tokens [R, {self.length}]; got {tuple(tokens.shape)}")
        if ((tokens < 0) | (tokens > self.mask_id)).any():
            raise ConfigError(
                f"toy model tokens must be in 0..{self.vocab_size - 1} or the mask id {self.mask_id}"
            )
        w = self._consistent(tokens).to(torch.float64) * self._flat[None, :]  # [R, C]
        marg = torch.einsum("rc,clv->rlv", w, self._onehot)  # [R, L, V]
        z = w.sum(dim=1)[:, None, None]
        return marg / z

    def logits(self, tokens: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Exact log conditionals ``[R, L, V]`` (float64); see :meth:`conditionals`."""
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ConfigError("the toy model has no padding; prompts must all have the same length")
        self.n_calls += 1
        self.n_rows += int(tokens.shape[0])
        cond = self.conditionals(tokens)
        undefined = torch.isnan(cond[:, 0, 0])
        if bool(undefined.any()):
            r = int(torch.nonzero(undefined)[0])
            raise ModelOutputError(
                f"the toy joint gives probability zero to the observed tokens {tokens[r].tolist()} (mask id "
                f"{self.mask_id}), so its conditionals are undefined there; this happens when a sampler commits "
                f"several tokens in one step whose combination the joint rules out. Use a joint with full support "
                f"(e.g. ToyDenoiser.random) or commit one token per step"
            )
        return torch.log(cond)

    def check_canvas(self, canvas) -> None:
        """Raise unless ``prompt length + gen_length`` equals the table's length ``L``."""
        if canvas.length != self.length:
            raise ConfigError(
                f"the toy model is a joint over sequences of length L = {self.length}, but prompt length "
                f"{canvas.prompt_length} + gen_length {canvas.gen_length} = {canvas.length}; they must add up to L"
            )

    def target_given_prompt(self, prompt: Sequence[int] | Tensor) -> dict[tuple[int, ...], float]:
        """The model law of the continuation of ``prompt``: ``{y: p(y | prompt)}``.

        Keys are the generated part ``y`` only (the sequence is ``prompt + y``), the
        convention of :mod:`smcdiff.theory_checks`.
        """
        p = torch.as_tensor(list(prompt) if not isinstance(prompt, Tensor) else prompt, dtype=torch.long)
        k = p.numel()
        keep = (self.configs[:, :k] == p[None, :]).all(dim=1) if k else torch.ones(len(self.configs), dtype=torch.bool)
        mass = self._flat[keep]
        z = float(mass.sum())
        if z <= 0:
            raise ConfigError(f"the prompt {p.tolist()} has probability zero under the toy joint")
        return {tuple(c[k:].tolist()): float(m) / z for c, m in zip(self.configs[keep], mass)}

    def __repr__(self) -> str:
        return f"ToyDenoiser(V={self.vocab_size}, L={self.length})"

