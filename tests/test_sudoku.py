"""Sudoku task, generator, splits, model and registry (fast: no training beyond two tiny steps)."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from smcdiff.models import Denoiser, call_denoiser, validate_denoiser
from smcdiff.models.registry import available, load, weights_path
from smcdiff.models.sudoku_net import SudokuDenoiser, SudokuNet, SudokuNetConfig, peer_mask
from smcdiff.tasks import sudoku as task
from smcdiff.tasks import sudoku_gen as gen

WIKI = "530070000600195000098000060800060003400803001700020006060000280000419005000080079"
WIKI_SOL = "534678912672195348198342567859761423426853791713924856961537284287419635345286179"
INKALA = "800000000003600000070090200050007000000045700000100030001000068008500010090000400"
# from test_hard: singles stop after 48 filled cells; pairs / pointing / claiming finish it
MEDIUM = "000600000574200000060507000000300002000068307000000090700000830683090054049000020"


def brute_violations(grid: str) -> int:
    """Every pair of equal filled cells, once per unit (row, column, box) the two share."""
    g = [int(c) for c in grid]
    n = 0
    for i, j in itertools.combinations(range(81), 2):
        if g[i] and g[i] == g[j]:
            n += (i // 9 == j // 9) + (i % 9 == j % 9) + ((i // 27, i % 9 // 3) == (j // 27, j % 9 // 3))
    return n


def brute_is_solution(puzzle: str, grid: str) -> bool:
    if "0" in grid or any(p != "0" and p != g for p, g in zip(puzzle, grid)):
        return False
    rows = [grid[9 * r : 9 * r + 9] for r in range(9)]
    cols = ["".join(grid[9 * r + c] for r in range(9)) for c in range(9)]
    boxes = ["".join(grid[(3 * br + i) * 9 + 3 * bc + j] for i in range(3) for j in range(3))
             for br in range(3) for bc in range(3)]
    return all(sorted(u) == list("123456789") for u in rows + cols + boxes)


# --- generator / solver / rater -------------------------------------------------------------


def test_generator_puzzles_have_exactly_one_solution():
    rng = random.Random(123)
    for _ in range(3):
        sol = gen.random_solution(rng)
        assert task.violations(sol) == 0 and 0 not in sol
        puz = gen.make_puzzle(sol, rng)
        assert gen.count_solutions(puz, 2) == 1
        assert gen.solve(puz) == sol
        # minimal: removing any remaining clue breaks uniqueness
        clue = next(i for i, v in enumerate(puz) if v)
        weaker = list(puz)
        weaker[clue] = 0
        assert gen.count_solutions(weaker, 2) == 2


def test_solver_counts():
    assert gen.count_solutions(WIKI) == 1
    assert gen.solve(WIKI) == [int(c) for c in WIKI_SOL]
    assert gen.count_solutions("0" * 81, 2) == 2
    assert gen.count_solutions("11" + "0" * 79) == 0


def test_rating_hand_checked():
    assert gen.rate(WIKI) == 1  # the Wikipedia example: singles suffice
    one_blank = "0" + WIKI_SOL[1:]
    assert gen.rate(one_blank) == 1
    assert gen.rate(MEDIUM) == 2
    assert gen.rate(INKALA) == 3  # Arto Inkala's puzzle needs search
    assert gen.rate_name(WIKI) == "easy" and gen.rate_name(INKALA) == "hard"


# --- splits ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def splits():
    return {name: task.load_split(name) for name in task.SPLITS}


def test_split_format_and_sizes(splits):
    sizes = {name: n for name, (_, n, _) in gen.SPLIT_SPECS.items()}
    for name, rows in splits.items():
        assert len(rows) == sizes[name]
        for p, s in rows:
            assert len(p) == 81 and len(s) == 81 and p.isdigit() and s.isdigit() and "0" not in s
            assert task.is_solution(p, s)


def test_splits_do_not_overlap(splits):
    sols = {name: {s for _, s in rows} for name, rows in splits.items()}
    puzs = {name: {p for p, _ in rows} for name, rows in splits.items()}
    for name, rows in splits.items():
        assert len(sols[name]) == len(rows)  # no duplicates inside a split either
    for a, b in itertools.combinations(task.SPLITS, 2):
        assert not sols[a] & sols[b], (a, b)
        assert not puzs[a] & puzs[b], (a, b)


def test_generation_is_reproducible(splits):
    seed, _, levels = gen.SPLIT_SPECS["test_easy"]  # generated first, so independent of the other splits
    rows, stats = gen.generate_splits({"test_easy": (seed, 3, levels)})
    assert rows["test_easy"] == splits["test_easy"][:3]
    assert stats["test_easy"]["easy"] == 3


def test_heldout_puzzles_unique_and_rated(splits):
    for p, _ in splits["test_easy"][:60]:
        assert gen.count_solutions(p, 2) == 1
        assert gen.rate(p) == 1
    for p, _ in splits["test_hard"][:60]:
        assert gen.count_solutions(p, 2) == 1
        assert gen.rate(p) >= 2
    for p, _ in splits["val"][:30] + splits["train"][:30]:
        assert gen.count_solutions(p, 2) == 1


# --- task API -------------------------------------------------------------------------------


def test_encode_decode_round_trip():
    ids = task.encode(WIKI)
    assert len(ids) == 81 and ids[0] == 4 and ids[2] == task.MASK_ID
    assert task.decode(ids) == WIKI
    assert task.decode(torch.tensor(ids)) == WIKI
    assert task.encode(WIKI.replace("0", ".")) == ids
    assert task.MASK_ID == 9 and task.VOCAB_SIZE == 10
    with pytest.raises(ValueError):
        task.decode([10] * 81)
    with pytest.raises(ValueError):
        task.encode("12")


def test_violations_and_is_solution_match_brute_force():
    rng = random.Random(7)
    assert task.violations(WIKI_SOL) == 0 and brute_violations(WIKI_SOL) == 0
    # exactly one conflict: swap two cells of one row across boxes, blank everything else in their columns/boxes
    g = list(WIKI_SOL)
    g[0] = g[4]  # row 0 now holds g[4]'s digit twice (different columns, different boxes)
    blank = {i for i in range(81) if i != 0 and i != 4 and (i % 9 in (0, 4) or gen.BOX_OF[i] in (0, 1))}
    one = "".join("0" if i in blank else c for i, c in enumerate(g))
    assert brute_violations(one) == 1 and task.violations(one) == 1
    assert not task.is_solution(WIKI, "".join(g))
    grids = []
    for _ in range(40):
        sol = gen.to_str(gen.random_solution(rng))
        k = rng.randrange(4)
        s = list(sol)
        if k == 1:  # a few random overwrites
            for _ in range(rng.randrange(1, 6)):
                s[rng.randrange(81)] = str(rng.randrange(1, 10))
        elif k == 2:  # random digits with blanks
            s = [str(rng.choice([0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9])) for _ in range(81)]
        elif k == 3:  # swap two cells
            i, j = rng.sample(range(81), 2)
            s[i], s[j] = s[j], s[i]
        grids.append((sol, "".join(s)))
    for sol, grid in grids:
        assert task.violations(grid) == brute_violations(grid)
        puzzle = "".join(c if rng.random() < 0.3 else "0" for c in sol)
        assert task.is_solution(puzzle, grid) == brute_is_solution(puzzle, grid)
    ids = torch.tensor([task.encode(gr) for _, gr in grids])
    assert task.violations_ids(ids).tolist() == [brute_violations(gr) for _, gr in grids]
    assert task.is_solution(WIKI, WIKI_SOL) and not task.is_solution(WIKI, WIKI)
    other = gen.to_str(gen.random_solution(rng))
    assert not task.is_solution(WIKI, other)  # valid grid but disagrees with the givens


# --- training data ----------------------------------------------------------------------------


def test_augmentation_valid_and_heldout_rejected(splits):
    from smcdiff.train.sudoku import GridSampler, augment, grids_tensor

    base = grids_tensor([s for _, s in splits["train"][:8]])
    g = torch.Generator().manual_seed(0)
    out = augment(base, g)
    assert out.shape == (8, 81)
    assert task.violations_ids(out).eq(0).all()
    held = [s for _, s in splits["val"]]
    sampler = GridSampler([held[0]], held, g)  # the only base grid is itself held out
    assert sampler._bad(grids_tensor([held[0]]).reshape(1, 81)).item()
    x = sampler.sample(64)
    strs = {task.decode(r) for r in x}
    assert not strs & set(held)


def test_puzzle_augmentation_keeps_givens_and_uniqueness(splits):
    from smcdiff.train.sudoku import GridSampler, mdm_loss

    train = splits["train"][:20]
    g = torch.Generator().manual_seed(3)
    sampler = GridSampler([s for _, s in train], [], g, train_puzzles=[p for p, _ in train])
    x, given = sampler.sample_puzzles(12)
    assert x.shape == given.shape == (12, 81) and given.dtype == torch.bool
    n_givens = sorted(sum(c != "0" for c in p) for p, _ in train)
    for b in range(12):
        grid = task.decode(x[b])
        puzzle = "".join(c if gv else "0" for c, gv in zip(grid, given[b].tolist()))
        assert int(given[b].sum()) in n_givens
        assert gen.count_solutions(puzzle) == 1 and task.is_solution(puzzle, grid)

    class Spy(torch.nn.Module):  # records the inputs the loss feeds the network
        def forward(self, xt):
            self.seen = xt
            return torch.zeros(*xt.shape, 9, requires_grad=True)

    spy = Spy()
    mdm_loss(spy, x, torch.Generator().manual_seed(0), 0.5, "elbo", given)
    assert not bool((spy.seen[given] == task.MASK_ID).any())  # givens are never masked
    assert bool((spy.seen[~given] == task.MASK_ID).any())
    with pytest.raises(ValueError, match="without train_puzzles"):
        GridSampler([s for _, s in train], [], g).sample_puzzles(2)


# --- model ----------------------------------------------------------------------------------


def _tiny(seed: int = 0) -> SudokuDenoiser:
    torch.manual_seed(seed)
    return SudokuDenoiser(SudokuNet(SudokuNetConfig(d_model=32, n_layers=2, n_heads=4, d_ff=64)))


def test_model_forward_and_protocol():
    m = _tiny()
    assert isinstance(m, Denoiser)
    validate_denoiser(m)
    assert m.mask_id == 9 and m.vocab_size == 10 and tuple(m.eos_ids) == () and m.device.type == "cpu"
    x = m.encode_batch([WIKI, INKALA, "0" * 81])
    z = call_denoiser(m, x)
    assert z.shape == (3, 81, 10) and z.dtype == torch.float32 and torch.isfinite(z).all()
    assert (z[..., 9] < -1e3).all()
    assert torch.allclose(call_denoiser(m, x, max_rows=1), z, atol=1e-6)
    assert m.decode(x[0]) == WIKI
    pm = peer_mask()
    assert pm.sum(dim=1).eq(21).all() and pm.equal(pm.T)


def test_peer_attention_is_local():
    m = _tiny()
    x = torch.tensor([task.encode("0" * 81)] * 2)
    x[1, 80] = 3  # cell (8, 8): cell 0 is not a peer of it; a one-layer model would not see the change
    net1 = SudokuNet(SudokuNetConfig(d_model=32, n_layers=1, n_heads=4, d_ff=64))
    with torch.no_grad():
        z = net1(x)
    assert torch.allclose(z[0, 0], z[1, 0], atol=1e-6)
    assert not torch.allclose(z[0, 72], z[1, 72])  # same column
    assert m.logits(x).shape == (2, 81, 10)


def test_save_load_round_trip(tmp_path):
    m = _tiny(3)
    x = m.encode_batch([WIKI, MEDIUM])
    w = m.save_pretrained(tmp_path, "sudoku", meta={"note": "test"})
    assert w.exists() and (tmp_path / "sudoku.json").exists()
    for src in (tmp_path, w, (w, tmp_path / "sudoku.json")):
        m2 = SudokuDenoiser.from_pretrained(src)
        assert torch.equal(m.logits(x), m2.logits(x))
    assert m2.meta["note"] == "test"


def test_monitoring_decoder_fills_templates():
    from smcdiff.train.sudoku import decode_grids, evaluate

    m = _tiny()
    tmpl = m.encode_batch([WIKI, MEDIUM])
    for order in ("margin", "top_prob", "random"):
        out = decode_grids(m.net, tmpl, order, torch.Generator().manual_seed(0))
        assert not (out == task.MASK_ID).any()
        given = tmpl != task.MASK_ID
        assert torch.equal(out[given], tmpl[given])
    res = evaluate(m.net, [(WIKI, WIKI_SOL)])
    assert set(res) >= {"margin", "top_prob", "random", "cell_margin"}


def test_train_two_steps_and_resume(tmp_path):
    from smcdiff.train.sudoku import main

    common = ["--out", str(tmp_path), "--minutes", "1", "--no-ship", "--docs", "", "--d-model", "16",
              "--layers", "1", "--heads", "2", "--batch", "8", "--val-n", "2", "--log-every", "1",
              "--eval-first-step", "1", "--ckpt-minutes", "0"]
    assert main(common + ["--max-steps", "2"]) == 0
    assert main(common + ["--max-steps", "3", "--resume", "--puzzle-frac", "0.5", "--decay-steps", "5"]) == 0
    ck = torch.load(tmp_path / "last.pt", weights_only=False)
    assert ck["step"] == 3
    assert (tmp_path / "best.safetensors").exists() and (tmp_path / "curve.png").exists()
    lines = (tmp_path / "curve.csv").read_text().splitlines()
    assert lines[0].startswith("step,") and len(lines) >= 4


# --- registry -------------------------------------------------------------------------------


def test_available_lists_sudoku():
    rows = available()
    row = next(r for r in rows if r["name"] == "sudoku")
    assert row["description"] and row["installed"] is True and isinstance(row["size_bytes"], int)
    with pytest.raises(ValueError):
        load("no-such-model")


def test_load_sudoku_offline():
    if not weights_path("sudoku.safetensors").exists():
        pytest.skip("smcdiff/weights/sudoku.safetensors not written yet (the training run ships it at its first eval)")
    m = load("sudoku")
    validate_denoiser(m)
    assert weights_path("sudoku.safetensors").stat().st_size <= 16 * 2**20
    z = m.logits(m.encode_batch([WIKI]))
    assert z.shape == (1, 81, 10) and torch.isfinite(z[..., :9]).all()
    assert load("sudoku", dtype=torch.float64).logits(m.encode_batch([WIKI])).dtype == torch.float32


def test_smc_infills_sudoku_templates_like_the_monitoring_decoder():
    # the library's sampler on the shipped model: greedy digits, one cell per step chosen by the
    # top-1 - top-2 margin, full diffusion -> exactly the training script's own margin decoder
    if not weights_path("sudoku.safetensors").exists():
        pytest.skip("smcdiff/weights/sudoku.safetensors not written yet")
    from smcdiff import SMC, Categorical, EvenSplit, TopK, UnmaskingKernel
    from smcdiff.proposals import Margin
    from smcdiff.train.sudoku import decode_grids

    m = load("sudoku")
    tmpl = m.encode_batch([WIKI, MEDIUM])
    kernel = UnmaskingKernel(Categorical(0.0), TopK(), EvenSplit(81), Margin(), block_length=None)
    res = SMC(kernel).infill(m, tmpl, seed=0)
    out = res.sequences[:, 0]
    assert not (out == task.MASK_ID).any()
    given = tmpl != task.MASK_ID
    assert torch.equal(out[given], tmpl[given])
    assert torch.equal(out, decode_grids(m.net, tmpl, "margin"))
    assert res.nfe.tolist() == given.logical_not().sum(dim=1).tolist()  # one forward per blank
    assert (res.commit_step[:, 0][given] == -1).all()
