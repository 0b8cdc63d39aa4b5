"""Evaluate the text MDLM: samples and generative perplexity against baselines.

``python -m smcdiff.train text-mdlm-eval [--weights-dir D] [--n 64] [--steps 128] [--out results/text_mdlm_eval.json]``

Four sets of ``--n`` texts of ``--length`` tokens of our BPE, each scored by
:func:`smcdiff.scoring.gen_ppl` (SmolLM2-135M-Instruct):

* ``mdlm``: unconditional samples (an all-mask template, MDLM's ancestral
  sampler, ``--steps`` steps, temperature 1);
* ``heldout``: windows of the held-out books and plays, decoded (the floor);
* ``shuffled``: the same windows with their words shuffled;
* ``unigram``: tokens drawn i.i.d. from the training set's token frequencies.

Gen-PPL alone rewards repetition, so every set also reports the mean entropy
(nats) of the token distribution within each sample, as in arXiv 2406.07524
and its successors. Prompted samples are printed and saved for reading.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

PROMPTS = ("And God said,", "ROMEO.\n", "Blessed are the", "KING.\nMy lords,")


def main(argv: Sequence[str] | None = None) -> int:
    from .. import recipes
    from ..metrics import unigram_entropy
    from ..models import load
    from ..models.text_mdlm import EOS_ID, TextMDLM
    from ..scoring import CausalLMScorer, gen_ppl
    from . import text_corpus
    from .text_mdlm import token_stream

    ap = argparse.ArgumentParser(prog="python -m smcdiff.train text-mdlm-eval")
    ap.add_argument("--weights-dir", default="", help="directory with <name>.safetensors etc. (default: shipped)")
    ap.add_argument("--name", default="text-mdlm")
    ap.add_argument("--corpus", default="runs/text/corpus", help="corpus cache (see smcdiff.train.text_corpus)")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="results/text_mdlm_eval.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    model = TextMDLM.from_files(args.weights_dir, args.name) if args.weights_dir else load("text-mdlm")
    tok = model.tokenizer
    train_docs, held_docs = text_corpus.documents(args.corpus)

    def dec(ids) -> str:
        return model.decode([int(i) for i in ids])

    sets: dict[str, list[list[int]]] = {}
    t0 = time.time()
    smc = recipes.mdlm(steps=args.steps, gen_length=args.length)
    tmpl = [[model.mask_id] * args.length for _ in range(args.n)]
    res = smc.infill(model, tmpl, seed=args.seed)
    sets["mdlm"] = [res.sequences[b, 0].tolist() for b in range(args.n)]
    gen_s = time.time() - t0
    held = token_stream(tok, held_docs)
    starts = np.random.default_rng(args.seed).choice(held.numel() // args.length, size=args.n, replace=False)
    sets["heldout"] = [held[s * args.length : (s + 1) * args.length].tolist() for s in starts]
    train = token_stream(tok, train_docs)
    freq = torch.bincount(train.long(), minlength=len(tok)).double()
    freq[[model.mask_id, model.pad_id, EOS_ID]] = 0
    g = torch.Generator().manual_seed(args.seed)
    sets["unigram"] = torch.multinomial(freq / freq.sum(), args.n * args.length, replacement=True,
                                        generator=g).reshape(args.n, args.length).tolist()
    texts = {k: [dec(ids) for ids in v] for k, v in sets.items()}
    rng = random.Random(args.seed)
    shuffled = []
    for t in texts["heldout"]:
        words = t.split()
        rng.shuffle(words)
        shuffled.append(" ".join(words))
    texts["shuffled"] = shuffled
    sets["shuffled"] = [model.encode(t) for t in shuffled]

    scorer = CausalLMScorer.smollm2()
    table = {}
    for k in ("mdlm", "heldout", "shuffled", "unigram"):
        keep = [t for t in texts[k] if t.strip()]
        r = gen_ppl(keep, scorer)
        ent = float(np.mean([unigram_entropy(ids) for ids in sets[k]]))
        table[k] = {"gen_ppl": round(r.ppl, 2), "ci95": [round(r.ci[0], 2), round(r.ci[1], 2)],
                    "n_texts": r.n_texts, "scorer_tokens": r.n_tokens, "entropy": round(ent, 3)}
        print(f"{k:9s} Gen-PPL {r}  entropy {ent:.2f}", flush=True)

    prompted = []
    psmc = recipes.mdlm(steps=64, gen_length=64)
    for j, p in enumerate(PROMPTS):
        out = psmc.run(model, [model.encode(p)], seed=args.seed + j)
        prompted.append({"prompt": p, "continuation": dec(out.generated[0, 0].tolist())})
    result = {
        "weights": model.meta, "n": args.n, "length": args.length, "steps": args.steps, "seed": args.seed,
        "sampling_seconds": round(gen_s, 1), "table": table,
        "unconditional_samples": texts["mdlm"][:8], "prompted_samples": prompted,
        "command": "python -m smcdiff.train text-mdlm-eval " + " ".join(argv if argv is not None else []),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for s in texts["mdlm"][:3]:
        print("---\n" + s)
    for p in prompted:
        print("---\n" + p["prompt"] + "|" + p["continuation"])
    return 0
