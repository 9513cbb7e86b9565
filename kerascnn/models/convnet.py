"""The cifar10 assignment's five-block ConvNet (seed 002, questions 1-3)."""
import keras
from keras import layers

from kerascnn.models import register
from kerascnn.models.common import classifier_output, preprocessing_layer, regularizer


@register
def convnet(
    input_shape=(32, 32, 3),
    num_classes=10,
    *,
    widths=(128, 512, 512, 512, 512),
    batch_norm=False,
    dropout=0.0,
    l2=0.0,
    initializer="glorot_uniform",
    preprocess="unit",
):
    """Five blocks of 3x3 same conv -> [BN] -> 2x2 max pool -> ReLU, flatten, softmax.

    The order inside a block (pooling before the ReLU) is the assignment's, and so is keeping the
    conv bias even with batch norm: the PyTorch reference uses ``nn.Conv2d`` defaults, so the
    parameter counts agree (7,678,474 without batch norm, 7,682,826 trainable with it). Each block
    halves the resolution, so a 32x32 image ends as a 1x1x512 map. (Max pooling and ReLU commute,
    so pooling first changes nothing numerically; it only makes the ReLU four times cheaper.)
    Batch norm uses PyTorch's ``BatchNorm2d`` defaults (momentum 0.1, i.e. Keras momentum 0.9,
    and eps 1e-5): with Keras' 0.99 the moving statistics need hundreds of steps to settle, and a
    small training set (the 5,170-image subset gives 21 steps per epoch) then evaluates far worse
    than it trains for the first epochs.

    ``dropout`` follows the assignment's question 3b: the same rate between consecutive conv
    blocks and once more after flattening, i.e. just before the classifier (on a 1x1 map that is
    the same as dropping after the fifth block). Layers are named ``block{i}_conv``,
    ``block{i}_bn``, ``block{i}_pool``, ``block{i}_relu``.
    """
    reg = regularizer(l2)
    inputs = keras.Input(shape=input_shape, name="image")
    x = preprocessing_layer(preprocess)(inputs)
    for i, width in enumerate(widths, start=1):
        x = layers.Conv2D(width, 3, padding="same", kernel_initializer=initializer,
                          kernel_regularizer=reg, name=f"block{i}_conv")(x)
        if batch_norm:
            x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"block{i}_bn")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        x = layers.Activation("relu", name=f"block{i}_relu")(x)
        if dropout and i < len(widths):
            x = layers.Dropout(dropout, name=f"block{i}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, classifier_output(x, num_classes, dropout, "flatten_dropout"), name="convnet")
