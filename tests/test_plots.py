"""saat.plots: the retrieval grid frames each retrieved image by its relevance, the perturbation
figure shows the amplified difference, the curve plots label their axes and lines."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from saat import plots  # noqa: E402


def _rgba(c):
    return tuple(np.round(mcolors.to_rgba(c), 6))


def _frame(ax):
    cols = {tuple(np.round(s.get_edgecolor(), 6)) for s in ax.spines.values()}
    assert len(cols) == 1, cols
    assert all(s.get_visible() for s in ax.spines.values())
    return cols.pop()


@pytest.fixture
def toy():
    rng = np.random.default_rng(0)
    db = rng.random((12, 3, 8, 8)).astype(np.float32)
    db_labels = np.zeros((12, 4), np.float32)
    db_labels[np.arange(12), np.arange(12) % 4] = 1
    q = rng.random((2, 3, 8, 8)).astype(np.float32)
    q_labels = np.array([[1, 0, 0, 0], [0, 1, 1, 0]], np.float32)
    ranking = np.stack([rng.permutation(12)[:6], rng.permutation(12)[:6]]).astype(np.int64)
    yield q, q_labels, db, db_labels, ranking
    plt.close("all")


def test_ranked_relevance_matches_label_overlap(toy):
    q, ql, db, dl, rank = toy
    rel = plots.ranked_relevance(ql, dl, rank)
    assert rel.shape == rank.shape and rel.dtype == bool
    for i in range(2):
        for j in range(rank.shape[1]):
            assert rel[i, j] == bool((ql[i] * dl[rank[i, j]]).sum() > 0)
    with pytest.raises(ValueError, match="ranking"):
        plots.ranked_relevance(ql, dl, rank + 12)


def test_retrieval_grid_frames_by_relevance(toy):
    q, ql, db, dl, rank = toy
    rel = plots.ranked_relevance(ql, dl, rank)
    assert rel.any() and (~rel).any()          # both colours occur
    fig = plots.retrieval_grid(q, db, rank, rel, n=5, row_titles=["a", "b"], title="t")
    axes = fig.axes
    assert len(axes) == 2 * 6
    for i in range(2):
        row = axes[6 * i: 6 * i + 6]
        assert _frame(row[0]) == _rgba(plots.QUERY_COLOUR)
        np.testing.assert_allclose(row[0].images[0].get_array(), q[i].transpose(1, 2, 0))
        assert row[0].get_ylabel() == f"{'ab'[i]}\nP@5 = {rel[i, :5].mean():.2f}"
        for j in range(5):
            want = plots.RELEVANT_COLOUR if rel[i, j] else plots.IRRELEVANT_COLOUR
            assert _frame(row[j + 1]) == _rgba(want), (i, j)
            # the cell shows the ranked database image, not some other one
            np.testing.assert_allclose(row[j + 1].images[0].get_array(), db[rank[i, j]].transpose(1, 2, 0))
    assert fig._suptitle.get_text() == "t"


def test_retrieval_grid_grey_images_and_errors(toy):
    q, ql, db, dl, rank = toy
    rel = np.ones_like(rank, dtype=bool)
    fig = plots.retrieval_grid(q[:, 0], (db[:, 0] * 255).astype(np.uint8), rank, rel, n=3)
    assert len(fig.axes) == 2 * 4
    assert fig.axes[1].images[0].get_array().ndim == 2
    assert fig.axes[1].images[0].get_cmap().name == "gray"
    with pytest.raises(ValueError, match="ranking"):
        plots.retrieval_grid(q, db, rank, rel, n=7)          # fewer ranked items than n
    with pytest.raises(ValueError, match="relevant"):
        plots.retrieval_grid(q, db, rank, rel[:1], n=3)
    with pytest.raises(ValueError, match="query_images"):
        plots.retrieval_grid(q * 2, db, rank, rel, n=3)      # outside [0, 1]
    with pytest.raises(ValueError, match="row_titles"):
        plots.retrieval_grid(q, db, rank, rel, n=3, row_titles=["only one"])


def test_show_perturbation_panels_and_amplification():
    rng = np.random.default_rng(1)
    x = rng.uniform(0.1, 0.9, (3, 3, 8, 8)).astype(np.float32)
    delta = rng.uniform(-4 / 255, 4 / 255, x.shape).astype(np.float32)
    delta[0, 0, 0, 0] = 6 / 255
    adv = x + delta
    fig = plots.show_perturbation(x, adv, row_titles=["q0", "q1", "q2"])
    assert len(fig.axes) == 9
    peak = np.abs(adv.astype(np.float64) - x).max()
    for i in range(3):
        clean_ax, adv_ax, pert_ax = fig.axes[3 * i: 3 * i + 3]
        np.testing.assert_allclose(clean_ax.images[0].get_array(), x[i].transpose(1, 2, 0), atol=1e-7)
        np.testing.assert_allclose(adv_ax.images[0].get_array(), adv[i].transpose(1, 2, 0), atol=1e-7)
        shown = np.asarray(pert_ax.images[0].get_array())
        want = 0.5 + 0.5 * (adv[i].astype(np.float64) - x[i]).transpose(1, 2, 0) / peak
        np.testing.assert_allclose(shown, want, atol=1e-6)
        assert clean_ax.get_ylabel() == f"q{i}"
    assert shown.min() >= 0 and shown.max() <= 1
    assert np.isclose(np.abs(np.asarray(fig.axes[2].images[0].get_array()) - 0.5).max(), 0.5)  # full range used
    assert "6.0/255" in fig.axes[2].get_title()
    # a fixed factor clips
    fig = plots.show_perturbation(x, adv, amplify=200)
    shown = np.asarray(fig.axes[2].images[0].get_array())
    np.testing.assert_allclose(shown, np.clip(0.5 + 200 * (adv[0].astype(np.float64) - x[0]).transpose(1, 2, 0), 0, 1),
                               atol=1e-6)
    assert "×200" in fig.axes[2].get_title()
    with pytest.raises(ValueError, match="adv_images"):
        plots.show_perturbation(x, adv[:2])
    with pytest.raises(ValueError, match="amplify"):
        plots.show_perturbation(x, adv, amplify=0)
    plt.close("all")


def test_curve_plots_label_axes_and_lines(tmp_path):
    r = np.linspace(0.01, 1, 100)
    curves = {"none": {"precision": 1 - 0.5 * r, "recall": r, "p_at_n": np.linspace(0.9, 0.5, 91)},
              "saat": {"precision": 1 - 0.2 * r, "recall": r, "p_at_n": np.linspace(0.95, 0.7, 91)}}
    ax = plots.plot_pr(curves, title="pr")
    assert ax.get_xlabel() == "Recall" and ax.get_ylabel() == "Precision"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["No defence", "SAAT"]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), 1 - 0.2 * r)
    ax = plots.plot_precision_at_n(curves)
    assert ax.get_ylabel() == "Precision@N"
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), np.arange(100, 1001, 10))
    plots.plot_curves(curves, str(tmp_path / "pr.png"), str(tmp_path / "pn.png"), title="x")
    for f in ("pr.png", "pn.png"):
        assert (tmp_path / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plt.close("all")


def test_reference_curve_is_dashed_and_first():
    r = np.linspace(0.01, 1, 50)
    curves = {"saat": {"precision": 1 - 0.2 * r, "recall": r, "p_at_n": np.linspace(0.95, 0.7, 91)}}
    ref = {"precision": 1 - 0.1 * r, "recall": r, "p_at_n": np.linspace(0.99, 0.8, 91)}
    for ax in (plots.plot_pr(curves, reference=ref), plots.plot_precision_at_n(curves, reference=ref)):
        styles = [line.get_linestyle() for line in ax.lines]
        assert styles == ["--", "-"]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [plots.REFERENCE_LABEL, "SAAT"]
    np.testing.assert_allclose(plots.plot_pr(curves, reference=ref).lines[0].get_ydata(), 1 - 0.1 * r)
    plt.close("all")
