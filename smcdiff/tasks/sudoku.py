"""9x9 Sudoku as a masked-diffusion template task.

Token ids (the shipped Sudoku model's vocabulary, ``VOCAB_SIZE = 10``):

* digit ``d`` (1..9) -> token ``d - 1`` (0..8);
* a blank cell -> :data:`MASK_ID` ``= 9``.

A puzzle is a *template*: one token per cell in row-major order, the givens
observed and the blanks masked; a sampler fills the masks. Strings use 81
characters, ``0`` (or ``.``) for a blank.

Conflict rule of :func:`violations`: for each of the 27 units (9 rows, 9
columns, 9 boxes) and each digit that occurs ``c`` times among the unit's filled
cells, add ``c * (c - 1) / 2`` -- every pair of equal filled cells is counted
once per unit they share (two equal digits in the same row *and* box count
twice). Blanks never conflict. A complete grid is a solution iff this is 0.
"""

from __future__ import annotations

from importlib import resources
from typing import Sequence

import numpy as np

from .sudoku_gen import UNITS, count_solutions, parse, rate, rate_name, solve

__all__ = [
    "MASK_ID",
    "VOCAB_SIZE",
    "LENGTH",
    "SPLITS",
    "encode",
    "decode",
    "digits",
    "violations",
    "violations_ids",
    "fewest_violations",
    "is_solution",
    "load_split",
    "count_solutions",
    "solve",
    "rate",
    "rate_name",
    "SudokuTask",
]

MASK_ID = 9
VOCAB_SIZE = 10
LENGTH = 81
SPLITS = ("train", "val", "test_easy", "test_hard")

_UNIT_INDEX = np.asarray(UNITS, dtype=np.int64)  # [27, 9]


def _as_list(x) -> list:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu()
    if hasattr(x, "tolist"):
        x = x.tolist()
    return list(x)


def encode(puzzle: str | Sequence[int]) -> list[int]:
    """Template ids of a puzzle: digit ``d`` -> ``d - 1``, blank (``0``/``.``) -> :data:`MASK_ID`."""
    return [MASK_ID if v == 0 else v - 1 for v in parse(puzzle if isinstance(puzzle, str) else _as_list(puzzle))]


def decode(ids) -> str:
    """81-character string of token ids (list, array or 1-D tensor); the mask id becomes ``0``."""
    vals = [int(v) for v in _as_list(ids)]
    if len(vals) != LENGTH:
        raise ValueError(f"a Sudoku template has {LENGTH} tokens; got {len(vals)}")
    out = []
    for v in vals:
        if v == MASK_ID:
            out.append("0")
        elif 0 <= v <= 8:
            out.append(chr(49 + v))
        else:
            raise ValueError(f"token id {v} is not a Sudoku token (0..8 digits, {MASK_ID} mask)")
    return "".join(out)


def digits(grid) -> list[int]:
    """81 ints 0..9 from a string or a sequence of digits (0 = blank)."""
    return parse(grid if isinstance(grid, str) else _as_list(grid))


def violations(grid) -> int:
    """Number of conflicting pairs among filled cells, counted once per shared unit.

    ``grid`` is a string or a sequence of digits 0..9 (0 = blank); for token ids
    use :func:`decode` first or :func:`violations_ids`.
    """
    g = np.asarray(digits(grid), dtype=np.int64)
    u = g[_UNIT_INDEX]  # [27, 9]
    counts = np.stack([(u == d).sum(axis=1) for d in range(1, 10)], axis=1)  # [27, 9]
    return int((counts * (counts - 1) // 2).sum())


def violations_ids(ids):
    """Batched :func:`violations` on token ids ``[R, 81]`` (torch); masks are blanks. Returns ``[R]`` long."""
    import torch

    t = torch.as_tensor(ids)
    if t.dim() == 1:
        t = t.unsqueeze(0)
    if t.shape[-1] != LENGTH:
        raise ValueError(f"expected token rows of length {LENGTH}; got shape {tuple(t.shape)}")
    idx = torch.as_tensor(_UNIT_INDEX, device=t.device)
    u = t[:, idx]  # [R, 27, 9]
    oh = torch.nn.functional.one_hot(u.clamp(max=9), 10)[..., :9]  # mask (9) dropped
    c = oh.sum(dim=2)  # [R, 27, 9]
    return (c * (c - 1) // 2).sum(dim=(1, 2))


def fewest_violations(result):
    """Best-of-N output rule for the harness: per prompt, the first particle of ``result`` with the fewest
    conflicts (:func:`violations_ids`). Returns indices ``[B]``."""
    b, m, _ = result.sequences.shape
    return violations_ids(result.sequences.reshape(b * m, -1)).reshape(b, m).argmin(dim=1)


def is_solution(puzzle, grid) -> bool:
    """``grid`` is complete, has no conflict and keeps every given of ``puzzle``."""
    p, g = digits(puzzle), digits(grid)
    if any(v == 0 for v in g):
        return False
    if any(pv and pv != gv for pv, gv in zip(p, g)):
        return False
    return violations(g) == 0


def load_split(name: str) -> list[tuple[str, str]]:
    """The shipped split ``name`` (one of :data:`SPLITS`) as ``(puzzle, solution)`` strings."""
    if name not in SPLITS:
        raise ValueError(f"unknown Sudoku split {name!r}; expected one of {SPLITS}")
    path = resources.files("smcdiff") / "data" / "sudoku" / f"{name}.txt"
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            p, s = line.split()
            rows.append((p, s))
    return rows


class SudokuTask:
    """Evaluation task for :mod:`smcdiff.eval`: fill the blanks of a split's puzzles (``mode = "infill"``).

    Items are ``(puzzle, solution)`` pairs (the first ``n`` of ``split``). Per-item
    metrics of the chosen output grid: ``solved`` (1 if it equals the unique
    solution, i.e. :func:`is_solution`), ``cell_accuracy`` (fraction of blank cells
    right) and ``violations`` (conflicting pairs, :func:`violations`).
    """

    mode = "infill"

    def __init__(self, split: str = "test_easy", n: int | None = None) -> None:
        self.split = split
        rows = load_split(split)
        if n is not None:
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(rows):
                raise ValueError(f"n must be an int in [1, {len(rows)}] for split {split!r}; got {n!r}")
            rows = rows[:n]
        self._items = rows
        self.name = f"sudoku-{split}"

    def items(self):
        return list(self._items)

    def inputs(self, model, items):
        return [encode(p) for p, _ in items]

    def score(self, model, items, outputs, result):
        solved, cells, viol = [], [], []
        for (p, sol), row in zip(items, outputs):
            grid = decode(row)
            blanks = [i for i, c in enumerate(p) if c == "0"]
            solved.append(float(is_solution(p, grid) and grid == sol))
            cells.append(sum(grid[i] == sol[i] for i in blanks) / max(1, len(blanks)))
            viol.append(float(violations(grid)))
        return {"solved": solved, "cell_accuracy": cells, "violations": viol}
