"""The fused TensorFlow Adam update: same weights as Keras's own, far fewer graph ops."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from kerascnn.speedups.fused_adam import fuse, is_fused


def train_weights(make_optimizer, fused, epochs=4):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    optimizer = make_optimizer()
    model.compile(fuse(optimizer) if fused else optimizer, "categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 3, 64), 3)
    initial = model.get_weights()
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0)
    return initial, model.get_weights()


@pytest.mark.parametrize("make_optimizer", [
    lambda: keras.optimizers.Adam(1e-2),
    lambda: keras.optimizers.AdamW(1e-2, weight_decay=0.1),
    lambda: keras.optimizers.Adam(1e-2, use_ema=True, ema_momentum=0.9),
], ids=["adam", "adamw", "adam-ema"])
def test_fused_update_gives_keras_adams_weights(make_optimizer):
    initial, plain = train_weights(make_optimizer, False)
    _, fused = train_weights(make_optimizer, True)
    for start, a, b in zip(initial, plain, fused):
        assert np.abs(a - start).max() > 1e-2  # training moved every weight array
        np.testing.assert_allclose(a, b, atol=1e-5)


def op_types(optimizer, variables):
    optimizer.build(variables)
    grads = [tf.ones(v.shape) for v in variables]
    graph = tf.function(lambda: optimizer.apply_gradients(zip(grads, variables))).get_concrete_function().graph
    return [op.type for op in graph.get_operations()]


def test_fused_update_is_one_kernel_per_variable():
    variables = [keras.Variable(np.zeros(shape, "float32")) for shape in [(5, 5, 3, 16), (16,), (64, 11), (11,)]]
    fused = op_types(fuse(keras.optimizers.Adam()), variables)
    plain = op_types(keras.optimizers.Adam(), [keras.Variable(v.numpy()) for v in variables])
    assert fused.count("ResourceApplyAdam") == len(variables)
    assert "ResourceApplyAdam" not in plain
    assert len(fused) < len(plain) / 2
    assert fused.count("Pow") == 2  # the step's bias corrections are built once, not per variable


def test_other_optimizers_are_left_alone():
    sgd, amsgrad = keras.optimizers.SGD(), keras.optimizers.Adam(amsgrad=True)
    assert fuse(sgd) is sgd and not is_fused(sgd)
    assert not is_fused(fuse(amsgrad))
    assert is_fused(fuse(keras.optimizers.AdamW()))
