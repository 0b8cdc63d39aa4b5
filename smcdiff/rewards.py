"""Rewards: batched scores of (prompt, text) pairs.

The protocol is ``score(prompts, texts) -> Tensor [R]`` (float64), one call for a
whole batch. ``texts`` are whatever the decoder produces: strings for real
tokenizers, tuples of token ids for toy models.

=============================  =================================================================
class                          scores with
=============================  =================================================================
``CallableReward(fn)``         a Python function ``fn(prompt, text) -> float`` (or batched)
``VerifierReward(check)``      an exact checker ``check(prompt, text) -> bool | float``
``SequenceClassifierReward``   a transformers ``AutoModelForSequenceClassification``
``NormalizedReward``           ``(score - mu) / sigma`` with statistics fitted on baseline
                               generations and saved with the reward
=============================  =================================================================

:class:`CountingReward` wraps any reward and counts calls and rows (used to
check that RWS makes exactly one call per row per step).
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol, Sequence, runtime_checkable

import torch
from torch import Tensor

from .errors import ConfigError

__all__ = [
    "Reward",
    "CallableReward",
    "VerifierReward",
    "SequenceClassifierReward",
    "NormalizedReward",
    "CountingReward",
    "Decoder",
    "check_decode",
    "RewardTally",
    "reward_tally",
    "count_reward_call",
]


@runtime_checkable
class Reward(Protocol):
    def score(self, prompts: Sequence[Any], texts: Sequence[Any]) -> Tensor:  # pragma: no cover - protocol
        """Scores ``[R]`` (float64) for R (prompt, text) pairs."""


def _as_scores(x, n: int, who: str) -> Tensor:
    t = torch.as_tensor(x, dtype=torch.float64).reshape(-1)
    if t.numel() != n:
        raise ConfigError(f"{who} returned {t.numel()} scores for {n} texts")
    if torch.isnan(t).any():
        raise ConfigError(f"{who} returned NaN scores")
    return t


@dataclass
class CallableReward:
    """A reward from a function.

    Args:
        fn: ``fn(prompt, text) -> float``, or with ``batched=True``
            ``fn(prompts, texts) -> sequence of floats``.
    """

    fn: Callable
    batched: bool = False

    def score(self, prompts, texts) -> Tensor:
        if len(prompts) != len(texts):
            raise ConfigError(f"got {len(prompts)} prompts for {len(texts)} texts")
        out = self.fn(list(prompts), list(texts)) if self.batched else [self.fn(p, t) for p, t in zip(prompts, texts)]
        return _as_scores(out, len(texts), "the reward function")


@dataclass
class VerifierReward:
    """An exact checker as a reward: ``check(prompt, text)`` returns True/False (1/0) or a number."""

    check: Callable[[Any, Any], Any]

    def score(self, prompts, texts) -> Tensor:
        return _as_scores([float(self.check(p, t)) for p, t in zip(prompts, texts)], len(texts), "the verifier")


class SequenceClassifierReward:
    """A transformers sequence-classification model as a reward model.

    The input is ``template.format(prompt=..., text=...)``; the score is the
    logit at ``index`` (default 0, the usual single-output reward head).
    """

    def __init__(self, model, tokenizer, template: str = "{prompt}{text}", index: int = 0, max_length: int = 512, batch_size: int = 32) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.template = template
        self.index = int(index)
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        if getattr(tokenizer, "pad_token", None) is None and getattr(tokenizer, "eos_token", None) is not None:
            tokenizer.pad_token = tokenizer.eos_token

    @classmethod
    def from_pretrained(cls, path: str, device=None, **kwargs) -> "SequenceClassifierReward":
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model = AutoModelForSequenceClassification.from_pretrained(path)
        if device is not None:
            model = model.to(device)
        return cls(model, AutoTokenizer.from_pretrained(path), **kwargs)

    @torch.no_grad()
    def score(self, prompts, texts) -> Tensor:
        inputs = [self.template.format(prompt=p, text=t) for p, t in zip(prompts, texts)]
        dev = next(self.model.parameters()).device
        out = []
        for s in range(0, len(inputs), self.batch_size):
            enc = self.tokenizer(
                inputs[s : s + self.batch_size], return_tensors="pt", padding=True, truncation=True, max_length=self.max_length
            ).to(dev)
            logits = self.model(**enc).logits
            out.append(logits[:, self.index].to(torch.float64).cpu())
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


@dataclass
class NormalizedReward:
    """``(score - mu) / sigma``: a reward normalised with statistics of baseline generations.

    Fit with :meth:`fit` on texts generated by the baseline sampler (``r = 1``) for
    the prompts of interest; save and load the statistics with :meth:`save_stats` /
    :meth:`load_stats` so the same normalisation is used later.
    """

    reward: Any
    mu: float = 0.0
    sigma: float = 1.0

    def __post_init__(self) -> None:
        if not (self.sigma > 0) or not math.isfinite(self.sigma) or not math.isfinite(self.mu):
            raise ConfigError(f"normalisation needs finite mu and sigma > 0; got mu={self.mu}, sigma={self.sigma}")

    @classmethod
    def fit(cls, reward, prompts, texts) -> "NormalizedReward":
        s = reward.score(prompts, texts)
        if s.numel() < 2:
            raise ConfigError("fitting normalisation statistics needs at least two texts")
        sigma = float(s.std(unbiased=True))
        if sigma == 0.0:
            raise ConfigError("the baseline rewards have zero spread; cannot normalise")
        return cls(reward, float(s.mean()), sigma)

    def score(self, prompts, texts) -> Tensor:
        return (self.reward.score(prompts, texts) - self.mu) / self.sigma

    def save_stats(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump({"mu": self.mu, "sigma": self.sigma}, f)

    @classmethod
    def load_stats(cls, reward, path: str) -> "NormalizedReward":
        with open(path) as f:
            d = json.load(f)
        unknown = set(d) - {"mu", "sigma"}
        if unknown:
            raise ConfigError(f"unknown keys {sorted(unknown)} in normalisation statistics {path}")
        return cls(reward, float(d["mu"]), float(d["sigma"]))


@dataclass
class CountingReward:
    """Counts calls and scored rows of the wrapped reward."""

    reward: Any
    calls: int = 0
    rows: int = 0
    history: list = field(default_factory=list)

    def score(self, prompts, texts) -> Tensor:
        self.calls += 1
        self.rows += len(texts)
        self.history.append(len(texts))
        return self.reward.score(prompts, texts)


def check_decode(decode: Any, name: str = "decode") -> Callable | None:
    """Check a user ``decode`` callable when a recipe or component is built; return it (None passes).

    The signature every decoder must accept is that of :class:`Decoder`::

        decode(ids: list[int], cut_eos: bool = True) -> text

    ``ids`` are the token ids of a prompt or of a generated span (mask ids included:
    drop them); ``cut_eos=False`` is passed for prompts, which must not be cut at an
    EOS id. The result is whatever the reward's ``score(prompts, texts)`` takes
    (strings for text rewards). Raises :class:`ConfigError` naming ``name`` if it is
    not callable or cannot be called that way.
    """
    if decode is None:
        return None
    if not callable(decode):
        raise ConfigError(
            f"{name} must be a callable decode(ids: list[int], cut_eos: bool = True) -> text; got "
            f"{type(decode).__name__} {decode!r}"
        )
    try:
        sig = inspect.signature(decode)
    except (TypeError, ValueError):  # builtins without a signature: accept, they fail loudly when called
        return decode
    for args, kwargs in ((([0],), {}), (([0],), {"cut_eos": False})):
        try:
            sig.bind(*args, **kwargs)
        except TypeError as e:
            raise ConfigError(
                f"{name} must accept decode(ids: list[int], cut_eos: bool = True) (it is called as decode(ids) for "
                f"generated text and decode(ids, cut_eos=False) for prompts); {getattr(decode, '__name__', decode)!r} "
                f"has signature {sig}: {e}"
            ) from None
    return decode


@dataclass
class RewardTally:
    """Reward calls made during one engine step, per prompt (filled by :func:`count_reward_call`).

    Attributes:
        calls: ``[B]`` batched ``score`` calls that scored at least one text of prompt ``b``.
        texts: ``[B]`` texts (particle rows) of prompt ``b`` that were scored.
    """

    calls: Tensor
    texts: Tensor


_TALLY: contextvars.ContextVar[RewardTally | None] = contextvars.ContextVar("smcdiff_reward_tally", default=None)


@contextlib.contextmanager
def reward_tally(batch_size: int) -> Iterator[RewardTally]:
    """Count the reward calls made inside the ``with`` block (the engine wraps every step in one)."""
    tally = RewardTally(torch.zeros(batch_size, dtype=torch.long), torch.zeros(batch_size, dtype=torch.long))
    token = _TALLY.set(tally)
    try:
        yield tally
    finally:
        _TALLY.reset(token)


def count_reward_call(prompt_of_text: Sequence[int] | Tensor) -> None:
    """Record one batched reward call; ``prompt_of_text[i]`` is the prompt index of its i-th text.

    Components that call a reward (:class:`~smcdiff.potentials.RewardPotential`,
    :class:`~smcdiff.proposals.RewardTilt`, and user potentials that want their calls in
    ``result.reward_calls``) call this once per ``score`` call. Outside an engine step it
    does nothing.
    """
    tally = _TALLY.get()
    if tally is None:
        return
    idx = torch.as_tensor(prompt_of_text, dtype=torch.long).reshape(-1).cpu()
    if idx.numel() == 0:
        return
    tally.texts.index_add_(0, idx, torch.ones_like(idx))
    tally.calls[idx.unique()] += 1


class Decoder:
    """Turns generated token ids into reward inputs.

    Its call signature, ``decode(ids, cut_eos=True)``, is the one every user ``decode``
    must accept (checked by :func:`check_decode` when a recipe is built).

    The generated span is cut at the first EOS id and mask ids are dropped. With a
    tokenizer the result is ``tokenizer.decode(ids, skip_special_tokens=True)``;
    without one it is the tuple of ids (for toy models).
    """

    def __init__(self, tokenizer=None, eos_ids: Sequence[int] = (), mask_id: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.eos_ids = set(int(e) for e in eos_ids)
        self.mask_id = mask_id

    @classmethod
    def for_model(cls, model) -> "Decoder":
        return cls(getattr(model, "tokenizer", None), getattr(model, "eos_ids", ()), getattr(model, "mask_id", None))

    def ids(self, ids: Sequence[int], cut_eos: bool = True) -> list[int]:
        out = []
        for t in ids:
            t = int(t)
            if cut_eos and t in self.eos_ids:
                break
            if self.mask_id is not None and t == self.mask_id:
                continue
            out.append(t)
        return out

    def __call__(self, ids: Sequence[int], cut_eos: bool = True):
        kept = self.ids(ids, cut_eos)
        if self.tokenizer is None:
            return tuple(kept)
        return self.tokenizer.decode(kept, skip_special_tokens=True)
