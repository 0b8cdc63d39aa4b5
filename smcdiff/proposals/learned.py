"""Learned unmasking policies (arXiv 2512.09106): a small transformer that decides which positions to commit.

The network (:class:`UnmaskingPolicyNet`) reads, for every position of the window it
is shown, the model's top-1 probability there, whether the position is still masked,
and the time ``t`` = steps taken / canvas length; it returns one logit ``b_i`` per
position. One DiT-style block: bidirectional self-attention (rotary positions),
GELU MLP, adaLN modulation (shift, scale and gate for both) computed from the mask
embedding plus a sinusoidal time embedding; the modulation is initialised to zero
and the output bias to ``-2`` (every position starts at probability about 0.12), as
in the paper's released code. d = 128, 2 heads, MLP 512: 0.33M parameters.

Action modes, each a :class:`~smcdiff.proposals.selectors.Selector` that reports the
exact probability of its action, so a policy composes with SMC like any other
stochastic selector (the kernel is then its own reference; see :mod:`smcdiff.engine`):

* :class:`PolicyBernoulli` — position ``i`` (eligible: masked, in the block) is
  committed independently with probability ``p_i = min(1, beta * sigmoid(b_i / tau))``;
  ``log q(S) = sum_eligible [1{i in S} log p_i + 1{i not in S} log(1 - p_i)]``. With
  ``fallback=True`` (evaluation) an empty draw commits instead the eligible position of
  largest logit ``j*`` (lowest index on ties): ``q({j*}) = Ber({j*}) + Ber(empty)`` and
  ``q(empty) = 0``. ``tau`` is the policy temperature, ``beta`` the test-time scaling.
* :class:`PolicyPlackettLuce` — "dynamic Plackett-Luce": the first position is drawn from
  ``softmax(b / tau)`` over the eligible positions, each further draw from the softmax
  over the remaining positions and a STOP item of logit ``stop_logit``, until STOP or
  none is left; ``log q`` is that of the ordered draw (recorded in ``rank``), exact on the
  extended space of ordered choices as for :class:`~smcdiff.proposals.PlackettLuce`.

The policy's inputs come from the kernel (``plan.time`` and ``plan.view``): the model's
top-1 probability (the paper's "confidence") and the mask bit at *every* position of the
canvas, prompt and fixed tokens included, and the time; its logits are read at the
current block's positions, and only eligible positions can be committed (the paper's
full-context policy). A row's inputs therefore do not depend on the other rows of the
batch. Tokens are the kernel's token sampler's: ``Greedy()`` as in the paper, or sampled.

:func:`policy_kernel` builds the kernel; :func:`load_policy` loads a shipped policy by
name (``available_policies()``) or a saved one by path.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError, check_number
from .selectors import NEG_INF, Selector, SelectorDraw, StepPlan

__all__ = [
    "PolicyConfig",
    "UnmaskingPolicyNet",
    "PolicyBernoulli",
    "PolicyPlackettLuce",
    "policy_kernel",
    "load_policy",
    "available_policies",
    "bernoulli_draw",
    "bernoulli_log_prob",
]


# ---------------------------------------------------------------------- network
@dataclass(frozen=True)
class PolicyConfig:
    d_model: int = 128
    n_heads: int = 2
    d_ff: int = 512
    time_dim: int = 128
    init_bias: float = -2.0
    rope_theta: float = 10000.0
    #: 0: the paper's network. > 0: add a learnable scalar times the confidence to every logit,
    #: initialised to this value, with the output bias at ``init_bias - conf_skip`` (so the untrained
    #: policy commits confident positions first: ``p = sigmoid(init_bias + conf_skip * (c - 1))``).
    conf_skip: float = 0.0


def _time_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of ``t`` in ``[0, 1]``, ``[R, dim]``: periods from 1 down to 1/1000."""
    half = dim // 2
    freqs = 2 * math.pi * torch.exp(torch.linspace(0.0, math.log(1000.0), half, device=t.device, dtype=torch.float64))
    ang = t[:, None] * freqs[None, :].to(t.dtype)
    return torch.cat([torch.cos(ang), torch.sin(ang)], dim=-1)


