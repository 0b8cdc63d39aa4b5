from smcdiff.cli import main
from smcdiff.demo import toy_demo


def test_demo_reports_exact_and_estimated_log_Z():
    out = toy_demo(n_particles=4, n_prompts=2, n_runs=200, seed=1)
    assert "exact log Z" in out and "ESS after each step" in out
    rows = [l for l in out.splitlines() if "+-" in l]
    assert len(rows) == 2
    for row in rows:
        parts = row.split()
        exact, one = float(parts[1]), float(parts[2])
        assert exact < 0 and one < 0


def test_cli_toy_demo_runs(capsys):
    assert main(["demo", "--toy", "--particles", "2", "--prompts", "1", "--runs", "50"]) == 0
    assert "exact log Z" in capsys.readouterr().out


def test_cli_models_demo_runs_end_to_end(capsys, tmp_path):
    # the README's main job at a reduced size: both tasks, every method, both plots
    assert main(["demo", "--puzzles", "1", "--particles", "2", "--text-prompts", "1", "--gen-length", "8",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for label in ("margin order, greedy", "SR-SMC N=2 (T=1)", "verifier SMC N=2", "best-of-2 by violations",
                  "random order, greedy"):
        assert out.count(f"| {label}") == 2  # easy and hard tables
    assert "## Text MDLM" in out
    if "skipped:" not in out:  # the text part needs the scorers extra
        assert "| RWS (VADER +) |" in out and "| SR-SMC N=2 |" in out
    for name in ("sudoku_unmasking_order.png", "sudoku_ess_trace.png"):
        assert (tmp_path / name).stat().st_size > 1000 and str(tmp_path / name) in out
