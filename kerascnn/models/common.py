"""Pieces every model family shares: input preprocessing as layers, and the output head.

Every model takes raw pixel values in [0, 255] (float or uint8-cast) and applies its own
preprocessing as its first layers. That keeps a saved or exported model self-contained: whoever
serves it feeds plain images and never needs to know how the network was normalised.
"""
import keras
from keras import layers

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PREPROCESSING = ("unit", "centered", "imagenet", "caffe", "pixelwise", "none")


def preprocessing_layer(kind, name="preprocess"):
    """Map raw [0, 255] RGB pixels to what a network expects.

    unit: [0, 1]; centered: [-0.5, 0.5] (the artists assignment); imagenet: torchvision's
    per-channel mean/std; caffe: BGR minus the ImageNet means (keras.applications VGG/ResNet50
    weights); pixelwise: each pixel and channel standardised with the training images' own mean and
    variance (a ``Normalization`` layer that ``kerascnn train`` adapts before the first epoch and that
    is saved with the model); none: pass through.
    """
    if kind == "unit":
        return layers.Rescaling(1.0 / 255, name=name)
    if kind == "centered":
        return layers.Rescaling(1.0 / 255, offset=-0.5, name=name)
    if kind == "imagenet":
        mean = [255.0 * m for m in IMAGENET_MEAN]
        var = [(255.0 * s) ** 2 for s in IMAGENET_STD]
        return layers.Normalization(mean=mean, variance=var, name=name)
    if kind == "caffe":
        return CaffePreprocess(name=name)
    if kind == "pixelwise":
        return layers.Normalization(axis=(1, 2, 3), name=name)
    if kind == "none":
        return layers.Identity(name=name)
    raise ValueError(f"unknown preprocess {kind!r}; choose one of {', '.join(PREPROCESSING)}")


@keras.saving.register_keras_serializable(package="kerascnn")
class CaffePreprocess(layers.Layer):
    """RGB [0, 255] -> BGR minus ImageNet means, as keras.applications' 'caffe' mode."""

    def call(self, x):
        x = keras.ops.flip(x, axis=-1)
        return x - keras.ops.convert_to_tensor([103.939, 116.779, 123.68], dtype=x.dtype)


def classifier_output(x, num_classes, name="predictions"):
    """Softmax output kept in float32 so mixed-precision training stays numerically stable."""
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name=name)(x)


def regularizer(l2):
    return keras.regularizers.L2(l2) if l2 else None
