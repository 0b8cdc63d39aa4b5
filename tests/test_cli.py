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


def test_cli_demo_runs(capsys):
    assert main(["demo", "--particles", "2", "--prompts", "1", "--runs", "50"]) == 0
    assert "exact log Z" in capsys.readouterr().out
