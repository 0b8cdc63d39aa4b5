"""The ``smcdiff`` subcommands (parsed by :mod:`smcdiff.cli`)."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import torch

from .. import distributed
from ..errors import ConfigError
from . import UsageError

_log = logging.getLogger("smcdiff.cli")


def _progress(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def sampler_from_args(args):
    """``(smc, spec)`` from ``--recipe NAME`` and its flags, or from ``--spec FILE``."""
    from .. import spec as S
    from .flags import recipe_node

    spec_file = args.spec
    if args.recipe is not None and spec_file:
        raise UsageError("smcdiff: error: give either --recipe or --spec, not both")
    if args.recipe is None and not spec_file:
        raise UsageError("smcdiff: error: give a sampler: --recipe NAME (with its option flags) or --spec FILE")
    if args.recipe is not None:
        try:
            S.recipe_options(args.recipe)
        except S.SpecError as e:
            raise UsageError(f"smcdiff: error: --recipe: {str(e).split(': ', 1)[1]}") from None
        spec = {"smcdiff_spec": S.SCHEMA_VERSION, "sampler": recipe_node(args, args.recipe, args.recipe_option_names)}
        try:
            smc = S.build(spec)
        except S.SpecError as e:  # name the flag that set the option
            raise UsageError(f"smcdiff: error: {_flagged(str(e))}") from None
    else:
        smc = S.build(S.load(spec_file))
    return smc, S.to_spec(smc)


def _flagged(message: str) -> str:
    """Spec paths of recipe options (``sampler.options.block_length``) written as flags (``--block-length``)."""
    import re

    return re.sub(r"^sampler\.options\.(\w+)", lambda m: "--" + m.group(1).replace("_", "-"), message)


# ---------------------------------------------------------------------- generate
def cmd_generate(args) -> int:
    from ..runs import execute, load_model, make_record
    from .inputs import decode_ids, encode_template, encode_text, parse_ids, read_lines

    smc, spec = sampler_from_args(args)
    prompts = list(args.prompt) + (read_lines(args.prompts_file) if args.prompts_file else [])
    templates = list(args.template) + (read_lines(args.templates_file) if args.templates_file else [])
    n_kinds = sum(bool(x) for x in (prompts, templates, args.prompt_ids, args.template_ids))
    if n_kinds != 1:
        raise UsageError("smcdiff generate: error: give one kind of input: prompts (--prompt / --prompts-file / "
                         "--prompt-ids) or templates (--template / --templates-file / --template-ids)")
    model = load_model(args.model, args.family, args.device, args.dtype)
    mode = "infill" if (templates or args.template_ids) else "run"
    if args.prompt_ids or args.template_ids:
        texts = args.prompt_ids or args.template_ids
        inputs = [parse_ids(t) for t in args.prompt_ids] or [
            parse_ids(t, model.mask_id, "--template-ids") for t in args.template_ids]
    else:
        texts = templates or prompts
        inputs = [encode_template(model, t) if templates else encode_text(model, t) for t in texts]
    gen_length = getattr(args, "opt_gen_length", None) if args.recipe is None else None
    if mode == "run" and gen_length is None and smc.gen_length is None:
        raise UsageError("smcdiff generate: error: the sampler has no gen_length: pass --gen-length")
    record = make_record(smc, args.model, inputs, args.seed, mode=mode, gen_length=gen_length,
                         family=args.family, dtype=args.dtype, device=args.device)
    result = execute(record, model=model, progress=_progress(args))
    if distributed.world()[0] != 0:
        return 0  # the gathered result is on every rank; rank 0 writes it
    _log.info("%s: %d %s x %d particles in %.2f s, %d steps, %d resampling events", args.model, len(inputs),
              "templates" if templates else "prompts", smc.n_particles, record["wall_s"], len(result.records),
              int(result.resampled.sum()))
    best_idx = result.best(allow_dead=True)[1] if smc.n_particles > 1 else torch.zeros(len(inputs), dtype=torch.long)
    out = open(args.out, "w") if args.out else sys.stdout
    try:
        for b, text in enumerate(texts):
            seqs = result.sequences[b]
            if mode == "run":
                outs = [decode_ids(model, seqs[i, result.prompt_length:].tolist()) for i in range(seqs.shape[0])]
            else:
                n_real = len(record["inputs"][b])  # lists are right-padded to the longest template
                outs = [decode_ids(model, seqs[i, :n_real].tolist()) for i in range(seqs.shape[0])]
            row = {
                "index": b, "mode": mode, "input": text, "input_ids": record["inputs"][b],
                "sequences": seqs.tolist(), "texts": outs,
                "filled": [result.filled(b, i) for i in range(seqs.shape[0])],
                "weights": result.normalized_weights[b].tolist(), "log_Z": float(result.log_Z[b]),
                "nfe": int(result.nfe[b]), "particle_forwards": int(result.particle_forwards[b]),
                "reward_calls": int(result.reward_calls[b]), "best": int(best_idx[b]),
                "best_text": outs[int(best_idx[b])], "seed": args.seed, "spec": spec,
            }
            out.write(json.dumps(row) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    if args.save_run:
        p = result.save(args.save_run, meta={"run": record, "texts": texts})
        _log.info("run saved to %s (smcdiff replay %s)", p, p)
    return 0


def cmd_replay(args) -> int:
    from ..io import load_result
    from ..runs import execute

    saved, meta = load_result(args.run)
    record = meta.get("run")
    if not record:
        raise ConfigError(f"{args.run} holds no run record; only runs saved by generate --save-run replay")
    record = dict(record)
    if args.device is not None:
        record["device"] = args.device
    again = execute(record, progress=_progress(args))
    same = torch.equal(saved.sequences.cpu(), again.sequences.cpu())
    same_w = torch.equal(saved.weights.log_w.cpu(), again.weights.log_w.cpu())
    print(json.dumps({"run": args.run, "identical_sequences": same, "identical_log_weights": same_w,
                      "wall_s": record["wall_s"], "recorded_versions": record.get("versions")}))
    return 0 if same and same_w else 1


# ---------------------------------------------------------------------- eval
def _task(args):
    if args.task.startswith("sudoku"):
        from ..tasks.sudoku import SudokuTask

        split = args.task.split(":", 1)[1] if ":" in args.task else "test_easy"
        return SudokuTask(split)
    if args.task == "text":
        from ..tasks.text import TextTask
        from .inputs import read_lines

        return TextTask(read_lines(args.prompts_file)) if args.prompts_file else TextTask()
    raise UsageError(f"smcdiff eval: error: --task must be sudoku:<split> or text; got {args.task!r}")


def cmd_eval(args) -> int:
    from .. import spec as S
    from ..eval import Method, evaluate
    from ..runs import load_model

    methods = []
    gl = getattr(args, "opt_gen_length", None) if args.recipe is None else None
    if args.recipe is not None:
        smc, _ = sampler_from_args(argparse_ns(args, spec=None))
        methods.append(Method(args.label or args.recipe, smc, args.select, gen_length=gl))
    for f in args.spec or []:
        methods.append(Method(Path(f).stem, S.build(f), args.select, gen_length=gl))
    if not methods:
        raise UsageError("smcdiff eval: error: give at least one method: --recipe NAME or --spec FILE")
    task = _task(args)
    model = load_model(args.model, args.family, args.device, args.dtype)
    t0 = time.perf_counter()
    report = evaluate(model, task, methods, seeds=args.seeds, batch_size=args.batch_size, progress=_progress(args),
                      n_items=args.n)
    if distributed.world()[0] != 0:
        return 0
    md = report.to_markdown()
    print(md)
    _log.info("evaluated in %.1f s", time.perf_counter() - t0)
    if args.out:
        report.save(args.out)
    if args.markdown:
        Path(args.markdown).write_text(md)
    return 0


def argparse_ns(args, **changes):
    import argparse

    d = dict(vars(args))
    d.update(changes)
    return argparse.Namespace(**d)


# ---------------------------------------------------------------------- check
def cmd_check(args) -> int:
    from ..models import ToyDenoiser
    from ..theory_checks import check_components

    smc, _ = sampler_from_args(args)
    if args.vocab < 2 or args.length < 1:
        raise UsageError("smcdiff check: error: --vocab must be >= 2 and --length >= 1")
    model = ToyDenoiser.random(args.vocab, 1 + args.length, seed=args.seed)
    t0 = time.perf_counter()
    rep = check_components(smc.proposal, model, [0], args.length, smc.potentials, n_particles=smc.n_particles,
                           resampling=smc.resampling, n_runs=args.runs, seed=args.seed, k=args.k)
    rows = [("proper weighting (exact)", rep.proper_weighting.passed, str(rep.proper_weighting))]
    if rep.sampling_law is not None:
        rows.append(("sampling law (draws follow log q)", rep.sampling_law.passed, str(rep.sampling_law)))
    rows.append((f"unbiasedness (E[Z_hat]/Z = 1 within {args.k:g} s.e.)", rep.unbiasedness.passed,
                 str(rep.unbiasedness)))
    print(f"toy model: V = {args.vocab}, 1 prompt token + {args.length} generated, seed {args.seed}; "
          f"N = {smc.n_particles}, {args.runs} runs ({time.perf_counter() - t0:.1f} s)\n")
    print("| check | verdict | details |\n|---|---|---|")
    for name, ok, detail in rows:
        print(f"| {name} | {'PASS' if ok else 'FAIL'} | {' '.join(detail.split())} |")
    print(f"\noverall: {'PASS' if rep.passed else 'FAIL'}")
    return 0 if rep.passed else 1


# ---------------------------------------------------------------------- plot
def cmd_plot(args) -> int:
    from .. import plots

    out = Path(args.out)
    written = []
    if args.report:
        rep = json.loads(Path(args.report).read_text())
        table = rep.get("table")
        if not table:
            raise ConfigError(f"{args.report} is not an eval report (no 'table')")
        metrics = [k for k, v in table[0].items() if isinstance(v, dict) and "mean" in v]
        metric = args.metric or (metrics[0] if metrics else None)
        if metric not in metrics:
            raise UsageError(f"smcdiff plot: error: --metric must be one of {metrics}; got {metric!r}")
        rows = [{"label": r["method"], "nfe": r["nfe_per_item"], metric: r[metric]["mean"], "lo": r[metric]["lo"],
                 "hi": r[metric]["hi"]} for r in table]
        p = out / f"frontier_{metric}.png"
        plots.frontier(rows, x="nfe", y=metric, path=p, xlabel="NFE per item", ylabel=metric,
                       title=f"{rep.get('task', '')}: {metric} vs NFE")
        written.append(p)
    if args.run:
        from ..results import SMCResult

        result = SMCResult.load(args.run)
        stem = Path(args.run).stem
        makers = {
            "order": lambda p: plots.unmasking_order(result, args.prompt, path=p),
            "ess": lambda p: plots.ess_trace(result, path=p),
            "genealogy": lambda p: plots.genealogy(result, args.prompt, path=p),
            "weights": lambda p: plots.weight_distribution(result, path=p),
        }
        import matplotlib.pyplot as plt

        for k in args.kind:
            p = out / f"{stem}_{k}.png"
            plt.close(makers[k](p))
            written.append(p)
    if not written:
        raise UsageError("smcdiff plot: error: give a saved run (positional) and/or --report REPORT.json")
    for p in written:
        print(p)
    return 0


# ---------------------------------------------------------------------- spec, models, demo
def cmd_spec(args) -> int:
    from .. import spec as S

    if args.action == "schema":
        print(json.dumps(S.schema(), indent=1))
        return 0
    if args.action == "check":
        f = args.file or args.spec
        if not f:
            raise UsageError("smcdiff spec check: error: give the spec file")
        smc = S.build(f)
        print(f"{f}: valid (SMC with N = {smc.n_particles}, proposal {type(smc.proposal).__name__}, "
              f"{len(smc.potentials)} potential(s))")
        return 0
    _, spec = sampler_from_args(args)
    if args.format == "json":
        print(json.dumps(spec, indent=2))
    else:
        import yaml

        print(yaml.safe_dump(spec, sort_keys=False), end="")
    return 0


def cmd_models(args) -> int:
    from ..models import available

    print("| name | size | installed | description |\n|---|---|---|---|")
    for r in available():
        inst = "yes" if r["installed"] and r["files_present"] else f"no (pip install 'smcdiff[{r['extra']}]')"
        print(f"| {r['name']} | {r['size_bytes'] / 1e6:.1f} MB | {inst} | {r['description']} |")
    return 0


def cmd_demo(args) -> int:
    if args.toy:
        from ..demo import toy_demo

        print(toy_demo(n_particles=args.particles or 8, n_prompts=args.prompts, n_runs=args.runs, seed=args.seed))
    else:
        from ..demo_models import models_demo

        print(models_demo(n_puzzles=args.puzzles, n_particles=args.particles or 4, text_prompts=args.text_prompts,
                          gen_length=args.gen_length, seed=args.seed, out=args.out, text=not args.no_text))
    return 0
