"""Receptive-field arithmetic: hand-computed cases and an empirical check on real Keras layers."""
import numpy as np
import pytest

from kerascnn.analysis import parse_stack, receptive_fields, stack_from_model


def last(stack_text):
    return receptive_fields(parse_stack(stack_text))[-1]


def test_assignment_question_1_1_is_7x7():
    assert last("conv:5,conv:3")["receptive_field"] == 7


@pytest.mark.parametrize("stack, rf, jump", [
    ("conv:3,conv:3,conv:3", 7, 1),          # three 3x3 = one 7x7
    ("conv:5:2,conv:5:2", 13, 4),            # the starter: 5 + 4*2
    ("conv:5:2,pool:2:2,conv:5:2,pool:2:2", 31, 16),
    ("conv:3:1:0:2", 5, 1),                   # dilation 2 makes a 3x3 see 5x5
    ("conv:7:2:3,pool:3:2:1", 11, 4),         # ResNet stem
])
def test_hand_computed_stacks(stack, rf, jump):
    row = last(stack)
    assert (row["receptive_field"], row["jump"]) == (rf, jump)


def empirical_receptive_field(model, position):
    """Rows/cols of input pixels whose change reaches one output unit (all-ones weights, avg pools)."""
    import tensorflow as tf

    for layer in model.layers:
        if layer.weights:
            layer.set_weights([np.ones(w.shape, "float32") for w in layer.get_weights()])

    # Traced, so TensorFlow prunes the kernel gradients nobody asks for: eagerly, oneDNN's
    # Conv2DBackpropFilter can abort the process with a double free on these 1-channel shapes.
    @tf.function
    def input_gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = model(x)[0, position, position, 0]
        return tape.gradient(y, x)

    grad = np.abs(input_gradient(tf.ones((1, *model.input_shape[1:]))).numpy()[0, ..., 0])
    rows = np.flatnonzero(grad.sum(1))
    return rows.min(), rows.max()


def assert_field_matches_gradients(model, position):
    """The computed field of output unit (position, position) is where its gradient reaches the input."""
    row = receptive_fields(stack_from_model(model))[-1]
    lo, hi = empirical_receptive_field(model, position)
    size = model.input_shape[1]
    centre = row["start"] + position * row["jump"] - 0.5  # pixel-index centre of that unit's field
    half = (row["receptive_field"] - 1) / 2
    # Where the field hangs over zero padding it is clipped at the image border.
    assert lo == max(0, int(centre - half)) and hi == min(size - 1, int(centre + half))
    assert hi - lo + 1 <= row["receptive_field"]
    return row, (lo, hi)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_formula_matches_keras_layers(padding):
    import keras
    from keras import layers

    inputs = keras.Input((64, 64, 1))
    x = layers.Conv2D(1, 5, strides=2, padding=padding)(inputs)
    x = layers.AveragePooling2D(2, padding="valid")(x)
    x = layers.Conv2D(1, 3, dilation_rate=2, padding=padding)(x)
    x = layers.Conv2D(1, 3, strides=2, padding=padding)(x)
    assert_field_matches_gradients(keras.Model(inputs, x), position=2)


def test_residual_field_follows_the_main_branch_not_the_shortcut():
    import keras
    from keras import layers

    inputs = keras.Input((64, 64, 1))
    x = layers.Conv2D(1, 3, padding="same", name="stem")(inputs)
    # The shortcut is built first, as in ResNet-18, so it precedes the main branch in model.layers.
    shortcut = layers.Conv2D(1, 1, strides=2, name="shortcut")(x)
    y = layers.Conv2D(1, 3, strides=2, padding="same", name="main1")(x)
    y = layers.Conv2D(1, 3, padding="same", name="main2")(y)
    x = layers.Add()([shortcut, y])
    x = layers.Conv2D(1, 3, padding="same", name="head")(x)
    model = keras.Model(inputs, x)
    assert [layer.name for layer in stack_from_model(model)] == ["stem", "main1", "main2", "head"]
    row, (lo, hi) = assert_field_matches_gradients(model, position=16)
    assert (row["receptive_field"], row["jump"]) == (13, 2) and hi - lo + 1 == 13  # away from the border


@pytest.mark.parametrize("name, size, rf", [("resnet18", 64, 435), ("resnet50", 64, 483)])
def test_resnet_fields_count_each_stride_once(name, size, rf):
    """ResNet-18 (stride in the first 3x3 conv of a stage) and Keras' ResNet-50 (in the first 1x1)."""
    from kerascnn.models import create_model

    stack = stack_from_model(create_model(name, (size, size, 3), 10))
    assert not any("proj" in layer.name or "_0_conv" in layer.name for layer in stack)  # no shortcut conv
    row = receptive_fields(stack)[-1]
    assert (row["receptive_field"], row["jump"]) == (rf, 32)


@pytest.mark.parametrize("name, size", [("simple_cnn", 50), ("lenet5", 64), ("caltech_net", 64),
                                        ("alexnet_features", 224)])
def test_a_plain_network_chains_every_conv_and_pool_in_layer_order(name, size):
    import keras

    from kerascnn.models import create_model

    model = create_model(name, (size, size, 3), 10)
    kinds = (keras.layers.Conv2D, keras.layers.MaxPooling2D, keras.layers.AveragePooling2D,
             keras.layers.ZeroPadding2D)
    assert [layer.name for layer in stack_from_model(model)] == \
        [layer.name for layer in model.layers if isinstance(layer, kinds)]
