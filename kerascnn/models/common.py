"""Pieces every model family shares: input preprocessing as layers, and the output head.

Every model takes raw pixel values in [0, 255] (float or uint8-cast) and applies its own
preprocessing as its first layers. That keeps a saved or exported model self-contained: whoever
serves it feeds plain images and never needs to know how the network was normalised.
"""
import keras
import numpy as np
from keras import layers

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PREPROCESSING = ("unit", "centered", "imagenet", "caffe", "pixelwise", "zca", "none")
ADAPTED = ("pixelwise", "zca")  # fitted to the training images by `kerascnn train`


def preprocessing_layer(kind, name="preprocess"):
    """Map raw [0, 255] RGB pixels to what a network expects.

    unit: [0, 1]; centered: [-0.5, 0.5] (the artists assignment); imagenet: torchvision's
    per-channel mean/std; caffe: BGR minus the ImageNet means (keras.applications VGG/ResNet50
    weights); pixelwise: each pixel and channel standardised with the training images' own mean and
    variance (a ``Normalization`` layer that ``kerascnn train`` adapts before the first epoch and that
    is saved with the model); zca: [0, 1] pixels decorrelated by ZCA whitening fitted to the training
    images (``ZCAWhitening``, also adapted by ``kerascnn train``); none: pass through.
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
    if kind == "zca":
        return ZCAWhitening(name=name)
    if kind == "none":
        return layers.Identity(name=name)
    raise ValueError(f"unknown preprocess {kind!r}; choose one of {', '.join(PREPROCESSING)}")


@keras.saving.register_keras_serializable(package="kerascnn")
class CaffePreprocess(layers.Layer):
    """RGB [0, 255] -> BGR minus ImageNet means, as keras.applications' 'caffe' mode."""

    def call(self, x):
        x = keras.ops.flip(x, axis=-1)
        return x - keras.ops.convert_to_tensor([103.939, 116.779, 123.68], dtype=x.dtype)


@keras.saving.register_keras_serializable(package="kerascnn")
class ZCAWhitening(layers.Layer):
    """Regularised ZCA whitening of whole images: ``(x / 255 - mean) @ matrix``, same shape out.

    ``adapt(images)`` fits it to training images: with the covariance of the [0, 1] pixels
    ``U diag(s) U^T``, mean eigenvalue ``m`` and ``e = epsilon * m``, the matrix is
    ``U diag(sqrt((m + e) / (s + e))) U^T``. Large ``epsilon`` tends to plain mean subtraction;
    small ``epsilon`` equalises every principal direction (full whitening, which amplifies noise).
    In between it damps the few dominant directions (overall brightness, colour cast, smooth
    gradients) and relatively boosts finer detail, which is what a dense layer on raw face pixels
    needs (faces part 2.1). The output stays in the image's shape, so the next layer's weights can
    still be drawn as pictures (``pixel_weights`` maps them back to raw pixels). The D x D matrix
    (D = height x width x channels) is a non-trainable weight saved with the model: 22 MB at
    28x28 RGB.
    """

    def __init__(self, epsilon=1.0, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        self.image_shape = tuple(int(d) for d in input_shape[1:])
        size = int(np.prod(self.image_shape))
        self.mean = self.add_weight(name="mean", shape=(size,), initializer="zeros", trainable=False)
        self.matrix = self.add_weight(name="matrix", shape=(size, size), initializer="identity", trainable=False)

    def adapt(self, images, epsilon=None):
        """Fit mean and matrix to ``images`` (N, H, W, C) in [0, 255]."""
        epsilon = self.epsilon if epsilon is None else float(epsilon)
        if not epsilon > 0:
            raise ValueError(f"ZCA epsilon must be > 0, not {epsilon}")
        flat = np.asarray(images, dtype=np.float64).reshape(len(images), -1) / 255.0
        if flat.shape[1] != self.mean.shape[0]:
            raise ValueError(f"images of {flat.shape[1]} values do not fit a layer built for {self.image_shape}")
        self.epsilon = epsilon
        mean = flat.mean(axis=0)
        centred = flat - mean
        eigenvalues, vectors = np.linalg.eigh(centred.T @ centred / len(flat))
        eigenvalues = np.clip(eigenvalues, 0.0, None)
        m = eigenvalues.mean()
        e = self.epsilon * m
        matrix = (vectors * np.sqrt((m + e) / (eigenvalues + e))) @ vectors.T
        self.mean.assign(mean.astype("float32"))
        self.matrix.assign(matrix.astype("float32"))

    def call(self, x):
        flat = keras.ops.reshape(x, (-1, self.mean.shape[0])) / 255.0 - self.mean
        return keras.ops.reshape(keras.ops.matmul(flat, self.matrix), (-1, *self.image_shape))

    def pixel_weights(self, kernel):
        """A following dense kernel (D, units) as weights on the raw [0, 1] pixels: matrix @ kernel."""
        return np.asarray(self.matrix) @ kernel

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def classifier_output(x, num_classes, dropout=0.0, dropout_name="dropout", name="predictions"):
    """Dropout at rate ``dropout`` (none at 0), then the softmax output.

    The output is kept in float32 so mixed-precision training stays numerically stable.
    """
    if dropout:
        x = layers.Dropout(dropout, name=dropout_name)(x)
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name=name)(x)


def regularizer(l2):
    return keras.regularizers.L2(l2) if l2 else None