def _rope(x: Tensor, theta: float) -> Tensor:
    """Rotary position embedding over the sequence axis of ``x [R, H, L, Dh]``."""
    r, h, l_, dh = x.shape
    half = dh // 2
    inv = 1.0 / (theta ** (torch.arange(half, dtype=x.dtype, device=x.device) / half))
    ang = torch.arange(l_, dtype=x.dtype, device=x.device)[:, None] * inv[None, :]
    cos, sin = torch.cos(ang), torch.sin(ang)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class UnmaskingPolicyNet(nn.Module):
    """``logits(confidence [R, L], masked [R, L] bool, time [R]) -> [R, L]`` (see the module docstring)."""

    def __init__(self, config: PolicyConfig | None = None) -> None:
        super().__init__()
        cfg = config or PolicyConfig()
        if cfg.d_model % cfg.n_heads or (cfg.d_model // cfg.n_heads) % 2:
            raise ConfigError(f"d_model ({cfg.d_model}) must split into {cfg.n_heads} heads of even width")
        self.config = cfg
        d = cfg.d_model
        self.conf_in = nn.Linear(1, d)
        self.mask_emb = nn.Embedding(2, d)
        self.time_mlp = nn.Sequential(nn.Linear(cfg.time_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(d, 3 * d)
        self.attn_out = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(d, cfg.d_ff), nn.GELU(approximate="tanh"), nn.Linear(cfg.d_ff, d))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        self.norm_out = nn.LayerNorm(d)
        self.head = nn.Linear(d, 1)
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)
        nn.init.constant_(self.head.bias, cfg.init_bias - cfg.conf_skip)
        if cfg.conf_skip:
            self.conf_gain = nn.Parameter(torch.tensor(float(cfg.conf_skip)))

    def forward(self, confidence: Tensor, masked: Tensor, time: Tensor) -> Tensor:
        cfg = self.config
        r, l_ = confidence.shape
        x = self.conf_in(confidence.to(self.conf_in.weight.dtype)[..., None])
        c = self.mask_emb(masked.long()) + self.time_mlp(_time_embedding(time, cfg.time_dim))[:, None, :]
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c).chunk(6, dim=-1)
        h = self.norm1(x) * (1 + sc1) + sh1
        q, k, v = self.qkv(h).view(r, l_, 3, cfg.n_heads, -1).permute(2, 0, 3, 1, 4)
        q, k = _rope(q, cfg.rope_theta), _rope(k, cfg.rope_theta)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(r, l_, -1)
        x = x + g1 * self.attn_out(a)
        x = x + g2 * self.mlp(self.norm2(x) * (1 + sc2) + sh2)
        out = self.head(self.norm_out(x)).squeeze(-1)
        if self.config.conf_skip:
            out = out + self.conf_gain * confidence.to(out.dtype)
        return out

    def save(self, directory: str | Path, name: str, meta: dict | None = None) -> Path:
        """Write ``<name>.safetensors`` (float32) and ``<name>.json`` (config and ``meta``)."""
        from dataclasses import asdict

        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().float().contiguous() for k, v in self.state_dict().items()},
                  str(d / f"{name}.safetensors"))
        (d / f"{name}.json").write_text(json.dumps({"model_type": "smcdiff-unmasking-policy",
                                                    "config": asdict(self.config), "meta": meta or {}},
                                                   indent=2, sort_keys=True) + "\n")
        return d / f"{name}.safetensors"

    @classmethod
    def from_file(cls, path: str | Path) -> "UnmaskingPolicyNet":
        """Load ``<path>`` (``.safetensors`` with its ``.json`` beside it)."""
        from safetensors.torch import load_file

        p = Path(path)
        if p.suffix != ".safetensors":
            p = p.with_name(p.name + ".safetensors")
        if not p.exists():
            raise ConfigError(f"no policy weights at {str(p)!r}")
        rec = json.loads(p.with_suffix(".json").read_text())
        if rec.get("model_type") != "smcdiff-unmasking-policy":
            raise ConfigError(f"{p.with_suffix('.json')} is not an smcdiff unmasking policy")
        net = cls(PolicyConfig(**rec["config"]))
        net.load_state_dict(load_file(str(p)))
        net.meta = rec.get("meta", {})
        return net.eval()


def _weights_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "weights"


def available_policies() -> dict[str, str]:
    """Shipped policies: ``{name: description}`` (files ``smcdiff/weights/policy-<name>.*``)."""
    out = {}
    for j in sorted(_weights_dir().glob("policy-*.json")):
        rec = json.loads(j.read_text())
        out[j.stem[len("policy-"):]] = rec.get("meta", {}).get("description", "")
    return out


_LOADED: dict[str, UnmaskingPolicyNet] = {}


