"""Which input pixels drive a class score: guided backpropagation and Grad-CAM, for any classifier.

Works on any functional Keras model whose output is a softmax ``Dense`` layer (faces MLP and
AlexNet, the clipart ResNet-50 and own CNNs). Scores are taken before the softmax (tf-keras-vis'
``ReplaceToLinear`` on a copy of the model), so one class's evidence is not mixed with the others'.

Guided backpropagation (Springenberg et al. 2015) uses tf-keras-vis' ``GuidedBackpropagation``
modifier, which swaps the gradient of every ``relu`` activation (``activation="relu"`` or
``layers.Activation("relu")``, in nested models too) for one that passes only positive gradients
through positive inputs; ``layers.ReLU()`` layers are not recognised and keep plain gradients. The
raw gradient image is drawn the way Utku Ozbulak's PyTorch CNN visualisation library (the one the
assignment names) draws it: the colour map (min-max scaled), the grey map (absolute values summed
over channels, clipped at the 99th percentile), and positive and negative saliency (the positive
and negative parts, each scaled by its extreme).

Grad-CAM (Selvaraju et al. 2017) weights a conv layer's maps by the spatially averaged gradient of
the class score, keeps the positive part and upsamples it to the image. The layer defaults to the
last convolutional layer (or a nested backbone model, whose output is then used); guided Grad-CAM
is the guided gradient times the CAM. ``Explainer(model)`` computes all of them for one image and
class; ``guided-backprop`` and ``gradcam`` are the ``kerascnn visualize`` kinds built on it.
"""
import warnings

import numpy as np

from kerascnn.vis.figure import pyplot, save_figure, save_image

MAPS = ("colour", "grey", "positive", "negative")


class NoConvLayerError(ValueError):
    """Grad-CAM needs a convolutional feature map and the model has none."""


# ---------------------------------------------------------------- model surgery

def _conv_types():
    import keras

    return (keras.layers.Conv2D, keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D)


def find_last_conv_layer(model):
    """Name of the last top-level conv layer, or of a nested model with 4-D output; None if neither."""
    import keras

    for layer in reversed(model.layers):
        if isinstance(layer, _conv_types()):
            return layer.name
        if isinstance(layer, keras.Model) and len(layer.output.shape) == 4:
            return layer.name
    return None


def resolve_layer(model, spec):
    """A layer name, or ``convN`` for the N-th (1-based) conv layer when no layer has that name."""
    if spec in [layer.name for layer in model.layers]:
        return spec
    convs = [layer.name for layer in model.layers if isinstance(layer, _conv_types())]
    if spec.startswith("conv") and spec[4:].isdigit() and 1 <= int(spec[4:]) <= len(convs):
        return convs[int(spec[4:]) - 1]
    raise ValueError(f"no layer {spec!r} in {model.name}; conv layers: {', '.join(convs) or 'none'}")


def layer_specs(layers):
    """The layer specs a figure kind was given: a comma-separated string or a sequence; [] for None."""
    if layers is None:
        return []
    items = layers.split(",") if isinstance(layers, str) else layers
    return [str(item).strip() for item in items if str(item).strip()]


def resolve_layers(model, layers):
    """``resolve_layer`` of every spec in ``layers``; [None] when none is named (the figure's default layer)."""
    return [resolve_layer(model, spec) for spec in layer_specs(layers)] or [None]


def _copy(model, *modifiers):
    """A clone of ``model`` with the same weights, then each tf-keras-vis modifier applied in place."""
    import tensorflow as tf

    clone = tf.keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    for modifier in modifiers:
        modifier(clone)
    return clone


def _guided_everywhere(model):
    """GuidedBackpropagation on the model and every nested model (it only looks at top-level layers)."""
    import keras
    from tf_keras_vis.utils.model_modifiers import GuidedBackpropagation

    GuidedBackpropagation()(model)
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _guided_everywhere(layer)


