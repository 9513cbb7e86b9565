"""What a conv layer sees: ``visualize RUN --kind activations --layers conv1,conv2 --images A B``.

For each image and each layer, one figure: the input image (decoded exactly as training decoded
it, at the model's input size) beside the layer's activation maps in a grid, one panel per filter
(LeNet-5: 32 maps for conv1, 64 for conv2). "Activation" means the output after the non-linearity:
a conv with a linear output is followed through batch norm to the ``Activation``/``ReLU`` layer
after it, and a conv built with ``activation="relu"`` is taken as is.

Each map is scaled to its own maximum, so weak but structured maps stay visible; a map that is
zero everywhere (a filter this image does not excite at all) is drawn black and counted in the
title, together with the layer's largest activation for comparing magnitudes.
"""
import math
from pathlib import Path

import numpy as np

from kerascnn.vis.figure import pyplot, save_figure

# Layers a conv's output may pass through before its non-linearity.
_PASS_THROUGH = ("BatchNormalization", "LayerNormalization", "GroupNormalization")
_NONLINEAR = ("Activation", "ReLU", "LeakyReLU", "ELU", "PReLU")


def _consumers(model, layer):
    """Top-level layers of ``model`` that take ``layer``'s output as an input."""
    import keras

    found = []
    for other in model.layers:
        try:
            inputs = keras.tree.flatten(other.input)
        except (AttributeError, ValueError):  # an input layer, or a layer called several times
            continue
        if other is not layer and any(getattr(t, "_keras_history", (None,))[0] is layer for t in inputs):
            found.append(other)
    return found


def activation_layer(model, spec):
    """The layer whose output is the activation of ``spec`` (a layer name, or ``convN``), and a note.

    From a linear conv, the single chain of consumers is followed through normalisation layers to
    the first non-linearity; if there is none, the conv's own output is used and the note says so.
    """
    from kerascnn.vis.saliency import _conv_types, resolve_layer

    layer = model.get_layer(resolve_layer(model, spec))
    if not isinstance(layer, _conv_types()):
        return layer, ""
    activation = getattr(layer.activation, "__name__", "linear")
    if activation != "linear":
        return layer, ""
    current = layer
    while True:
        nxt = _consumers(model, current)
        if len(nxt) != 1:
            break
        current = nxt[0]
        kind = type(current).__name__
        if kind in _NONLINEAR:
            return current, ""
        if kind not in _PASS_THROUGH:
            break
    return layer, "conv output: no activation layer follows it"


def activation_maps(model, images, spec):
    """(layer used, note, maps as (n_images, H, W, filters) float array) for raw [0, 255] ``images``."""
    import keras

    layer, note = activation_layer(model, spec)
    probe = keras.Model(model.inputs, layer.output)
    maps = probe.predict(np.asarray(images, dtype=np.float32), verbose=0)
    if maps.ndim != 4:
        raise ValueError(f"layer {layer.name!r} outputs shape {tuple(maps.shape[1:])}, not feature maps")
    return layer, note, maps


def _grid_shape(n):
    """Columns, rows for ``n`` maps: 8 columns for 32 or 64 maps, about square otherwise."""
    columns = 8 if n >= 16 else max(1, math.ceil(math.sqrt(n)))
    return columns, math.ceil(n / columns)


def activation_figure(image, maps, title):
    """A figure: ``image`` (H, W, 3 uint8) on the left, every channel of ``maps`` (h, w, C) in a grid."""
    plt = pyplot()
    n = maps.shape[-1]
    columns, rows = _grid_shape(n)
    fig = plt.figure(figsize=(3.2 + 1.15 * columns, max(3.2, 1.2 * rows + 0.8)))
    outer = fig.add_gridspec(1, 2, width_ratios=[3.0, 1.15 * columns], wspace=0.05)
    ax = fig.add_subplot(outer[0])
    ax.imshow(image)
    ax.set_title("input", fontsize=9)
    ax.axis("off")
    grid = outer[1].subgridspec(rows, columns, wspace=0.06, hspace=0.25)
    peaks = maps.reshape(-1, n).max(axis=0)
    for k in range(n):
        cell = fig.add_subplot(grid[k // columns, k % columns])
        cell.imshow(maps[..., k], cmap="viridis", vmin=0, vmax=peaks[k] if peaks[k] > 0 else 1,
                    interpolation="nearest")
        cell.set_title(str(k), fontsize=6, pad=1)
        cell.axis("off")
    dead = int(np.sum(peaks <= 0))
    fig.suptitle(f"{title}\n{n} maps of {maps.shape[0]}x{maps.shape[1]}, each scaled to its own maximum; "
                 f"largest activation {float(peaks.max()):.3g}; {dead} all-zero", fontsize=10)
    return fig


def _slug(text):
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(text)).strip("_")


def plot_activations(run_dir, out_dir, *, checkpoint="best", layers=None, images=None, split="val"):
    """The ``activations`` kind: one PNG per (image, layer), ``activations_<layer>_<image>.png`` in ``out_dir``.

    ``layers`` are names or ``convN`` (default conv1 and conv2); ``images`` are image files (default:
    the split's first image).
    """
    from kerascnn import rundir
    from kerascnn.vis.saliency import layer_specs, run_images

    model = rundir.load_model(run_dir, checkpoint)
    specs = layer_specs(layers) or ["conv1", "conv2"]
    x, stems = run_images(run_dir, model, images, split)
    # Name figures after class folder and stem (accordion_image_0001): stems repeat across classes.
    names = [_slug(f"{Path(p).parent.name}_{Path(p).stem}") for p in images] if images else stems
    written = []
    for spec in specs:
        layer, note, maps = activation_maps(model, x, spec)
        for image, name, image_maps in zip(x, names, maps):
            label = f"{spec} -> {layer.name}" if spec != layer.name else layer.name
            title = f"{run_dir.name} ({checkpoint}): {label} activations for {name}" + (f" [{note}]" if note else "")
            fig = activation_figure(image, image_maps, title)
            written.append(save_figure(fig, out_dir / f"activations_{_slug(spec)}_{name}.png", bbox_inches="tight"))
    return written
