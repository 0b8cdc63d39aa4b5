"""Core invariants as property tests, searched hard by the ``thorough`` hypothesis profile.

Every test here carries the ``thorough`` marker: the normal run replays the derandomized
``ci`` examples, and ``.ci/run`` reruns them with ``SMCDIFF_HYPOTHESIS=thorough`` (at least
2,000 fresh examples each; see tests/conftest.py). Invariants:

* ESS bounds and shift invariance of batched log weights (dead rows included);
* gather composition: T gathers equal one gather by the genealogy's lineage (two gathers
  against one composed gather: tests/test_state.py);
* resampling unbiasedness: the *exact* expected offspring counts of every scheme, over its
  uniforms, equal ``M W_i`` (no Monte Carlo error, so no tolerance to tune);
* batch invariance: a row's ESS, normalised weights, log mean and resampled ancestors do
  not depend on the other rows of the batch; a whole SMC run per prompt equals the batched
  run (with fewer examples: each one is several SMC runs).
"""

import math

import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st

from smcdiff import (
    SMC,
    AdaptiveResampling,
    AlwaysResample,
    Categorical,
    EvenSplit,
    Genealogy,
    RandomK,
    ToyDenoiser,
    TopK,
    TrajectoryConfidence,
    UnmaskingKernel,
    Weights,
    resample,
)
from smcdiff.resampling import counts_from_ancestors, get_scheme
from smcdiff.state import Canvas, ParticleState, gather_particles

pytestmark = pytest.mark.thorough

SCHEMES = ["systematic", "stratified", "residual", "multinomial"]
F64 = torch.float64


# ---------------------------------------------------------------- strategies

# log weights: moderate, huge (exp would overflow/underflow in float64) and -inf (weight zero)
log_w_entry = st.one_of(
    st.floats(-50, 50),
    st.floats(-1e4, 1e4),
    st.just(-math.inf),
)


@st.composite
def log_w_batch(draw):
    b = draw(st.integers(1, 4))
    n = draw(st.integers(1, 16))
    lw = torch.tensor(draw(st.lists(log_w_entry, min_size=b * n, max_size=b * n)), dtype=F64).reshape(b, n)
    dead = torch.tensor(draw(st.lists(st.integers(0, 3), min_size=b, max_size=b))) == 0
    lw[dead] = -math.inf  # a dead row, in about one row of four
    for r in torch.nonzero(~dead & torch.isneginf(lw).all(1)).flatten().tolist():
        lw[r, draw(st.integers(0, n - 1))] = draw(st.floats(-50, 50))  # live by construction, not by filtering
    return lw


weight_entry = st.one_of(
    st.just(0.0),
    st.floats(1e-12, 1.0),
    st.integers(1, 8).map(float),  # equal/dyadic weights put M W_i on integers
)


@st.composite
def normalised_weight_rows(draw, b, n):
    """``[b, n]`` weights, each row summing to one, with exact zeros and tiny or equal entries."""
    w = torch.tensor(draw(st.lists(weight_entry, min_size=b * n, max_size=b * n)), dtype=F64).reshape(b, n)
    for r in torch.nonzero(w.sum(1) == 0).flatten().tolist():  # every row gets some mass by construction
        w[r, draw(st.integers(0, n - 1))] = draw(st.floats(1e-12, 1.0))
    return w / w.sum(1, keepdim=True)


normalised_weights = st.integers(1, 10).flatmap(lambda n: normalised_weight_rows(1, n)).map(lambda w: w[0])


# ---------------------------------------------------------------- ESS bounds, shift invariance


