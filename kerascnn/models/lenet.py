"""The caltech101 assignment's LeNet-5 variant (seed 003, question 1)."""
import keras
from keras import layers

from kerascnn.models import register
from kerascnn.models.common import classifier_output, preprocessing_layer, regularizer


@register
def lenet5(
    input_shape=(64, 64, 3),
    num_classes=101,
    *,
    padding="same",
    dense=(1021, 84),
    batch_norm=False,
    dropout=0.0,
    l2=0.0,
    initializer="glorot_uniform",
    preprocess="unit",
):
    """5x5 conv 32 -> 4x4/4 max pool -> 5x5 conv 64 -> 4x4/4 max pool -> dense 1021 -> 84 -> softmax.

    The assignment leaves the conv padding open. "same" is the default because both pools then
    divide evenly: 64 -> 16 -> 4, a 4x4x64 = 1024 flattened vector, and 1,194,654 parameters for
    101 classes. With "valid" the maps go 64 -> 60 -> 15 -> 11 -> 2 (the last pool silently drops
    three rows and columns), 256 features and 410,526 parameters.

    ``batch_norm``, ``dropout`` (after each hidden dense layer) and ``l2`` are the question 1b
    knobs. Conv layers ``conv1``/``conv2`` are linear; their ReLU outputs, the activation maps
    question 2 visualises, are the layers ``relu1``/``relu2``.
    """
    reg = regularizer(l2)
    inputs = keras.Input(shape=input_shape, name="image")
    x = preprocessing_layer(preprocess)(inputs)
    for i, filters in enumerate((32, 64), start=1):
        x = layers.Conv2D(filters, 5, padding=padding, kernel_initializer=initializer,
                          kernel_regularizer=reg, name=f"conv{i}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.Activation("relu", name=f"relu{i}")(x)
        x = layers.MaxPooling2D(4, strides=4, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(dense, start=1):
        x = layers.Dense(units, activation="relu", kernel_initializer=initializer,
                         kernel_regularizer=reg, name=f"fc{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
    return keras.Model(inputs, classifier_output(x, num_classes), name="lenet5")
