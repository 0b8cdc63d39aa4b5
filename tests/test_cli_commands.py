"""The command line end to end: generate / replay / plot / check / spec / eval, and its errors (exit code 2)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from smcdiff.cli import main
from smcdiff.models.tiny import tiny_llada
from smcdiff.results import SMCResult

SR_TOY = ["--recipe", "sr_smc", "--base",
          "{recipe: llada, options: {steps: 4, gen_length: 4, block_length: 2, temperature: 1.0}}",
          "--n-particles", "3", "--when", "every_step"]


def _cli(*args, check=True):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "smcdiff", *args], capture_output=True, text=True, env=env, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}: {p.stderr}")
    return p


def test_generate_save_replay_and_plot_in_subprocesses(tmp_path):
    out, run = tmp_path / "out.jsonl", tmp_path / "run"
    _cli("generate", "--model", "toy", *SR_TOY, "--prompt-ids", "1 0", "--prompt-ids", "2 3", "--seed", "5",
         "--out", str(out), "--save-run", str(run), "-q")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["index"] for r in rows] == [0, 1] and [r["input_ids"] for r in rows] == [[1, 0], [2, 3]]
    saved = SMCResult.load(tmp_path / "run.safetensors")
    for b, r in enumerate(rows):
        assert r["sequences"] == saved.sequences[b].tolist()
        assert np.isclose(sum(r["weights"]), 1.0) and r["log_Z"] == pytest.approx(float(saved.log_Z[b]))
        assert r["nfe"] == int(saved.nfe[b]) and r["particle_forwards"] == int(saved.particle_forwards[b])
        assert r["spec"]["sampler"]["type"] == "SMC" and r["spec"]["sampler"]["n_particles"] == 3
    rep = json.loads(_cli("replay", str(tmp_path / "run.safetensors"), "-q").stdout)
    assert rep["identical_sequences"] and rep["identical_log_weights"]
    p = _cli("plot", str(tmp_path / "run.safetensors"), "--out", str(tmp_path / "plots"), "-q")
    files = p.stdout.split()
    assert len(files) == 4 and all(os.path.getsize(f) > 1000 for f in files)


def test_generate_matches_the_library_call(tmp_path, capsys):
    from smcdiff import spec as S
    from smcdiff.models import load

    assert main(["generate", "--model", "toy", *SR_TOY, "--prompt-ids", "0 1", "--seed", "2", "-q"]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    smc = S.build(row["spec"])
    res = smc.run(load("toy"), [[0, 1]], seed=2)
    assert row["sequences"] == res.sequences[0].tolist()


def test_infill_templates_keep_the_fixed_tokens(capsys):
    assert main(["generate", "--model", "toy", "--recipe", "llada", "--steps", "3", "--gen-length", "3",
                 "--temperature", "1.0", "--template-ids", "0 m m 1 m 2", "-q"]) == 0
    row = json.loads(capsys.readouterr().out)
    seq = row["sequences"][0]
    assert row["mode"] == "infill" and [seq[0], seq[3], seq[5]] == [0, 1, 2] and 4 not in seq
    assert row["filled"][0] == [seq[1], seq[2], seq[4]]


def test_sudoku_template_text_is_infilled(capsys):
    puzzle = "530070000600195000098000060800060003400803001700020006060000280000419005000080079"
    assert main(["generate", "--model", "sudoku", "--recipe", "llada", "--steps", "81", "--gen-length", "81",
                 "--block-length", "81", "--template", puzzle, "-q"]) == 0
    grid = json.loads(capsys.readouterr().out)["texts"][0]
    assert len(grid) == 81 and all(g == p for g, p in zip(grid, puzzle) if p != "0") and "0" not in grid


def test_text_prompt_on_the_shipped_text_model(capsys):
    assert main(["generate", "--model", "text-mdlm", "--recipe", "mdlm", "--steps", "8", "--gen-length", "8",
                 "--prompt", "And God said,", "--seed", "0", "-q"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert isinstance(row["texts"][0], str) and len(row["sequences"][0]) == len(row["input_ids"]) + 8


def test_checkpoint_directory_with_family(tmp_path, capsys):
    tiny_llada(seed=1).save_pretrained(tmp_path / "ckpt")
    p = _cli("generate", "--model", str(tmp_path / "ckpt"), "--family", "llada", "--recipe", "sr_smc", "--base",
             "{recipe: llada, options: {steps: 4, gen_length: 4, block_length: 4, temperature: 1.0}}",
             "--n-particles", "2", "--when", "every_step", "--prompt-ids", "5 6 7", "--save-run",
             str(tmp_path / "run"), "-q")
    assert len(json.loads(p.stdout)["sequences"][0]) == 7
    assert json.loads(_cli("replay", str(tmp_path / "run.safetensors"), "-q").stdout)["identical_sequences"]
    assert main(["generate", "--model", str(tmp_path / "ckpt"), "--recipe", "llada", "--prompt-ids", "5", "-q"]) == 2
    assert "family" in capsys.readouterr().err


def test_check_prints_a_verdict_table(capsys):
    assert main(["check", *SR_TOY, "--runs", "300", "--length", "4", "-q"]) == 0
    out = capsys.readouterr().out
    assert "| proper weighting (exact) | PASS |" in out and "| unbiasedness" in out and "overall: PASS" in out


def test_spec_show_check_and_a_spec_file_drive_generate(tmp_path, capsys):
    assert main(["spec", "show", *SR_TOY, "--format", "json", "-q"]) == 0
    spec = json.loads(capsys.readouterr().out)
    f = tmp_path / "s.json"
    f.write_text(json.dumps(spec))
    assert main(["spec", "check", str(f), "-q"]) == 0
    assert "valid" in capsys.readouterr().out
    assert main(["generate", "--model", "toy", "--spec", str(f), "--prompt-ids", "1 2", "--seed", "5", "-q"]) == 0
    a = json.loads(capsys.readouterr().out)
    assert main(["generate", "--model", "toy", *SR_TOY, "--prompt-ids", "1 2", "--seed", "5", "-q"]) == 0
    b = json.loads(capsys.readouterr().out)
    assert a["sequences"] == b["sequences"] and a["weights"] == b["weights"]


def test_eval_and_frontier_plot(tmp_path, capsys):
    rep = tmp_path / "rep.json"
    assert main(["eval", "--task", "sudoku:test_easy", "--model", "sudoku", "--recipe", "llada", "--steps", "81",
                 "--gen-length", "81", "--block-length", "81", "--n", "3", "--out", str(rep), "-q"]) == 0
    assert "| llada |" in capsys.readouterr().out
    assert main(["plot", "--report", str(rep), "--out", str(tmp_path), "-q"]) == 0
    assert (tmp_path / "frontier_solved.png").stat().st_size > 1000


@pytest.mark.parametrize("args, where", [
    (["generate", "--model", "toy", "--recipe", "lada", "--prompt-ids", "1"], "--recipe: unknown recipe 'lada'"),
    (["generate", "--model", "toy", "--recipe", "llada", "--steps", "2.5", "--prompt-ids", "1"], "--steps: expected int"),
    (["generate", "--model", "toy", "--recipe", "sr_smc", "--kappa", "3", "--prompt-ids", "1"],
     "kappa must lie in (0, 1]; got 3.0"),
    (["generate", "--model", "toy", "--recipe", "llada", "--bogus", "1", "--prompt-ids", "1"], "unrecognized"),
    (["generate", "--model", "nope", "--recipe", "llada", "--prompt-ids", "1"], "unknown model 'nope'"),
    (["generate", "--model", "toy", "--recipe", "llada", "--prompt-ids", "1 x"], "--prompt-ids: 'x'"),
    (["generate", "--model", "toy", "--prompt-ids", "1"], "give a sampler"),
    (["generate", "--model", "toy", "--recipe", "llada"], "give one kind of input"),
    (["nonsense"], "invalid choice"),
])
def test_bad_usage_exits_2_with_one_line(args, where, capsys):
    assert main([*args, "-q"] if args[0] != "nonsense" else args) == 2
    err = capsys.readouterr().err.strip()
    assert where in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("edit, where", [
    (lambda s: s["sampler"]["proposal"].__setitem__("selectr", {"type": "TopK"}), "sampler.proposal.selectr"),
    (lambda s: s["sampler"].__setitem__("n_particles", "four"), "sampler.n_particles: expected int"),
    (lambda s: s["sampler"]["resampling"].__setitem__("kappa", 7.0), "sampler.resampling: AdaptiveResampling"),
    (lambda s: s["sampler"]["proposal"]["score"].__setitem__("type", "Confidense"), "did you mean 'Confidence'"),
    (lambda s: s.pop("smcdiff_spec"), "smcdiff_spec: missing schema version"),
])
def test_bad_spec_files_exit_2_naming_the_path(tmp_path, capsys, edit, where):
    assert main(["spec", "show", *SR_TOY, "--format", "json", "-q"]) == 0
    spec = json.loads(capsys.readouterr().out)
    edit(spec)
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(spec))
    assert main(["generate", "--model", "toy", "--spec", str(f), "--prompt-ids", "1", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert where in err and len(err.splitlines()) == 1, err


def test_bad_spec_in_a_subprocess_exits_2(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("smcdiff_spec: 1\nsampler: {recipe: llada, options: {stepz: 4}}\n")
    p = _cli("generate", "--model", "toy", "--spec", str(f), "--prompt-ids", "1", check=False)
    assert p.returncode == 2 and "sampler.options.stepz" in p.stderr and "'steps'" in p.stderr


def test_recipe_flags_come_from_the_schema(capsys):
    from smcdiff.spec import recipe_options

    with pytest.raises(SystemExit):
        main(["generate", "--recipe", "sr_smc", "--help"])
    out = capsys.readouterr().out
    for opt in recipe_options("sr_smc"):
        flag = "--sr-smc-family" if opt == "family" else "--" + opt.replace("_", "-")
        assert flag in out, flag
    assert torch.get_num_threads() >= 1
