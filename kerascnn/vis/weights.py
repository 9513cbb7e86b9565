"""Hidden units' incoming weights drawn as images (faces part 2.3).

A dense layer fed by the flattened image has one weight per input pixel and channel for each
unit, so each unit's weight vector reshapes to the input image: its template. Grey inputs are
drawn with a diverging colour map centred on zero (red: the pixel raises the unit, blue: lowers
it); RGB templates are min-max scaled per unit. When the next layer is the output, each panel
also names the class that the unit votes for most strongly (largest outgoing weight).
"""
import numpy as np

from kerascnn.vis.figure import pyplot, save_figure

DEFAULT_UNITS = 8


class NotPixelDenseError(ValueError):
    """The chosen dense layer does not read the image pixels directly."""


def dense_layers(model):
    import keras

    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


def pixel_dense_layer(model, name=None):
    """The dense layer whose inputs are the flattened image (the first one, or ``name``)."""
    candidates = dense_layers(model)
    layer = model.get_layer(name) if name else (candidates[0] if candidates else None)
    pixels = int(np.prod(model.input_shape[1:]))
    if layer is None or layer.get_weights()[0].shape[0] != pixels:
        found = f"{layer.name} has {layer.get_weights()[0].shape[0]} inputs" if layer is not None else "no dense layer"
        raise NotPixelDenseError(f"dense-weights needs a dense layer fed by the {pixels} input pixels "
                                 f"{tuple(model.input_shape[1:])}; {found}. It suits MLP runs such as faces_mlp.")
    return layer


def unit_templates(model, layer, units):
    """Incoming weights of ``units`` reshaped to the input image: (len(units), H, W, C).

    Behind ZCA whitening (``preprocess=zca``) they are mapped back to weights on the raw pixels,
    so the picture shows what the unit responds to in the image, not in the whitened space.
    """
    kernel = layer.get_weights()[0]
    whitening = next((lay for lay in model.layers if hasattr(lay, "pixel_weights")), None)
    if whitening is not None:
        kernel = whitening.pixel_weights(kernel)
    bad = [u for u in units if not 0 <= u < kernel.shape[1]]
    if bad:
        raise ValueError(f"units {bad} out of range: {layer.name} has {kernel.shape[1]} units (0..{kernel.shape[1] - 1})")
    return kernel[:, units].T.reshape(len(units), *model.input_shape[1:])


def strongest_units(model, layer, count=DEFAULT_UNITS):
    """Units with the largest outgoing weight magnitude: the ones the next layer listens to most."""
    following = _next_dense(model, layer)
    if following is None:
        norms = np.linalg.norm(layer.get_weights()[0], axis=0)
    else:
        norms = np.abs(following.get_weights()[0]).max(axis=1)
    return [int(u) for u in np.argsort(-norms)[:count]]


def _next_dense(model, layer):
    layers = dense_layers(model)
    i = layers.index(layer)
    return layers[i + 1] if i + 1 < len(layers) else None


def unit_votes(model, layer, units, class_names):
    """For each unit, '+Name / -Name': the classes its outgoing weights favour and oppose most."""
    following = _next_dense(model, layer)
    if following is None or following.get_weights()[0].shape[1] != len(class_names):
        return [""] * len(units)
    out = following.get_weights()[0]
    return [f"+{class_names[int(out[u].argmax())]}\n-{class_names[int(out[u].argmin())]}" for u in units]


def template_image(template):
    """(H, W, C) weights -> something imshow draws: RGB in [0, 1], or a 2-D map for grey."""
    if template.shape[-1] == 1:
        return template[..., 0]
    lo, hi = template.min(), template.max()
    return (template - lo) / (hi - lo) if hi > lo else np.zeros_like(template)


def _draw(ax, template, plt):
    image = template_image(template)
    if image.ndim == 2:
        limit = float(np.abs(image).max()) or 1.0
        return ax.imshow(image, cmap="RdBu_r", vmin=-limit, vmax=limit)
    return ax.imshow(image)


def plot_dense_weights(model, units, path, *, layer_name=None, class_names=(), title="", single_dir=None):
    """A grid of unit templates in one figure; with ``single_dir`` also one PNG per unit.

    Returns the paths written.
    """
    plt = pyplot()
    layer = pixel_dense_layer(model, layer_name)
    units = list(units) if units else strongest_units(model, layer)
    templates = unit_templates(model, layer, units)
    votes = unit_votes(model, layer, units, list(class_names))
    cols = min(len(units), 4)
    rows = -(-len(units) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.7 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, unit, template, vote in zip(axes.flat, units, templates, votes):
        _draw(ax, template, plt)
        ax.set_title(f"{layer.name} unit {unit}" + (f"\n{vote}" if vote else ""), fontsize=8)
    fig.suptitle(title or f"incoming weights of {layer.name} ({layer.units} units)")
    fig.tight_layout()
    written = [save_figure(fig, path)]
    if single_dir is not None:
        for unit, template, vote in zip(units, templates, votes):
            fig, ax = plt.subplots(figsize=(3, 3.3))
            ax.axis("off")
            image = _draw(ax, template, plt)
            if template.shape[-1] == 1:
                fig.colorbar(image, ax=ax, fraction=0.046)
            ax.set_title(f"unit {unit}" + (f"  {vote.replace(chr(10), ' ')}" if vote else ""), fontsize=7)
            fig.tight_layout()
            written.append(save_figure(fig, single_dir / f"{layer.name}_unit{unit}.png"))
    return written


def dense_weights(run_dir, out_dir, *, checkpoint="best", units=None, layers=None):
    """The ``dense-weights`` kind: templates of ``units`` (default: the strongest) of the first of ``layers``
    (default: the first dense layer), in one figure and one PNG per unit."""
    from kerascnn import rundir
    from kerascnn.vis.saliency import layer_specs

    model = rundir.load_model(run_dir, checkpoint)
    return plot_dense_weights(model, units, out_dir / f"dense_weights_{checkpoint}.png",
                              layer_name=next(iter(layer_specs(layers)), None), class_names=rundir.class_names(run_dir),
                              title=f"{run_dir.name}: incoming weights ({checkpoint})", single_dir=out_dir)