@given(log_w_batch(), st.lists(st.floats(-1e3, 1e3), min_size=4, max_size=4))
def test_ess_bounds_shift_and_batch_invariance(lw, shifts):
    b, n = lw.shape
    w = Weights(lw)
    ess, dead = w.ess, w.dead
    event(f"dead rows: {'some' if dead.any() else 'none'}")
    assert torch.equal(dead, torch.isneginf(lw).all(1))
    assert torch.all(ess[dead] == 0)
    live = ~dead
    assert torch.all((ess[live] >= 1.0) & (ess[live] <= n))
    assert not torch.isnan(ess).any()
    # the value itself, not only the clamped range: (sum w)^2 / sum w^2 after normalising by the max
    top = lw[live].max(1, keepdim=True).values
    r = torch.exp(lw[live] - top)
    # ESS is exp(2 lse(log w) - lse(2 log w)): the difference of two numbers of size ~2|log w|
    # keeps only their absolute rounding, so its relative error grows like eps * |log w|
    tol = 1e-12 + 8 * torch.finfo(F64).eps * lw[live].masked_fill(torch.isneginf(lw[live]), 0).abs().amax(1)
    assert torch.all((ess[live] - r.sum(1) ** 2 / (r * r).sum(1)).abs() <= tol * ess[live])
    # one shift per row: ESS and the normalised weights are unchanged, log_mean moves by it
    c = torch.tensor(shifts[:b], dtype=F64)
    shifted = Weights(lw + c[:, None])
    assert torch.allclose(shifted.ess, ess, rtol=1e-9, atol=0)
    W = w.normalized(allow_dead=True)
    assert torch.allclose(shifted.normalized(allow_dead=True), W, rtol=0, atol=1e-12)
    assert torch.allclose(W[live].sum(1), torch.ones(int(live.sum()), dtype=F64), atol=1e-12)
    assert torch.all(W[dead] == 0)
    lm = w.log_mean
    assert torch.allclose(shifted.log_mean[live], lm[live] + c[live], rtol=1e-12, atol=1e-9)
    assert torch.isneginf(shifted.log_mean[dead]).all()
    # ESS of a live row is 1 exactly when a single particle carries all the weight
    one = (torch.isfinite(lw).sum(1) == 1) & live
    assert torch.all(ess[one] == 1.0)
    # batch invariance: each row alone gives bit-for-bit the same quantities
    for r in range(b):
        alone = Weights(lw[r : r + 1])
        assert torch.equal(alone.ess[0], ess[r])
        assert torch.equal(alone.normalized(allow_dead=True)[0], W[r])
        assert torch.equal(alone.log_mean[0], lm[r])


# ---------------------------------------------------------------- gather composition


class RecordingCache:
    def __init__(self, data):
        self.data = data

    def gather(self, ancestors):
        return RecordingCache(gather_particles(self.data, ancestors))


def make_state(b, n, seed):
    g = torch.Generator().manual_seed(seed)
    canvas = Canvas(prompt_length=1, gen_length=4, block_length=2, mask_id=9)
    l = canvas.length
    return ParticleState(
        tokens=torch.randint(0, 10, (b, n, l), generator=g),
        committed_logp=torch.rand(b, n, l, generator=g, dtype=F64),
        commit_step=torch.randint(-1, 5, (b, n, l), generator=g),
        block=torch.zeros(b, dtype=torch.long),
        block_step=torch.zeros(b, dtype=torch.long),
        steps=torch.zeros(b, dtype=torch.long),
        done=torch.zeros(b, dtype=torch.bool),
        canvas=canvas,
        # a per-particle id makes every particle distinguishable, whatever the random fields
        extras={"id": torch.arange(b * n).reshape(b, n), "psi": torch.rand(b, n, 2, generator=g, dtype=F64)},
        cache=RecordingCache(torch.rand(b, n, 3, 2, generator=g)),
    )


def assert_same_particles(s, t):
    assert torch.equal(s.tokens, t.tokens)
    assert torch.equal(s.committed_logp, t.committed_logp)
    assert torch.equal(s.commit_step, t.commit_step)
    assert s.extras.keys() == t.extras.keys()
    for k in s.extras:
        assert torch.equal(s.extras[k], t.extras[k])
    assert torch.equal(s.cache.data, t.cache.data)


@st.composite
def ancestor_arrays(draw, t_max=5):
    b, n = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    t = draw(st.integers(1, t_max))
    anc = draw(st.lists(st.integers(0, n - 1), min_size=t * b * n, max_size=t * b * n))
    return torch.tensor(anc, dtype=torch.long).reshape(t, b, n)


