"""The images a model gets most confidently wrong: ``visualize RUN --kind top-losses [--count N]``.

Misclassified images ranked by their loss (minus the log-probability of the true class), highest
first, drawn in a grid with the true class, the predicted class and its probability. These are the
first pictures to look at after training: label noise, look-alike classes and what the model keys on
show up here before they show up in any average.
"""
import math

import numpy as np

from kerascnn.io import atomic_write
from kerascnn.tables import csv_text
from kerascnn.vis.figure import pyplot, save_figure


def top_losses(y_true, probs, count=16):
    """Indices of the at most ``count`` misclassified images with the highest loss, highest first, and the
    loss of every image. Ties keep the images' order."""
    probs = np.asarray(probs)
    y_true = np.asarray(y_true, dtype=np.int64)
    losses = -np.log(np.clip(probs[np.arange(len(y_true)), y_true], 1e-7, 1.0))
    wrong = np.flatnonzero(probs.argmax(1) != y_true)
    order = wrong[np.argsort(-losses[wrong], kind="stable")]
    return order[:count], losses


def plot_top_losses(images, y_true, probs, indices, losses, class_names, path, title=""):
    """A grid of ``images[indices]``, each captioned true / predicted (probability) / loss."""
    plt = pyplot()
    n = max(len(indices), 1)
    cols = min(n, 4 if n <= 16 else 6)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(2.6 * cols, 6), 2.9 * rows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if not len(indices):
        axes[0, 0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    for ax, i in zip(axes.flat, indices):
        image = np.asarray(images[i])
        gray = image.ndim == 2 or image.shape[-1] == 1
        ax.imshow(image.squeeze(-1) if image.ndim == 3 and gray else image, cmap="gray" if gray else None)
        predicted = int(np.argmax(probs[i]))
        ax.set_title(f"true: {class_names[y_true[i]]}\npred: {class_names[predicted]} ({probs[i][predicted]:.2f})"
                     f"\nloss {losses[i]:.2f}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def top_losses_kind(run_dir, out_dir, *, split="val", checkpoint="best", count=16):
    """The ``top-losses`` kind: the ``count`` most confidently wrong images of ``split`` under ``checkpoint``,
    as a PNG grid and a CSV (file, true and predicted class, probability, loss)."""
    from kerascnn import rundir
    from kerascnn.data import load_dataset
    from kerascnn.evaluate import predict_arrays

    if count < 1:
        raise ValueError(f"count={count}: draw at least one image")
    cfg = rundir.load_config(run_dir)
    part = load_dataset(cfg).split(split)
    if (part.y < 0).all():
        raise ValueError(f"the {split!r} split has no labels, so no losses; use --split val")
    if part.x.ndim not in (3, 4):
        raise ValueError(f"the {cfg.dataset!r} dataset holds feature vectors, not images, so there is nothing to draw")
    model = rundir.load_model(run_dir, checkpoint)
    probs = predict_arrays(model, part.x)
    indices, losses = top_losses(part.y, probs, count)
    names = rundir.class_names(run_dir)
    path = out_dir / f"top_losses_{split}_{checkpoint}.png"
    wrong = int((probs.argmax(1) != part.y).sum())
    plot_top_losses(part.x, part.y, probs, indices, losses, names, path,
                    title=f"{run_dir.name}: {len(indices)} highest-loss of {wrong} misclassified "
                          f"{split} images ({checkpoint})")
    table = [{"file": part.files[i], "true": names[part.y[i]],
              "predicted": names[int(probs[i].argmax())], "probability": f"{probs[i].max():.4f}",
              "loss": f"{losses[i]:.4f}"} for i in indices]
    csv_path = atomic_write(out_dir / f"top_losses_{split}_{checkpoint}.csv",
                            csv_text(table, ["file", "true", "predicted", "probability", "loss"]))
    return [path, csv_path]
