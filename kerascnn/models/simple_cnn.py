"""The artists assignment's configurable SimpleCNN, as a functional Keras model."""
from keras import layers
import keras

from kerascnn.models import register
from kerascnn.models.common import classifier_output, preprocessing_layer, regularizer

DROPOUT_PLACES = ("conv", "flatten", "dense")


def _per_layer(value, n, what):
    """Accept one value for every conv layer or a list with one per layer."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{what} has {len(value)} entries but there are {n} conv layers")
        return list(value)
    return [value] * n


@register
def simple_cnn(
    input_shape=(50, 50, 3),
    num_classes=11,
    *,
    filters=(16, 16),
    kernel_size=5,
    strides=2,
    padding="valid",
    dilation=1,
    pooling=False,
    pool_size=2,
    pool_strides=2,
    pool_type="max",
    dense=(64,),
    dropout=0.0,
    dropout_placement=("flatten", "dense"),
    batch_norm=False,
    activation="relu",
    l2=0.0,
    initializer="glorot_uniform",
    preprocess="centered",
):
    """Conv blocks (conv -> [BN] -> act -> [pool] -> [dropout]), flatten, dense layers, softmax.

    The defaults are the starter network: two 5x5 stride-2 conv layers of 16 filters with ReLU,
    no pooling, a 64-unit dense layer and an 11-way output. ``filters`` is a list, one entry per
    conv layer, so pyramidal (16, 32, 64), flat (32, 32, 32) and inverse (64, 32, 16) shapes are
    one override away; ``kernel_size``, ``strides`` and ``dilation`` take one value or one per
    layer. ``dropout`` applies at each place named in ``dropout_placement`` (after each conv
    block, after flattening, after each hidden dense layer).
    """
    filters = list(filters)
    unknown = set(dropout_placement) - set(DROPOUT_PLACES)
    if unknown:
        raise ValueError(f"dropout_placement {sorted(unknown)} not in {DROPOUT_PLACES}")
    kernels = _per_layer(kernel_size, len(filters), "kernel_size")
    stride_list = _per_layer(strides, len(filters), "strides")
    dilations = _per_layer(dilation, len(filters), "dilation")
    pool_layer = {"max": layers.MaxPooling2D, "avg": layers.AveragePooling2D}[pool_type]
    reg = regularizer(l2)

    inputs = keras.Input(shape=input_shape, name="image")
    x = preprocessing_layer(preprocess)(inputs)
    for i, (n, k, s, d) in enumerate(zip(filters, kernels, stride_list, dilations), start=1):
        x = layers.Conv2D(
            n, k, strides=s, padding=padding, dilation_rate=d, kernel_initializer=initializer,
            kernel_regularizer=reg, use_bias=not batch_norm, name=f"conv{i}",
        )(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.Activation(activation, name=f"act{i}")(x)
        if pooling:
            x = pool_layer(pool_size, strides=pool_strides, padding="valid", name=f"pool{i}")(x)
        if dropout and "conv" in dropout_placement:
            x = layers.Dropout(dropout, name=f"conv_dropout{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    if dropout and "flatten" in dropout_placement:
        x = layers.Dropout(dropout, name="flatten_dropout")(x)
    for i, units in enumerate(dense, start=1):
        x = layers.Dense(units, activation=activation, kernel_initializer=initializer,
                         kernel_regularizer=reg, name=f"dense{i}")(x)
        if dropout and "dense" in dropout_placement:
            x = layers.Dropout(dropout, name=f"dense_dropout{i}")(x)
    return keras.Model(inputs, classifier_output(x, num_classes), name="simple_cnn")