@given(ancestor_arrays(t_max=6), st.integers(0, 2**31 - 1), st.data())
def test_t_gathers_equal_one_gather_by_the_lineage(anc, seed, data):
    t, b, n = anc.shape
    event(f"T = {t} gathers")
    s = make_state(b, n, seed)
    step_by_step = s
    for a in anc:
        step_by_step = step_by_step.gather(a)
    lin = Genealogy(anc).lineage()
    assert torch.equal(lin[t], torch.arange(n).expand(b, n))
    assert_same_particles(step_by_step, s.gather(lin[0]))
    # an intermediate row of the lineage composes the remaining steps
    k = data.draw(st.integers(0, t - 1))
    mid = s
    for a in anc[:k]:
        mid = mid.gather(a)
    assert_same_particles(step_by_step, mid.gather(lin[k]))


# ---------------------------------------------------------------- resampling unbiasedness


def exact_expected_counts(scheme, W, m, base):
    """``E[counts]`` of ``scheme`` over its uniforms ``U ~ U[0, 1)^k``, computed exactly.

    Each built-in scheme's counts are a sum of terms that each depend on one coordinate of
    ``U`` (one draw per coordinate; systematic has a single coordinate), so
    ``E[counts] = c(u0) + sum_c (E_{U_c}[c(u0 with U_c varied)] - c(u0))`` for any base point
    ``u0`` (a scheme whose draws interacted would give a wrong mean for most base points, so
    the caller draws ``u0``). As a function of one coordinate the
    counts are piecewise constant, with jumps only where ``u`` (multinomial), ``(c + u) / m``
    (stratified, systematic) or the residual draw crosses a cumulative weight; the counts are
    checked to be constant on each interval between those breakpoints (evaluated near both ends
    and in the middle), so weighting the middle value by the interval length integrates exactly
    even if the scheme's real breakpoints were elsewhere.
    """
    s = get_scheme(scheme)
    k = s.n_uniforms(m)
    n = W.numel()
    cdf = torch.cumsum(W, 0) / W.sum()
    pts = [torch.tensor([0.0, 1.0], dtype=F64), cdf, (m * cdf[:, None] - torch.arange(m, dtype=F64)[None, :]).flatten()]
    resid = m * W - torch.floor(m * W)
    if resid.sum() > 0:
        pts.append(torch.cumsum(resid, 0) / resid.sum())
    bp = torch.unique(torch.cat(pts).clamp(0.0, 1.0), sorted=True)
    lo, hi = bp[:-1], bp[1:]
    lens = hi - lo
    inner = lens * 1e-6
    probe = torch.stack([lo + inner, (lo + hi) / 2, hi - inner], 1)  # [p, 3]
    p = lens.numel()
    U = torch.full((k, p, 3, k), base, dtype=F64)
    for c in range(k):
        U[c, :, :, c] = probe
    anc = s.fn(W.expand(k * p * 3, n).contiguous(), U.reshape(-1, k), m)
    counts = counts_from_ancestors(anc, n).to(F64).reshape(k, p, 3, n)
    wide = lens > 1e-9  # on shorter intervals the probes may round onto a breakpoint
    assert torch.equal(counts[:, wide, 0], counts[:, wide, 1]) and torch.equal(counts[:, wide, 2], counts[:, wide, 1]), (
        f"{scheme}: offspring counts jump inside an interval between the breakpoints"
    )
    mid = counts[:, :, 1]
    c0 = counts_from_ancestors(s.fn(W[None], torch.full((1, k), base, dtype=F64), m), n).to(F64)[0]
    expected = c0 + ((lens[None, :, None] * mid).sum(1) - c0[None]).sum(0)
    return expected, counts, wide


@pytest.mark.parametrize("scheme", SCHEMES)
@given(normalised_weights, st.integers(1, 12), st.floats(0.0, 1.0, exclude_max=True))
def test_resampling_is_exactly_unbiased(scheme, W, m, base):
    n = W.numel()
    event(f"M {'<' if m < n else '=' if m == n else '>'} N")
    expected, counts, wide = exact_expected_counts(scheme, W, m, base)
    assert torch.allclose(expected, m * W, rtol=0, atol=1e-9), (expected, m * W)
    # at every evaluated point: M offspring in all, none for a particle of weight zero
    assert torch.all(counts.sum(-1) == m)
    assert torch.all(counts[..., W == 0] == 0)
    # per-scheme variance guarantees (module docstring). Systematic's "floor or ceil" holds up to
    # the rounding of the cumulative weights: where M cdf_i - k and M cdf_j - l differ only by
    # rounding (e.g. W = [0.1, 0.2, 0.7], M = 5: an interval of U of length 2e-16 at U = 0.5) a
    # particle can get one copy more, so it is checked on the intervals longer than 1e-9.
    mw = m * W
    if scheme == "systematic":
        c = counts[:, wide]
        assert torch.all((c >= torch.floor(mw) - 1e-9) & (c <= torch.ceil(mw) + 1e-9))
    elif scheme == "residual":
        assert torch.all(counts >= torch.floor(mw) - 1e-9)


