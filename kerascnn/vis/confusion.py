"""Confusion matrix figure: counts and row-normalised side by side, class names on the axes."""
import numpy as np

from kerascnn.vis.figure import pyplot, save_figure


def plot_confusion(cm, class_names, path, title=""):
    plt = pyplot()
    n = len(class_names)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = max(6, 0.45 * n + 3)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size, size))
    for ax, data, label, fmt in ((axes[0], cm, "counts", "d"), (axes[1], norm, "row-normalised", ".2f")):
        im = ax.imshow(data, cmap="Blues", vmin=0)
        ax.set_title(label)
        ax.set_xticks(range(n), class_names, rotation=90, fontsize=8)
        ax.set_yticks(range(n), class_names, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if n <= 20:
            for i in range(n):
                for j in range(n):
                    v = data[i, j]
                    ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=7,
                            color="white" if v > data.max() / 2 else "black")
        fig.colorbar(im, ax=ax, fraction=0.046)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
