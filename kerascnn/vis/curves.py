"""Loss and accuracy curves, train against validation."""
from kerascnn.io import atomic_path


def plot_history(rows, path, title=""):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return
    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        ax.plot(epochs, [r[key] for r in rows], label=f"train {label}")
        ax.plot(epochs, [r[f"val_{key}"] for r in rows], label=f"val {label}")
        if f"test_{key}" in rows[0]:
            ax.plot(epochs, [r[f"test_{key}"] for r in rows], label=f"test {label} (evaluated each epoch)")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
