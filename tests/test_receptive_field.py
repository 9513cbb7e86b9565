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
    x = tf.Variable(np.ones((1, *model.input_shape[1:]), "float32"))
    with tf.GradientTape() as tape:
        y = model(x)[0, position, position, 0]
    grad = np.abs(tape.gradient(y, x).numpy()[0, ..., 0])
    rows = np.flatnonzero(grad.sum(1))
    return rows.min(), rows.max()


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_formula_matches_keras_layers(padding):
    import keras
    from keras import layers

    inputs = keras.Input((64, 64, 1))
    x = layers.Conv2D(1, 5, strides=2, padding=padding)(inputs)
    x = layers.AveragePooling2D(2, padding="valid")(x)
    x = layers.Conv2D(1, 3, dilation_rate=2, padding=padding)(x)
    x = layers.Conv2D(1, 3, strides=2, padding=padding)(x)
    model = keras.Model(inputs, x)
    row = receptive_fields(stack_from_model(model))[-1]
    position = 2
    lo, hi = empirical_receptive_field(model, position)
    centre = row["start"] + position * row["jump"] - 0.5  # pixel-index centre of that unit's field
    half = (row["receptive_field"] - 1) / 2
    # Where the field hangs over zero padding it is clipped at the image border.
    assert lo == max(0, int(centre - half)) and hi == min(63, int(centre + half))
    assert hi - lo + 1 <= row["receptive_field"]
