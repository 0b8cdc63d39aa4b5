import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

from hypothesis import HealthCheck, settings

# Hypothesis profiles, chosen with SMCDIFF_HYPOTHESIS (default "ci"):
#   ci        the normal run (scripts/test.sh): fast and derandomized, so every run replays the
#             same 60 examples per property test.
#   thorough  a real search (.ci/run's second pass, `-m thorough`): at least 2,000 fresh random
#             examples per property test. Each run draws new inputs; a failure prints its seed
#             and a @reproduce_failure blob, and `--hypothesis-seed=N` replays a whole run.
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True, print_blob=True)
settings.register_profile(
    "thorough",
    max_examples=2000,
    deadline=None,
    derandomize=False,
    print_blob=True,
    # a loaded CI machine must not turn a slow draw into a failure
    suppress_health_check=[HealthCheck.too_slow],
)
HYPOTHESIS_PROFILE = os.environ.get("SMCDIFF_HYPOTHESIS", "ci")
if HYPOTHESIS_PROFILE not in ("ci", "thorough"):
    raise pytest.UsageError(
        f"SMCDIFF_HYPOTHESIS must be 'ci' or 'thorough'; got {HYPOTHESIS_PROFILE!r}"
    )
settings.load_profile(HYPOTHESIS_PROFILE)

torch.set_num_threads(min(2, torch.get_num_threads()))
if HYPOTHESIS_PROFILE == "thorough":
    # the thorough pass runs property tests on tiny tensors, where a second intra-op thread only
    # adds synchronisation (3-5x slower per example on a loaded 2-core machine)
    torch.set_num_threads(1)


def pytest_report_header(config):
    return f"smcdiff hypothesis profile: {HYPOTHESIS_PROFILE} (set SMCDIFF_HYPOTHESIS=ci|thorough)"


@pytest.fixture
def toy():
    from smcdiff import ToyDenoiser

    return ToyDenoiser.random(3, 3, seed=0)
