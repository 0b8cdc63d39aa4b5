"""Train the Sudoku masked-diffusion model (``python -m smcdiff.train sudoku ...``).

Objective (MDLM / LLaDA): for each training grid draw a masking rate
``t ~ U(eps, 1)`` (stratified over the batch: ``t_b = eps + (1 - eps) * ((u + b / B) mod 1)``),
mask every cell independently with probability ``t`` and score the clean
digits of the masked cells. With ``--loss elbo`` (default) the loss is the
negative ELBO per cell,

    L = mean over grids of  (1 / t) * sum_{masked cells} -log p(x_i) / 81,

i.e. the LLaDA weighting normalised by the grid length; ``--loss ce`` is the
plain cross-entropy averaged over all masked cells of the batch. Both are
logged (``loss`` is the objective, ``ce`` the mean masked-cell cross-entropy).

Data: the 2,000 solutions of the ``train`` split, expanded on the fly by
vectorised Sudoku symmetries (digit relabelling, row permutations within bands,
band permutations, the same for columns/stacks, transpose). Any augmented grid
equal to a validation or test solution is rejected and redrawn.

Monitoring: every ``--eval-minutes`` the model decodes ``--val-n`` validation
puzzles one cell per step in three orders (largest top-1 - top-2 probability
margin, largest top-1 probability, uniformly random), each cell filled with its
arg-max digit; accuracy = the whole grid right. Best-so-far weights (by margin
accuracy) go to ``<out>/best.safetensors`` and, unless ``--no-ship``, to the
package's ``smcdiff/weights/sudoku.safetensors``. The CSV log and the curve PNG
live in ``<out>`` and are copied to ``docs/models/`` (``--docs``).

Resuming: ``--resume`` restores model, optimizer, step, cumulative wall time,
the best metric and every RNG state from ``<out>/last.pt``; a checkpoint is
written every ``--ckpt-minutes`` and at the end. ``--minutes`` is the budget of
this invocation.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..models.sudoku_net import SudokuDenoiser, SudokuNet, SudokuNetConfig
from ..tasks import sudoku as task
from .common import start_run
from .common import atomic_save as _atomic_save, lr_schedule, publish_curve, pyplot, save_figure
from .common import rng_state as _rng_state, set_rng_state as _set_rng_state

ORDERS = ("margin", "top_prob", "random")
CSV_FIELDS = [
    "step", "wall_s", "grids_seen", "lr", "loss", "ce",
    "val_margin", "val_top_prob", "val_random", "val_cell_margin", "eval_s",
]
PKG_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
REPO_DOCS = Path(__file__).resolve().parent.parent.parent / "docs" / "models"


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------


def grids_tensor(solutions: Sequence[str]) -> torch.Tensor:
    """``[N, 9, 9]`` long tensor of digits as token ids 0..8."""
    arr = np.frombuffer("".join(solutions).encode(), dtype=np.uint8).reshape(-1, 9, 9).astype(np.int64) - 49
    if arr.min() < 0 or arr.max() > 8:
        raise ValueError("training grids must be complete (digits 1..9)")
    return torch.from_numpy(arr)


def _line_perm(b: int, gen: torch.Generator) -> torch.Tensor:
    """``[b, 9]`` permutations of rows (or columns) that keep bands: band order + order within each band."""
    bands = torch.argsort(torch.rand(b, 3, generator=gen), dim=1)  # which band goes to slot i
    inner = torch.argsort(torch.rand(b, 3, 3, generator=gen), dim=2)
    return (bands[:, :, None] * 3 + inner).reshape(b, 9)


def augment(base: torch.Tensor, gen: torch.Generator, given: torch.Tensor | None = None):
    """Apply a random Sudoku symmetry to each grid of ``base [B, 9, 9]`` (ids 0..8).

    Returns ``[B, 81]`` ids; with ``given [B, 9, 9]`` (bool, the puzzle's givens) the
    same cell permutation is applied to it and ``(ids, given [B, 81])`` is returned.
    """
    b = base.shape[0]
    if given is not None:  # carry the givens through the cell permutation as a tenth "bit"
        base = base + 9 * given.long()
    rows = _line_perm(b, gen)
    cols = _line_perm(b, gen)
    g = torch.gather(base, 1, rows[:, :, None].expand(b, 9, 9))
    g = torch.gather(g, 2, cols[:, None, :].expand(b, 9, 9))
    tr = torch.rand(b, generator=gen) < 0.5
    g = torch.where(tr[:, None, None], g.transpose(1, 2), g)
    relabel = torch.argsort(torch.rand(b, 9, generator=gen), dim=1)
    g = g.reshape(b, 81)
    if given is None:
        return torch.gather(relabel, 1, g)
    return torch.gather(relabel, 1, g % 9), g >= 9


class GridSampler:
    """Augmented training grids, never equal to a held-out solution.

    ``sample(b)`` gives solutions ``[b, 81]``; ``sample_puzzles(b)`` gives
    ``(solutions [b, 81], given [b, 81] bool)`` from the training puzzles, both
    transformed by the same symmetry.
    """

    def __init__(self, train_solutions: Sequence[str], heldout_solutions: Sequence[str], gen: torch.Generator,
                 train_puzzles: Sequence[str] | None = None):
        self.base = grids_tensor(train_solutions)
        self.given = None
        if train_puzzles is not None:
            arr = np.frombuffer("".join(train_puzzles).encode(), dtype=np.uint8).reshape(-1, 9, 9)
            self.given = torch.from_numpy(arr != ord("0"))
        self.heldout = {bytes(np.frombuffer(s.encode(), dtype=np.uint8) - 49) for s in heldout_solutions}
        self.gen = gen
        self.rejected = 0

    def _bad(self, g: torch.Tensor) -> torch.Tensor:
        a = g.numpy().astype(np.uint8)
        return torch.tensor([bytes(r) in self.heldout for r in a], dtype=torch.bool)

    def sample(self, b: int) -> torch.Tensor:
        idx = torch.randint(self.base.shape[0], (b,), generator=self.gen)
        g = augment(self.base[idx], self.gen)
        bad = self._bad(g)
        while bool(bad.any()):  # astronomically rare, but the guarantee is exact
            self.rejected += int(bad.sum())
            k = int(bad.sum())
            idx = torch.randint(self.base.shape[0], (k,), generator=self.gen)
            g[bad] = augment(self.base[idx], self.gen)
            bad = self._bad(g)
        return g

    def sample_puzzles(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.given is None:
            raise ValueError("GridSampler was built without train_puzzles")
        idx = torch.randint(self.base.shape[0], (b,), generator=self.gen)
        g, giv = augment(self.base[idx], self.gen, self.given[idx])
        bad = self._bad(g)
        while bool(bad.any()):
            self.rejected += int(bad.sum())
            k = int(bad.sum())
            idx = torch.randint(self.base.shape[0], (k,), generator=self.gen)
            g[bad], giv[bad] = augment(self.base[idx], self.gen, self.given[idx])
            bad = self._bad(g)
        return g, giv


def mdm_loss(net: SudokuNet, x0: torch.Tensor, gen: torch.Generator, eps: float, kind: str,
             given: torch.Tensor | None = None):
    """Masked-diffusion loss on clean grids ``x0 [B, 81]``; returns ``(objective, mean masked CE)``.

    With ``given [B, 81]`` (bool) the given cells are never masked: the loss is
    the conditional objective for the blanks given the givens, each blank masked
    with probability ``t`` and the ELBO sum normalised by the number of blanks.
    """
    b = x0.shape[0]
    u = torch.rand(1, generator=gen)
    t = eps + (1 - eps) * ((u + torch.arange(b) / b) % 1.0)  # stratified rates
    masked = torch.rand(b, 81, generator=gen) < t[:, None]
    if given is not None:
        masked &= ~given
    xt = torch.where(masked, torch.full_like(x0, task.MASK_ID), x0)
    logits = net(xt)
    nll = F.cross_entropy(logits.reshape(-1, 9), x0.reshape(-1), reduction="none").reshape(b, 81)
    nll = nll * masked
    n_masked = masked.sum().clamp(min=1)
    ce = nll.sum() / n_masked
    if kind == "elbo":
        cells = torch.full((b,), 81.0) if given is None else (~given).sum(dim=1).clamp(min=1).float()
        obj = (nll.sum(dim=1) / t / cells).mean()
    elif kind == "ce":
        obj = ce
    else:
        raise ValueError(f"unknown loss {kind!r}")
    return obj, ce.detach()


# ---------------------------------------------------------------------------------------------
# monitoring decoder (one cell per step, arg-max digit)
# ---------------------------------------------------------------------------------------------


@torch.inference_mode()
def decode_grids(net: SudokuNet, templates: torch.Tensor, order: str, gen: torch.Generator | None = None) -> torch.Tensor:
    """Fill every mask of ``templates [R, 81]`` one cell per step; returns token ids ``[R, 81]``.

    ``order``: ``margin`` (largest top-1 - top-2 probability), ``top_prob``
    (largest top-1 probability) or ``random`` (uniform among masked cells); the
    chosen cell gets its arg-max digit. Givens are never changed.
    """
    x = templates.clone()
    rows = torch.arange(x.shape[0])
    while True:
        masked = x == task.MASK_ID
        active = masked.any(dim=1)
        if not bool(active.any()):
            return x
        xa, ma = x[active], masked[active]
        probs = torch.softmax(net(xa).float(), dim=-1)
        top2 = probs.topk(2, dim=-1)
        if order == "margin":
            score = top2.values[..., 0] - top2.values[..., 1]
        elif order == "top_prob":
            score = top2.values[..., 0]
        elif order == "random":
            score = torch.rand(ma.shape, generator=gen)
        else:
            raise ValueError(f"unknown order {order!r}")
        score = score.masked_fill(~ma, -1.0)
        cell = score.argmax(dim=1)
        r = torch.arange(xa.shape[0])
        xa[r, cell] = top2.indices[r, cell, 0]
        x[rows[active]] = xa


def evaluate(
    net: SudokuNet, pairs: Sequence[tuple[str, str]], orders: Sequence[str] = ORDERS, seed: int = 0,
    batch: int = 256,
) -> dict[str, float]:
    """Exact-grid accuracy per order (and per-cell accuracy of blanks for ``margin``)."""
    was = net.training
    net.eval()
    out: dict[str, float] = {}
    sols = grids_tensor([s for _, s in pairs]).reshape(-1, 81)
    tmpl = torch.tensor([task.encode(p) for p, _ in pairs], dtype=torch.long)
    for order in orders:
        gen = torch.Generator().manual_seed(seed)
        res = torch.cat([decode_grids(net, tmpl[i : i + batch], order, gen) for i in range(0, len(pairs), batch)])
        ok = (res == sols).all(dim=1)
        out[order] = float(ok.float().mean())
        out[f"{order}_n_correct"] = int(ok.sum())
        if order == "margin":
            blank = tmpl == task.MASK_ID
            out["cell_margin"] = float(((res == sols) & blank).sum() / blank.sum())
    out["n"] = len(pairs)
    net.train(was)
    return out


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


# ---------------------------------------------------------------------------------------------
# logging
# ---------------------------------------------------------------------------------------------


def plot_curve(csv_path: Path, png_path: Path) -> None:
    plt = pyplot()
    rows = list(csv.DictReader(open(csv_path)))
    if not rows:
        return
    step = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    ax[0].plot(step, [float(r["loss"]) for r in rows], lw=0.8, label="objective")
    ax[0].plot(step, [float(r["ce"]) for r in rows], lw=0.8, label="masked-cell CE")
    ax[0].axhline(math.log(9), color="grey", ls=":", lw=0.8, label="ln 9")
    ax[0].set_xlabel("step")
    ax[0].set_ylabel("training loss")
    ax[0].legend(fontsize=8)
    ev = [r for r in rows if r["val_margin"] != ""]
    for key, lab in (("val_margin", "margin"), ("val_top_prob", "top-probability"), ("val_random", "random")):
        ax[1].plot([int(r["step"]) for r in ev], [100 * float(r[key]) for r in ev], marker="o", ms=3, label=lab)
    ax[1].set_xlabel("step")
    ax[1].set_ylabel("validation puzzles solved (%)")
    ax[1].set_ylim(-2, 102)
    ax[1].legend(fontsize=8)
    fig.suptitle("Sudoku MDM training (one cell per step, arg-max digit)")
    fig.tight_layout()
    save_figure(fig, png_path)


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m smcdiff.train sudoku", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="run directory (checkpoints, CSV, PNG)")
    ap.add_argument("--minutes", type=float, default=110.0, help="wall-clock budget of this invocation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100, help="linear warm-up steps, then constant LR")
    ap.add_argument("--decay-steps", type=int, default=0,
                    help="cosine-decay the LR from --lr to --min-lr over this many steps, counted from --decay-from "
                         "(0: constant LR after warm-up)")
    ap.add_argument("--decay-from", type=int, default=0, help="step at which the cosine decay starts")
    ap.add_argument("--min-lr", type=float, default=1e-5)
    ap.add_argument("--puzzle-frac", type=float, default=0.0,
                    help="fraction of each batch drawn from the training puzzles with their givens never masked "
                         "(the rest: whole solutions, every cell maskable)")
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--loss", choices=("elbo", "ce"), default="elbo")
    ap.add_argument("--eps", type=float, default=0.02, help="smallest masking rate")
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--attention", choices=("peer", "full"), default="peer")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--eval-minutes", type=float, default=10.0)
    ap.add_argument("--eval-first-step", type=int, default=100, help="also evaluate at this step")
    ap.add_argument("--val-n", type=int, default=50)
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--no-ship", action="store_true", help="do not copy best weights into smcdiff/weights/")
    ap.add_argument("--docs", default=str(REPO_DOCS), help="copy the CSV/PNG here ('' to skip)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out, ckpt_path, csv_path, png_path, gen = start_run(args.out, args.seed, args.threads)

    train = task.load_split("train")
    val = task.load_split("val")
    heldout = [s for name in ("val", "test_easy", "test_hard") for _, s in task.load_split(name)]
    if not 0.0 <= args.puzzle_frac <= 1.0:
        raise ValueError(f"--puzzle-frac must be in [0, 1], got {args.puzzle_frac}")
    sampler = GridSampler([s for _, s in train], heldout, gen, train_puzzles=[p for p, _ in train])
    val_pairs = val[: args.val_n]

    cfg = SudokuNetConfig(d_model=args.d_model, n_layers=args.layers, n_heads=args.heads, d_ff=4 * args.d_model,
                          attention=args.attention)
    step, wall, best, grids_seen = 0, 0.0, -1.0, 0
    resumed = None
    if args.resume and ckpt_path.exists():
        resumed = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        cfg = SudokuNetConfig.from_dict(resumed["config"])
    net = SudokuNet(cfg).to(args.device)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=args.weight_decay)
    if resumed is not None:
        net.load_state_dict(resumed["model"])
        opt.load_state_dict(resumed["opt"])
        step, wall, best, grids_seen = resumed["step"], resumed["wall"], resumed["best"], resumed["grids_seen"]
        _set_rng_state(resumed["rng"], gen)
        print(f"resumed from {ckpt_path} at step {step} ({wall / 60:.1f} min, best margin {best:.3f})", flush=True)
    elif args.resume:
        print(f"--resume: no checkpoint at {ckpt_path}; starting fresh", flush=True)
    if resumed is None and csv_path.exists():
        csv_path.unlink()
    new_csv = not csv_path.exists()
    fcsv = open(csv_path, "a", newline="")
    writer = csv.DictWriter(fcsv, fieldnames=CSV_FIELDS)
    if new_csv:
        writer.writeheader()
    print(f"SudokuNet {cfg} params={net.n_params():,} threads={args.threads} loss={args.loss} "
          f"batch={args.batch} lr={args.lr}", flush=True)
    run_info = {
        "command": "python -m smcdiff.train sudoku " + " ".join(sys.argv[2:] if argv is None else argv),
        "seed": args.seed, "loss": args.loss, "eps": args.eps, "batch": args.batch, "lr": args.lr,
        "warmup": args.warmup, "threads": args.threads, "device": args.device, "puzzle_frac": args.puzzle_frac,
        "decay_steps": args.decay_steps, "decay_from": args.decay_from, "min_lr": args.min_lr,
    }

    def lr_at(s: int) -> float:
        return lr_schedule(s, args.lr, args.warmup, args.decay_steps, args.decay_from, args.min_lr)

    def save_ckpt() -> None:
        _atomic_save({
            "model": net.state_dict(), "opt": opt.state_dict(), "config": cfg.__dict__, "step": step,
            "wall": wall, "best": best, "grids_seen": grids_seen, "rng": _rng_state(gen), "args": vars(args),
        }, ckpt_path)

    def do_eval(loss_v: float, ce_v: float) -> None:
        nonlocal best
        t0 = time.time()
        res = evaluate(net, val_pairs, seed=args.seed)
        es = time.time() - t0
        writer.writerow({
            "step": step, "wall_s": f"{wall:.1f}", "grids_seen": grids_seen, "lr": f"{lr_at(step):.3g}",
            "loss": f"{loss_v:.4f}", "ce": f"{ce_v:.4f}", "val_margin": f"{res['margin']:.4f}",
            "val_top_prob": f"{res['top_prob']:.4f}", "val_random": f"{res['random']:.4f}",
            "val_cell_margin": f"{res['cell_margin']:.4f}", "eval_s": f"{es:.1f}",
        })
        fcsv.flush()
        print(f"[eval] step {step} wall {wall / 60:.1f} min: val margin {res['margin']:.3f} "
              f"top_prob {res['top_prob']:.3f} random {res['random']:.3f} cell(margin) {res['cell_margin']:.3f} "
              f"({es:.0f} s, n={res['n']})", flush=True)
        if res["margin"] > best:
            best = res["margin"]
            meta = {**run_info, "step": step, "grids_seen": grids_seen, "train_wall_s": round(wall, 1),
                    "val_n": res["n"], "val_margin": res["margin"], "val_top_prob": res["top_prob"],
                    "val_random": res["random"]}
            den = SudokuDenoiser(net, meta=meta)
            den.save_pretrained(out, "best")
            if not args.no_ship:
                den.save_pretrained(PKG_WEIGHTS, "sudoku")
            net.train()
            print(f"[best] step {step}: saved (val margin {best:.3f})", flush=True)
        publish_curve(plot_curve, csv_path, png_path, args.docs, "sudoku_curve")

    net.train()
    t_start = time.time()
    last_tick = t_start
    last_ckpt = t_start
    last_eval = t_start
    acc_loss, acc_ce, acc_n = 0.0, 0.0, 0
    last_lv, last_cv = float("nan"), float("nan")
    budget = args.minutes * 60.0
    while True:
        now = time.time()
        if now - t_start >= budget or (args.max_steps and step >= args.max_steps):
            break
        for g_ in opt.param_groups:
            g_["lr"] = lr_at(step)
        n_puz = int(round(args.puzzle_frac * args.batch))
        if n_puz == 0:
            x0 = sampler.sample(args.batch).to(args.device)
            given = None
        else:
            xp, gp = sampler.sample_puzzles(n_puz)
            xs = sampler.sample(args.batch - n_puz)
            x0 = torch.cat([xp, xs]).to(args.device)
            given = torch.cat([gp, torch.zeros_like(xs, dtype=torch.bool)]).to(args.device)
        loss, ce = mdm_loss(net, x0, gen, args.eps, args.loss, given)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        grids_seen += args.batch
        now = time.time()
        wall += now - last_tick
        last_tick = now
        acc_loss += float(loss.detach())
        acc_ce += float(ce)
        acc_n += 1
        is_eval = step == args.eval_first_step or now - last_eval >= args.eval_minutes * 60
        if step % args.log_every == 0 or is_eval:
            lv, cv = acc_loss / acc_n, acc_ce / acc_n
            last_lv, last_cv = lv, cv
            print(f"step {step} wall {wall / 60:.1f} min loss {lv:.4f} ce {cv:.4f} lr {lr_at(step):.2e}", flush=True)
            if is_eval:
                do_eval(lv, cv)
                last_eval = time.time()
            else:
                writer.writerow({"step": step, "wall_s": f"{wall:.1f}", "grids_seen": grids_seen,
                                 "lr": f"{lr_at(step):.3g}", "loss": f"{lv:.4f}", "ce": f"{cv:.4f}"})
                fcsv.flush()
            acc_loss, acc_ce, acc_n = 0.0, 0.0, 0
            last_tick = time.time()  # evaluation time is not training time
        if time.time() - last_ckpt >= args.ckpt_minutes * 60:
            save_ckpt()
            last_ckpt = time.time()
    if acc_n:
        lv, cv = acc_loss / acc_n, acc_ce / acc_n
    else:
        lv, cv = last_lv, last_cv
    do_eval(lv, cv)
    save_ckpt()
    fcsv.close()
    (out / "summary.json").write_text(json.dumps(
        {"step": step, "grids_seen": grids_seen, "train_wall_s": round(wall, 1), "best_val_margin": best,
         "rejected_heldout_grids": sampler.rejected, **run_info}, indent=2) + "\n")
    print(f"done: step {step}, {wall / 60:.1f} min of training, best val margin {best:.3f}", flush=True)
    return 0


def eval_main(argv: Sequence[str] | None = None) -> int:
    """``python -m smcdiff.train sudoku-eval [--weights W] [--splits ...] [--n N]``: accuracy table with 95 % CIs."""
    ap = argparse.ArgumentParser(prog="python -m smcdiff.train sudoku-eval")
    ap.add_argument("--weights", default=str(PKG_WEIGHTS / "sudoku.safetensors"))
    ap.add_argument("--splits", nargs="+", default=["test_easy", "test_hard"])
    ap.add_argument("--n", type=int, default=0, help="first N puzzles of each split (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    den = SudokuDenoiser.from_pretrained(args.weights)
    print("split,n,order,solved,acc,ci_low,ci_high")
    for name in args.splits:
        pairs = task.load_split(name)
        if args.n:
            pairs = pairs[: args.n]
        res = evaluate(den.net, pairs, seed=args.seed)
        for order in ORDERS:
            k = res[f"{order}_n_correct"]
            lo, hi = wilson(k, len(pairs))
            print(f"{name},{len(pairs)},{order},{k},{k / len(pairs):.3f},{lo:.3f},{hi:.3f}", flush=True)
    return 0
