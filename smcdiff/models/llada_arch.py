"""A compact implementation of the LLaDA architecture (bidirectional LLaMA-style transformer).

LLaDA (arXiv 2502.09992; checkpoints GSAI-ML/LLaDA-8B-*) is a masked diffusion
model whose network is a LLaMA-style transformer without the causal mask:
RMSNorm, rotary position embeddings, SwiGLU MLPs, no biases, untied input and
output embeddings. This file implements that architecture from its description
so that smcdiff can build tiny randomly initialised models, benchmark at the real
shape, and train and ship small models, all offline. It is *not* the released
``modeling_llada.py``: real checkpoints are loaded with their own remote code
through :class:`smcdiff.models.LLaDADenoiser`.

The module is self-contained (it imports only torch and transformers) so that a
model saved with ``save_pretrained`` carries this file and loads back with
``AutoModel.from_pretrained(path, trust_remote_code=True)``, like a hub
checkpoint.

Interface (the one LLaDA's remote code exposes and Fast-dLLM relies on)::

    out = model(input_ids, attention_mask=None, position_ids=None,
                past_key_values=None, use_cache=False)
    out.logits            # [R, T, V]
    out.past_key_values   # per layer (k, v) of shape [R, H_kv, P + T, D] when use_cache

``past_key_values`` are read, never modified; ``attention_mask`` (``[R, P + T]``,
1 = real token) masks padded keys only. A boolean 4-D mask ``[R, 1, T, P + T]``
(query x key, Dream's format) is also accepted and used as given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

__all__ = ["SMCDiffLLaDAConfig", "SMCDiffLLaDAModel", "LLaDAOutput"]


class SMCDiffLLaDAConfig(PretrainedConfig):
    """Configuration of :class:`SMCDiffLLaDAModel`; defaults are LLaDA-8B's shape."""

    model_type = "smcdiff_llada"

    def __init__(
        self,
        vocab_size: int = 126464,
        hidden_size: int = 4096,
        intermediate_size: int = 12288,
        num_hidden_layers: int = 32,
        num_attention_heads: int = 32,
        num_key_value_heads: Optional[int] = None,
        max_position_embeddings: int = 4096,
        rms_norm_eps: float = 1e-5,
        rope_theta: float = 500000.0,
        initializer_range: float = 0.02,
        mask_token_id: int = 126336,
        eos_token_id: int = 126081,
        eot_token_id: int = 126348,
        pad_token_id: int = 126081,
        tie_word_embeddings: bool = False,
        **kwargs,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads or num_attention_heads
        self.max_position_embeddings = max_position_embeddings
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        self.initializer_range = initializer_range
        self.mask_token_id = mask_token_id
        self.eot_token_id = eot_token_id
        super().__init__(
            eos_token_id=eos_token_id, pad_token_id=pad_token_id, tie_word_embeddings=tie_word_embeddings, **kwargs
        )


@dataclass
class LLaDAOutput:
    """``logits [R, T, V]`` and, with ``use_cache``, per-layer ``(k, v)`` in ``past_key_values``."""

    logits: torch.Tensor
    past_key_values: Optional[tuple] = None


class _RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return (h * self.weight.float()).to(x.dtype)


def _rope(positions: torch.Tensor, dim: int, theta: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim))
    ang = positions.to(torch.float32)[..., None] * inv  # [R, T, D/2]
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos().to(dtype)[:, None], ang.sin().to(dtype)[:, None]  # [R, 1, T, D]


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat([-b, a], dim=-1)


class _Block(nn.Module):
    def __init__(self, cfg: SMCDiffLLaDAConfig) -> None:
        super().__init__()
        d, h, hk = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads
        self.hd = d // h
        self.h, self.hk = h, hk
        self.attn_norm = _RMSNorm(d, cfg.rms_norm_eps)
        self.q_proj = nn.Linear(d, h * self.hd, bias=False)
        self.k_proj = nn.Linear(d, hk * self.hd, bias=False)
        self.v_proj = nn.Linear(d, hk * self.hd, bias=False)
        self.o_proj = nn.Linear(h * self.hd, d, bias=False)
        self.mlp_norm = _RMSNorm(d, cfg.rms_norm_eps)
        self.gate_proj = nn.Linear(d, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(d, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, d, bias=False)

    def forward(self, x, cos, sin, mask, past):
        r, t, _ = x.shape
        hx = self.attn_norm(x)
        q = self.q_proj(hx).view(r, t, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(hx).view(r, t, self.hk, self.hd).transpose(1, 2)
        v = self.v_proj(hx).view(r, t, self.hk, self.hd).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        present = (k, v)
        if self.hk != self.h:
            rep = self.h // self.hk
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=False)
        x = x + self.o_proj(a.transpose(1, 2).reshape(r, t, self.h * self.hd))
        hm = self.mlp_norm(x)
        x = x + self.down_proj(F.silu(self.gate_proj(hm)) * self.up_proj(hm))
        return x, present


class SMCDiffLLaDAModel(PreTrainedModel):
    """Bidirectional LLaMA-style mask predictor with LLaDA's interface (see module docstring)."""

    config_class = SMCDiffLLaDAConfig
    base_model_prefix = "model"
    _no_split_modules = ["_Block"]
    _supports_sdpa = True

    def __init__(self, config: SMCDiffLLaDAConfig) -> None:
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.blocks = nn.ModuleList([_Block(config) for _ in range(config.num_hidden_layers)])
        self.norm = _RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, _RMSNorm):
            nn.init.ones_(module.weight)

    def get_input_embeddings(self) -> nn.Module:
        return self.embed_tokens

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.LongTensor] = None,
        past_key_values: Optional[tuple] = None,
        use_cache: bool = False,
        cache: Optional[tuple] = None,
        **kwargs,
    ) -> LLaDAOutput:
        if past_key_values is None and cache is not None:
            past_key_values = cache
        r, t = input_ids.shape
        past_len = past_key_values[0][0].shape[2] if past_key_values else 0
        x = self.embed_tokens(input_ids)
        if position_ids is None:
            position_ids = torch.arange(past_len, past_len + t, device=input_ids.device).expand(r, t)
        hd = self.config.hidden_size // self.config.num_attention_heads
        cos, sin = _rope(position_ids, hd, self.config.rope_theta, x.dtype)
        mask = None
        if attention_mask is not None:
            am = attention_mask.to(torch.bool)
            if am.shape[-1] != past_len + t:
                raise ValueError(
                    f"attention_mask has {am.shape[-1]} positions; expected past ({past_len}) + input ({t})"
                )
            if am.dim() == 4:  # [R, 1, T, P + T], query x key (Dream's format), used as given
                if am.shape[-2] != t:
                    raise ValueError(f"a 4-D attention_mask must have {t} query rows; got {am.shape[-2]}")
                if not bool(am.all()):
                    mask = am
            elif not bool(am.all()):
                mask = am[:, None, None, :]
        presents = []
        for i, blk in enumerate(self.blocks):
            x, present = blk(x, cos, sin, mask, past_key_values[i] if past_key_values else None)
            if use_cache:
                presents.append(present)
        logits = self.lm_head(self.norm(x))
        return LLaDAOutput(logits=logits, past_key_values=tuple(presents) if use_cache else None)


SMCDiffLLaDAConfig.register_for_auto_class()
SMCDiffLLaDAModel.register_for_auto_class("AutoModel")

