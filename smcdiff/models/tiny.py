"""Tiny randomly initialised models of the real architectures, for tests and benchmarks.

Each builder returns a model in eval mode built from a transformers config with
a fixed seed; ``save_pretrained`` / ``from_pretrained`` round-trip offline.

* :func:`tiny_llada` — :class:`~smcdiff.models.llada_arch.SMCDiffLLaDAModel`
  (bidirectional LLaMA-style, LLaDA's interface).
* :func:`tiny_dream` — transformers ``Qwen2ForCausalLM`` (Dream's network
  family; causal attention here, which the adapter does not depend on) with a
  mask token in its config.
* :func:`tiny_dream_4d` — a stand-in for Dream's remote code: config
  ``model_type == "Dream"``, bidirectional attention, and a forward that takes
  only Dream's 4-D boolean attention mask ``[R, 1, T, P + T]``.
* :func:`tiny_bert` — ``BertForMaskedLM`` and a matching word-level tokenizer.
"""

from __future__ import annotations

import os

import torch

__all__ = ["tiny_llada", "tiny_dream", "tiny_dream_4d", "tiny_bert", "llada_8b_config"]


def tiny_llada(
    vocab_size: int = 64,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    seed: int = 0,
    mask_token_id: int | None = None,
    eos_token_id: int = 1,
    eot_token_id: int = 2,
    pad_token_id: int = 0,
    dtype: torch.dtype = torch.float32,
):
    """A small :class:`SMCDiffLLaDAModel`; the mask id defaults to the last vocabulary entry."""
    from .llada_arch import SMCDiffLLaDAConfig, SMCDiffLLaDAModel

    return _llada_like(
        SMCDiffLLaDAConfig, SMCDiffLLaDAModel, seed, max_position_embeddings=4096,
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads,
        mask_token_id=vocab_size - 1 if mask_token_id is None else mask_token_id,
        eos_token_id=eos_token_id, eot_token_id=eot_token_id, pad_token_id=pad_token_id,
    ).to(dtype)


def _llada_like(cfg_cls, model_cls, seed: int, **config):
    """``model_cls(cfg_cls(**config))`` with weights drawn after ``torch.manual_seed(seed)``, in eval mode."""
    cfg = cfg_cls(**config)
    torch.manual_seed(seed)
    return model_cls(cfg).eval()


def llada_8b_config(**overrides):
    """The LLaDA-8B shape (d 4096, 32 layers, 32 heads, MLP 12288, vocabulary 126464) as a config."""
    from .llada_arch import SMCDiffLLaDAConfig

    return SMCDiffLLaDAConfig(**overrides)


def tiny_dream(
    vocab_size: int = 64,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
    mask_token_id: int | None = None,
    eos_token_id: int = 1,
    pad_token_id: int = 0,
):
    """A small ``Qwen2ForCausalLM`` with ``mask_token_id`` in its config (default: last id)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=1024,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        tie_word_embeddings=False,
    )
    cfg.mask_token_id = vocab_size - 1 if mask_token_id is None else mask_token_id
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(cfg).eval()


_DREAM_STANDIN: tuple | None = None


def _dream_standin_classes() -> tuple:
    """Config and model classes of the Dream stand-in (built on first use: they import transformers)."""
    global _DREAM_STANDIN
    if _DREAM_STANDIN is None:
        from .llada_arch import SMCDiffLLaDAConfig, SMCDiffLLaDAModel

        class DreamStandInConfig(SMCDiffLLaDAConfig):
            model_type = "Dream"

            def __init__(self, **kwargs) -> None:  # explicit: transformers 5 would generate a dataclass __init__
                super().__init__(**kwargs)

        class DreamStandInModel(SMCDiffLLaDAModel):
            """Refuses 2-D attention masks, as a model that expects Dream's 4-D mask would misread them."""

            config_class = DreamStandInConfig

            def forward(
                self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=False, **kwargs
            ):
                if attention_mask is not None and attention_mask.dim() != 4:
                    raise ValueError(
                        f"the Dream stand-in takes a 4-D attention mask [R, 1, T, P + T]; got {attention_mask.dim()}-D"
                    )
                return super().forward(
                    input_ids,
                    attention_mask=attention_mask,
                    position_ids=position_ids,
                    past_key_values=past_key_values,
                    use_cache=use_cache,
                )

        _DREAM_STANDIN = (DreamStandInConfig, DreamStandInModel)
    return _DREAM_STANDIN


def tiny_dream_4d(
    vocab_size: int = 64,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
    mask_token_id: int | None = None,
    eos_token_id: int = 1,
    pad_token_id: int = 0,
):
    """A small stand-in for Dream's remote code (``model_type == "Dream"``; default mask id: last id).

    The network is :class:`~smcdiff.models.llada_arch.SMCDiffLLaDAModel` (bidirectional,
    rotary, takes ``position_ids`` and ``past_key_values``) with a forward that accepts
    only the 4-D boolean attention mask Dream's ``diffusion_generate`` builds, so
    :class:`~smcdiff.models.DreamDenoiser` takes its ``"4d"`` branch. Not Qwen2's
    layers: the adapter depends only on the interface. For tests; not meant for
    ``save_pretrained``.
    """
    cfg_cls, model_cls = _dream_standin_classes()
    return _llada_like(
        cfg_cls, model_cls, seed, max_position_embeddings=1024,
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads,
        mask_token_id=vocab_size - 1 if mask_token_id is None else mask_token_id,
        eos_token_id=eos_token_id, eot_token_id=None, pad_token_id=pad_token_id,
    )


def tiny_bert(vocab_words: int = 40, hidden_size: int = 32, num_layers: int = 2, num_heads: int = 4, seed: int = 0, save_dir: str | None = None):
    """A small ``BertForMaskedLM`` and a word-level ``BertTokenizer`` over ``w0 .. w{n-1}``.

    The vocabulary is ``[PAD] [UNK] [CLS] [SEP] [MASK]`` followed by the words.
    With ``save_dir`` both are saved there (for ``from_pretrained`` round trips).
    Returns ``(model, tokenizer)``.
    """
    import tempfile

    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(vocab_words)]
    tmp = save_dir or tempfile.mkdtemp(prefix="smcdiff-bert-")
    os.makedirs(tmp, exist_ok=True)
    vocab_file = os.path.join(tmp, "vocab.txt")
    with open(vocab_file, "w") as f:
        f.write("\n".join(words) + "\n")
    tok = BertTokenizer(vocab_file, do_lower_case=False)
    cfg = BertConfig(
        vocab_size=len(words),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=256,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    model = BertForMaskedLM(cfg).eval()
    if save_dir is not None:
        model.save_pretrained(save_dir)
        tok.save_pretrained(save_dir)
    return model, tok
