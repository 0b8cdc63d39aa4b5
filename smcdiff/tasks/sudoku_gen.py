"""9x9 Sudoku generator, exact solver and difficulty rater (pure Python).

Grids are lists of 81 ints in row-major order, ``0`` for a blank and ``1..9``
for digits; strings use the same digits (``"0"`` or ``"."`` for a blank).

* :func:`random_solution` -- a random complete grid (randomised backtracking).
* :func:`count_solutions` -- bitmask depth-first search with the
  minimum-remaining-values rule, stopping at ``limit`` solutions (2 suffices to
  decide uniqueness).
* :func:`make_puzzle` -- remove the clues of a solution in random order, keeping
  each removal only while the puzzle still has exactly one solution (the result
  is minimal: no clue can be removed).
* :func:`rate` -- a logic solver that uses human strategies and reports the
  hardest level it needed: 1 ``easy`` (naked and hidden singles finish it),
  2 ``medium`` (naked/hidden pairs and pointing/claiming were needed), 3
  ``hard`` (those strategies stall: the puzzle needs search).

Reproducing the shipped splits (``smcdiff/data/sudoku``)::

    python -m smcdiff.tasks.sudoku_gen --out smcdiff/data/sudoku

Every split comes from its own seeded stream (see :data:`SPLIT_SPECS`), so the
files are identical on every machine and Python version that keeps
``random.Random``'s documented reproducibility.
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from pathlib import Path
from typing import Iterable, Sequence

_log = logging.getLogger("smcdiff.sudoku_gen")

__all__ = [
    "UNITS",
    "PEERS",
    "LEVEL_NAMES",
    "parse",
    "to_str",
    "random_solution",
    "count_solutions",
    "solve",
    "make_puzzle",
    "rate",
    "rate_name",
    "generate_splits",
    "SPLIT_SPECS",
]

ALL = 0x1FF  # digits 1..9 as bits 0..8

ROWS = [[r * 9 + c for c in range(9)] for r in range(9)]
COLS = [[r * 9 + c for r in range(9)] for c in range(9)]
BOXES = [
    [(br * 3 + i) * 9 + bc * 3 + j for i in range(3) for j in range(3)] for br in range(3) for bc in range(3)
]
UNITS: list[list[int]] = ROWS + COLS + BOXES
ROW_OF = [i // 9 for i in range(81)]
COL_OF = [i % 9 for i in range(81)]
BOX_OF = [(i // 27) * 3 + (i % 9) // 3 for i in range(81)]
PEERS: list[tuple[int, ...]] = [
    tuple(sorted({j for u in (ROWS[ROW_OF[i]], COLS[COL_OF[i]], BOXES[BOX_OF[i]]) for j in u} - {i}))
    for i in range(81)
]
POP = [bin(m).count("1") for m in range(512)]
DIGITS = [[d + 1 for d in range(9) if m >> d & 1] for m in range(512)]  # mask -> digits 1..9
LEVEL_NAMES = {1: "easy", 2: "medium", 3: "hard"}


def parse(grid: str | Sequence[int]) -> list[int]:
    """81 digits from a string (``0``/``.`` = blank) or a sequence of ints 0..9."""
    if isinstance(grid, str):
        s = grid.strip()
        if len(s) != 81:
            raise ValueError(f"a Sudoku string has 81 characters; got {len(s)}")
        out = []
        for ch in s:
            if ch == ".":
                out.append(0)
            elif "0" <= ch <= "9":
                out.append(ord(ch) - 48)
            else:
                raise ValueError(f"invalid Sudoku character {ch!r} (expected 0-9 or '.')")
        return out
    out = [int(v) for v in grid]
    if len(out) != 81:
        raise ValueError(f"a Sudoku grid has 81 cells; got {len(out)}")
    if any(v < 0 or v > 9 for v in out):
        raise ValueError("Sudoku cells must be 0 (blank) or 1..9")
    return out


def to_str(grid: Sequence[int]) -> str:
    return "".join(str(int(v)) for v in grid)


# ---------------------------------------------------------------------------------------------
# exact search
# ---------------------------------------------------------------------------------------------


def _masks(grid: Sequence[int]):
    """Used-digit masks per row, column and box, or ``None`` if two givens clash."""
    rm, cm, bm = [0] * 9, [0] * 9, [0] * 9
    for i, v in enumerate(grid):
        if v:
            b = 1 << (v - 1)
            r, c, x = ROW_OF[i], COL_OF[i], BOX_OF[i]
            if (rm[r] | cm[c] | bm[x]) & b:
                return None
            rm[r] |= b
            cm[c] |= b
            bm[x] |= b
    return rm, cm, bm


def _search(g, rm, cm, bm, empties, limit, rng, found, first):
    """DFS with MRV over ``empties``; appends to ``found`` (a one-element counter list)."""
    best, best_n, best_m = -1, 10, 0
    for k in empties:
        if g[k]:
            continue
        m = ALL & ~(rm[ROW_OF[k]] | cm[COL_OF[k]] | bm[BOX_OF[k]])
        n = POP[m]
        if n < best_n:
            best, best_n, best_m = k, n, m
            if n <= 1:
                break
    if best < 0:  # no empty cell left: a solution
        found[0] += 1
        if first is not None and not first:
            first.extend(g)
        return found[0] >= limit
    if best_n == 0:
        return False
    r, c, x = ROW_OF[best], COL_OF[best], BOX_OF[best]
    digits = DIGITS[best_m]
    if rng is not None:
        digits = digits[:]
        rng.shuffle(digits)
    for d in digits:
        b = 1 << (d - 1)
        g[best] = d
        rm[r] |= b
        cm[c] |= b
        bm[x] |= b
        stop = _search(g, rm, cm, bm, empties, limit, rng, found, first)
        rm[r] &= ~b
        cm[c] &= ~b
        bm[x] &= ~b
        g[best] = 0
        if stop:
            return True
    return False


def count_solutions(grid: str | Sequence[int], limit: int = 2) -> int:
    """Number of solutions of ``grid``, counted up to ``limit`` (0 if its givens clash)."""
    g = parse(grid)
    masks = _masks(g)
    if masks is None:
        return 0
    empties = [i for i in range(81) if not g[i]]
    found = [0]
    _search(g, *masks, empties, limit, None, found, None)
    return found[0]


def solve(grid: str | Sequence[int]) -> list[int] | None:
    """One solution (the first the search finds) or ``None``."""
    g = parse(grid)
    masks = _masks(g)
    if masks is None:
        return None
    first: list[int] = []
    _search(g, *masks, [i for i in range(81) if not g[i]], 1, None, [0], first)
    return first or None


def random_solution(rng: random.Random) -> list[int]:
    """A random complete grid: backtracking with MRV and shuffled digit order."""
    g = [0] * 81
    first: list[int] = []
    _search(g, [0] * 9, [0] * 9, [0] * 9, list(range(81)), 1, rng, [0], first)
    return first


def _has_other_solution(g: list[int], cell: int, digit: int) -> bool:
    """Does the puzzle ``g`` (``g[cell]`` blank) have a solution with ``cell != digit``?"""
    masks = _masks(g)
    assert masks is not None
    rm, cm, bm = masks
    r, c, x = ROW_OF[cell], COL_OF[cell], BOX_OF[cell]
    empties = [i for i in range(81) if not g[i]]
    b0 = 1 << (digit - 1)
    for d in DIGITS[ALL & ~(rm[r] | cm[c] | bm[x]) & ~b0]:
        b = 1 << (d - 1)
        g[cell] = d
        rm[r] |= b
        cm[c] |= b
        bm[x] |= b
        ok = _search(g, rm, cm, bm, empties, 1, None, [0], None)
        rm[r] &= ~b
        cm[c] &= ~b
        bm[x] &= ~b
        g[cell] = 0
        if ok:
            return True
    return False


def make_puzzle(solution: Sequence[int], rng: random.Random) -> list[int]:
    """Remove clues of ``solution`` in random order while the solution stays unique.

    A removal is undone when the blanked cell could take another digit in some
    completion (checked exactly); the result has exactly one solution and is
    minimal.
    """
    g = list(solution)
    order = list(range(81))
    rng.shuffle(order)
    for cell in order:
        d = g[cell]
        g[cell] = 0
        if _has_other_solution(g, cell, d):
            g[cell] = d
    return g


# ---------------------------------------------------------------------------------------------
# difficulty: a logic solver with human strategies
# ---------------------------------------------------------------------------------------------


class _Logic:
    def __init__(self, grid: Sequence[int]):
        self.g = list(grid)
        self.cand = [ALL] * 81
        self.ok = True
        for i, v in enumerate(self.g):
            if v:
                self.cand[i] = 0
        for i, v in enumerate(self.g):
            if v:
                b = ~(1 << (v - 1))
                for p in PEERS[i]:
                    self.cand[p] &= b
                    if self.g[p] == v:
                        self.ok = False

    def place(self, i: int, d: int) -> None:
        self.g[i] = d
        self.cand[i] = 0
        b = ~(1 << (d - 1))
        for p in PEERS[i]:
            self.cand[p] &= b

    def solved(self) -> bool:
        return all(self.g)

    def singles(self) -> bool:
        """Apply naked and hidden singles until none applies; False on a contradiction."""
        g, cand = self.g, self.cand
        progress = True
        while progress:
            progress = False
            for i in range(81):
                if not g[i]:
                    m = cand[i]
                    if m == 0:
                        return False
                    if POP[m] == 1:
                        self.place(i, DIGITS[m][0])
                        progress = True
            for unit in UNITS:
                placed = 0
                for i in unit:
                    if g[i]:
                        placed |= 1 << (g[i] - 1)
                for d in range(9):
                    b = 1 << d
                    if placed & b:
                        continue
                    where = -1
                    n = 0
                    for i in unit:
                        if cand[i] & b:
                            n += 1
                            where = i
                            if n > 1:
                                break
                    if n == 0:
                        return False
                    if n == 1:
                        self.place(where, d + 1)
                        placed |= b
                        progress = True
        return True

    def _eliminate(self, cells: Iterable[int], bits: int) -> bool:
        changed = False
        for i in cells:
            if self.cand[i] & bits:
                self.cand[i] &= ~bits
                changed = True
        return changed

    def level2(self) -> bool:
        """One round of naked pairs, hidden pairs, pointing and claiming; True if anything changed."""
        cand = self.cand
        changed = False
        for unit in UNITS:
            # naked pair: two cells of a unit with the same two candidates
            pairs: dict[int, list[int]] = {}
            for i in unit:
                if POP[cand[i]] == 2:
                    pairs.setdefault(cand[i], []).append(i)
            for m, cells in pairs.items():
                if len(cells) == 2:
                    changed |= self._eliminate((i for i in unit if i not in cells), m)
            # hidden pair: two digits confined to the same two cells of a unit
            where: dict[tuple[int, ...], int] = {}
            for d in range(9):
                cells = tuple(i for i in unit if cand[i] >> d & 1)
                if len(cells) == 2:
                    where[cells] = where.get(cells, 0) | (1 << d)
            for cells, m in where.items():
                if POP[m] == 2:
                    for i in cells:
                        if cand[i] & ~m:
                            cand[i] &= m
                            changed = True
        # pointing: a digit confined to one row/column inside a box -> remove it from the rest of that line
        for bx, box in enumerate(BOXES):
            for d in range(9):
                b = 1 << d
                cells = [i for i in box if cand[i] & b]
                if len(cells) < 2:
                    continue
                rows = {ROW_OF[i] for i in cells}
                cols = {COL_OF[i] for i in cells}
                if len(rows) == 1:
                    changed |= self._eliminate((i for i in ROWS[rows.pop()] if BOX_OF[i] != bx), b)
                if len(cols) == 1:
                    changed |= self._eliminate((i for i in COLS[cols.pop()] if BOX_OF[i] != bx), b)
        # claiming (box-line reduction): a digit confined to one box inside a line -> remove from the rest of the box
        for line in ROWS + COLS:
            lineset = set(line)
            for d in range(9):
                b = 1 << d
                cells = [i for i in line if cand[i] & b]
                if len(cells) < 2:
                    continue
                boxes = {BOX_OF[i] for i in cells}
                if len(boxes) == 1:
                    changed |= self._eliminate((i for i in BOXES[boxes.pop()] if i not in lineset), b)
        return changed


def rate(puzzle: str | Sequence[int]) -> int:
    """The hardest strategy level a logic solver needs: 1 easy, 2 medium, 3 hard.

    1: naked singles (a cell with one candidate) and hidden singles (a digit with
    one place in a row, column or box) solve the puzzle.
    2: they stall, but adding naked pairs, hidden pairs, pointing (box -> line)
    and claiming (line -> box) eliminations, with singles applied after every
    round, solves it.
    3: all of these stall (or the givens contradict): the puzzle needs search or
    stronger strategies.
    """
    s = _Logic(parse(puzzle))
    if not s.ok:
        return 3
    level = 1
    while True:
        if not s.singles():
            return 3
        if s.solved():
            return level
        if not s.level2():
            return 3
        level = 2


def rate_name(puzzle: str | Sequence[int]) -> str:
    return LEVEL_NAMES[rate(puzzle)]


# ---------------------------------------------------------------------------------------------
# splits
# ---------------------------------------------------------------------------------------------

# name -> (seed, size, accepted levels). Held-out splits are generated first; every later split
# rejects a solution (or puzzle) already used, so no held-out solution appears in training.
SPLIT_SPECS: dict[str, tuple[int, int, tuple[int, ...]]] = {
    "test_easy": (1003, 200, (1,)),
    "test_hard": (1004, 200, (2, 3)),
    "val": (1002, 200, (1, 2, 3)),
    "train": (1001, 2000, (1, 2, 3)),
}


def generate_splits(
    specs: dict[str, tuple[int, int, tuple[int, ...]]] = SPLIT_SPECS, verbose: bool = False
) -> tuple[dict[str, list[tuple[str, str]]], dict[str, dict[str, int]]]:
    """Generate every split; returns ``(splits, stats)``.

    ``stats[name]`` counts the ratings of the accepted puzzles (and ``drawn``,
    how many puzzles the stream produced before the split was full).
    """
    used: set[str] = set()
    splits: dict[str, list[tuple[str, str]]] = {}
    stats: dict[str, dict[str, int]] = {}
    for name, (seed, size, levels) in specs.items():
        rng = random.Random(seed)
        rows: list[tuple[str, str]] = []
        st = {"easy": 0, "medium": 0, "hard": 0, "drawn": 0, "duplicates": 0}
        t0 = time.time()
        while len(rows) < size:
            sol = random_solution(rng)
            puz = make_puzzle(sol, rng)
            st["drawn"] += 1
            s_sol = to_str(sol)
            if s_sol in used:
                st["duplicates"] += 1
                continue
            lv = rate(puz)
            if lv not in levels:
                continue
            assert count_solutions(puz, 2) == 1
            used.add(s_sol)
            rows.append((to_str(puz), s_sol))
            st[LEVEL_NAMES[lv]] += 1
            if verbose and len(rows) % 100 == 0:
                _log.info("%s: %d/%d (%.0f s)", name, len(rows), size, time.time() - t0)
        splits[name] = rows
        stats[name] = st
    return splits, stats


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Generate the Sudoku splits (fixed seeds).")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "data" / "sudoku"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    splits, stats = generate_splits(verbose=True)
    for name, rows in splits.items():
        (out / f"{name}.txt").write_text("".join(f"{p} {s}\n" for p, s in rows))
    lines = ["split,seed,size,drawn,easy,medium,hard"]
    for name, st in stats.items():
        seed, size, _ = SPLIT_SPECS[name]
        lines.append(f"{name},{seed},{size},{st['drawn']},{st['easy']},{st['medium']},{st['hard']}")
    (out / "stats.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