def _outer_output(model, name):
    """The symbolic output of top-level layer ``name`` in ``model``'s own graph.

    A nested model's ``.output`` belongs to its inner graph, so it is found as the input of the
    layer that consumes it.
    """
    import keras

    layer = model.get_layer(name)
    if not isinstance(layer, keras.Model):
        return layer.output
    for consumer in model.layers:
        try:
            inputs = keras.tree.flatten(consumer.input)
        except (AttributeError, ValueError):  # never called, or shared by several calls
            continue
        for tensor in inputs:
            history = getattr(tensor, "_keras_history", None)
            if consumer is not layer and history and history[0] is layer:
                return tensor
    raise ValueError(f"cannot find the output of nested model {name!r} in {model.name}'s graph")


# ---------------------------------------------------------------- maps

def _batch(image):
    return np.asarray(image, dtype=np.float32)[None]


class Explainer:
    """Guided backprop and Grad-CAM for one model; the modified copies are made once and reused."""

    def __init__(self, model):
        self.model = model
        self._linear = self._guided = None

    @property
    def linear(self):
        """The model with a linear output layer (scores before the softmax)."""
        from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

        if self._linear is None:
            self._linear = _copy(self.model, ReplaceToLinear())
        return self._linear

    @property
    def guided(self):
        """The linear-output model whose ReLUs backpropagate guided gradients."""
        from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

        if self._guided is None:
            self._guided = _copy(self.model, ReplaceToLinear(), _guided_everywhere)
        return self._guided

    def guided_gradients(self, image, class_index):
        """Guided-backprop gradient of the score of ``class_index`` w.r.t. ``image``, shaped like it."""
        from tf_keras_vis.saliency import Saliency
        from tf_keras_vis.utils.scores import CategoricalScore

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*structure of `inputs`.*")
            grads = Saliency(self.guided, clone=False)(CategoricalScore([class_index]), _batch(image),
                                                       gradient_modifier=None, keepdims=True, normalize_map=False)
        return np.asarray(grads[0], dtype=np.float32)

    def gradcam(self, image, class_index, layer=None):
        """Grad-CAM of ``class_index`` at ``layer`` (default: last conv), as an (H, W) map in [0, 1]."""
        import keras
        import tensorflow as tf

        layer = layer or find_last_conv_layer(self.model)
        if layer is None:
            raise NoConvLayerError(f"{self.model.name} has no convolutional layer for Grad-CAM; "
                                   "name a layer with 4-D output with --layers")
        maps_tensor = _outer_output(self.linear, layer)
        if len(maps_tensor.shape) != 4:
            raise ValueError(f"Grad-CAM needs a layer with (batch, height, width, channels) output; "
                             f"{layer!r} gives {tuple(maps_tensor.shape)}")
        probe = keras.Model(self.linear.inputs, [maps_tensor, self.linear.outputs[0]])
        with tf.GradientTape() as tape:
            maps, scores = probe(tf.constant(_batch(image)), training=False)
            score = scores[:, class_index]
        grads = tape.gradient(score, maps)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(maps * weights, axis=-1))[0]
        cam = tf.image.resize(cam[..., None], image.shape[:2], method="bilinear")[..., 0].numpy()
        return cam / cam.max() if cam.max() > 0 else cam

    def explain(self, image, class_index, layer=None):
        """Guided-backprop maps and gradient, plus Grad-CAM and guided Grad-CAM when there are conv maps."""
        gradient = self.guided_gradients(image, class_index)
        result = {"gradient": gradient, **gradient_maps(gradient)}
        try:
            cam = self.gradcam(image, class_index, layer)
        except NoConvLayerError:
            return result
        result["gradcam"] = cam
        result["guided_gradcam"] = gradient_maps(gradient * cam[..., None])["colour"]
        return result


def gradient_maps(gradient):
    """Ozbulak-style pictures of a raw gradient (H, W, C): colour, grey, positive, negative, all in [0, 1]."""
    g = np.asarray(gradient, dtype=np.float32)
    span = g.max() - g.min()
    colour = (g - g.min()) / span if span > 0 else np.zeros_like(g)
    grey = np.abs(g).sum(axis=-1)
    top, bottom = np.percentile(grey, 99), grey.min()
    grey = np.clip((grey - bottom) / (top - bottom), 0, 1) if top > bottom else np.zeros_like(grey)
    positive = np.maximum(0, g) / g.max() if g.max() > 0 else np.zeros_like(g)
    negative = np.maximum(0, -g) / -g.min() if g.min() < 0 else np.zeros_like(g)
    return {"colour": colour, "grey": grey, "positive": positive, "negative": negative}


