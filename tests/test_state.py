import torch
from hypothesis import given
from hypothesis import strategies as st

from smcdiff import ConfigError
from smcdiff.state import Canvas, ParticleState, gather_particles

import pytest


class RecordingCache:
    def __init__(self, data):
        self.data = data

    def gather(self, ancestors):
        return RecordingCache(gather_particles(self.data, ancestors))


def make_state(b, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    canvas = Canvas(prompt_length=1, gen_length=4, block_length=2, mask_id=9)
    l = canvas.length
    return ParticleState(
        tokens=torch.randint(0, 10, (b, n, l), generator=g),
        committed_logp=torch.rand(b, n, l, generator=g, dtype=torch.float64),
        commit_step=torch.randint(-1, 5, (b, n, l), generator=g),
        block=torch.zeros(b, dtype=torch.long),
        block_step=torch.zeros(b, dtype=torch.long),
        steps=torch.zeros(b, dtype=torch.long),
        done=torch.zeros(b, dtype=torch.bool),
        canvas=canvas,
        extras={"psi": torch.rand(b, n, generator=g, dtype=torch.float64)},
        cache=RecordingCache(torch.rand(b, n, 3, 2, generator=g)),
    )


def test_gather_moves_every_per_particle_tensor():
    s = make_state(2, 4)
    anc = torch.tensor([[3, 3, 0, 1], [2, 0, 0, 2]])
    t = s.gather(anc)
    for b in range(2):
        for i in range(4):
            a = int(anc[b, i])
            assert torch.equal(t.tokens[b, i], s.tokens[b, a])
            assert torch.equal(t.committed_logp[b, i], s.committed_logp[b, a])
            assert torch.equal(t.commit_step[b, i], s.commit_step[b, a])
            assert torch.equal(t.extras["psi"][b, i], s.extras["psi"][b, a])
            assert torch.equal(t.cache.data[b, i], s.cache.data[b, a])


def test_gather_rejects_wrong_shape():
    with pytest.raises(ConfigError, match="ancestors must have shape"):
        make_state(2, 4).gather(torch.zeros(2, 3, dtype=torch.long))


@pytest.mark.parametrize("bad", [-1, 4])
def test_gather_rejects_out_of_range_ancestors(bad):
    anc = torch.zeros(2, 4, dtype=torch.long)
    anc[1, 2] = bad
    with pytest.raises(ConfigError, match=r"ancestor indices must lie in \[0, 4\)"):
        make_state(2, 4).gather(anc)


@st.composite
def two_ancestor_arrays(draw):
    # ancestors drawn by hypothesis itself (not from a seed), so that it can search and shrink them
    b, n = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    arr = st.lists(st.integers(0, n - 1), min_size=b * n, max_size=b * n)
    return b, n, torch.tensor(draw(arr)).reshape(b, n), torch.tensor(draw(arr)).reshape(b, n)


@pytest.mark.thorough
@given(two_ancestor_arrays(), st.integers(0, 10_000))
def test_two_gathers_equal_one_composed_gather(arrays, seed):
    b, n, a1, a2 = arrays
    s = make_state(b, n, seed)
    two = s.gather(a1).gather(a2)
    one = s.gather(a1.gather(1, a2))
    assert torch.equal(two.tokens, one.tokens)
    assert torch.equal(two.committed_logp, one.committed_logp)
    assert torch.equal(two.commit_step, one.commit_step)
    assert torch.equal(two.extras["psi"], one.extras["psi"])
    assert torch.equal(two.cache.data, one.cache.data)


def test_canvas_block_length_must_divide():
    with pytest.raises(ConfigError, match=r"block_length \(3\) must divide gen_length \(8\)"):
        Canvas(prompt_length=0, gen_length=8, block_length=3, mask_id=0)
