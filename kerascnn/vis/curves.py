"""Loss and accuracy curves, train against validation."""
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
