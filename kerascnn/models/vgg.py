"""VGG transfer learning for the cifar10 assignment (seed 002, question 4).

Two backbones: keras.applications' VGG16, whose ImageNet weights Keras publishes, and a Keras
copy of torchvision's ``vgg11_bn().features`` (the assignment's backbone), whose ImageNet weights
exist only as a PyTorch state_dict. To use those, export them once where torch is installed::

    sd = torchvision.models.vgg11_bn(weights="IMAGENET1K_V1").state_dict()
    numpy.savez("vgg11_bn.npz", **{k: v.numpy() for k, v in sd.items()})

and pass ``weights="vgg11_bn.npz"``.

Both backbones name their layers ``block{b}_...`` (keras.applications' convention), so
``backbone_layers(model)`` finds them in a built transfer model.
"""
import os

import keras
import numpy as np
from keras import layers

from kerascnn.models import register
from kerascnn.models.backbone import BackboneWeightsError, is_model_source, load_backbone_from_model
from kerascnn.models.common import classifier_output, preprocessing_layer

# torchvision cfg "A" with batch norm, grouped into the five blocks that each end in a max pool.
VGG11_BLOCKS = ((64,), (128,), (256, 256), (512, 512), (512, 512))
BACKBONE_PREFIX = "block"
# The input normalisation each backbone's ImageNet weights were trained with.
BACKBONE_PREPROCESS = {"vgg16": "caffe", "vgg11_bn": "imagenet"}


def vgg11_bn_features(input_shape=(32, 32, 3), name="vgg11_bn_features"):
    """torchvision ``vgg11_bn().features`` layer for layer: (3x3 conv pad 1 -> BN -> ReLU)+ and 2x2 max pools.

    Convs keep their bias as torchvision's do; BN uses torchvision's eps 1e-5 and momentum 0.1
    (Keras momentum 0.9). Expects already-normalised input (no preprocessing layer). Layer
    names: ``block{b}_conv{i}``, ``block{b}_bn{i}``, ``block{b}_relu{i}``, ``block{b}_pool``.
    """
    inputs = keras.Input(shape=input_shape, name="features_input")
    x = inputs
    for b, widths in enumerate(VGG11_BLOCKS, start=1):
        for i, width in enumerate(widths, start=1):
            x = layers.Conv2D(width, 3, padding="same", name=f"block{b}_conv{i}")(x)
            x = layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=f"block{b}_bn{i}")(x)
            x = layers.Activation("relu", name=f"block{b}_relu{i}")(x)
        x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
    return keras.Model(inputs, x, name=name)


def _torchvision_vgg11_bn_names():
    """(conv, bn) layer names paired with their index in torchvision's ``features`` Sequential."""
    pairs, index = [], 0
    for b, widths in enumerate(VGG11_BLOCKS, start=1):
        for i in range(1, len(widths) + 1):
            pairs.append((f"block{b}_conv{i}", f"block{b}_bn{i}", index))
            index += 3  # conv, bn, relu
        index += 1  # max pool
    return pairs


def load_torchvision_vgg11_bn(model, npz_path):
    """Copy a torchvision vgg11_bn state_dict saved as ``.npz`` onto the ``block*`` layers of ``model``.

    ``features.{k}.weight`` is a conv kernel in PyTorch's OIHW layout (out, in, height, width);
    Keras wants HWIO, hence ``transpose(2, 3, 1, 0)``. PyTorch convolutions are really
    cross-correlations, as Keras' are, so no kernel flip is needed. ``features.{k+1}.*`` is the
    BN: weight -> gamma, bias -> beta, running_mean/var -> moving_mean/variance. The classifier
    arrays and ``num_batches_tracked`` are ignored. Works on ``vgg11_bn_features`` or any model
    holding its layers (e.g. a ``vgg_transfer`` model).
    """
    with np.load(npz_path) as state:
        for conv_name, bn_name, k in _torchvision_vgg11_bn_names():
            conv, bn = model.get_layer(conv_name), model.get_layer(bn_name)
            conv.set_weights([state[f"features.{k}.weight"].transpose(2, 3, 1, 0),
                              state[f"features.{k}.bias"]])
            bn.set_weights([state[f"features.{k + 1}.{p}"]
                            for p in ("weight", "bias", "running_mean", "running_var")])


def backbone_layers(model):
    """The backbone's layers in a ``vgg_transfer`` model: those named ``block*`` (in build order)."""
    return [layer for layer in model.layers if layer.name.startswith(BACKBONE_PREFIX)]


