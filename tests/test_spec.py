"""Declarative specs: exact round trips (spec and samples) and strict, located validation."""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from smcdiff import spec as S
from smcdiff import recipes
from smcdiff.engine import SMC
from smcdiff.models import ToyDenoiser
from smcdiff.policies import AlwaysResample, EveryKSteps
from smcdiff.potentials import RewardPotential, TrajectoryConfidence
from smcdiff.proposals import FixedCounts, GumbelMax, Margin, PlackettLuce, SuppressTokens, UnmaskingKernel
from smcdiff.rewards import CallableReward, NormalizedReward

MODEL = ToyDenoiser.random(3, 5, seed=2)
PROMPTS = torch.tensor([[0], [2]])


def _last_token(prompt, text):
    return float(text[-1]) if len(text) else 0.0


REWARD = S.register("test_spec.last_token", CallableReward(_last_token), replace=True)


def _same_samples(a: SMC, b: SMC, gen_length: int = 4, seed: int = 7) -> None:
    ra = a.run(MODEL, PROMPTS, gen_length, seed=seed)
    rb = b.run(MODEL, PROMPTS, gen_length, seed=seed)
    assert torch.equal(ra.sequences, rb.sequences)
    assert torch.equal(ra.weights.log_w, rb.weights.log_w)
    assert torch.equal(ra.log_Z, rb.log_Z)


def _round_trip(smc: SMC) -> SMC:
    s = S.to_spec(smc)
    again = S.build(json.loads(json.dumps(s)))  # through JSON text
    assert S.to_spec(again) == s
    return again


def _toy_recipe(name: str) -> SMC:
    small = dict(gen_length=4)
    if name == "sr_smc":
        return recipes.sr_smc(recipes.llada(steps=4, gen_length=4, block_length=2, temperature=1.0), n_particles=3)
    if name == "rws":
        return recipes.rws(NormalizedReward(REWARD, mu=1.0, sigma=0.5), gen_length=4, temperature=1.0)
    if name == "dream":
        return recipes.dream(steps=4, temperature=1.0, **small)
    if name == "mdlm":
        return recipes.mdlm(steps=4, **small)
    if name == "learned_policy":
        import tempfile

        from smcdiff.proposals.learned import UnmaskingPolicyNet

        d = tempfile.mkdtemp()
        torch.manual_seed(0)
        UnmaskingPolicyNet().save(d, "pol")
        return recipes.learned_policy(f"{d}/pol", tokens="sample", n_particles=2, **small)
    return recipes.build(name, temperature=1.0, block_length=4, **small)


@pytest.mark.parametrize("name", sorted(recipes.RECIPES))
def test_every_recipe_round_trips_and_samples_identically(name):
    smc = _toy_recipe(name)
    _same_samples(smc, _round_trip(smc))


def test_hand_composed_sampler_round_trips():
    kernel = UnmaskingKernel(GumbelMax(0.7, top_k=2), PlackettLuce(0.5), FixedCounts([1, 2, 1]), Margin(tempered=True),
                             block_length=4, transforms=[SuppressTokens([1], stage="score")])
    pot = (TrajectoryConfidence() ** 0.5) * RewardPotential(REWARD, lam=0.3).at_block_end()
    smc = SMC(kernel, [pot, TrajectoryConfidence(tempered=True).as_twist()], n_particles=3,
              resampling=AlwaysResample("residual", when=EveryKSteps(2)), max_rows=4, gen_length=4)
    again = _round_trip(smc)
    spec = S.to_spec(smc)
    assert spec["sampler"]["potentials"][0]["type"] == "ProductPotential"
    assert spec["sampler"]["potentials"][0]["factors"][1]["type"] == "Timed"
    assert spec["sampler"]["potentials"][0]["factors"][1]["inner"]["reward"] == {"ref": "test_spec.last_token"}
    _same_samples(smc, again)


@settings(max_examples=25, deadline=None)
@given(steps=st.integers(1, 4), temperature=st.floats(0.0, 3.0, allow_nan=False), remasking=st.sampled_from(
    ["low_confidence", "random"]), block=st.sampled_from([1, 2, 4]), sampler=st.sampled_from(["categorical", "gumbel"]))
