"""Prompted text continuation with the shipped text MDLM, for :mod:`smcdiff.eval`.

Items are prompt strings; ``mode = "run"`` (the sampler continues each prompt by
``gen_length`` tokens, passed through the :class:`~smcdiff.eval.Method`). Per-item
metrics of the chosen continuation:

* ``nll``: mean negative log-likelihood per scorer token of the continuation given
  the prompt under SmolLM2-135M-Instruct (:mod:`smcdiff.scoring`); ``exp`` of the
  token-weighted mean is the Gen-PPL;
* ``entropy``: entropy (nats) of the continuation's own token distribution (our
  BPE ids) -- degenerate, repetitive text has low entropy and must not win on
  perplexity alone;
* ``distinct2``: distinct bigrams / bigrams of the continuation's tokens.
"""

from __future__ import annotations

from typing import Sequence

from ..metrics import unigram_entropy

__all__ = ["TextTask", "PROMPTS", "distinct_n"]

PROMPTS = (
    "And God said,",
    "In the beginning",
    "Blessed are the",
    "And it came to pass, when",
    "ROMEO.\n",
    "HAMLET.\n",
    "KING.\nMy lords,",
    "O, what a",
    "Thou shalt not",
    "The LORD is my",
    "Enter",
    "Now is the",
)


def distinct_n(ids: Sequence[int], n: int = 2) -> float:
    """Distinct n-grams over n-grams of ``ids`` (1.0 when there are none)."""
    grams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


class TextTask:
    """Continue each prompt; score fluency (SmolLM2 NLL), entropy and distinct-2.

    Args:
        prompts: the prompt strings (default :data:`PROMPTS`).
        scorer: a :class:`~smcdiff.scoring.CausalLMScorer` (default: SmolLM2, loaded on first use).
        name: the task name used in reports and cache paths.
        rewards: extra per-item metrics, ``{name: reward}``; each reward's ``score(prompts, texts)``
            is applied to the (prompt, continuation) pairs (e.g. ``{"sentiment": VaderReward()}``).
    """

    mode = "run"

    def __init__(self, prompts: Sequence[str] = PROMPTS, scorer=None, name: str = "text",
                 rewards: dict | None = None) -> None:
        if not prompts or any(not isinstance(p, str) for p in prompts):
            raise ValueError(f"prompts must be a non-empty sequence of strings; got {prompts!r}")
        self.prompts = list(prompts)
        self.scorer = scorer
        self.name = name
        self.rewards = dict(rewards or {})
        for k, r in self.rewards.items():
            if not hasattr(r, "score"):
                raise ValueError(f"rewards[{k!r}] must have score(prompts, texts); got {type(r).__name__}")

    def items(self):
        return list(self.prompts)

    def inputs(self, model, items):
        return [model.encode(p) for p in items]

    def continuation(self, model, prompt: str, row) -> list[int]:
        n = len(model.encode(prompt))
        return [int(t) for t in row[n:].tolist() if int(t) not in (model.pad_id, model.mask_id)]

    @staticmethod
    def render(model, ids: Sequence[int]) -> str:
        """Decode a continuation; each end-of-sequence token (a document break) becomes a blank line,
        so that no continuation decodes to an empty string."""
        eos = set(getattr(model, "eos_ids", ()))
        parts, cur = [], []
        for t in ids:
            if t in eos:
                parts.append(model.decode(cur))
                cur = []
            else:
                cur.append(t)
        parts.append(model.decode(cur))
        return "\n\n".join(parts)

    def score(self, model, items, outputs, result):
        from ..scoring import CausalLMScorer

        if self.scorer is None:
            self.scorer = CausalLMScorer.smollm2()
        conts = [self.continuation(model, p, row) for p, row in zip(items, outputs)]
        texts = [self.render(model, c) for c in conts]
        nll = [float(self.scorer.token_nll([t], [p])[0].mean()) for p, t in zip(items, texts)]
        out = {"nll": nll, "entropy": [unigram_entropy(c) for c in conts], "distinct2": [distinct_n(c) for c in conts]}
        for k, r in self.rewards.items():
            out[k] = [float(v) for v in r.score(list(items), texts)]
        return out
