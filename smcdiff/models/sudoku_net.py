"""A small bidirectional transformer for 9x9 Sudoku and its Denoiser adapter.

:class:`SudokuNet` maps a template of 81 tokens (digits as ids 0..8, the mask
as 9; see :mod:`smcdiff.tasks.sudoku`) to 9 digit logits per cell. Each cell's
input is the sum of a token embedding and learned row, column and box
embeddings (no plain position embedding: the grid's structure is the only
positional signal). Attention is either restricted to each cell's peers -- the
20 cells sharing its row, column or box, plus itself -- (``attention="peer"``,
the default) or full. Pre-norm blocks (LayerNorm -> attention, LayerNorm ->
GELU MLP), a final LayerNorm and a linear head.

:class:`SudokuDenoiser` implements :class:`~smcdiff.models.Denoiser`:
``mask_id = 9``, ``vocab_size = 10`` (the mask column of the logits is a large
negative constant; samplers set it to ``-inf`` anyway), ``eos_ids = ()``, and
carries the Sudoku tokenizer (:meth:`~SudokuDenoiser.encode`,
:meth:`~SudokuDenoiser.decode`). Weights are stored as float32 safetensors
with a JSON config next to them (``<name>.safetensors`` + ``<name>.json``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["SudokuNetConfig", "SudokuNet", "SudokuDenoiser", "peer_mask"]

MODEL_TYPE = "smcdiff-sudoku-net"
MASK_ID = 9
VOCAB_SIZE = 10
N_CELLS = 81
MASK_LOGIT = -1.0e4  # finite in float16/bfloat16; exp(-1e4) is exactly 0 in float32


@dataclass
class SudokuNetConfig:
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 8
    d_ff: int = 512
    attention: str = "peer"  # "peer" or "full"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.attention not in ("peer", "full"):
            raise ConfigError(f"attention must be 'peer' or 'full'; got {self.attention!r}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SudokuNetConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _cell_indices() -> tuple[Tensor, Tensor, Tensor]:
    i = torch.arange(N_CELLS)
    r, c = i // 9, i % 9
    return r, c, (r // 3) * 3 + c // 3


def peer_mask() -> Tensor:
    """``[81, 81]`` bool: True where two cells share a row, column or box (diagonal included)."""
    r, c, b = _cell_indices()
    return (r[:, None] == r[None, :]) | (c[:, None] == c[None, :]) | (b[:, None] == b[None, :])


class _Block(nn.Module):
    def __init__(self, cfg: SudokuNetConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, cfg.d_ff)
        self.fc2 = nn.Linear(cfg.d_ff, d)
        self.dropout = cfg.dropout

    def forward(self, x: Tensor, attn_mask: Tensor | None) -> Tensor:
        b, n, d = x.shape
        h = self.ln1(x)
        q, k, v = self.qkv(h).view(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)
        x = x + F.dropout(self.proj(a.transpose(1, 2).reshape(b, n, d)), p, self.training)
        x = x + F.dropout(self.fc2(F.gelu(self.fc1(self.ln2(x)))), p, self.training)
        return x


class SudokuNet(nn.Module):
    """``tokens [B, 81]`` (ids 0..9) -> digit logits ``[B, 81, 9]``."""

    def __init__(self, cfg: SudokuNetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or SudokuNetConfig()
        d = self.cfg.d_model
        self.tok = nn.Embedding(VOCAB_SIZE, d)
        self.row = nn.Embedding(9, d)
        self.col = nn.Embedding(9, d)
        self.box = nn.Embedding(9, d)
        self.blocks = nn.ModuleList(_Block(self.cfg) for _ in range(self.cfg.n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, 9)
        r, c, b = _cell_indices()
        self.register_buffer("row_idx", r, persistent=False)
        self.register_buffer("col_idx", c, persistent=False)
        self.register_buffer("box_idx", b, persistent=False)
        self.register_buffer("attn_mask", peer_mask(), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)
        for blk in self.blocks:  # GPT-2 style scaling of the residual projections
            nn.init.normal_(blk.proj.weight, std=0.02 / math.sqrt(2 * self.cfg.n_layers))
            nn.init.normal_(blk.fc2.weight, std=0.02 / math.sqrt(2 * self.cfg.n_layers))

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.tok(tokens) + (self.row(self.row_idx) + self.col(self.col_idx) + self.box(self.box_idx))
        mask = self.attn_mask if self.cfg.attention == "peer" else None
        for blk in self.blocks:
            x = blk(x, mask)
        return self.head(self.ln_f(x))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _resolve_files(path: str | Path | tuple | list, name: str = "sudoku") -> tuple[Path, Path]:
    """``(weights.safetensors, config.json)`` from a directory, a weights file, or a pair."""
    if isinstance(path, (tuple, list)):
        w, c = (Path(p) for p in path)
        return w, c
    p = Path(path)
    if p.is_dir():
        w = p / f"{name}.safetensors"
        if not w.exists():
            cands = sorted(p.glob("*.safetensors"))
            if len(cands) != 1:
                raise ConfigError(f"{p} holds no {name}.safetensors (and not exactly one *.safetensors file)")
            w = cands[0]
        return w, w.with_suffix(".json")
    if p.suffix == ".json":
        return p.with_suffix(".safetensors"), p
    return p, p.with_suffix(".json")


class SudokuDenoiser:
    """The Denoiser adapter of :class:`SudokuNet` (see the module docstring)."""

    mask_id: int = MASK_ID
    vocab_size: int = VOCAB_SIZE
    eos_ids: tuple[int, ...] = ()
    length: int = N_CELLS

    def __init__(
        self, net: SudokuNet | None = None, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.net = (net or SudokuNet()).eval()
        if device is not None or dtype is not None:
            self.net.to(device=device, dtype=dtype)
        self.meta = dict(meta or {})

    # --- Denoiser protocol -------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def config(self) -> SudokuNetConfig:
        return self.net.cfg

    def logits(self, tokens: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """``tokens [R, 81]`` -> float32 ``[R, 81, 10]``; column 9 (the mask) is ``-1e4``.

        ``attention_mask`` is accepted for the protocol and must be all ones
        (every cell is a real token) if given.
        """
        if tokens.dim() != 2 or tokens.shape[1] != N_CELLS:
            raise ConfigError(f"Sudoku tokens must have shape [R, {N_CELLS}]; got {tuple(tokens.shape)}")
        if attention_mask is not None and not bool(torch.as_tensor(attention_mask).bool().all()):
            raise ConfigError("the Sudoku model has no padding: attention_mask must be all ones (or None)")
        tokens = tokens.to(self.device, torch.long)
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) > MASK_ID):
            raise ConfigError(f"Sudoku token ids must lie in 0..{MASK_ID}")
        with torch.no_grad():
            z = self.net(tokens).float()
        pad = torch.full((*z.shape[:2], 1), MASK_LOGIT, dtype=z.dtype, device=z.device)
        return torch.cat([z, pad], dim=-1)

    __call__ = logits

    # --- tokenizer ---------------------------------------------------------------------------
    @staticmethod
    def encode(puzzle) -> list[int]:
        from ..tasks.sudoku import encode

        return encode(puzzle)

    @staticmethod
    def decode(ids) -> str:
        from ..tasks.sudoku import decode

        return decode(ids)

    def encode_batch(self, puzzles) -> Tensor:
        """``[R, 81]`` long tensor of templates on the model's device."""
        return torch.tensor([self.encode(p) for p in puzzles], dtype=torch.long, device=self.device)

    # --- persistence -------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, name: str = "sudoku", meta: dict[str, Any] | None = None) -> Path:
        """Write ``<directory>/<name>.safetensors`` (float32) and ``<name>.json``; returns the weights path."""
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.net.state_dict().items()}
        w = d / f"{name}.safetensors"
        tmp = w.with_name(w.name + ".tmp")
        save_file(state, str(tmp), metadata={"model_type": MODEL_TYPE})
        os.chmod(tmp, 0o644)
        tmp.replace(w)
        info = {"model_type": MODEL_TYPE, "mask_id": MASK_ID, "vocab_size": VOCAB_SIZE, **asdict(self.net.cfg)}
        m = {**self.meta, **(meta or {})}
        if m:
            info["meta"] = m
        cj = d / f"{name}.json"
        tmpj = cj.with_name(cj.name + ".tmp")
        tmpj.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        tmpj.replace(cj)
        return w

    @classmethod
    def from_pretrained(
        cls, path: str | Path | tuple | list, device: str | torch.device | None = None,
        dtype: torch.dtype | None = None, name: str = "sudoku",
    ) -> "SudokuDenoiser":
        """Load from a directory, a ``.safetensors`` file (config: same stem ``.json``) or a (weights, config) pair."""
        from safetensors.torch import load_file

        w, c = _resolve_files(path, name)
        if not w.exists():
            raise ConfigError(f"no Sudoku weights at {w}")
        if not c.exists():
            raise ConfigError(f"no Sudoku config at {c} (expected next to the weights)")
        info = json.loads(c.read_text())
        if info.get("model_type") != MODEL_TYPE:
            raise ConfigError(f"{c} is not a {MODEL_TYPE} config (model_type={info.get('model_type')!r})")
        net = SudokuNet(SudokuNetConfig.from_dict(info))
        net.load_state_dict(load_file(str(w)), strict=True)
        return cls(net, device=device, dtype=dtype, meta=info.get("meta"))