# ---------------------------------------------------------------- batch invariance


@st.composite
def resampling_batch(draw):
    b = draw(st.integers(1, 4))
    n = draw(st.integers(1, 8))
    W = draw(normalised_weight_rows(b, n))
    seeds = draw(st.lists(st.integers(0, 2**63 - 1), min_size=b, max_size=b))
    num = draw(st.one_of(st.none(), st.integers(1, 10)))
    return W, seeds, num


@given(resampling_batch(), st.sampled_from(SCHEMES))
def test_resampled_rows_do_not_depend_on_the_batch(batch, scheme):
    W, seeds, num = batch
    event(f"scheme: {scheme}")
    gens = lambda: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    joint = resample(W, gens(), scheme, num=num)
    g = gens()
    for b in range(W.shape[0]):
        alone = resample(W[b : b + 1], [g[b]], scheme, num=num)
        assert torch.equal(alone[0], joint[b])
        assert bool((W[b, joint[b]] > 0).all())


class RowByRowToy(ToyDenoiser):
    """The toy model, evaluated one row at a time.

    ``ToyDenoiser.logits`` marginalises the joint table with one matrix product over all rows,
    and BLAS rounds it differently for different row counts (in the last bit, in about 1 batch
    of 15): the model itself is not bit-for-bit batch invariant. Row by row it is, so this test
    checks the engine alone.
    """

    def logits(self, tokens, attention_mask=None):
        if tokens.shape[0] <= 1:
            return super().logits(tokens, attention_mask)
        rows = [
            super(RowByRowToy, self).logits(tokens[r : r + 1], None if attention_mask is None else attention_mask[r : r + 1])
            for r in range(tokens.shape[0])
        ]
        return torch.cat(rows)


_ENGINE_MODEL = RowByRowToy.random(3, 5, seed=3)


def _assert_same_run(a, b):
    assert torch.equal(a.sequences, b.sequences)
    assert torch.equal(a.log_weights, b.log_weights)
    assert torch.equal(a.log_Z, b.log_Z)
    assert torch.equal(a.commit_step, b.commit_step)
    assert torch.equal(a.committed_logp, b.committed_logp)
    assert torch.equal(a.genealogy.ancestors, b.genealogy.ancestors)


# Each example runs B + 1 whole SMC runs (about 0.03-0.1 s each on CPU), so this one test takes
# a twentieth of the profile's examples: 3 in the ci profile, 100 in the thorough one.
@settings(max_examples=max(1, settings().max_examples // 20))
@given(
    st.lists(st.integers(0, 2), min_size=1, max_size=3),
    st.integers(1, 4),
    st.sampled_from(SCHEMES),
    st.sampled_from(["adaptive", "always"]),
    st.sampled_from(["topk", "randomk"]),
    st.data(),
)
def test_smc_run_per_prompt_equals_the_batched_run(prompts, n, scheme, policy, selector, data):
    seeds = data.draw(st.lists(st.integers(0, 2**31 - 1), min_size=len(prompts), max_size=len(prompts)))
    sel = TopK() if selector == "topk" else RandomK()
    pol = AdaptiveResampling(1.0, scheme=scheme) if policy == "adaptive" else AlwaysResample(scheme=scheme)
    kernel = UnmaskingKernel(Categorical(1.0), sel, EvenSplit(4), block_length=2)
    smc = SMC(kernel, [TrajectoryConfidence()], n_particles=n, resampling=pol)
    P = torch.tensor(prompts)[:, None]
    joint = smc.run(_ENGINE_MODEL, P, 4, seed=seeds)
    event(f"resampled: {bool(joint.resampled.any())}")
    for b in range(len(prompts)):
        _assert_same_run(joint.per_prompt(b), smc.run(_ENGINE_MODEL, P[b : b + 1], 4, seed=[seeds[b]]))
