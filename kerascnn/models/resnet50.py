"""ResNet-50 for the clip-art assignment (seed 004): model A (fine-tuned) and model B (from scratch).

The backbone is ``keras.applications.ResNet50(include_top=False)`` built on this model's own
preprocessing output, so its layers (``conv1_conv`` ... ``conv5_block3_out``) sit flat in one
functional model: ``fine_tune_from=conv5_block1_1_conv`` can name them, and visualisation sees
them. The head is new: global average pooling, dropout, softmax.

Backbone weights (``weights``):

- None: random initialisation (model B);
- "imagenet": Keras' published ImageNet weights, downloaded once (needs internet);
- a file: ``.weights.h5`` / legacy ``.h5`` (e.g. Keras' ``resnet50_..._notop.h5``) holding a standalone
  ``ResNet50(include_top=False)``, or a ``.keras`` model containing ResNet-50 layers;
- a run directory of this project: the ``best.keras`` of any run whose model contains a ResNet-50
  backbone (e.g. a model B run, or one trained on another dataset); layers are matched by name and
  the run's head is skipped.

Weights do not depend on the input size, so a backbone trained at 64 px loads into one at 224 px.
"""
from pathlib import Path

import keras
from keras import layers

from kerascnn.models import register
from kerascnn.models.common import classifier_output, preprocessing_layer


# Every layer of keras.applications' ResNet50 is named conv1_*, pool1_* or conv{2..5}_block*.
RESNET_LAYER_PREFIXES = ("conv", "pool")


class BackboneWeightsError(ValueError):
    """The weights source holds no usable ResNet-50 backbone."""


def _weight_layers(model):
    """name -> layer for every layer with weights, looking inside nested models too."""
    found = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.update(_weight_layers(layer))
        elif layer.weights:
            found[layer.name] = layer
    return found


def _source_model(weights, input_shape):
    """A Keras model holding the backbone weights named by ``weights`` (see the module docstring)."""
    if weights == "imagenet":
        try:
            return keras.applications.ResNet50(include_top=False, weights="imagenet", input_shape=input_shape)
        except Exception as exc:  # network errors vary by platform; all mean the same to the user
            raise BackboneWeightsError(
                f"could not get Keras' ImageNet ResNet-50 weights ({type(exc).__name__}: {exc}). They are "
                "downloaded on first use and need internet; offline, pass model.weights=PATH to a local "
                "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5, or model.weights=RUN_DIR") from exc
    path = Path(weights)
    if path.is_dir():
        checkpoint = path / "best.keras"
        if not checkpoint.exists():
            raise BackboneWeightsError(f"{path} is a folder without best.keras: not a run directory of this project")
        path = checkpoint
    if not path.exists():
        raise FileNotFoundError(f"backbone weights {weights!r} not found (a file, a run directory or 'imagenet')")
    if path.suffix == ".keras":
        from kerascnn.rundir import register_custom_layers

        register_custom_layers()  # whatever family built the saved model
        return keras.models.load_model(path, compile=False)
    if path.name.endswith(".h5"):
        standalone = keras.applications.ResNet50(include_top=False, weights=None, input_shape=input_shape)
        try:
            standalone.load_weights(path)
        except Exception as exc:
            raise BackboneWeightsError(f"{path} does not hold the weights of a standalone "
                                       f"ResNet50(include_top=False): {exc}") from exc
        return standalone
    raise BackboneWeightsError(f"{path}: expected a .weights.h5, .h5 or .keras file, or a run directory")


def load_backbone_weights(backbone_layers, weights, input_shape):
    """Copy the weights of every layer in ``backbone_layers`` (name -> layer) from ``weights``.

    Every backbone layer must be found, with matching shapes; returns the number of layers set.
    """
    source = _weight_layers(_source_model(weights, input_shape))
    missing = [name for name in backbone_layers if name not in source]
    if missing:
        raise BackboneWeightsError(f"{weights} lacks {len(missing)} of the {len(backbone_layers)} ResNet-50 "
                                   f"layers (first: {', '.join(missing[:3])}); is it a ResNet-50?")
    for name, layer in backbone_layers.items():
        values = source[name].get_weights()
        shapes = [tuple(v.shape) for v in values]
        expected = [tuple(w.shape) for w in layer.weights]
        if shapes != expected:
            raise BackboneWeightsError(f"layer {name} of {weights} has shapes {shapes}, not {expected}")
        layer.set_weights(values)
    return len(backbone_layers)


@register
def resnet50(
    input_shape=(224, 224, 3),
    num_classes=65,
    *,
    weights=None,
    train_backbone=True,
    dropout=0.3,
    bn_momentum=0.9,
    preprocess="caffe",
):
    """ResNet-50 backbone (He et al. 2016, Keras' layer names) + global average pool + dropout + softmax.

    ``weights``: None | "imagenet" | PATH | RUN_DIR (module docstring). ``train_backbone=False``
    freezes every backbone layer, so phase 1 trains the head only; the recipe's
    ``fine_tune_epochs`` then unfreezes (from ``fine_tune_from`` on) with batch norm kept frozen,
    i.e. in inference mode, as Keras recommends for fine-tuning. ``preprocess`` defaults to
    "caffe" (BGR minus ImageNet means), the input Keras' ImageNet ResNet-50 weights expect.
    ``bn_momentum`` replaces Keras' 0.99 for the moving statistics: with ~50 batches an epoch on a
    few thousand images, 0.99 leaves them near their initial values for several epochs, which
    makes a from-scratch model's validation accuracy meaningless early on (frozen BN ignores it).
    """
    inputs = keras.Input(shape=input_shape, name="image")
    x = preprocessing_layer(preprocess)(inputs)
    backbone = keras.applications.ResNet50(include_top=False, weights=None, input_tensor=x)
    # The applications model starts at our input, so it also lists the input and preprocessing layers.
    resnet_layers = [layer for layer in backbone.layers if layer.name.startswith(RESNET_LAYER_PREFIXES)]
    if weights:
        load_backbone_weights({layer.name: layer for layer in resnet_layers if layer.weights}, weights,
                              tuple(input_shape))
    for layer in resnet_layers:
        layer.trainable = train_backbone
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = bn_momentum
    x = layers.GlobalAveragePooling2D(name="global_pool")(backbone.output)
    return keras.Model(inputs, classifier_output(x, num_classes, dropout, "head_dropout"), name="resnet50_clipart")
