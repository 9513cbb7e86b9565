"""A multilayer perceptron on raw pixels or precomputed features (faces assignment, parts 2.1-2.3)."""
import keras
from keras import layers

from kerascnn.models import register
from kerascnn.models.common import classifier_output, preprocessing_layer, regularizer


@register
def mlp(
    input_shape=(28, 28, 1),
    num_classes=12,
    *,
    hidden=(300,),
    activation="relu",
    standardize=False,
    l2=0.0,
    dropout=0.0,
    initializer="glorot_uniform",
    preprocess="unit",
):
    """Flatten, one ``dense{i}`` layer per entry of ``hidden``, softmax.

    The default is the assignment's network: 28x28 inputs, 300 ReLU units, one output per person.
    ``standardize`` rescales each image to zero mean and unit variance over all its pixels (a
    parameter-free LayerNormalization), removing overall brightness and contrast, which a single
    dense layer cannot learn to ignore. ``l2`` penalises the hidden kernels (smooth, face-like
    weight pictures need it); ``dropout`` follows the flattened input and each hidden layer. The
    activation is a layer argument, never a separate ``ReLU`` layer, so guided backpropagation can
    replace it. Each hidden unit's incoming weights have the input's shape, which is what
    ``visualize --kind dense-weights`` draws.
    """
    reg = regularizer(l2)
    inputs = keras.Input(shape=input_shape, name="image")
    x = preprocessing_layer(preprocess)(inputs)
    if standardize:
        x = layers.LayerNormalization(axis=(1, 2, 3), epsilon=1e-6, center=False, scale=False,
                                      name="standardize")(x)
    x = layers.Flatten(name="flatten")(x)
    if dropout:
        x = layers.Dropout(dropout, name="input_dropout")(x)
    for i, units in enumerate(hidden, start=1):
        x = layers.Dense(units, activation=activation, kernel_initializer=initializer,
                         kernel_regularizer=reg, name=f"dense{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dense_dropout{i}")(x)
    return keras.Model(inputs, classifier_output(x, num_classes), name="mlp")