def _build_backbone(backbone, input_shape, weights):
    """A standalone backbone with its weights in place: ImageNet, a file, or random."""
    if backbone == "vgg16":
        model = keras.applications.VGG16(
            include_top=False, weights="imagenet" if weights == "imagenet" else None,
            input_shape=input_shape)
    elif backbone == "vgg11_bn":
        if weights == "imagenet":
            raise ValueError("Keras has no ImageNet vgg11_bn weights; export torchvision's to an "
                             ".npz (see kerascnn.models.vgg) and pass its path as weights")
        model = vgg11_bn_features(input_shape)
    else:
        raise ValueError(f"unknown backbone {backbone!r}; choose vgg16 or vgg11_bn")
    if weights not in (None, "imagenet"):
        if is_model_source(weights):
            # A run of this project (or a .keras model) holding this backbone: its block* layers by name.
            load_backbone_from_model(backbone_layers(model), weights, backbone)
        elif not os.path.exists(weights):
            raise FileNotFoundError(f"backbone weights {weights!r} not found (expected a run directory, a .keras "
                                    "model, a .weights.h5 / .h5 file, or a torchvision .npz for vgg11_bn)")
        elif weights.endswith(".npz"):
            if backbone != "vgg11_bn":
                raise ValueError("an .npz (torchvision state_dict) only fits backbone='vgg11_bn'")
            load_torchvision_vgg11_bn(model, weights)
        elif weights.endswith(".h5"):
            # .weights.h5 or legacy .h5 (e.g. Keras' vgg16 "notop" ImageNet file) of the standalone backbone.
            model.load_weights(weights)
        else:
            raise BackboneWeightsError(f"{weights}: expected a run directory, a .keras model, a .weights.h5 / "
                                       "legacy .h5 file, or a torchvision .npz for vgg11_bn")
    return model


@register
def vgg_transfer(
    input_shape=(32, 32, 3),
    num_classes=10,
    *,
    backbone="vgg11_bn",
    weights=None,
    pretrained=True,
    train_backbone=False,
    hidden=(256,),
    dropout=0.0,
    upsample=None,
    preprocess=None,
):
    """Convolutional VGG backbone (no pooling/classifier head), flatten, (dense -> BN -> ReLU)*, softmax.

    ``weights``: None (random init, the question 4b from-scratch baseline), "imagenet" (vgg16
    only; downloads) or a path: an ``.npz`` torchvision state_dict for vgg11_bn, a Keras
    ``.weights.h5`` / ``.h5`` file saved from the same backbone built standalone, or a run
    directory / ``.keras`` model holding this backbone, whose ``block*`` layers are matched by
    name with its head skipped (``kerascnn.models.backbone``).
    ``pretrained=False`` ignores ``weights`` (the starter's ``pretrained`` flag), so a study can
    pass one weights file to all its variants and still have a from-scratch baseline.
    ``train_backbone=False`` freezes every backbone layer (question 4a); frozen BN layers also run
    in inference mode, Keras 3's rule for non-trainable BatchNormalization, so their ImageNet
    statistics stay put. ``hidden=(256,)`` is the starter's ``layer_config = [512, 256]``: the
    512-wide backbone output goes through one 256-unit dense + BN + ReLU, then the output layer,
    i.e. two fully connected layers. ``dropout`` follows each hidden block. ``upsample`` resizes
    the input to that many pixels square first (e.g. 64), so the backbone sees the larger maps
    ImageNet features are tuned for; None keeps the native resolution. ``preprocess`` defaults to
    the backbone's own normalisation (vgg16: caffe, vgg11_bn: imagenet).
    """
    preprocess = preprocess or BACKBONE_PREPROCESS[backbone]
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    if upsample:
        x = layers.Resizing(upsample, upsample, name="upsample")(x)
    x = preprocessing_layer(preprocess)(x)
    base = _build_backbone(backbone, tuple(x.shape[1:]), weights if pretrained else None)
    # Reuse the standalone backbone's layer objects, so the result is one flat functional model
    # whose backbone layers keep their names (a nested sub-model hides them from visualisation).
    for layer in base.layers[1:]:
        layer.trainable = train_backbone
        x = layer(x)
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(hidden, start=1):
        x = layers.Dense(units, name=f"fc{i}")(x)
        # PyTorch's BatchNorm1d defaults, as the starter's head: Keras' momentum 0.99 leaves the
        # moving statistics near their initial 0/1 for the first hundred steps.
        x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"fc{i}_bn")(x)
        x = layers.Activation("relu", name=f"fc{i}_relu")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
    return keras.Model(inputs, classifier_output(x, num_classes), name=f"{backbone}_transfer")
