"""torchvision's AlexNet in Keras, for the faces assignment (seed 000, part 2).

There are no Keras ImageNet AlexNet weights; export torchvision's once where torch is installed::

    sd = torchvision.models.alexnet(weights="IMAGENET1K_V1").state_dict()
    numpy.savez("alexnet.npz", **{k: v.numpy() for k, v in sd.items()})

and pass ``weights="alexnet.npz"``. Offline, the alternative is a backbone trained here:
``weights=RUN_DIR`` (or a ``.keras`` file) copies it from a run whose model holds AlexNet's layers,
matched by name (``kerascnn.models.backbone``).
"""
import os

import keras
import numpy as np
from keras import layers

from kerascnn.models import register
from kerascnn.models.backbone import BackboneWeightsError, is_model_source, load_backbone_from_model
from kerascnn.models.common import classifier_output, preprocessing_layer, regularizer

# (name, filters, kernel, stride, pool after, index in torchvision's ``features``)
FEATURES = (
    ("conv1", 64, 11, 4, True, 0),
    ("conv2", 192, 5, 1, True, 3),
    ("conv3", 384, 3, 1, False, 6),
    ("conv4", 256, 3, 1, False, 8),
    ("conv5", 256, 3, 1, True, 10),
)
# (name, index in torchvision's ``classifier``)
CLASSIFIER = (("fc1", 1), ("fc2", 4), ("predictions", 6))
POOLED = 6  # AdaptiveAvgPool2d((6, 6))
SKIP_CLASSIFIER = (False, True, "output")
FAMILY = "AlexNet"


def _features(x, upto=None):
    """The conv stack; each ``conv{i}`` layer outputs post-ReLU activations, as features[2i+1] does."""
    for name, filters, kernel, stride, pool, _ in FEATURES:
        if stride > 1:
            # torchvision pads 2 on every side; Keras' "same" at stride 4 would pad asymmetrically.
            x = layers.ZeroPadding2D(2, name=f"{name}_pad")(x)
        x = layers.Conv2D(filters, kernel, strides=stride, padding="valid" if stride > 1 else "same",
                          activation="relu", name=name)(x)
        if name == upto:
            return x
        if pool:
            x = layers.MaxPooling2D(3, strides=2, name=f"{name}_pool")(x)
    return x


