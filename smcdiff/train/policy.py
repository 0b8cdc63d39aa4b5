"""Train a learned unmasking policy with GRPO (``python -m smcdiff.train policy --alpha A --out DIR``).

The MDP (arXiv 2512.09106): the frozen denoiser is the environment, the state is a
partly filled template, an action commits a subset of the masked positions, each
committed position gets the model's arg-max token from the same forward pass, and the
episode ends when no mask is left or after ``n`` steps, ``n`` the template's number of
masked positions (one per step at the slowest). The reward, at the end only, is

    R = correct * ((n - NFE + 1) / n) ** alpha,

``NFE`` the steps used; an episode that runs out of steps is incorrect.

Training (:func:`grpo_step`): a group of ``G`` rollouts per template with the policy's
independent Bernoulli actions at temperature 1 (empty actions allowed); advantages
``A = R - mean over the group`` (no standard-deviation normalisation); for ``mu`` inner
iterations, the per-step ratio ``rho_t = q_new(a_t) / q_old(a_t)`` of the Bernoulli
action probabilities, the objective ``min(rho_t A, clip(rho_t, 1 - eps, 1 + eps) A)``
averaged over a trajectory's steps and then over trajectories; no KL term; AdamW with
a warm-up and cosine learning rate; a step whose advantages are all zero is skipped.

Task here: the shipped Sudoku model on the training split of our Sudoku puzzles
(``correct`` = the grid is the solution). The run directory holds ``last.pt`` (resume
with ``--resume``), ``curve.csv`` / ``curve.png`` (reward, NFE, accuracy) and the best
policy by the rolling mean training reward; ``--ship NAME`` also writes it to
``smcdiff/weights/policy-NAME.*``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from ..models.base import call_denoiser
from ..proposals.learned import UnmaskingPolicyNet, bernoulli_draw, bernoulli_log_prob
from .common import (atomic_save, lr_schedule, publish_curve, pyplot, rng_state, save_figure, set_rng_state,
                     start_run)

PKG_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
REPO_DOCS = Path(__file__).resolve().parent.parent.parent / "docs" / "models"
CSV_FIELDS = ["step", "wall_s", "lr", "reward", "nfe", "accuracy", "commits_per_step", "loss", "skipped"]


@dataclass
class Rollouts:
    """What a batch of episodes did: per row ``reward``, ``nfe``, ``correct``, ``tokens``; per recorded step
    (flattened over rows and steps) the policy's inputs, the action and its log-probability at rollout time."""

    tokens: Tensor  # [R, L] final canvases
    nfe: Tensor  # [R] steps used
    correct: Tensor  # [R] bool
    reward: Tensor  # [R] float64
    conf: Tensor  # [S, L] float32 policy inputs
    masked: Tensor  # [S, L] bool: the mask bits the policy read
    time: Tensor  # [S]
    action: Tensor  # [S, L] bool
    old_log_prob: Tensor  # [S] float64
    row: Tensor  # [S] long: which episode each recorded step belongs to
    eligible: Tensor | None = None  # [S, L] bool: positions the action could commit (None: = masked)