# ---------------------------------------------------------------- inputs of the figure commands

def class_index(spec, class_names, predicted):
    """``--class``: a class index, a class name ('Alec Baldwin' or Alec_Baldwin), or None -> predicted."""
    if spec is None:
        return int(predicted)
    text = str(spec).strip()
    if text.isdigit():
        k = int(text)
        if not 0 <= k < len(class_names):
            raise ValueError(f"--class {k} out of range: {len(class_names)} classes (0..{len(class_names) - 1})")
        return k
    key = " ".join(text.replace("_", " ").split()).casefold()
    folded = [" ".join(c.replace("_", " ").split()).casefold() for c in class_names]
    if key not in folded:
        raise ValueError(f"--class {spec!r} is not a class of this run; classes: {', '.join(class_names)}")
    return folded.index(key)


def run_images(run_dir, model, paths, split):
    """(uint8 images at the model's input, labels for the titles): ``--images`` files, else the split's first.

    A relative path that does not exist is looked up under the run's dataset folder.
    """
    from pathlib import Path

    from kerascnn import rundir
    from kerascnn.predict import decode_for_model

    if model.input_shape[-1] not in (1, 3):
        raise ValueError(f"{run_dir} takes {tuple(model.input_shape[1:])} inputs, not images "
                         "(a run trained on precomputed features?); explain an image model instead")
    cfg = rundir.load_config(run_dir)
    if paths:
        from kerascnn.data import dataset_dir, dataset_module

        module = dataset_module(cfg.dataset)
        root = module.image_root(cfg) if hasattr(module, "image_root") else dataset_dir(cfg, cfg.dataset)
        files = [Path(p) if Path(p).exists() or Path(p).is_absolute() else root / p for p in paths]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"no image at {', '.join(missing)}")
        x, kept, skipped = decode_for_model(model, files)
        if skipped:
            raise ValueError("unreadable image(s): " + "; ".join(f"{p}: {why}" for p, why in skipped))
        return x, [files[i].stem for i in kept]
    from kerascnn.data import load_dataset

    part = load_dataset(cfg).split(split)
    return part.x[:1], [Path(part.files[0]).stem if part.files else f"{split}0"]


# ---------------------------------------------------------------- figures

def _show(ax, array, cmap=None):
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    ax.imshow(array, cmap=cmap or ("gray" if array.ndim == 2 else None), vmin=0, vmax=1 if array.dtype != np.uint8 else 255)
    ax.axis("off")


def _overlay(ax, image, cam):
    _show(ax, image)
    ax.imshow(cam, cmap="jet", alpha=0.45, vmin=0, vmax=1)


def _save_single(path, array, cmap=None):
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return save_image(array, path, cmap=cmap or "gray")


def _slug(text):
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(text))


def _predict(model, x):
    from kerascnn.evaluate import predict_arrays

    return predict_arrays(model, x)


