"""Every bad input raises an error that names the problem."""

import pytest
import torch

from smcdiff import (
    SMC,
    AdaptiveResampling,
    AlwaysResample,
    Categorical,
    ConfigError,
    EvenSplit,
    FixedCounts,
    GumbelMax,
    ModelOutputError,
    ToyDenoiser,
    TopK,
    UnmaskingKernel,
)


@pytest.fixture
def model():
    return ToyDenoiser.random(3, 4, seed=0)


def kern(**kw):
    return UnmaskingKernel(Categorical(1.0), TopK(), kw.pop("schedule", EvenSplit(3)), **kw)


def test_n_particles_must_be_positive():
    with pytest.raises(ConfigError, match="n_particles must be an integer >= 1"):
        SMC(kern(), n_particles=0)
    with pytest.raises(ConfigError, match="n_particles"):
        SMC(kern(), n_particles=2.5)


@pytest.mark.parametrize("kappa", [0.0, -0.1, 1.5])
def test_kappa_outside_unit_interval(kappa):
    with pytest.raises(ConfigError, match=r"kappa must lie in \(0, 1\]"):
        AdaptiveResampling(kappa)


def test_unknown_resampling_name():
    with pytest.raises(ConfigError, match="unknown resampling scheme 'best'"):
        AdaptiveResampling(scheme="best")
    with pytest.raises(ConfigError, match="unknown resampling scheme"):
        AlwaysResample("nope")


def test_unknown_timing():
    with pytest.raises(ConfigError, match="unknown resampling timing 'sometimes'"):
        AdaptiveResampling(when="sometimes")


@pytest.mark.parametrize("t", [-1.0, float("inf"), float("nan")])
def test_bad_temperature(t):
    with pytest.raises(ConfigError, match="temperature must be finite and >= 0"):
        Categorical(t)
    with pytest.raises(ConfigError, match="temperature must be finite and >= 0"):
        GumbelMax(t)


def test_step_count_that_cannot_unmask_everything(model):
    smc = SMC(kern(schedule=FixedCounts([1, 1])), n_particles=1)
    with pytest.raises(ConfigError, match="could not unmask everything"):
        smc.run(model, torch.tensor([[0]]), 3)


def test_steps_not_multiple_of_blocks():
    m = ToyDenoiser.random(2, 5, seed=0)
    smc = SMC(kern(schedule=EvenSplit(3), block_length=2), n_particles=1)
    with pytest.raises(ConfigError, match="multiple of the number of blocks"):
        smc.run(m, torch.tensor([[0]]), 4)


def test_block_length_must_divide_gen_length(model):
    smc = SMC(kern(schedule=EvenSplit(3), block_length=2), n_particles=1)
    with pytest.raises(ConfigError, match=r"block_length \(2\) must divide gen_length \(3\)"):
        smc.run(model, torch.tensor([[0]]), 3)


def test_prompt_shapes(model):
    smc = SMC(kern(), n_particles=1)
    with pytest.raises(ConfigError, match=r"\[B, P\] tensor"):
        smc.run(model, torch.tensor([0]), 3)
    with pytest.raises(ConfigError, match="integer token ids"):
        smc.run(model, torch.tensor([[0.5]]), 3)
    with pytest.raises(ConfigError, match="one per prompt"):
        smc.run(model, torch.tensor([[0], [1]]), 3, seed=[1, 2, 3])


def test_prompt_with_mask_id_or_out_of_range(model):
    smc = SMC(kern(), n_particles=1)
    with pytest.raises(ConfigError, match="contains the mask id 3"):
        smc.run(model, torch.tensor([[3]]), 3)
    with pytest.raises(ConfigError, match=r"must lie in \[0, 4\)"):
        smc.run(model, torch.tensor([[7]]), 3)


def test_joint_table_must_sum_to_one():
    with pytest.raises(ConfigError, match="must sum to 1"):
        ToyDenoiser(torch.ones(2, 2))


class NaNModel:
    mask_id = 3
    vocab_size = 3
    eos_ids = ()
    device = torch.device("cpu")

    def logits(self, tokens, attention_mask=None):
        out = torch.zeros(tokens.shape[0], tokens.shape[1], 3)
        out[0, -1, 1] = float("nan")
        return out


def test_nan_logits_are_reported():
    smc = SMC(UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(2)), n_particles=2)
    with pytest.raises(ModelOutputError, match=r"NaN .* prompt\(s\) \[0\]"):
        smc.run(NaNModel(), torch.tensor([[0], [1]]), 2)


class WrongShapeModel(NaNModel):
    def logits(self, tokens, attention_mask=None):
        return torch.zeros(tokens.shape[0], tokens.shape[1], 5)


def test_wrong_logit_shape_is_reported():
    smc = SMC(UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(2)), n_particles=1)
    with pytest.raises(ModelOutputError, match="5 entries per position but declares vocab_size=3"):
        smc.run(WrongShapeModel(), torch.tensor([[0]]), 2)


def test_not_a_denoiser():
    smc = SMC(kern(), n_particles=1)
    with pytest.raises(ConfigError, match="Denoiser protocol"):
        smc.run(object(), torch.tensor([[0]]), 3)


def test_kernel_needs_schedule_and_right_types():
    with pytest.raises(ConfigError, match="needs a schedule"):
        UnmaskingKernel(Categorical(1.0), TopK())
    with pytest.raises(ConfigError, match="selector must be a Selector"):
        UnmaskingKernel(Categorical(1.0), "topk", EvenSplit(2))


def test_unknown_config_keys_raise_type_error_naming_the_key():
    with pytest.raises(TypeError, match="kapa"):
        AdaptiveResampling(kapa=0.5)


def test_recipe_build_rejects_unknown_keys():
    from smcdiff import recipes

    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['temprature'\] for recipe 'llada'.*temperature"):
        recipes.build("llada", temprature=1.0)
    with pytest.raises(ConfigError, match="unknown recipe 'lada'"):
        recipes.build("lada")
    smc = recipes.build("fast_dllm", threshold=0.8, gen_length=32)
    assert smc.gen_length == 32


def test_prefix_cache_needs_a_caching_model(model):
    smc = SMC(UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(3), cache="prefix"), n_particles=1)
    with pytest.raises(ConfigError, match="cache='prefix' needs a model with prefill"):
        smc.run(model, torch.tensor([[0]]), 3)


def test_cache_and_cfg_together_rejected():
    with pytest.raises(ConfigError, match="not supported together with classifier-free guidance"):
        UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(3), cache="prefix", cfg_scale=1.0)


def test_toy_length_mismatch_names_the_lengths():
    model = ToyDenoiser.random(3, 4, seed=0)
    with pytest.raises(ConfigError, match=r"length L = 4, but prompt length 1 \+ gen_length 4 = 5"):
        SMC(kern(), n_particles=1).run(model, torch.tensor([[0]]), 4)


def test_toy_joint_without_support_for_a_parallel_commit_is_reported():
    joint = torch.zeros(2, 2, 2, dtype=torch.float64)
    joint[0, 0, 0] = joint[1, 1, 1] = 0.5  # the positions must agree; committing two at once can break that
    model = ToyDenoiser(joint)
    smc = SMC(UnmaskingKernel(Categorical(1.0), TopK(), FixedCounts([2, 1])), n_particles=4)
    with pytest.raises(ModelOutputError, match="gives probability zero to the observed tokens"):
        smc.run(model, None, 3, seed=0, batch_size=8)
