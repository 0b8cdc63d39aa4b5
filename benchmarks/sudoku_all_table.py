"""One Sudoku table with every method on both splits, assembled from the measured result files (no new runs).

``python benchmarks/sudoku_all_table.py`` reads
``results/policy_frontier.json`` (test_easy) and ``results/policy_frontier_test_hard.json`` (the heuristics and
learned policies: greedy tokens, full diffusion), ``results/sudoku_smc.json`` (one sample at T = 1, SR-SMC and
verifier SMC) and ``results/sudoku_guided.json`` (best-of-N and FK steering), and writes
``docs/results/sudoku_all.md``: solved with its 95 % bootstrap interval, NFE and particle-forwards per puzzle,
100 puzzles per split, seed 0. The command that produced each block is printed above it.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPLITS = ("test_easy", "test_hard")


def _load(name: str) -> dict:
    return json.loads((ROOT / "results" / name).read_text())


def main() -> None:
    frontier = {"test_easy": _load("policy_frontier.json"), "test_hard": _load("policy_frontier_test_hard.json")}
    smc, guided = _load("sudoku_smc.json"), _load("sudoku_guided.json")
    blocks = []  # (title, command, {split: {method: row}})
    per = {s: {} for s in SPLITS}
    for s in SPLITS:
        for r in frontier[s]["rows"]:
            if r.get("mode", "full") == "full":
                per[s][r["method"].replace(" [full]", "")] = (r["solved"], r["lo"], r["hi"], r["nfe"],
                                                             r["particle_forwards"])
    blocks.append(("Heuristics and learned policies (greedy tokens, full diffusion)",
                   " ; ".join(frontier[s]["command"] for s in SPLITS), per))
    for title, src in (("SMC on the margin-order kernel at T = 1", smc),
                       ("Best-of-N and FK steering on the same kernel", guided)):
        per = {s: {} for s in SPLITS}
        for r in src["rows"]:
            per[r["split"]][r["method"]] = (r["mean"], r["lo"], r["hi"], r["nfe"], r["particle_forwards"])
        blocks.append((title, src["command"], per))
    lines = ["# Sudoku: every method on both splits", "",
             "Assembled by `python benchmarks/sudoku_all_table.py` from the result files of the commands below "
             "(100 puzzles per split, seed 0). solved: fraction of puzzles solved, with its 95 % bootstrap "
             "interval; NFE and particle-forwards per puzzle.", ""]
    for title, cmd, per in blocks:
        lines += [f"## {title}", "", f"`{cmd}`", "",
                  "| method | test_easy solved | NFE | particle-fwd | test_hard solved | NFE | particle-fwd |",
                  "|---|---|---|---|---|---|---|"]
        methods = list(dict.fromkeys(list(per["test_easy"]) + list(per["test_hard"])))
        for m in methods:
            cells = []
            for s in SPLITS:
                v = per[s].get(m)
                cells += (["—", "", ""] if v is None else
                          [f"{v[0]:.2f} [{v[1]:.2f}, {v[2]:.2f}]", f"{v[3]:.1f}", f"{v[4]:.1f}"])
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    out = ROOT / "docs" / "results" / "sudoku_all.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
