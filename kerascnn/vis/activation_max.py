"""What conv filters respond to: ``visualize RUN --kind activation-max --layers L1,L2 --units 0 1 2 3``.

tf-keras-vis' ActivationMaximization starts from random pixels and follows the gradient of one
filter's mean activation (the layer's output cut out of the model with ExtractIntermediateLayer,
its activation made linear so a ReLU cannot zero the gradient), with total-variation and L1
penalties that keep the picture smooth. The model's own preprocessing layer is part of the path,
so the search works in raw [0, 255] pixels. tf-keras-vis' defaults are tuned for VGG16 at 224 px;
here they washed a 32 px ClipNet's pictures out to flat grey (pixel std ~1.5), so the jitter
scales with the input (4 px at 224, 1 px at 32), rotation is left out and the penalties are
weaker (pixel std ~9 on the same filters). Pictures are drawn contrast-stretched (1st-99th
percentile per picture). Default layer: the last convolution; default units: filters 0-3.
"""
import numpy as np

from kerascnn.io import atomic_path
from kerascnn.vis.figure import pyplot, save_figure

DEFAULT_UNITS = (0, 1, 2, 3)
STEPS = 150


def maximise_filters(model, layer, units, steps=None, seed=0):
    """One (H, W, 3) float image in [0, 255] per filter index in ``units`` of ``layer`` (``steps`` default STEPS)."""
    import tensorflow as tf
    from tf_keras_vis.activation_maximization import ActivationMaximization
    from tf_keras_vis.activation_maximization.input_modifiers import Jitter
    from tf_keras_vis.activation_maximization.regularizers import Norm, TotalVariation2D
    from tf_keras_vis.utils.model_modifiers import ExtractIntermediateLayer, ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    output = model.get_layer(layer).output
    if len(output.shape) != 4:
        raise ValueError(f"activation-max needs a conv layer with (batch, height, width, channels) output; "
                         f"{layer!r} gives {tuple(output.shape)}")
    channels = output.shape[-1]
    bad = [u for u in units if not 0 <= u < channels]
    if bad:
        raise ValueError(f"--units {bad} out of range: {layer!r} has {channels} filters (0..{channels - 1})")
    visualizer = ActivationMaximization(model, model_modifier=[ExtractIntermediateLayer(layer), ReplaceToLinear()],
                                        clone=True)
    tf.random.set_seed(seed)
    seed_input = tf.random.uniform((len(units), *model.input_shape[1:]), 96.0, 160.0, seed=seed)
    jitter = max(1, round(model.input_shape[1] / 56))
    images = visualizer(CategoricalScore(list(units)), seed_input=seed_input, steps=steps or STEPS,
                        input_modifiers=[Jitter(jitter=jitter)],
                        regularizers=[TotalVariation2D(weight=0.05), Norm(weight=0.01, p=1)])
    return np.asarray(images, dtype=np.float32)


def contrast_stretch(image):
    """Map the 1st-99th percentile of a picture to [0, 1]; a flat picture stays mid-grey."""
    low, high = np.percentile(image, (1, 99))
    if high <= low:
        return np.full(image.shape, 0.5)
    return np.clip((image - low) / (high - low), 0, 1)


def plot_filter_images(rows, path, title=""):
    """``rows``: [(layer, units, images)]; one row of pictures per layer."""
    plt = pyplot()
    columns = max(len(units) for _, units, _ in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(2.2 * columns, 2.5 * len(rows)), squeeze=False)
    for row_axes, (layer, units, images) in zip(axes, rows):
        for ax in row_axes:
            ax.axis("off")
        for ax, unit, image in zip(row_axes, units, images):
            ax.imshow(contrast_stretch(image))
            ax.set_title(f"{layer}\nfilter {unit}", fontsize=7)
    fig.suptitle(title or "activation maximisation", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def activation_max_kind(run_dir, out_dir, *, checkpoint="best", layers=None, units=None):
    """The ``activation-max`` kind: a grid (``layers`` x ``units``) plus the figure's arrays as an .npz."""
    from kerascnn import rundir
    from kerascnn.vis.saliency import find_last_conv_layer, resolve_layers

    model = rundir.load_model(run_dir, checkpoint)
    layers = [layer or find_last_conv_layer(model) for layer in resolve_layers(model, layers)]
    units = tuple(units) if units else DEFAULT_UNITS
    seed = rundir.load_config(run_dir).seed
    rows = [(layer, units, maximise_filters(model, layer, units, seed=seed)) for layer in layers]
    path = out_dir / f"activation_max_{checkpoint}.png"
    plot_filter_images(rows, path, title=f"{run_dir.name}: inputs that maximise chosen filters "
                                         f"({checkpoint}, {STEPS} steps)")
    arrays = out_dir / f"activation_max_{checkpoint}.npz"
    with atomic_path(arrays) as tmp:
        np.savez(tmp, **{f"{layer}__{u}": img for layer, us, imgs in rows for u, img in zip(us, imgs)})
    return [path, arrays]
