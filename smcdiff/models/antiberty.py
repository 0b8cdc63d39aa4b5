"""AntiBERTy (Ruffolo et al., arXiv 2112.07782) as a denoiser: ``smcdiff.models.load("antiberty")``.

AntiBERTy is a BERT masked LM (8 layers, d 512, 25.8M parameters) trained on
antibody sequences from the Observed Antibody Space. Its weights ship inside
the ``antiberty==0.1.3`` package (``pip install smcdiff[bio]``; later versions
download them). The package's own runner and tokenizer class do not work with
transformers 5, so the tokenizer here is our own: one token per residue, built
from the package's ``vocab.txt``::

    [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, then A C D E F G H I K L M N P Q R S T V W Y

A chain is encoded as ``[CLS] residues [SEP]`` (as AntiBERTy was trained).
The five special tokens are suppressed (logit ``-inf``), so a sampler only ever
writes one of the 20 amino acids.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

from ..errors import ConfigError
from .hf import MaskedLMDenoiser

__all__ = ["AminoAcidTokenizer", "AntiBERTy", "antiberty_dir"]


def antiberty_dir() -> Path:
    """``<antiberty package>/trained_models``; raises an error naming the extra if it is missing."""
    spec = importlib.util.find_spec("antiberty")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("load('antiberty') needs the antiberty package: pip install 'smcdiff[bio]' "
                          "(or pip install antiberty==0.1.3)")
    d = Path(list(spec.submodule_search_locations)[0]) / "trained_models"
    if not (d / "vocab.txt").exists() or not (d / "AntiBERTy_md_smooth" / "config.json").exists():
        raise ConfigError(f"the installed antiberty package has no weights under {d}; install antiberty==0.1.3 "
                          f"(later versions download the weights at run time)")
    return d


class AminoAcidTokenizer:
    """Character tokenizer over a BERT ``vocab.txt`` of single-letter residues and bracketed specials."""

    def __init__(self, vocab: Sequence[str]) -> None:
        self.vocab = list(vocab)
        self.ids = {t: i for i, t in enumerate(self.vocab)}
        if len(self.ids) != len(self.vocab):
            raise ConfigError("vocab.txt has repeated tokens")
        for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"):
            if t not in self.ids:
                raise ConfigError(f"vocab.txt lacks {t}")
        self.pad_token_id = self.ids["[PAD]"]
        self.unk_token_id = self.ids["[UNK]"]
        self.cls_token_id = self.ids["[CLS]"]
        self.sep_token_id = self.ids["[SEP]"]
        self.mask_token_id = self.ids["[MASK]"]
        self.all_special_ids = sorted(i for t, i in self.ids.items() if t.startswith("["))
        self.residues = "".join(t for t in self.vocab if len(t) == 1)

    @classmethod
    def from_file(cls, path: str | Path) -> "AminoAcidTokenizer":
        return cls([line.strip() for line in Path(path).read_text().splitlines() if line.strip()])

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, seq: str, add_special_tokens: bool = True) -> list[int]:
        """Residue letters (case-insensitive; spaces ignored) to ids; ``[CLS] ... [SEP]`` around them by default.

        A ``*`` stands for a masked residue. Any other letter is an error (never mapped to ``[UNK]``).
        """
        ids = []
        for pos, ch in enumerate(seq):
            if ch.isspace():
                continue
            if ch == "*":
                ids.append(self.mask_token_id)
                continue
            i = self.ids.get(ch.upper())
            if i is None:
                raise ConfigError(f"seq[{pos}] = {ch!r} is not an amino acid; accepted: {self.residues} and * (mask)")
            ids.append(i)
        return [self.cls_token_id, *ids, self.sep_token_id] if add_special_tokens else ids

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.vocab):
                raise ConfigError(f"token id {i} is outside the vocabulary (0..{len(self.vocab) - 1})")
            if skip_special_tokens and i in self.all_special_ids:
                continue
            out.append(self.vocab[i])
        return "".join(out)


class AntiBERTy(MaskedLMDenoiser):
    """The AntiBERTy masked LM with :class:`AminoAcidTokenizer` (``encode(seq)``, ``decode(ids)``).

    ``logits(tokens [R, L]) -> [R, L, 25]``; the five special ids are ``-inf``.
    """

    def encode(self, seq: str, add_special_tokens: bool = True) -> list[int]:
        return self.tokenizer.encode(seq, add_special_tokens=add_special_tokens)

    @classmethod
    def load(cls, device=None, dtype=None) -> "AntiBERTy":
        import logging

        from transformers import AutoModelForMaskedLM
        from transformers.utils import logging as hf_logging

        d = antiberty_dir()
        tok = AminoAcidTokenizer.from_file(d / "vocab.txt")
        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity(logging.ERROR)  # the unused AntiBERTy heads are reported as unexpected keys
        try:
            kw = {} if dtype is None else {"dtype": dtype}
            model = AutoModelForMaskedLM.from_pretrained(str(d / "AntiBERTy_md_smooth"), **kw).eval()
        finally:
            hf_logging.set_verbosity(level)
        if model.config.vocab_size != tok.vocab_size:
            raise ConfigError(f"AntiBERTy has {model.config.vocab_size} tokens but vocab.txt {tok.vocab_size}")
        if device is not None:
            model = model.to(device)
        suppress = [i for i in tok.all_special_ids if i != tok.mask_token_id] + [tok.mask_token_id]
        return cls(model, tok.mask_token_id, pad_id=tok.pad_token_id, suppress_ids=sorted(suppress), tokenizer=tok)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

