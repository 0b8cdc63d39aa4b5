"""Prompts and templates from the command line: text to token ids and back.

A prompt is encoded with the model's tokenizer (no special tokens added). A
template is text in which ``[MASK]`` marks one position to generate and
``[MASK*K]`` marks ``K``; the text between markers is encoded as for a prompt.
A template without markers is given to the model's own ``encode`` unchanged, for
models whose text form already marks the blanks (the Sudoku model: 81 digits,
``0`` or ``.`` for a blank).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from ..errors import ConfigError

__all__ = ["encode_text", "encode_template", "decode_ids", "read_lines", "parse_ids"]

_MARK = re.compile(r"\[MASK(?:\*(\d+))?\]")


def encode_text(model, text: str) -> list[int]:
    """Token ids of ``text`` under the model's tokenizer, without special tokens."""
    enc = getattr(model, "encode", None)
    if enc is not None:
        try:
            return list(enc(text, add_special_tokens=False))
        except TypeError:
            return list(enc(text))
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        raise ConfigError("this model has no tokenizer: give token ids from Python instead of text")
    return list(tok.encode(text, add_special_tokens=False))


def encode_template(model, text: str) -> list[int]:
    """Token ids of a template (``[MASK]`` / ``[MASK*K]`` markers; see the module docstring)."""
    if not _MARK.search(text):
        ids = encode_text(model, text)
        if model.mask_id not in ids:
            raise ConfigError(f"template {text[:40]!r} has no position to generate: mark them with [MASK] or "
                              f"[MASK*K]")
        return ids
    ids: list[int] = []
    pos = 0
    for m in _MARK.finditer(text):
        if m.start() > pos:
            ids += encode_text(model, text[pos : m.start()])
        k = int(m.group(1) or 1)
        if k < 1:
            raise ConfigError(f"template marker {m.group(0)!r}: K must be >= 1")
        ids += [int(model.mask_id)] * k
        pos = m.end()
    if pos < len(text):
        ids += encode_text(model, text[pos:])
    return ids


def decode_ids(model, ids: Sequence[int]) -> str | None:
    """Text of ``ids`` under the model's tokenizer (None when the model has none)."""
    dec = getattr(model, "decode", None)
    if dec is not None:
        try:
            return dec(list(ids))
        except (ConfigError, ValueError):
            return None
    tok = getattr(model, "tokenizer", None)
    return None if tok is None else tok.decode(list(ids), skip_special_tokens=True)


def read_lines(path: str) -> list[str]:
    """Non-empty lines of a file; ``\\n`` inside a line stands for a newline."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"no such file: {path!r}")
    return [line.replace("\\n", "\n") for line in p.read_text().splitlines() if line.strip()]


def parse_ids(text: str, mask_id: int | None = None, flag: str = "--prompt-ids") -> list[int]:
    """Token ids from ``'0 3 1'`` or ``'0,3,1'``; with ``mask_id``, ``m`` stands for it."""
    out = []
    for tok in text.replace(",", " ").split():
        if mask_id is not None and tok.lower() == "m":
            out.append(int(mask_id))
            continue
        if not tok.isdigit():
            raise ConfigError(f"{flag}: {tok!r} in {text!r} is not a token id (integers >= 0"
                              f"{', or m for a masked position' if mask_id is not None else ''})")
        out.append(int(tok))
    if not out:
        raise ConfigError(f"{flag}: no token ids in {text!r}")
    return out