@register
def alexnet(input_shape=(224, 224, 3), num_classes=1000, *, weights=None, skip_classifier=None, hidden=4096,
            dropout=0.5, l2=0.0, preprocess="imagenet"):
    """conv1-conv5 with max pools, adaptive 6x6 average pool, (dropout, dense, ReLU) x2, softmax.

    Geometry as torchvision's ``alexnet`` (61,100,840 parameters at 1000 classes). At 224x224
    the conv stack already ends in 6x6 maps (224 -> 55 -> 27 -> 13 -> 6), so the adaptive pool is
    the identity; it matters only for other input sizes, where it keeps fc1's 9216 inputs.
    ``weights`` is None, a torchvision ``.npz`` path (see ``load_torchvision_alexnet``) or a run
    directory / ``.keras`` model (see ``load_alexnet_backbone``); for an ``.npz``,
    ``skip_classifier`` defaults to loading everything at 1000 classes and everything but the
    output layer otherwise. ``hidden`` narrows fc1/fc2 for a from-scratch head (the torchvision
    weights need 4096) and ``l2`` regularises them.
    """
    reg = regularizer(l2)
    inputs = keras.Input(shape=input_shape, name="image")
    x = _features(preprocessing_layer(preprocess)(inputs))
    if x.shape[1] < POOLED or x.shape[2] < POOLED:
        # Keras' adaptive pool cannot enlarge (inputs under ~224 px); torchvision's repeats cells,
        # which nearest resizing reproduces exactly when the map size divides 6 (1, 2 or 3).
        x = layers.Resizing(POOLED, POOLED, interpolation="nearest", name="avg_pool")(x)
    else:
        x = layers.AdaptiveAveragePooling2D(POOLED, name="avg_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    for name, _ in CLASSIFIER[:-1]:
        if dropout:
            x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
        x = layers.Dense(hidden, activation="relu", kernel_regularizer=reg, name=name)(x)
    model = keras.Model(inputs, classifier_output(x, num_classes), name="alexnet")
    if weights and is_model_source(weights):
        load_alexnet_backbone(model, weights, with_classifier=skip_classifier is not True)
    elif weights:
        if skip_classifier is None:
            skip_classifier = False if num_classes == 1000 else "output"
        load_torchvision_alexnet(model, weights, skip_classifier=skip_classifier)
    return model


@register
def alexnet_features(input_shape=(224, 224, 3), num_classes=None, *, layer="conv4", weights=None,
                     preprocess="imagenet"):
    """AlexNet truncated at ``layer`` (conv1..conv5, post-ReLU): a fixed feature extractor (part 2.2).

    ``conv4`` gives 13x13x256 maps at 224x224. ``num_classes`` is unused; it is accepted so the
    registry can build this like any other model.
    """
    if layer not in {name for name, *_ in FEATURES}:
        raise ValueError(f"unknown layer {layer!r}; choose one of conv1..conv5")
    inputs = keras.Input(shape=input_shape, name="image")
    x = _features(preprocessing_layer(preprocess)(inputs), upto=layer)
    model = keras.Model(inputs, x, name=f"alexnet_{layer}")
    if weights and is_model_source(weights):
        load_alexnet_backbone(model, weights, with_classifier=False)
    elif weights:
        load_torchvision_alexnet(model, weights, skip_classifier=True)
    return model


def alexnet_backbone_layers(model, with_classifier=True):
    """The backbone of an ``alexnet`` / ``alexnet_features`` model: its conv layers (conv1..conv5, as
    many as it has) and, ``with_classifier``, the hidden dense layers fc1 and fc2; never the output."""
    names = [name for name, *_ in FEATURES] + ([name for name, _ in CLASSIFIER[:-1]] if with_classifier else [])
    present = {layer.name: layer for layer in model.layers}
    return [present[name] for name in names if name in present]


def load_alexnet_backbone(model, weights, with_classifier=True):
    """Copy the AlexNet backbone of the run directory or ``.keras`` model ``weights`` onto ``model``.

    Layers are matched by name, the source's output layer is never used (a new class count is the
    usual case), and fc1/fc2 need the same ``hidden`` width as the source's; ``with_classifier=False``
    (``skip_classifier=True`` in ``alexnet``) loads the convolutions only.
    """
    return load_backbone_from_model(alexnet_backbone_layers(model, with_classifier), weights, FAMILY)


def load_torchvision_alexnet(model, npz_path, skip_classifier=False):
    """Copy a torchvision alexnet state_dict saved as ``.npz`` onto ``model``'s layers.

    Convs: ``features.{k}.weight`` is OIHW (out, in, height, width), Keras wants HWIO:
    ``transpose(2, 3, 1, 0)``. Linear layers: ``classifier.{k}.weight`` is (out, in), a Keras
    Dense kernel is (in, out): transpose. fc1 needs one more step, because the two frameworks
    flatten the 256x6x6 pooled maps in different orders: PyTorch's input index is
    ``c*36 + h*6 + w`` (CHW), Keras' is ``h*6*256 + w*256 + c`` (HWC); the kernel rows are
    permuted to match. ``skip_classifier``: False loads everything, True only the convs (for
    feature extractors or new heads), "output" all but the last layer (a new class count). Conv
    layers absent from ``model`` (a truncated extractor) are skipped.
    """
    if skip_classifier not in SKIP_CLASSIFIER:
        raise ValueError(f"skip_classifier must be one of {SKIP_CLASSIFIER}")
    if not os.path.exists(npz_path):
        raise FileNotFoundError(f"AlexNet weights {str(npz_path)!r} not found (expected a torchvision .npz, a "
                                ".keras model or a run directory)")
    if not str(npz_path).endswith(".npz"):
        raise BackboneWeightsError(f"{npz_path}: expected a torchvision AlexNet .npz, a .keras model or a run "
                                   "directory")
    present = {layer.name for layer in model.layers}
    with np.load(npz_path) as state:
        for name, *_, k in FEATURES:
            if name in present:
                model.get_layer(name).set_weights([state[f"features.{k}.weight"].transpose(2, 3, 1, 0),
                                                   state[f"features.{k}.bias"]])
        if skip_classifier is True:
            return
        dense = CLASSIFIER if skip_classifier is False else CLASSIFIER[:-1]
        for name, k in dense:
            kernel = state[f"classifier.{k}.weight"]
            if name == "fc1":
                out_dim, channels = kernel.shape[0], kernel.shape[1] // (POOLED * POOLED)
                kernel = kernel.reshape(out_dim, channels, POOLED, POOLED).transpose(2, 3, 1, 0)
                kernel = kernel.reshape(-1, out_dim)
            else:
                kernel = kernel.T
            model.get_layer(name).set_weights([kernel, state[f"classifier.{k}.bias"]])
