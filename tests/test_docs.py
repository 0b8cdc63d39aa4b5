"""The documentation: every page's Python examples run as written (blocks of one page share a
namespace, in order, in a fresh directory), and the site builds with warnings as errors."""

import importlib.util
import os
import re
import subprocess
import sys

import pytest
import torch

DOCS = os.path.join(os.path.dirname(__file__), "..", "docs")
ROOT = os.path.join(DOCS, "..")
# page -> a string its examples must print (a check that they ran to the end)
PAGES = {
    "infilling.md": "properly weighted",
    "getting-started.md": "log Z_hat",
    "tutorials/compose.md": "mean Z_hat/Z",
    "tutorials/check-potential.md": "unbiased",
    "tutorials/own-checkpoint.md": "LLaDADenoiser",
    "specs.md": "sampler:",
    "runs.md": "identical",
}


def python_blocks(page: str) -> list[str]:
    with open(os.path.join(DOCS, page)) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_page_examples_run(page, tmp_path, monkeypatch, capsys):
    blocks = python_blocks(page)
    assert blocks, f"{page} has no python examples"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ns: dict = {"__name__": "__docs__"}
    with torch.no_grad():
        for code in blocks:
            exec(compile(code.replace("/tmp/smcdiff-tiny-bert", str(tmp_path / "bert")), page, "exec"), ns)
    assert PAGES[page] in capsys.readouterr().out


def test_every_tutorial_is_executed():
    tutorials = sorted(f"tutorials/{p}" for p in os.listdir(os.path.join(DOCS, "tutorials")) if p.endswith(".md"))
    assert set(tutorials) <= set(PAGES)


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="needs the docs extra (mkdocs)")
def test_site_builds_with_warnings_as_errors(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    p = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                       cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (tmp_path / "site" / "tutorials" / "compose" / "index.html").exists()
    assert (tmp_path / "site" / "api" / "index.html").stat().st_size > 100_000
