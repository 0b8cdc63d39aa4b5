import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.load_profile("ci")

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def toy():
    from smcdiff import ToyDenoiser

    return ToyDenoiser.random(3, 3, seed=0)