def guided_backprop_figure(model, images, stems, class_names, class_spec, out_dir, layer=None, title=""):
    """One figure (a row per image) plus a PNG per map; returns the paths written."""
    plt = pyplot()
    probs = _predict(model, images)
    explainer = Explainer(model)
    rows, written = [], []
    for image, stem, p in zip(images, stems, probs):
        k = class_index(class_spec, class_names, p.argmax())
        maps = explainer.explain(image, k, layer)
        rows.append((image, stem, k, p, maps))
        base = f"{_slug(stem)}_{_slug(class_names[k])}"
        for name in MAPS + ("gradcam", "guided_gradcam"):
            if name in maps:
                written.append(_save_single(out_dir / f"{base}_{name}.png", maps[name],
                                            cmap="jet" if name == "gradcam" else None))
    columns = ["image", "colour", "grey", "positive", "negative"]
    if all("gradcam" in r[4] for r in rows):
        columns += ["Grad-CAM", "guided Grad-CAM"]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.4 * len(columns), 3.0 * len(rows)), squeeze=False)
    for row_axes, (image, stem, k, p, maps) in zip(axes, rows):
        panels = [("image", image), ("colour", maps["colour"]), ("grey", maps["grey"]),
                  ("positive", maps["positive"]), ("negative", maps["negative"])]
        if "Grad-CAM" in columns:
            panels += [("Grad-CAM", None), ("guided Grad-CAM", maps["guided_gradcam"])]
        for ax, (label, array) in zip(row_axes, panels):
            if label == "Grad-CAM":
                _overlay(ax, image, maps["gradcam"])
            else:
                _show(ax, array)
            ax.set_title(label, fontsize=8)
        row_axes[0].set_title(f"{stem}\n{class_names[k]} p={p[k]:.2f}\n(predicted {class_names[p.argmax()]})",
                              fontsize=7)
    fig.suptitle(title or "guided backpropagation: where the class evidence comes from", fontsize=9)
    fig.tight_layout()
    return [save_figure(fig, out_dir / "guided_backprop.png")] + written


def gradcam_figure(model, images, stems, class_names, class_spec, out_dir, layers=(None,), title=""):
    """Grad-CAM overlays, a row per image and a column per layer; returns the paths written."""
    plt = pyplot()
    layers = [name or find_last_conv_layer(model) for name in layers]
    if None in layers:
        raise NoConvLayerError(f"{model.name} has no convolutional layer for Grad-CAM")
    probs = _predict(model, images)
    fig, axes = plt.subplots(len(images), len(layers) + 1, figsize=(2.6 * (len(layers) + 1), 2.8 * len(images)),
                             squeeze=False)
    explainer, written = Explainer(model), []
    for row_axes, image, stem, p in zip(axes, images, stems, probs):
        k = class_index(class_spec, class_names, p.argmax())
        _show(row_axes[0], image)
        row_axes[0].set_title(f"{stem}\n{class_names[k]} p={p[k]:.2f}", fontsize=7)
        for ax, name in zip(row_axes[1:], layers):
            cam = explainer.gradcam(image, k, name)
            _overlay(ax, image, cam)
            ax.set_title(f"Grad-CAM {name}", fontsize=8)
            written.append(_save_single(out_dir / f"{_slug(stem)}_{_slug(class_names[k])}_gradcam_{_slug(name)}.png",
                                        cam, cmap="jet"))
    fig.suptitle(title or "Grad-CAM", fontsize=9)
    fig.tight_layout()
    return [save_figure(fig, out_dir / "gradcam.png")] + written


def _explained_run(run_dir, checkpoint, images, split, layers):
    """(model, images, their names, class names, resolved layers) of a run, for the explanation kinds."""
    from kerascnn import rundir

    model = rundir.load_model(run_dir, checkpoint)
    x, stems = run_images(run_dir, model, images, split)
    return model, x, stems, rundir.class_names(run_dir), resolve_layers(model, layers)


def guided_backprop_kind(run_dir, out_dir, *, checkpoint="best", images=None, split="val", class_name=None,
                         layers=None):
    """The ``guided-backprop`` kind: ``images`` (default: the split's first image) explained for class
    ``class_name`` (default: the predicted one), Grad-CAM at the first of ``layers`` (default: last conv)."""
    model, x, stems, names, layers = _explained_run(run_dir, checkpoint, images, split, layers)
    return guided_backprop_figure(model, x, stems, names, class_name, out_dir, layer=layers[0],
                                  title=f"{run_dir.name}: guided backpropagation ({checkpoint})")


def gradcam_kind(run_dir, out_dir, *, checkpoint="best", images=None, split="val", class_name=None, layers=None):
    """The ``gradcam`` kind: as ``guided-backprop``, a Grad-CAM column per layer in ``layers``."""
    model, x, stems, names, layers = _explained_run(run_dir, checkpoint, images, split, layers)
    return gradcam_figure(model, x, stems, names, class_name, out_dir, layers=layers,
                          title=f"{run_dir.name}: Grad-CAM ({checkpoint})")
