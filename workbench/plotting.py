"""Plotting conventions shared by every study's ``figures(record)``.

Figures are pure functions of a record.  Use `new_figure` for consistent sizes and style, and
`save_figure` (called by the record writer) for PNG + SVG output.  The Agg backend is used unless
a notebook already chose another, so figures render headless and offline.

`new_figure` returns figures that pyplot has already let go of (``plt.close``), so a study's
``figures(record)`` leaves nothing in pyplot's registry: a notebook's inline backend does not show
them by itself at the end of the cell, and the caller decides what to show (``display(fig)``,
`workbench.book_helpers.show_figures`, or a bare ``fig`` as a cell's last expression) and what to
save (`save_figure`).  The figure is still created through pyplot so that its canvas is the
backend's (the notebook's PNG formatter is registered when pyplot loads the inline backend; a
bare ``matplotlib.figure.Figure`` built before that would display as text).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

if "MPLBACKEND" not in os.environ and not matplotlib.get_backend().lower().startswith(("module://matplotlib_inline", "nbagg", "ipympl")):
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 130,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "font.size": 9,
    "axes.titlesize": 10,
    "svg.hashsalt": "attention-workbench",  # deterministic SVG ids
}
FLOAT64_EPS = float(np.finfo(np.float64).eps)


def new_figure(ncols: int = 1, nrows: int = 1, *, width: float = 3.4, height: float = 2.8, **kwargs: Any):
    """A figure with ``nrows x ncols`` axes (always a 2-D array via ``squeeze=False``).

    The figure is closed in pyplot before it is returned (see the module docstring): it is shown
    only where the caller displays it, once, and it is freed with its last reference.  ``kwargs``
    go to `plt.subplots` (``sharex``, ``sharey``, ``subplot_kw``, ...).
    """
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False,
                                 constrained_layout=True, **kwargs)
    plt.close(fig)
    return fig, axes


def save_figure(fig, path_without_suffix: str | Path) -> None:
    """Write ``<path>.png`` and ``<path>.svg`` (metadata stripped for reproducible files)."""
    path = Path(path_without_suffix)
    with plt.rc_context(STYLE):
        fig.savefig(path.with_suffix(".png"), metadata={"Software": None})
        fig.savefig(path.with_suffix(".svg"), metadata={"Date": None, "Creator": None})


def mark_float_floor(ax, level: float = FLOAT64_EPS, label: str = "float64 eps") -> None:
    ax.axhline(level, color="0.5", ls=":", lw=1, label=label)


def seed_band(ax, x, values, *, label: str | None = None, color=None, log: bool = False, **kwargs: Any):
    """Median line with a min-max band over the first axis (seeds) of ``values`` (seeds, len(x))."""
    values = np.asarray(values, dtype=float)
    if log:
        values = np.where(values > 0, values, np.nan)
    mid = np.nanmedian(values, axis=0)
    (line,) = ax.plot(x, mid, label=label, color=color, **kwargs)
    ax.fill_between(x, np.nanmin(values, axis=0), np.nanmax(values, axis=0), color=line.get_color(), alpha=0.2, lw=0)
    return line