def test_llada_options_round_trip(steps, temperature, remasking, block, sampler):
    steps = max(steps, 4 // block)  # LLaDA needs at least one step per block
    steps -= steps % (4 // block)
    smc = recipes.llada(steps=steps, gen_length=4, block_length=block, temperature=temperature, remasking=remasking,
                        sampler=sampler)
    _same_samples(smc, _round_trip(smc), seed=3)


@settings(max_examples=20, deadline=None)
@given(kappa=st.floats(0.01, 1.0, allow_nan=False), scheme=st.sampled_from(["multinomial", "systematic", "residual",
       "stratified"]), n=st.integers(1, 5), when=st.sampled_from(["every_step", "block_end"]))
def test_sr_smc_options_round_trip(kappa, scheme, n, when):
    base = recipes.llada(steps=4, gen_length=4, block_length=2, temperature=1.0)
    smc = recipes.sr_smc(base, n_particles=n, kappa=kappa, scheme=scheme, when=when)
    _same_samples(smc, _round_trip(smc))


def test_recipe_node_builds_the_recipe():
    spec = {"smcdiff_spec": 1, "sampler": {"recipe": "sr_smc", "options": {
        "base": {"recipe": "llada", "options": {"steps": 4, "gen_length": 4, "block_length": 2, "temperature": 1.0}},
        "n_particles": 3}}}
    direct = recipes.sr_smc(recipes.llada(steps=4, gen_length=4, block_length=2, temperature=1.0), n_particles=3)
    assert S.to_spec(S.build(spec)) == S.to_spec(direct)


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_files_round_trip(tmp_path, suffix):
    smc = _toy_recipe("sr_smc")
    p = S.dump(smc, tmp_path / f"s{suffix}")
    assert S.load(p) == S.to_spec(smc)
    _same_samples(smc, S.build(p))


def _spec():
    return S.to_spec(_toy_recipe("sr_smc"))


def _err(spec) -> str:
    with pytest.raises(S.SpecError) as e:
        S.build(spec)
    return str(e.value)


def test_unknown_key_names_its_path_and_the_closest_name():
    s = _spec()
    s["sampler"]["proposal"]["schedule"]["stepz"] = s["sampler"]["proposal"]["schedule"].pop("steps")
    msg = _err(s)
    assert msg.startswith("sampler.proposal.schedule.stepz:") and "did you mean 'steps'" in msg


def test_wrong_type_names_its_path():
    s = _spec()
    s["sampler"]["n_particles"] = 2.5
    assert _err(s).startswith("sampler.n_particles: expected int; got 2.5")
    s = _spec()
    s["sampler"]["proposal"]["sampler"]["temperature"] = "hot"
    assert _err(s).startswith("sampler.proposal.sampler.temperature: expected float")


def test_out_of_range_value_names_the_component_and_the_setting():
    s = _spec()
    s["sampler"]["resampling"]["kappa"] = 3.0
    msg = _err(s)
    assert msg.startswith("sampler.resampling: AdaptiveResampling:") and "kappa" in msg


def test_unknown_component_ref_recipe_and_top_level_key():
    s = _spec()
    s["sampler"]["proposal"]["selector"]["type"] = "TopKk"
    msg = _err(s)
    assert msg.startswith("sampler.proposal.selector.type: unknown component 'TopKk'") and "'TopK'" in msg
    s = _spec()
    s["sampler"]["potentials"] = [{"type": "RewardPotential", "reward": {"ref": "nope"}}]
    assert _err(s).startswith("sampler.potentials[0].reward.ref: unknown named value 'nope'")
    assert _err({"smcdiff_spec": 1, "sampler": {"recipe": "lada"}}).startswith("sampler.recipe: unknown recipe")
    assert "did you mean 'llada'" in _err({"smcdiff_spec": 1, "sampler": {"recipe": "lada"}})
    msg = _err({"smcdiff_spec": 1, "sampler": {"recipe": "llada", "options": {"step": 4}}})
    assert msg.startswith("sampler.options.step:") and "'steps'" in msg
    assert _err({**_spec(), "samplers": 1}).startswith("samplers: unknown top-level key")


def test_schema_version_is_required_and_checked():
    s = _spec()
    del s["smcdiff_spec"]
    assert _err(s).startswith("smcdiff_spec: missing schema version")
    assert _err({**_spec(), "smcdiff_spec": 99}).startswith("smcdiff_spec: unsupported schema version 99")


def test_missing_required_argument_and_nan():
    s = _spec()
    del s["sampler"]["proposal"]["schedule"]  # optional in the signature but required by the kernel
    assert _err(s).startswith("sampler.proposal: UnmaskingKernel: UnmaskingKernel needs a schedule")
    assert _err({"smcdiff_spec": 1, "sampler": {"type": "SMC"}}).startswith("sampler.proposal: SMC needs")
    s = _spec()
    s["sampler"]["resampling"]["kappa"] = float("nan")
    assert _err(s).startswith("sampler.resampling.kappa: NaN")


def test_unregistered_parts_cannot_be_written_and_registration_lets_them():
    pot = RewardPotential(CallableReward(lambda p, t: 0.0))
    smc = SMC(recipes.llada(steps=4, gen_length=4).proposal, [pot], n_particles=2)
    with pytest.raises(S.SpecError) as e:
        S.to_spec(smc)
    assert str(e.value).startswith("sampler.potentials[0].reward.fn:") and "register" in str(e.value)
    with pytest.raises(Exception, match="already registered"):
        S.register("TopK", object)


def test_user_component_registers_and_round_trips():
    from dataclasses import dataclass

    from smcdiff.proposals.scores import Confidence

    @dataclass(frozen=True)
    class ScaledConfidence(Confidence):
        scale: float = 2.0

    S.register("test_spec.ScaledConfidence", ScaledConfidence, replace=True)
    kernel = UnmaskingKernel(GumbelMax(1.0), PlackettLuce(1.0), FixedCounts([2, 2]), ScaledConfidence(tempered=False,
                                                                                                   scale=3.0))
    smc = SMC(kernel, n_particles=2, gen_length=4)
    spec = S.to_spec(smc)
    assert spec["sampler"]["proposal"]["score"] == {"type": "test_spec.ScaledConfidence", "tempered": False, "in_model_dtype": False,
                                                    "scale": 3.0}
    _same_samples(smc, _round_trip(smc))


def test_schema_lists_every_recipe_option_and_component():
    sch = S.schema()
    assert set(sch["recipes"]) == set(recipes.RECIPES)
    assert sch["recipes"]["llada"]["options"]["steps"] == {"annotation": "int", "default": 128}
    assert "UnmaskingKernel" in sch["components"] and "TrajectoryConfidence" in sch["components"]
    assert "smollm2" in sch["values"]


def test_bad_spec_file_formats(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text("x")
    with pytest.raises(S.SpecError, match="unknown format"):
        S.load(p)
    p = tmp_path / "s.json"
    p.write_text("{not json")
    with pytest.raises(S.SpecError, match="not valid JSON"):
        S.load(p)
    p = tmp_path / "s.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(S.SpecError, match="must hold a mapping"):
        S.load(p)