@torch.no_grad()
def rollout(model, net: UnmaskingPolicyNet, templates: Tensor, correct_fn: Callable[[int, Tensor], bool],
            alpha: float, gen: torch.Generator, fallback: bool = False, temperature: float = 1.0,
            beta: float = 1.0, block_length: int | None = None) -> Rollouts:
    """Run the policy on ``templates [R, L]`` (mask id at the free positions) to the end; see the module docstring.

    ``correct_fn(r, tokens [L]) -> bool`` judges row ``r``'s final canvas. ``block_length``:
    semi-autoregressive windows as the kernel lays them out for templates (windows of
    ``block_length`` positions from each row's first free position; only the masks of the first
    window that still has masks are eligible); None: full diffusion.
    """
    mask_id = int(model.mask_id)
    x = templates.clone()
    r_rows, length = x.shape
    n_free = (x == mask_id).sum(dim=1)
    pos = torch.arange(length)
    first = torch.where(x == mask_id, pos, length).min(dim=1).values
    window = None if block_length is None else (pos[None, :] - first[:, None]).div(block_length, rounding_mode="floor")
    nfe = torch.zeros(r_rows, dtype=torch.long)
    rec = {k: [] for k in ("conf", "masked", "eligible", "time", "action", "lp", "row")}
    for t in range(int(n_free.max())):
        open_ = ((x == mask_id).any(dim=1) & (nfe < n_free)).nonzero().flatten()
        if open_.numel() == 0:
            break
        xs = x[open_]
        logits = call_denoiser(model, xs).float()
        if mask_id < logits.shape[-1]:
            logits[..., mask_id] = float("-inf")
        lsm = torch.log_softmax(logits, dim=-1)
        top_lp, top_tok = lsm.max(dim=-1)
        conf = top_lp.exp()
        masked = xs == mask_id
        time_in = torch.full((open_.numel(),), t / length, dtype=torch.float32)
        z = net(conf, masked, time_in).double()  # the policy reads the whole canvas
        if window is not None:  # only the masks of the current window can be committed
            w = window[open_]
            cur = torch.where(masked, w, length).min(dim=1).values
            masked = masked & (w == cur[:, None])
        u = torch.rand(z.shape, generator=gen, dtype=torch.float64)
        action = bernoulli_draw(z, masked, u, temperature, beta, fallback)  # the law the selector draws
        lp = bernoulli_log_prob(z, masked, action, temperature, beta, fallback)
        rec["conf"].append(conf)
        rec["masked"].append(xs == mask_id)
        rec["eligible"].append(masked)
        rec["time"].append(time_in)
        rec["action"].append(action)
        rec["lp"].append(lp)
        rec["row"].append(open_)
        xs = torch.where(action, top_tok, xs)
        x[open_] = xs
        nfe[open_] += 1
    correct = torch.tensor([bool((x[r] != mask_id).all()) and bool(correct_fn(r, x[r])) for r in range(r_rows)])
    nf = n_free.clamp_min(1).double()
    speed = ((nf - nfe.double() + 1) / nf).clamp(min=0.0) ** alpha
    reward = correct.double() * speed
    return Rollouts(x, nfe, correct, reward, torch.cat(rec["conf"]), torch.cat(rec["masked"]),
                    torch.cat(rec["time"]), torch.cat(rec["action"]), torch.cat(rec["lp"]), torch.cat(rec["row"]),
                    torch.cat(rec["eligible"]))


def advantages(reward: Tensor, group: int) -> Tensor:
    """``R - mean over its group`` for rewards laid out as consecutive groups of ``group`` rows."""
    r = reward.reshape(-1, group)
    return (r - r.mean(dim=1, keepdim=True)).reshape(-1)


def grpo_loss(net: UnmaskingPolicyNet, ro: Rollouts, adv: Tensor, clip: float = 0.5,
              temperature: float = 1.0) -> Tensor:
    """The clipped per-step GRPO surrogate (to minimise): ``-mean_rows mean_steps min(rho A, clip(rho) A)``."""
    z = net(ro.conf, ro.masked, ro.time).double()
    elig = ro.masked if ro.eligible is None else ro.eligible
    lp = bernoulli_log_prob(z, elig, ro.action, temperature)
    ratio = torch.exp(lp - ro.old_log_prob)
    a = adv[ro.row]
    per_step = torch.minimum(ratio * a, ratio.clamp(1 - clip, 1 + clip) * a)
    n_rows = adv.shape[0]
    steps = torch.zeros(n_rows, dtype=torch.float64).index_add_(0, ro.row, torch.ones_like(per_step))
    per_row = torch.zeros(n_rows, dtype=torch.float64).index_add_(0, ro.row, per_step) / steps.clamp_min(1)
    return -per_row.mean()


def grpo_step(net, opt, ro: Rollouts, group: int, mu: int = 2, clip: float = 0.5, grad_clip: float = 0.2) -> tuple[float, bool]:
    """``mu`` optimiser steps on one batch of rollouts; returns ``(loss, skipped)``."""
    adv = advantages(ro.reward, group)
    if bool((adv == 0).all()):
        return 0.0, True
    loss_v = 0.0
    for _ in range(mu):
        loss = grpo_loss(net, ro, adv, clip)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        opt.step()
        loss_v = float(loss.detach())
    return loss_v, False


