"""Loss and accuracy curves: one run's train against validation, or several runs overlaid."""
import textwrap

import numpy as np

from kerascnn.vis.figure import pyplot, save_figure


def plot_history(rows, path, title=""):
    """Draw the curves of history ``rows`` into ``path``; no file when there are no rows."""
    if not rows:
        return
    plt = pyplot()
    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        _plot_measured(ax, epochs, [r[key] for r in rows], f"train {label}")
        _plot_measured(ax, epochs, [r[f"val_{key}"] for r in rows], f"val {label}")
        if f"test_{key}" in rows[0]:
            _plot_measured(ax, epochs, [r[f"test_{key}"] for r in rows], f"test {label} (evaluated with val)")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def _plot_measured(ax, epochs, values, label):
    """The epochs that have a value (validation_freq leaves nan between validations), marked with dots
    where some are missing or there is only one, since a line alone would hide them."""
    points = [(e, v) for e, v in zip(epochs, values) if v == v]
    marker = "o" if len(points) < max(len(epochs), 2) else None
    ax.plot([e for e, _ in points], [v for _, v in points], label=label, marker=marker, markersize=3)


def plot_overlaid(path, curves, title=""):
    """Validation accuracy and loss of several runs in one figure, train dotted in the same colour.

    ``curves`` maps a label to history rows (a run's ``history.csv``, or a mean over seeds with the same keys).
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, (label, rows) in enumerate(curves.items()):
        if not rows:
            continue
        color = f"C{i % 10}"
        epochs = np.array([r["epoch"] for r in rows])
        for ax, key in ((axes[0], "accuracy"), (axes[1], "loss")):
            val = np.array([r[f"val_{key}"] for r in rows], dtype=float)
            measured = np.isfinite(val)  # validation_freq leaves nan between validations
            # A one-epoch run or sparse validations are points, invisible or hidden as a line alone.
            marker = "o" if len(rows) == 1 or not measured.all() else None
            ax.plot(epochs[measured], val[measured], color=color, label=label, marker=marker, markersize=3)
            ax.plot(epochs, [r[key] for r in rows], color=color, linestyle=":", alpha=0.6,
                    marker="o" if len(rows) == 1 else None)
    for ax, key in ((axes[0], "accuracy"), (axes[1], "loss")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.set_title(f"validation {key} (solid) and train (dotted)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        # Titles run to a sentence or two: wrapped, they stay inside the figure.
        fig.suptitle(textwrap.fill(title, 130), fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
