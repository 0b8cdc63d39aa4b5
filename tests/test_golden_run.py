"""``SMC.run`` (prompt + suffix) reproduces the outputs stored before infilling landed.

Integer and boolean outputs (tokens, commit steps, ancestors, NFE) must be equal bit for bit; floating
outputs (log-probabilities, weights, log Z) to 1e-6 relative plus 5e-6 absolute: the tiny LLaDA's float32
forward passes round differently on different CPUs (vector widths of the BLAS kernels), which changes the
last bits of the log-probabilities and nothing else. A log-probability is a difference of float32 logits
of magnitude ~10 and their log-sum-exp, so its rounding error is absolute (a few float32 ulps of the
logits, 1e-6 each), not relative to the log-probability: on one 2-core x86 machine llada/rws's
committed_logp differed from the stored values by up to 8.6e-7 (at -1.45; 3 values beyond 1e-6 relative).

The stored file (tests/data/golden_run.safetensors) was written by ``tests/golden_run_cases.py`` at
commit 2dcb83d; every recipe runs on a toy model and on a tiny LLaDA (left-padded prompts, prefix cache, CFG).
"""

import pytest
import torch
from safetensors.torch import load_file

import golden_run_cases as golden

STORED = load_file(golden.PATH)


@pytest.mark.parametrize("name", sorted(golden.CASES))
def test_run_matches_stored_outputs(name):
    ours = golden.compute(name)
    for field, value in ours.items():
        ref = STORED[f"{name}::{field}"]
        assert value.dtype == ref.dtype and value.shape == ref.shape, (name, field)
        if value.dtype.is_floating_point:
            assert torch.allclose(value, ref, rtol=1e-6, atol=5e-6, equal_nan=True), (
                f"{name}: {field} differs from the stored pre-infilling output")
        else:
            assert torch.equal(value, ref), f"{name}: {field} differs from the stored pre-infilling output"


def test_every_case_is_stored():
    names = {k.split("::")[0] for k in STORED}
    assert names == set(golden.CASES)
