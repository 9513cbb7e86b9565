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
  the run's head is skipped (``kerascnn.models.backbone``).

Weights do not depend on the input size, so a backbone trained at 64 px loads into one at 224 px.
"""
from pathlib import Path

import keras
from keras import layers

from kerascnn.models import register
from kerascnn.models.backbone import (  # noqa: F401  (BackboneWeightsError: importable from here too)
    BackboneWeightsError, copy_backbone_weights, is_model_source, load_backbone_from_model,
)
from kerascnn.models.common import classifier_output, preprocessing_layer


# Every layer of keras.applications' ResNet50 is named conv1_*, pool1_* or conv{2..5}_block*.
RESNET_LAYER_PREFIXES = ("conv", "pool")
FAMILY = "ResNet-50"


def _source_model(weights, input_shape):
    """A Keras model holding the backbone weights named by ``weights``: ImageNet or a standalone ``.h5``."""
    if weights == "imagenet":
        try:
            return keras.applications.ResNet50(include_top=False, weights="imagenet", input_shape=input_shape)
        except Exception as exc:  # network errors vary by platform; all mean the same to the user
            raise BackboneWeightsError(
                f"could not get Keras' ImageNet ResNet-50 weights ({type(exc).__name__}: {exc}). They are "
                "downloaded on first use and need internet; offline, pass model.weights=PATH to a local "
                "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5, or model.weights=RUN_DIR") from exc
    path = Path(weights)
    if not path.exists():
        raise FileNotFoundError(f"backbone weights {weights!r} not found (a .weights.h5, .h5 or .keras file, "
                                "a run directory or 'imagenet')")
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
    """Copy the weights of every layer in ``backbone_layers`` from ``weights`` (module docstring).

    Every backbone layer must be found by name, with matching shapes; returns the number of layers set.
    """
    if is_model_source(weights):
        return load_backbone_from_model(backbone_layers, weights, FAMILY)
    return copy_backbone_weights(backbone_layers, _source_model(weights, input_shape), FAMILY, str(weights))


@register
def resnet50(
    input_shape=(224, 224, 3),
    num_classes=65,
    *,
    weights=None,
    pretrained=True,
    train_backbone=True,
    dropout=0.3,
    bn_momentum=0.9,
    preprocess="caffe",
):
    """ResNet-50 backbone (He et al. 2016, Keras' layer names) + global average pool + dropout + softmax.

    ``weights``: None | "imagenet" | PATH | RUN_DIR (module docstring). ``pretrained=False`` ignores
    ``weights``, so a study can pass one backbone source to all its variants and still have a
    from-scratch baseline. ``train_backbone=False``
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
    if weights and pretrained:
        load_backbone_weights(resnet_layers, weights, tuple(input_shape))
    for layer in resnet_layers:
        layer.trainable = train_backbone
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = bn_momentum
    x = layers.GlobalAveragePooling2D(name="global_pool")(backbone.output)
    return keras.Model(inputs, classifier_output(x, num_classes, dropout, "head_dropout"), name="resnet50_clipart")
