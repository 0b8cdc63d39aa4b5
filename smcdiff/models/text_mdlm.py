"""The shipped text MDLM: a small bidirectional transformer over a byte-level BPE vocabulary.

Architecture: :class:`~smcdiff.models.llada_arch.SMCDiffLLaDAModel` (LLaMA-style
blocks with full attention, RoPE, RMSNorm, SwiGLU; no time conditioning).
Parameterisation: SUBS (arXiv 2406.07524): the mask token's logit is ``-inf``
(the clean-data prediction never puts mass on the mask) and unmasked positions
are carried over by the sampler. Special ids: ``<pad>`` 0, ``<mask>`` 1,
``<eos>`` 2 (document separator); pad and mask are never generated.

Files (flat, package data under ``smcdiff/weights``): ``<name>.safetensors``
(fp32 state dict), ``<name>.json`` (model config and training record) and
``<name>.tokenizer.json`` (a ``tokenizers`` file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .hf import LLaDADenoiser
from .llada_arch import SMCDiffLLaDAConfig, SMCDiffLLaDAModel

__all__ = ["TextMDLM", "PAD_ID", "MASK_ID", "EOS_ID", "SPECIAL_TOKENS", "make_tokenizer"]

PAD_ID, MASK_ID, EOS_ID = 0, 1, 2
SPECIAL_TOKENS = ("<pad>", "<mask>", "<eos>")


def make_tokenizer(tokenizer_file: str | Path):
    """A transformers fast tokenizer around a ``tokenizers`` JSON file with our special tokens."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_file), pad_token="<pad>", mask_token="<mask>", eos_token="<eos>",
        clean_up_tokenization_spaces=False,
    )


class TextMDLM(LLaDADenoiser):
    """Denoiser of the shipped text MDLM, with ``encode(text)`` / ``decode(ids)``.

    ``logits(tokens [R, L]) -> [R, L, V]``: clean-token logits at every
    position; ``<pad>`` and ``<mask>`` are ``-inf``.
    """

    meta: dict[str, Any]

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    @classmethod
    def build(cls, model: SMCDiffLLaDAModel, tokenizer, meta: dict | None = None) -> "TextMDLM":
        cfg = model.config
        den = cls(model.eval(), int(cfg.mask_token_id), eos_ids=(EOS_ID,), pad_id=PAD_ID,
                  suppress_ids=(PAD_ID, MASK_ID), tokenizer=tokenizer)
        den.meta = dict(meta or {})
        return den

    def save(self, directory: str | Path, name: str = "text-mdlm", meta: dict | None = None) -> Path:
        """Write ``<name>.safetensors``, ``<name>.json`` and ``<name>.tokenizer.json`` into ``directory``."""
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(d / f"{name}.safetensors"))
        cfg = self.model.config
        keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "rope_theta", "mask_token_id",
                "eos_token_id", "eot_token_id", "pad_token_id")
        rec = {"model_type": "smcdiff-text-mdlm", "config": {k: getattr(cfg, k) for k in keys},
               "meta": {**self.meta, **(meta or {})}}
        (d / f"{name}.json").write_text(json.dumps(rec, indent=2, sort_keys=True) + "\n")
        self.tokenizer.backend_tokenizer.save(str(d / f"{name}.tokenizer.json"))
        return d / f"{name}.safetensors"

    @classmethod
    def from_files(cls, directory: str | Path, name: str = "text-mdlm", device=None, dtype=None) -> "TextMDLM":
        """Load what :meth:`save` wrote (no network, no remote code)."""
        from safetensors.torch import load_file

        d = Path(directory)
        paths = [d / f"{name}.safetensors", d / f"{name}.json", d / f"{name}.tokenizer.json"]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise FileNotFoundError(f"text MDLM files missing: {missing}")
        rec = json.loads(paths[1].read_text())
        if rec.get("model_type") != "smcdiff-text-mdlm":
            raise ValueError(f"{paths[1]} is not a text MDLM record (model_type {rec.get('model_type')!r})")
        model = SMCDiffLLaDAModel(SMCDiffLLaDAConfig(**rec["config"]))
        model.load_state_dict(load_file(str(paths[0])))
        if dtype is not None:
            model = model.to(dtype)
        if device is not None:
            model = model.to(device)
        return cls.build(model, make_tokenizer(paths[2]), rec.get("meta"))