def load_policy(name: str) -> UnmaskingPolicyNet:
    """A shipped policy by name (``available_policies()``) or a saved one by path (cached per process)."""
    if not isinstance(name, str):
        raise ConfigError(f"policy must be a shipped policy name or a path; got {type(name).__name__}")
    if name in _LOADED:
        return _LOADED[name]
    shipped = _weights_dir() / f"policy-{name}.safetensors"
    if shipped.exists():
        net = UnmaskingPolicyNet.from_file(shipped)
    elif Path(name).exists() or Path(name + ".safetensors").exists():
        net = UnmaskingPolicyNet.from_file(name)
    else:
        raise ConfigError(f"unknown policy {name!r}: not a shipped policy ({sorted(available_policies())}) "
                          f"nor a saved file")
    net.source = name
    _LOADED[name] = net
    return net


def _resolve(policy) -> UnmaskingPolicyNet:
    if isinstance(policy, UnmaskingPolicyNet):
        return policy
    return load_policy(policy)


# ---------------------------------------------------------------------- action probabilities
def _bernoulli_logs(logits: Tensor, temperature: float, beta: float) -> tuple[Tensor, Tensor]:
    """``(log p, log(1 - p))`` with ``p = min(1, beta * sigmoid(logits / temperature))``, float64."""
    x = logits.to(torch.float64) / temperature
    if beta == 1.0:
        return F.logsigmoid(x), F.logsigmoid(-x)
    lp = (math.log(beta) + F.logsigmoid(x)).clamp(max=0.0)
    return lp, torch.log1p(-torch.exp(lp))


def _fallback_index(logits: Tensor, eligible: Tensor) -> Tensor:
    """Eligible position of largest logit per row (lowest index on ties); 0 where none is eligible."""
    z = torch.where(eligible, logits.to(torch.float64), NEG_INF)
    return torch.sort(z, dim=-1, descending=True, stable=True).indices[:, 0]


def bernoulli_draw(logits: Tensor, eligible: Tensor, u: Tensor, temperature: float = 1.0, beta: float = 1.0,
                   fallback: bool = False) -> Tensor:
    """The (fallback-)Bernoulli action ``[R, L]`` bool from uniforms ``u [R, L]``: eligible ``i`` is committed
    when ``u_i < p_i``; with ``fallback`` an empty draw commits the eligible position of largest logit."""
    lp, _ = _bernoulli_logs(logits, temperature, beta)
    commit = (torch.log(u.clamp_min(1e-300)) < lp) & eligible
    if fallback:
        empty = ~commit.any(dim=-1) & eligible.any(dim=-1)
        j = _fallback_index(logits, eligible)
        commit = commit | (empty[:, None] & F.one_hot(j, logits.shape[-1]).bool())
    return commit


def bernoulli_log_prob(logits: Tensor, eligible: Tensor, commit: Tensor, temperature: float = 1.0,
                       beta: float = 1.0, fallback: bool = False) -> Tensor:
    """Exact ``log q(commit)`` ``[R]`` of the (fallback-)Bernoulli action mode (module docstring)."""
    lp, l1p = _bernoulli_logs(logits, temperature, beta)
    commit = commit.bool()
    eligible = eligible.bool()
    terms = torch.where(commit, lp, l1p)
    ber = torch.where(eligible, terms, 0.0).sum(dim=-1)
    ber = torch.where(torch.isnan(ber), NEG_INF, ber)
    bad = (commit & ~eligible).any(dim=-1)
    out = ber
    if fallback:
        any_elig = eligible.any(dim=-1)
        n = commit.sum(dim=-1)
        j = _fallback_index(logits, eligible)
        empty_lp = torch.where(eligible, l1p, 0.0).sum(dim=-1)
        single_is_j = (n == 1) & commit.gather(1, j[:, None]).squeeze(1)
        out = torch.where(single_is_j, torch.logaddexp(ber, empty_lp), ber)
        out = torch.where((n == 0) & any_elig, NEG_INF, out)
    return torch.where(bad, NEG_INF, out)


def _policy_logits(policy: UnmaskingPolicyNet, scores: Tensor, eligible: Tensor, plan: StepPlan) -> Tensor:
    """Policy logits at the block's slots ``[R, Lb]`` (float64).

    Inside the kernel the policy reads the whole canvas (``plan.view``: top-1 probability and mask bit
    of every position) and its logits are taken at the block's positions; without a view (a bare
    selector call) it reads the block's ``scores`` and ``eligible`` as its inputs.
    """
    if plan.time is None:
        raise ConfigError("a learned policy needs plan.time: use it inside an UnmaskingKernel (policy_kernel)")
    w = next(policy.parameters())
    with torch.no_grad():  # in the network's dtype (float64 for exact checks: net.double())
        if plan.view is not None:
            conf, masked, pos = plan.view
            z = policy(conf.to(w.device, w.dtype), masked.to(w.device), plan.time.to(w.device, w.dtype))
            z = z.gather(1, pos.to(w.device))
        else:
            z = policy(scores.to(w.device, w.dtype), eligible.to(w.device), plan.time.to(w.device, w.dtype))
    return z.to(scores.device, torch.float64)


