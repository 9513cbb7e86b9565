"""The fast Conv2D gradient equals TensorFlow's own, and falls back where it does not apply."""
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
from kerascnn import fast_conv_grad  # noqa: E402


def gradients(enabled, x, k, **conv):
    fast_conv_grad.install(enabled)
    try:
        @tf.function
        def run(x, k):
            with tf.GradientTape() as tape:
                tape.watch([x, k])
                out = tf.nn.conv2d(x, k, **conv)
                loss = tf.reduce_sum(out * tf.cos(out))
            return tape.gradient(loss, [x, k])
        return [g.numpy() for g in run(x, k)]
    finally:
        fast_conv_grad.install(True)


@pytest.mark.parametrize("channels", [3, 8])  # 3: first-layer filter gradient; 8: input gradient as a convolution
@pytest.mark.parametrize("size", [(9, 7), (12, 11)])  # filter gradient as a convolution below 100 pixels
@pytest.mark.parametrize("kernel,padding,strides,dilations", [
    (3, "SAME", 1, 1), (5, "SAME", 1, 1), (4, "SAME", 1, 1), (3, "VALID", 1, 1), (2, "VALID", 1, 1),
    (3, [[0, 0], [2, 0], [1, 1], [0, 0]], 1, 1),
    (3, "SAME", 2, 1), (5, "VALID", 2, 1), (4, "SAME", 2, 1), (3, "SAME", 3, 1),
    (3, [[0, 0], [2, 0], [1, 1], [0, 0]], 2, 1),
])
def test_matches_tensorflow_gradient(kernel, padding, strides, dilations, size, channels):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((2, *size, channels)), tf.float32)
    k = tf.constant(rng.standard_normal((kernel, kernel, channels, 6)), tf.float32)
    conv = dict(strides=strides, padding=padding, dilations=dilations)
    for ours, theirs in zip(gradients(True, x, k, **conv), gradients(False, x, k, **conv)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_keras_model_gradients_match():
    import keras

    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.Conv2D(4, 3, padding="valid", activation="relu")(h)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(h)))
    x = tf.constant(np.random.default_rng(1).standard_normal((3, 8, 8, 3)), tf.float32)
    results = []
    for enabled in (True, False):
        fast_conv_grad.install(enabled)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(x) ** 2)
        results.append([g.numpy() for g in tape.gradient(loss, model.trainable_variables)])
    fast_conv_grad.install(True)
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    assert fast_conv_grad.installed()
