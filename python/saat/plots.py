"""Figures for deep-hashing retrieval (matplotlib): the papers' PR and P@N curves, one line per
defence, and the qualitative figures of a retrieval demo — a query with its top-ranked database
images framed by relevance, and clean vs adversarial images with the amplified perturbation.

Images are given in saat's layout, ``(N, C, H, W)`` in [0, 1] (float, or uint8 scaled by 1/255);
``(N, H, W)`` is drawn in grey. Figures are created with pyplot (so a notebook shows them inline);
close them with ``plt.close(fig)`` in scripts.
"""
from __future__ import annotations

import sys

import numpy as np

__all__ = ["plot_curves", "plot_pr", "plot_precision_at_n", "retrieval_grid", "show_perturbation",
           "ranked_relevance", "RELEVANT_COLOUR", "IRRELEVANT_COLOUR", "QUERY_COLOUR"]

_LABELS = {"none": "No defence", "finetune": "Fine-tuning control", "atrdh": "ATRDH", "cgat": "CgAT", "saat": "SAAT"}
#: Legend of the dashed reference curve (the undefended model on clean queries).
REFERENCE_LABEL = "No defence, clean queries"

RELEVANT_COLOUR = "#2ca02c"
"""Frame of a retrieved image relevant to the query (shares a label): green."""
IRRELEVANT_COLOUR = "#d62728"
"""Frame of a retrieved image not relevant to the query: red."""
QUERY_COLOUR = "#1f77b4"
"""Frame of the query image: blue."""


def _plt():
    try:
        import matplotlib
        if "matplotlib.pyplot" not in sys.modules:
            # headless default for scripts and the CLI; a backend already in use (a notebook's
            # inline backend, a GUI) is left alone
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover
        raise ImportError('saat.plots needs matplotlib, part of the demo extra: pip install "saat[demo]"') from e
    return plt
def plot_pr(curves: dict, path: str | None = None, title: str = "", ax=None, reference: dict | None = None):
    """PR curves: ``curves`` maps a name to ``{"precision": [...], "recall": [...]}``;
    ``reference`` (same form, optional) is drawn as a dashed black line, e.g. the undefended model
    on clean queries."""
    plt = _plt()
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    if reference is not None:
        ax.plot(np.asarray(reference["recall"]), np.asarray(reference["precision"]), "k--", label=REFERENCE_LABEL)
    for name, c in curves.items():
        ax.plot(np.asarray(c["recall"]), np.asarray(c["precision"]), marker=".", markersize=3,
                label=_LABELS.get(name, name))
    ax.set_xlim(0, 1)
    return _finish(plt, ax, own, path, title, "Recall", "Precision")