def _check_policy_args(temperature: float, beta: float) -> None:
    check_number("temperature", temperature, low=0.0, low_open=True)
    check_number("beta", beta, low=0.0, low_open=True)


@dataclass(frozen=True)
class PolicyBernoulli(Selector):
    """Independent Bernoulli commits from a learned policy (``fallback``: at least one); see the module docstring.

    Args:
        policy: a shipped policy name, a saved policy path, or an :class:`UnmaskingPolicyNet`.
        temperature: policy temperature ``tau`` (logits divided by it).
        beta: test-time scaling, ``p = min(1, beta * sigmoid(b / tau))``.
        fallback: commit the eligible position of largest logit when the draw is empty.
    """

    policy: Any
    temperature: float = 1.0
    beta: float = 1.0
    fallback: bool = True
    net: UnmaskingPolicyNet = field(init=False, repr=False, compare=False)

    is_deterministic = False
    uses_count = False
    needs_time = True

    def __post_init__(self) -> None:
        _check_policy_args(self.temperature, self.beta)
        object.__setattr__(self, "net", _resolve(self.policy))

    def spec_args(self) -> dict:
        src = self.policy if isinstance(self.policy, str) else getattr(self.net, "source", None)
        if src is None:
            raise ConfigError("this policy network was not loaded by name or path; save it and pass the path")
        return {"policy": src, "temperature": self.temperature, "beta": self.beta, "fallback": self.fallback}

    def draw(self, scores, eligible, plan, rng):
        z = _policy_logits(self.net, scores, eligible, plan)
        commit = bernoulli_draw(z, eligible, rng.uniform(scores.shape[-1]), self.temperature, self.beta, self.fallback)
        return SelectorDraw(commit, bernoulli_log_prob(z, eligible, commit, self.temperature, self.beta,
                                                       self.fallback))

    def log_prob(self, scores, eligible, plan, commit, rank=None):
        z = _policy_logits(self.net, scores, eligible, plan)
        return bernoulli_log_prob(z, eligible, commit, self.temperature, self.beta, self.fallback)


