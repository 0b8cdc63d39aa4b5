"""The documentation's Python examples run as written (blocks of one page share a namespace, in order)."""

import os
import re

import pytest
import torch

DOCS = os.path.join(os.path.dirname(__file__), "..", "docs")
PAGES = ["infilling.md"]


def python_blocks(page: str) -> list[str]:
    with open(os.path.join(DOCS, page)) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page, tmp_path, monkeypatch, capsys):
    blocks = python_blocks(page)
    assert blocks, f"{page} has no python examples"
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    with torch.no_grad():
        for code in blocks:
            exec(compile(code.replace("/tmp/smcdiff-tiny-bert", str(tmp_path / "bert")), page, "exec"), ns)
    assert "properly weighted" in capsys.readouterr().out
