"""First-layer filters as colour images: ``visualize RUN --kind filters --checkpoint initial|best|last``.

Each k x k x 3 kernel of the first convolution that reads the RGB input is drawn as a tiny colour
image, all of them tiled into one grid (the ConvNet's 128 filters: 8 rows of 16). Scaling is per
filter and symmetric: a filter is divided by its own largest absolute weight and mapped so that
0 is mid-grey, +max full intensity and -max black in each channel. Per-filter scaling shows
every filter's pattern even where magnitudes differ a lot (initial filters are small and alike);
keeping 0 at grey keeps the sign readable, which min-max scaling would lose. The title gives the
checkpoint's weight range for the magnitudes.
"""
import numpy as np

from kerascnn.vis.figure import pyplot, save_figure


def first_rgb_conv(model):
    """The first Conv2D whose kernel reads 3 input channels (the image), or a clear error."""
    from keras import layers

    for layer in model.layers:
        if isinstance(layer, layers.Conv2D) and layer.kernel.shape[2] == 3:
            return layer
    raise ValueError(f"model {model.name!r} has no convolution reading the 3-channel image")


def normalise_filters(kernel):
    """(kh, kw, 3, n) kernel -> (n, kh, kw, 3) images in [0, 1], 0 weights at 0.5, per-filter scale."""
    filters = np.transpose(np.asarray(kernel, dtype=np.float64), (3, 0, 1, 2))
    scale = np.abs(filters).reshape(len(filters), -1).max(axis=1)
    scale[scale == 0] = 1.0
    return 0.5 + 0.5 * filters / scale[:, None, None, None]


def filter_grid(images, columns=16, gap=1):
    """Tile (n, h, w, 3) images into one RGB array, ``columns`` per row, separated by white lines."""
    n, h, w, _ = images.shape
    columns = min(columns, n)
    rows = -(-n // columns)
    grid = np.ones((rows * (h + gap) + gap, columns * (w + gap) + gap, 3))
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[gap + r * (h + gap):gap + r * (h + gap) + h, gap + c * (w + gap):gap + c * (w + gap) + w] = image
    return grid


def _panel(ax, kernel, title):
    grid = filter_grid(normalise_filters(kernel))
    ax.imshow(grid, interpolation="nearest")
    ax.set_title(f"{title}\nweights {float(np.min(kernel)):.3f} .. {float(np.max(kernel)):.3f}", fontsize=9)
    ax.axis("off")


def _save(fig, path):
    return save_figure(fig, path, dpi=150, bbox_inches="tight")


def plot_filters(run_dir, out_dir, *, checkpoint="best"):
    """The ``filters`` kind: the grid of ``checkpoint``, and beside it the initial filters unless that was asked."""
    from kerascnn import rundir

    plt = pyplot()
    label = f"{run_dir.parent.name}/{run_dir.name}"
    kernels = {}
    for which in dict.fromkeys([checkpoint, "initial"]):
        layer = first_rgb_conv(rundir.load_model(run_dir, which))
        kernels[which] = (layer.name, np.asarray(layer.kernel))
    name, kernel = kernels[checkpoint]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    _panel(ax, kernel, f"{label}: {name}, {kernel.shape[3]} filters, {checkpoint} checkpoint")
    written = [_save(fig, out_dir / f"filters_{checkpoint}.png")]
    if checkpoint != "initial":
        fig, axes = plt.subplots(1, 2, figsize=(15, 4.5))
        _panel(axes[0], kernels["initial"][1], f"{name}: before training (initial)")
        _panel(axes[1], kernel, f"{name}: after training ({checkpoint})")
        fig.suptitle(f"{label}: first-layer filters, each scaled by its own max |w|, 0 = grey")
        written.append(_save(fig, out_dir / f"filters_initial_vs_{checkpoint}.png"))
    return written