def _finish(plt, ax, own: bool, path, title: str, xlabel: str, ylabel: str):
    """Labels, range, grid, title and legend of a curve plot; saves and closes a figure the call
    made itself when a path is given."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    if own and path:
        ax.figure.tight_layout()
        ax.figure.savefig(path)
        plt.close(ax.figure)
    return ax


def plot_precision_at_n(curves: dict, path: str | None = None, title: str = "", ns=None, ax=None,
                        reference: dict | None = None):
    """P@N curves: ``curves`` maps a name to ``{"p_at_n": [...]}`` for N = 100, 110, …, 1000;
    ``reference`` (same form, optional) is drawn as a dashed black line."""
    plt = _plt()
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(5, 4), dpi=120)

    def xs(p):
        return np.asarray(ns) if ns is not None else np.arange(100, 100 + 10 * len(p), 10)
    if reference is not None:
        p = np.asarray(reference["p_at_n"])
        ax.plot(xs(p), p, "k--", label=REFERENCE_LABEL)
    for name, c in curves.items():
        p = np.asarray(c["p_at_n"])
        ax.plot(xs(p), p, label=_LABELS.get(name, name))
    return _finish(plt, ax, own, path, title, "Number of top returned images N", "Precision@N")


def plot_curves(curves: dict, pr_path: str, pn_path: str, title: str = "", reference: dict | None = None):
    """Both figures for one bit length, saved as PNG files; ``reference`` dashed in both."""
    plot_pr(curves, pr_path, "PR, " + title, reference=reference)
    plot_precision_at_n(curves, pn_path, "P@N, " + title, reference=reference)


# ------------------------------------------------------------------------- qualitative figures

def _as_display(images, name: str) -> np.ndarray:
    """Images (N, C, H, W) / (N, H, W) in [0, 1] (or uint8) as float (N, H, W, 3) or (N, H, W)."""
    x = np.asarray(images)
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise TypeError(f"argument '{name}': expected a numeric image array, got dtype {x.dtype}")
    x = x.astype(np.float64) / 255 if x.dtype == np.uint8 else x.astype(np.float64)
    if x.ndim == 4:
        if x.shape[1] == 1:
            x = x[:, 0]
        elif x.shape[1] == 3:
            x = x.transpose(0, 2, 3, 1)
        else:
            raise ValueError(f"argument '{name}': expected 1 or 3 channels in (N, C, H, W), got shape {x.shape}")
    elif x.ndim != 3:
        raise ValueError(f"argument '{name}': expected images (N, C, H, W) or (N, H, W), got shape {x.shape}")
    if x.size and (not np.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise ValueError(f"argument '{name}': expected finite values in [0, 1]")
    return x


def _label_margin(labels) -> float:
    """Inches to leave left of a grid for horizontal 8-pt row labels (lines of ``labels``)."""
    longest = max((len(line) for t in labels for line in str(t).split("\n")), default=0)
    return 0.25 + 0.065 * longest


def _framed(ax, image, colour, width):
    """Draw ``image`` on ``ax`` with no ticks and a frame of ``colour`` (the axes' spines)."""
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(True)
        s.set_edgecolor(colour)
        s.set_linewidth(width)


def ranked_relevance(query_labels, db_labels, ranking) -> np.ndarray:
    """Relevance of every ranked database item to its query: ``relevant[i, j] = y_q[i] · y_db[ranking[i, j]] > 0``.

    query_labels : (Q, C) multi-hot;  db_labels : (N, C);  ranking : (Q, k) database indices, e.g.
    :func:`saat.metrics.hamming_rank`. Returns bool (Q, k).
    """
    q = np.asarray(query_labels)
    d = np.asarray(db_labels)
    r = np.asarray(ranking)
    if q.ndim != 2 or d.ndim != 2 or q.shape[1] != d.shape[1]:
        raise ValueError(f"argument 'db_labels': expected (N, {q.shape[-1] if q.ndim else '?'}) labels like "
                         f"query_labels {q.shape}, got {d.shape}")
    if r.ndim != 2 or r.shape[0] != q.shape[0] or not np.issubdtype(r.dtype, np.integer):
        raise ValueError(f"argument 'ranking': expected integer indices of shape ({q.shape[0]}, k), got "
                         f"{r.dtype} {r.shape}")
    if r.size and (r.min() < 0 or r.max() >= d.shape[0]):
        raise ValueError(f"argument 'ranking': indices must lie in 0..{d.shape[0] - 1}")
    return np.einsum("qc,qkc->qk", q.astype(np.float64), d[r].astype(np.float64)) > 0


def retrieval_grid(query_images, db_images, ranking, relevant, *, n: int = 10, row_titles=None,
                   title: str = "", border: float = 3.0, cell: float = 0.9):
    """Each query with its top-``n`` retrieved database images, framed by relevance.

    Row ``i`` shows query ``i`` (blue frame, :data:`QUERY_COLOUR`) followed by the database images
    ``ranking[i, :n]`` nearest first, each framed green (:data:`RELEVANT_COLOUR`) when
    ``relevant[i, j]`` else red (:data:`IRRELEVANT_COLOUR`); the row's precision P@n is written
    on the left. The SAAT/CgAT papers show their retrieval examples this way.

    Parameters
    ----------
    query_images : (Q, C, H, W) or (Q, H, W) in [0, 1].
    db_images : (N, C, H, W) or (N, H, W) in [0, 1], the database ``ranking`` indexes.
    ranking : (Q, k ≥ n) int database indices, nearest first — :func:`saat.metrics.hamming_rank`.
    relevant : (Q, k ≥ n) bool, relevance of ``ranking[i, j]`` to query i —
        :func:`ranked_relevance` of the labels.
    n : number of retrieved images per row (default 10).
    row_titles : optional Q strings written left of each row (e.g. "clean", "adversarial").
    title : figure title.   border : frame width in points.   cell : inches per image.

    Returns
    -------
    matplotlib Figure with ``Q · (1 + n)`` axes in row-major order (query first in each row).

    Example
    -------
    >>> rank = saat.metrics.hamming_rank(model.encode(q_images), db_codes, k=10)
    >>> fig = saat.plots.retrieval_grid(q_images, db_images, rank,
    ...                                 saat.plots.ranked_relevance(q_labels, db_labels, rank))
    """
    plt = _plt()
    q = _as_display(query_images, "query_images")
    d = _as_display(db_images, "db_images")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"argument 'n': expected an int >= 1, got {n!r}")
    rank = np.asarray(ranking)
    rel = np.asarray(relevant)
    nq = q.shape[0]
    if nq == 0:
        raise ValueError("argument 'query_images': expected at least one query")
    if rank.ndim != 2 or rank.shape[0] != nq or rank.shape[1] < n or not np.issubdtype(rank.dtype, np.integer):
        raise ValueError(f"argument 'ranking': expected integer indices of shape ({nq}, k >= {n}), got "
                         f"{rank.dtype} {rank.shape}")
    if rank[:, :n].min() < 0 or rank[:, :n].max() >= d.shape[0]:
        raise ValueError(f"argument 'ranking': indices must lie in 0..{d.shape[0] - 1}")
    if rel.ndim != 2 or rel.shape[0] != nq or rel.shape[1] < n:
        raise ValueError(f"argument 'relevant': expected shape ({nq}, k >= {n}) like ranking, got {rel.shape}")
    rel = rel[:, :n].astype(bool)
    if row_titles is not None:
        row_titles = [str(t) for t in row_titles]
        if len(row_titles) != nq:
            raise ValueError(f"argument 'row_titles': expected {nq} strings, got {len(row_titles)}")
    margin = _label_margin((row_titles or []) + [f"P@{n} = 0.00"])
    width, height = cell * (n + 1) * 1.08 + margin + 0.1, cell * nq * 1.12 + (0.55 if title else 0.3)
    fig, axes = plt.subplots(nq, n + 1, figsize=(width, height), squeeze=False,
                             gridspec_kw={"wspace": 0.08, "hspace": 0.12})
    fig.subplots_adjust(left=margin / width, right=1 - 0.1 / width, bottom=0.1 / height,
                        top=1 - (0.5 if title else 0.25) / height)
    for i in range(nq):
        _framed(axes[i, 0], q[i], QUERY_COLOUR, border)
        label = f"P@{n} = {rel[i].mean():.2f}"
        axes[i, 0].set_ylabel(f"{row_titles[i]}\n{label}" if row_titles else label, fontsize=8, rotation=0,
                              ha="right", va="center", labelpad=6)
        for j in range(n):
            _framed(axes[i, j + 1], d[rank[i, j]], RELEVANT_COLOUR if rel[i, j] else IRRELEVANT_COLOUR, border)
    axes[0, 0].set_title("query", fontsize=8)
    for j in range(n):
        axes[0, j + 1].set_title(f"#{j + 1}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def show_perturbation(clean_images, adv_images, *, amplify: float | None = None, row_titles=None,
                      title: str = "", cell: float = 1.3):
    """Clean images, their adversarial versions and the perturbation, amplified to be visible.

    One row per image with three panels: the clean image, the adversarial image, and
    ``0.5 + amplify · (x_adv − x)`` clipped to [0, 1] (grey = unchanged). ``amplify`` defaults
    to ``0.5 / max|x_adv − x|`` over all images, so the largest change spans the full range; the
    panel title gives the factor and ``max|δ|`` in units of 1/255 (an ℓ∞ attack with
    ε = 8/255 shows at most 8.0).

    Parameters
    ----------
    clean_images, adv_images : (N, C, H, W) or (N, H, W) in [0, 1], same shape.
    amplify : float > 0, or None for the automatic factor.
    row_titles : optional N strings written left of each row.
    title : figure title.   cell : inches per panel.

    Returns
    -------
    matplotlib Figure with ``3 · N`` axes in row-major order (clean, adversarial, perturbation).

    Example
    -------
    >>> adv = saat.attacks.SAATAttack(model, train_codes, train_labels)(images, labels)
    >>> fig = saat.plots.show_perturbation(images[:4], adv[:4])
    """
    plt = _plt()
    x = _as_display(clean_images, "clean_images")
    a = _as_display(adv_images, "adv_images")
    if a.shape != x.shape:
        raise ValueError(f"argument 'adv_images': expected shape like clean_images, got {np.shape(adv_images)}")
    if x.shape[0] == 0:
        raise ValueError("argument 'clean_images': expected at least one image")
    delta = a - x
    peak = float(np.abs(delta).max())
    if amplify is None:
        amplify = 0.5 / peak if peak > 0 else 1.0
    elif isinstance(amplify, bool) or not np.isfinite(amplify) or amplify <= 0:
        raise ValueError(f"argument 'amplify': expected a finite float > 0, got {amplify!r}")
    if row_titles is not None:
        row_titles = [str(t) for t in row_titles]
        if len(row_titles) != x.shape[0]:
            raise ValueError(f"argument 'row_titles': expected {x.shape[0]} strings, got {len(row_titles)}")
    nrow = x.shape[0]
    margin = _label_margin(row_titles) if row_titles else 0.1
    top = 0.75 if title else 0.5                   # room for the column titles (and the figure title)
    width, height = 3 * cell * 1.06 + margin + 0.1, cell * nrow * 1.08 + top + 0.1
    fig, axes = plt.subplots(nrow, 3, figsize=(width, height), squeeze=False,
                             gridspec_kw={"wspace": 0.06, "hspace": 0.08})
    fig.subplots_adjust(left=margin / width, right=1 - 0.1 / width, bottom=0.1 / height, top=1 - top / height)
    for i in range(nrow):
        for ax, img in zip(axes[i], (x[i], a[i], np.clip(0.5 + amplify * delta[i], 0, 1))):
            _framed(ax, img, "0.6", 0.8)
        if row_titles:
            axes[i, 0].set_ylabel(row_titles[i], fontsize=8, rotation=0, ha="right", va="center", labelpad=6)
    axes[0, 0].set_title("clean", fontsize=8)
    axes[0, 1].set_title("adversarial", fontsize=8)
    axes[0, 2].set_title(f"perturbation ×{amplify:.3g}\nmax|δ| = {255 * peak:.1f}/255", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