@dataclass(frozen=True)
class PolicyPlackettLuce(Selector):
    """Dynamic Plackett-Luce with a STOP item from a learned policy (at least one commit); see the module docstring.

    Args:
        policy: a shipped policy name, a saved policy path, or an :class:`UnmaskingPolicyNet`.
        temperature: policy temperature (logits divided by it; the STOP logit is not).
        stop_logit: the STOP item's logit.
    """

    policy: Any
    temperature: float = 1.0
    stop_logit: float = 0.0
    net: UnmaskingPolicyNet = field(init=False, repr=False, compare=False)

    is_deterministic = False
    uses_count = False
    uses_rank = True
    needs_time = True

    def __post_init__(self) -> None:
        _check_policy_args(self.temperature, 1.0)
        check_number("stop_logit", self.stop_logit)
        object.__setattr__(self, "net", _resolve(self.policy))

    def spec_args(self) -> dict:
        src = self.policy if isinstance(self.policy, str) else getattr(self.net, "source", None)
        if src is None:
            raise ConfigError("this policy network was not loaded by name or path; save it and pass the path")
        return {"policy": src, "temperature": self.temperature, "stop_logit": self.stop_logit}

    def _z(self, scores, eligible, plan) -> Tensor:
        z = _policy_logits(self.net, scores, eligible, plan) / self.temperature
        return torch.where(eligible, z, NEG_INF)

    def draw(self, scores, eligible, plan, rng):
        z = self._z(scores, eligible, plan)
        r_rows, lb = z.shape
        u = rng.uniform(lb)  # stage j uses u[:, j]: a fixed draw per row, whatever the other rows do
        remaining = z.clone()
        rank = torch.full((r_rows, lb), -1, dtype=torch.long, device=z.device)
        alive = eligible.any(dim=-1)
        stop = torch.full((r_rows, 1), float(self.stop_logit), dtype=torch.float64, device=z.device)
        for j in range(lb):
            if not bool(alive.any()):
                break
            logits = remaining if j == 0 else torch.cat([remaining, stop], dim=-1)
            p = torch.softmax(logits, dim=-1)
            cdf = p.cumsum(dim=-1)
            idx = torch.searchsorted(cdf, u[:, j : j + 1].contiguous()).squeeze(1).clamp_max(logits.shape[-1] - 1)
            # never land on an impossible item through rounding at the top of the cdf
            idx = torch.where(p.gather(1, idx[:, None]).squeeze(1) > 0, idx, p.argmax(dim=-1))
            took = alive & (idx < lb)
            pos = idx.clamp_max(lb - 1)
            rank[took, pos[took]] = j
            remaining[took, pos[took]] = NEG_INF
            alive = took & torch.isfinite(remaining).any(dim=-1)
        commit = rank >= 0
        return SelectorDraw(commit, self.log_prob(scores, eligible, plan, commit, rank), rank)

    def log_prob(self, scores, eligible, plan, commit, rank=None):
        if rank is None:
            raise ConfigError("PolicyPlackettLuce.log_prob needs the draw order (rank)")
        z = self._z(scores, eligible, plan)
        r_rows, lb = z.shape
        n = commit.sum(dim=-1)
        m = eligible.sum(dim=-1)
        ok = ~(commit & ~eligible).any(dim=-1) & ((rank >= 0) == commit).all(dim=-1)
        sorted_ranks = torch.sort(torch.where(commit, rank, lb + 1), dim=-1).values
        ok &= ((sorted_ranks == torch.arange(lb, device=z.device)[None, :]) | (sorted_ranks == lb + 1)).all(dim=-1)
        ok &= (n >= 1) | (m == 0)
        stop = torch.full((r_rows, 1), float(self.stop_logit), dtype=torch.float64, device=z.device)
        total = torch.zeros(r_rows, dtype=torch.float64, device=z.device)
        remaining = z.clone()
        for j in range(int(n.max()) if r_rows else 0):
            pick = (rank == j) & commit
            has = pick.any(dim=-1)
            logits = remaining if j == 0 else torch.cat([remaining, stop], dim=-1)
            lse = torch.logsumexp(logits, dim=-1)
            total = total + torch.where(has, torch.where(pick, z, 0.0).sum(dim=-1) - lse, 0.0)
            remaining = torch.where(pick, NEG_INF, remaining)
        # STOP after the last pick, unless no position is left
        left = torch.isfinite(remaining).any(dim=-1)
        lse = torch.logsumexp(torch.cat([remaining, stop], dim=-1), dim=-1)
        total = total + torch.where(left & (n >= 1), float(self.stop_logit) - lse, 0.0)
        total = torch.where(torch.isnan(total), NEG_INF, total)
        return torch.where(ok, total, NEG_INF)

    def support(self, m, k):
        import itertools

        for size in range(1, m + 1):
            for perm in itertools.permutations(range(m), size):
                sub = tuple(sorted(perm))
                yield sub, tuple(perm.index(s) for s in sub)


def policy_kernel(policy, mode: str = "bernoulli", temperature: float = 1.0, beta: float = 1.0,
                  fallback: bool = True, stop_logit: float = 0.0, block_length: int | None = None,
                  tokens: str = "greedy", token_temperature: float = 1.0):
    """An :class:`~smcdiff.proposals.UnmaskingKernel` driven by a learned policy.

    ``mode``: ``"bernoulli"`` (:class:`PolicyBernoulli`) or ``"dpls"``
    (:class:`PolicyPlackettLuce`). ``tokens="greedy"`` commits the model's arg-max (the
    paper), ``"sample"`` draws tokens at ``token_temperature``. The score is
    :class:`~smcdiff.proposals.scores.TopProbability` and the schedule
    :class:`~smcdiff.proposals.schedules.AdaptiveSteps` (the policy decides how many).
    """
    from .kernel import UnmaskingKernel
    from .schedules import AdaptiveSteps
    from .scores import TopProbability
    from .tokens import Categorical, Greedy

    if mode == "bernoulli":
        sel: Selector = PolicyBernoulli(policy, temperature, beta, fallback)
    elif mode == "dpls":
        sel = PolicyPlackettLuce(policy, temperature, stop_logit)
    else:
        raise ConfigError(f"mode must be 'bernoulli' or 'dpls'; got {mode!r}")
    if tokens == "greedy":
        sampler = Greedy()
    elif tokens == "sample":
        sampler = Categorical(token_temperature)
    else:
        raise ConfigError(f"tokens must be 'greedy' or 'sample'; got {tokens!r}")
    return UnmaskingKernel(sampler, sel, AdaptiveSteps(), TopProbability(), block_length=block_length)

