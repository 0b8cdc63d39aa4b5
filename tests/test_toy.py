import itertools

import pytest
import torch

from smcdiff import ConfigError, ToyDenoiser, random_joint


def brute_conditional(joint, tokens, mask_id):
    v, l = joint.shape[0], joint.dim()
    out = torch.zeros(l, v, dtype=torch.float64)
    for x in itertools.product(range(v), repeat=l):
        if all(t == mask_id or t == xi for t, xi in zip(tokens, x)):
            for i in range(l):
                out[i, x[i]] += joint[x]
    return out / out[0].sum()


def test_random_joint_is_seeded_and_normalised():
    a, b = random_joint(3, 3, seed=5), random_joint(3, 3, seed=5)
    assert torch.equal(a, b)
    assert a.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert (a > 0).all()
    assert not torch.equal(a, random_joint(3, 3, seed=6))


def test_conditionals_are_exact():
    m = ToyDenoiser.random(3, 4, seed=1)
    rows = [[3, 3, 3, 3], [0, 3, 2, 3], [1, 1, 3, 0], [2, 0, 1, 1]]
    got = m.conditionals(torch.tensor(rows))
    for r, row in enumerate(rows):
        assert torch.allclose(got[r], brute_conditional(m.joint, row, 3), atol=1e-14)
    # observed positions are point masses
    assert got[1, 0].tolist() == [1.0, 0.0, 0.0]


def test_logits_shape_and_mask_id():
    m = ToyDenoiser.random(4, 2, seed=0)
    assert m.mask_id == 4 and m.vocab_size == 4
    assert m.logits(torch.tensor([[4, 1]])).shape == (1, 2, 4)


def test_joint_must_sum_to_one():
    with pytest.raises(ConfigError, match="must sum to 1"):
        ToyDenoiser(torch.full((3, 3), 0.2))
    with pytest.raises(ConfigError, match="non-negative"):
        ToyDenoiser(torch.tensor([[0.5, 0.6], [-0.1, 0.0]]))
    with pytest.raises(ConfigError, match=r"\[V\] \* L"):
        ToyDenoiser(torch.full((2, 3), 1 / 6))


def test_target_given_prompt():
    m = ToyDenoiser.random(2, 3, seed=2)
    t = m.target_given_prompt([1])
    assert sum(t.values()) == pytest.approx(1.0)
    assert t[(0, 1)] == pytest.approx(float(m.joint[1, 0, 1] / m.joint[1].sum()))