def plot_curve(csv_path: Path, png_path: Path) -> None:
    plt = pyplot()
    rows = list(csv.DictReader(open(csv_path)))
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, key, label in zip(axes, ("reward", "nfe", "accuracy"), ("mean reward", "mean NFE", "solved")):
        vals = [float(r[key]) for r in rows]
        ax.plot(steps, vals, lw=0.6, alpha=0.5)
        w = 10
        if len(vals) >= w:
            ax.plot(steps[w - 1:], [sum(vals[i - w + 1:i + 1]) / w for i in range(w - 1, len(vals))], lw=1.5)
        ax.set_xlabel("step")
        ax.set_title(label)
    fig.tight_layout()
    save_figure(fig, png_path)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m smcdiff.train policy", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--alpha", type=float, required=True, help="speed exponent of the reward")
    ap.add_argument("--steps", type=int, default=200, help="optimiser rounds (cosine to the end)")
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--puzzles", type=int, default=8, help="templates per round")
    ap.add_argument("--group", type=int, default=8, help="rollouts per template (G)")
    ap.add_argument("--mu", type=int, default=2, help="inner iterations per round")
    ap.add_argument("--clip", type=float, default=0.5)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--no-fallback", action="store_true",
                    help="pure Bernoulli rollouts (empty actions allowed; the paper's training mode) instead of "
                         "Bernoulli with the arg-max fallback (the evaluation mode, our default)")
    ap.add_argument("--split", default="train", help="Sudoku split to train on")
    ap.add_argument("--block-length", type=int, default=None,
                    help="semi-autoregressive windows (as the kernel lays them out); default: full diffusion")
    ap.add_argument("--init-bias", type=float, default=-2.0, help="output bias at initialisation (paper: -2)")
    ap.add_argument("--conf-skip", type=float, default=0.0,
                    help="0: the paper's network; > 0: a learnable confidence gain initialised to this value "
                         "(see PolicyConfig.conf_skip)")
    ap.add_argument("--init-from", default="",
                    help="start from a policy's weights: a shipped name (sudoku-a1) or a directory/prefix saved by "
                         "UnmaskingPolicyNet.save (its config replaces --init-bias/--conf-skip)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar (the per-round lines stay)")
    ap.add_argument("--ship", default="", help="also write the best policy to smcdiff/weights/policy-NAME.*")
    ap.add_argument("--docs", default=str(REPO_DOCS), help="copy the curve to docs/models ('' to skip)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    from ..models import load
    from ..tasks.sudoku import decode, encode, is_solution, load_split

    args = build_parser().parse_args(argv)
    out, ckpt, csv_path, png_path, gen = start_run(args.out, args.seed, args.threads)
    model = load("sudoku")
    puzzles = load_split(args.split)
    from ..proposals.learned import PolicyConfig

    if args.init_from:
        from ..proposals.learned import load_policy

        import copy

        net = copy.deepcopy(load_policy(args.init_from))  # the loaded object is shared (cached); train a copy
        for prm in net.parameters():
            prm.requires_grad_(True)
        print(f"starting from the weights of {args.init_from}", flush=True)
    else:
        net = UnmaskingPolicyNet(PolicyConfig(init_bias=args.init_bias, conf_skip=args.conf_skip))
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.1)
    step, wall, best, recent = 0, 0.0, -1.0, []
    if args.resume and ckpt.exists():
        st = torch.load(ckpt, map_location="cpu", weights_only=False)
        net.load_state_dict(st["net"])
        opt.load_state_dict(st["opt"])
        step, wall, best, recent = st["step"], st["wall"], st["best"], st["recent"]
        set_rng_state(st["rng"], gen)
        print(f"resumed at step {step}", flush=True)
    elif csv_path.exists():
        csv_path.unlink()
    new_csv = not csv_path.exists()
    fcsv = open(csv_path, "a", newline="")
    writer = csv.DictWriter(fcsv, fieldnames=CSV_FIELDS)
    if new_csv:
        writer.writeheader()
    info = {"command": "python -m smcdiff.train policy " + " ".join(sys.argv[2:] if argv is None else argv),
            "alpha": args.alpha, "group": args.group, "puzzles": args.puzzles, "mu": args.mu, "clip": args.clip,
            "lr": args.lr, "total_steps": args.steps, "seed": args.seed, "task": f"sudoku {args.split} split",
            "fallback": not args.no_fallback, "block_length": args.block_length, "init_bias": args.init_bias, "conf_skip": args.conf_skip,
            "init_from": args.init_from or None,
            "n_params": sum(p.numel() for p in net.parameters())}
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=args.steps, initial=step, desc=f"GRPO alpha={args.alpha:g}", unit="round", file=sys.stderr)
    t_start = last = time.time()
    while step < args.steps and time.time() - t_start < args.minutes * 60:
        lr = lr_schedule(step, args.lr, args.warmup, max(1, args.steps - args.warmup), args.warmup, 0.1 * args.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(len(puzzles), (args.puzzles,), generator=gen).tolist()
        chosen = [puzzles[i][0] for i in idx]
        templates = torch.tensor([encode(p) for p in chosen for _ in range(args.group)], dtype=torch.long)
        flat = [p for p in chosen for _ in range(args.group)]
        net.eval()
        ro = rollout(model, net, templates, lambda r, tok: is_solution(flat[r], decode(tok)), args.alpha, gen,
                     fallback=not args.no_fallback, block_length=args.block_length)
        net.train()
        loss_v, skipped = grpo_step(net, opt, ro, args.group, args.mu, args.clip)
        step += 1
        now = time.time()
        wall += now - last
        last = now
        mean_r = float(ro.reward.mean())
        recent = (recent + [mean_r])[-20:]
        commits = float(ro.action.sum()) / max(1, ro.action.shape[0])
        writer.writerow({"step": step, "wall_s": f"{wall:.1f}", "lr": f"{lr:.3g}", "reward": f"{mean_r:.4f}",
                         "nfe": f"{float(ro.nfe.double().mean()):.2f}",
                         "accuracy": f"{float(ro.correct.double().mean()):.4f}",
                         "commits_per_step": f"{commits:.2f}", "loss": f"{loss_v:.5f}", "skipped": int(skipped)})
        fcsv.flush()
        print(f"step {step} reward {mean_r:.3f} NFE {float(ro.nfe.double().mean()):.1f} solved "
              f"{float(ro.correct.double().mean()):.3f} loss {loss_v:.4f}{' (skipped)' if skipped else ''} "
              f"{wall / 60:.1f} min", flush=True)
        roll = sum(recent) / len(recent)
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"reward {mean_r:.3f} (20-round {roll:.3f}) NFE {float(ro.nfe.double().mean()):.1f} "
                                f"solved {float(ro.correct.double().mean()):.2f}", refresh=False)
        if len(recent) >= 10 and roll > best:
            best = roll
            meta = {**info, "step": step, "train_wall_s": round(wall, 1), "rolling_train_reward": round(roll, 4),
                    "description": f"Sudoku unmasking policy, reward exponent alpha = {args.alpha:g}"}
            net.save(out, "best", meta)
            if args.ship:
                net.save(PKG_WEIGHTS, f"policy-{args.ship}", meta)
        if step % 10 == 0:
            atomic_save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step, "wall": wall, "best": best,
                         "recent": recent, "rng": rng_state(gen), "args": vars(args)}, ckpt)
            publish_curve(plot_curve, csv_path, png_path, args.docs, f"policy-{args.ship or 'run'}_curve")
    if bar is not None:
        bar.close()
    atomic_save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step, "wall": wall, "best": best,
                 "recent": recent, "rng": rng_state(gen), "args": vars(args)}, ckpt)
    publish_curve(plot_curve, csv_path, png_path, args.docs, f"policy-{args.ship or 'run'}_curve")
    fcsv.close()
    (out / "summary.json").write_text(json.dumps({**info, "step": step, "train_wall_s": round(wall, 1),
                                                  "best_rolling_reward": best}, indent=2) + "\n")
    print(f"done: step {step}, {wall / 60:.1f} min, best rolling reward {best:.4f}", flush=True)
    return 0
