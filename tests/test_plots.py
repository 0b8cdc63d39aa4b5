"""smcdiff.plots: each function writes a non-empty PNG whose content is the data it was given."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from smcdiff import (SMC, AdaptiveResampling, Categorical, ConfigError, EvenSplit, TopK,  # noqa: E402
                     ToyDenoiser, TrajectoryConfidence, UnmaskingKernel)
from smcdiff import plots  # noqa: E402


@pytest.fixture(scope="module")
def result():
    model = ToyDenoiser.random(vocab_size=3, length=7, seed=0)
    kernel = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(steps=6), block_length=None)
    smc = SMC(kernel, [TrajectoryConfidence()], n_particles=6, resampling=AdaptiveResampling(kappa=0.9))
    res = smc.run(model, torch.tensor([[0], [1]]), gen_length=6, seed=0)
    assert bool(res.resampled.any())  # the fixture exercises resampling events
    return res


def test_unmasking_order_pixels_are_the_commit_steps(result, tmp_path):
    p = tmp_path / "order.png"
    fig = plots.unmasking_order(result, b=1, path=p)
    assert p.stat().st_size > 1000
    im = fig.axes[0].images[0]
    arr = im.get_array()
    steps = result.commit_step[1, :, 1:].numpy()
    assert np.array_equal(np.asarray(arr), steps) and not np.ma.getmaskarray(arr).any()
    # rendered pixels: the centre of every cell has the colour map's colour of its step
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba()).astype(float) / 255
    bbox = im.get_window_extent()
    h_px = rgba.shape[0]
    n, g = steps.shape
    cmap, norm = im.get_cmap(), im.norm
    for i in range(n):
        for j in range(g):
            x = bbox.x0 + (j + 0.5) * bbox.width / g
            y = bbox.y1 - (i + 0.5) * bbox.height / n  # row 0 at the top
            px = rgba[int(h_px - y), int(x), :3]
            want = np.array(cmap(norm(steps[i, j]))[:3])
            assert np.abs(px - want).max() < 3 / 255, (i, j, px, want)


def test_unmasking_order_blanks_fixed_positions():
    model = ToyDenoiser.random(vocab_size=2, length=5, seed=1)
    m = model.mask_id
    kernel = UnmaskingKernel(Categorical(1.0), TopK(), EvenSplit(steps=3), block_length=None)
    res = SMC(kernel, n_particles=2).infill(model, [[0, m, 1, m, m]], seed=0)
    arr = plots.unmasking_order(res).axes[0].images[0].get_array()
    assert arr.shape == (2, 3)  # only the three generated positions
    assert np.array_equal(np.asarray(arr), res.commit_step[0][:, [1, 3, 4]].numpy())


def test_ess_trace_lines_and_resampling_markers(result, tmp_path):
    p = tmp_path / "ess.png"
    fig = plots.ess_trace(result, path=p)
    assert p.stat().st_size > 1000
    ax = fig.axes[0]
    ess, rs = result.ess_trace.numpy(), result.resampled.numpy()
    for b in range(2):
        xd, yd = ax.lines[b].get_data()
        assert np.array_equal(xd, np.arange(1, ess.shape[0] + 1)) and np.allclose(yd, ess[:, b])
        pts = ax.collections[b].get_offsets()
        assert np.array_equal(np.asarray(pts)[:, 0], np.flatnonzero(rs[:, b]) + 1)


def test_genealogy_segments(result, tmp_path):
    fig = plots.genealogy(result, b=0, path=tmp_path / "g.png")
    anc = result.genealogy.ancestors[:, 0].numpy()
    segs = fig.axes[0].collections[0].get_segments()
    t, n = anc.shape
    assert len(segs) == t * n
    for k, s in enumerate(segs):
        step, i = divmod(k, n)
        assert tuple(s[0]) == (step, anc[step, i]) and tuple(s[1]) == (step + 1, i)
    live = fig.axes[0].collections[1].get_segments()
    lin = result.genealogy.lineage()[:, 0].numpy()
    assert all(np.array_equal(np.asarray(live[i])[:, 1], lin[:, i]) for i in range(n))


def test_weight_distribution_and_frontier(result, tmp_path):
    fig = plots.weight_distribution(result, path=tmp_path / "w.png")
    heights = [r.get_height() for r in fig.axes[0].patches]
    assert np.allclose(heights, result.normalized_weights.numpy().reshape(-1))
    rows = [{"label": "a", "nfe": 10, "accuracy": 0.5, "lo": 0.4, "hi": 0.6},
            {"label": "b", "nfe": 20, "accuracy": 0.4}, {"label": "c", "nfe": 40, "accuracy": 0.7}]
    fig = plots.frontier(rows, path=tmp_path / "f.png")
    front = fig.axes[0].lines[-1].get_data()
    assert list(front[0]) == [10, 40] and list(front[1]) == [0.5, 0.7]  # b is dominated
    assert (tmp_path / "f.png").stat().st_size > 1000
    with pytest.raises(ConfigError, match=r"rows\[0\] has no 'nfe'"):
        plots.frontier([{"label": "x", "accuracy": 1}])
    with pytest.raises(ConfigError, match="b must be a prompt index"):
        plots.unmasking_order(result, b=5)
