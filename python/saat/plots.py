"""Plots of the papers' figures: PR curves and P@N curves, one line per defence (matplotlib)."""
from __future__ import annotations

import numpy as np

__all__ = ["plot_curves", "plot_pr", "plot_precision_at_n"]

_LABELS = {"none": "No defence", "atrdh": "ATRDH", "cgat": "CgAT", "saat": "SAAT"}


def _plt():
    try:
        import matplotlib
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover
        raise ImportError("saat.plots needs matplotlib: pip install matplotlib") from e
    return plt


def plot_pr(curves: dict, path: str | None = None, title: str = "", ax=None):
    """PR curves: ``curves`` maps a name to ``{"precision": [...], "recall": [...]}``."""
    plt = _plt()
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    for name, c in curves.items():
        ax.plot(np.asarray(c["recall"]), np.asarray(c["precision"]), marker=".", markersize=3,
                label=_LABELS.get(name, name))
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    if own and path:
        ax.figure.tight_layout()
        ax.figure.savefig(path)
        plt.close(ax.figure)
    return ax


def plot_precision_at_n(curves: dict, path: str | None = None, title: str = "", ns=None, ax=None):
    """P@N curves: ``curves`` maps a name to ``{"p_at_n": [...]}`` for N = 100, 110, …, 1000."""
    plt = _plt()
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    for name, c in curves.items():
        p = np.asarray(c["p_at_n"])
        n = np.asarray(ns) if ns is not None else np.arange(100, 100 + 10 * len(p), 10)
        ax.plot(n, p, label=_LABELS.get(name, name))
    ax.set_xlabel("Number of top returned images N")
    ax.set_ylabel("Precision@N")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    if own and path:
        ax.figure.tight_layout()
        ax.figure.savefig(path)
        plt.close(ax.figure)
    return ax


def plot_curves(curves: dict, pr_path: str, pn_path: str, title: str = ""):
    """Both figures for one bit length, saved as PNG files."""
    plot_pr(curves, pr_path, "PR, " + title)
    plot_precision_at_n(curves, pn_path, "P@N, " + title)
