"""The fast Conv2D gradient equals TensorFlow's own, and falls back where it does not apply."""
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
from kerascnn.speedups import conv_grad as fast_conv_grad  # noqa: E402


def gradients(enabled, x, k, rules=fast_conv_grad.EIGEN, **conv):
    """Gradients with the fast rules (EIGEN's take every forward-convolution path) or TensorFlow's own."""
    fast_conv_grad.install(enabled, rules)
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
        fast_conv_grad.install(enabled, fast_conv_grad.EIGEN)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(x) ** 2)
        results.append([g.numpy() for g in tape.gradient(loss, model.trainable_variables)])
    fast_conv_grad.install(True)
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    assert fast_conv_grad.installed()


def gradient_op_types(rules, x, k, **conv):
    fast_conv_grad.install(True, rules)
    try:
        @tf.function
        def run(x, k):
            with tf.GradientTape() as tape:
                tape.watch(k)
                out = tf.nn.conv2d(x, k, **conv)
            return tape.gradient(out, k)
        return {op.type for op in run.get_concrete_function(x, k).graph.get_operations()}
    finally:
        fast_conv_grad.install(True)


def test_rules_follow_the_kernels():
    """oneDNN's first-layer filter gradient is faster than the forward-convolution form, Eigen's slower;
    on 4x4 maps both lose to it. The default rules are those of the kernels this TensorFlow runs."""
    first = (tf.zeros((2, 50, 50, 3)), tf.zeros((5, 5, 3, 16)))
    assert "Conv2DBackpropFilter" not in gradient_op_types(fast_conv_grad.EIGEN, *first, strides=2, padding="VALID")
    assert "Conv2DBackpropFilter" in gradient_op_types(fast_conv_grad.ONEDNN, *first, strides=2, padding="VALID")
    small = (tf.zeros((2, 4, 4, 16)), tf.zeros((3, 3, 16, 16)))
    for rules in (fast_conv_grad.EIGEN, fast_conv_grad.ONEDNN):
        assert "Conv2DBackpropFilter" not in gradient_op_types(rules, *small, strides=1, padding="SAME")
    x = tf.constant(np.random.default_rng(2).standard_normal((2, 4, 4, 16)), tf.float32)
    k = tf.constant(np.random.default_rng(3).standard_normal((3, 3, 16, 16)), tf.float32)
    for ours, theirs in zip(gradients(True, x, k, fast_conv_grad.ONEDNN, strides=1, padding="SAME"),
                            gradients(False, x, k, strides=1, padding="SAME")):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    fast_conv_grad.install(True)
    expected = fast_conv_grad.ONEDNN if fast_conv_grad.onednn_enabled() else fast_conv_grad.EIGEN
    assert fast_conv_grad.current_rules() is expected


@pytest.mark.parametrize("setting,expected", [(None, "True"), ("0", "False")])
def test_importing_kerascnn_turns_onednn_on_unless_told_otherwise(setting, expected):
    """TensorFlow leaves oneDNN off on CPUs without AVX-512 VNNI/BF16 or AMX; kerascnn asks for it before
    TensorFlow is imported, and a TF_ENABLE_ONEDNN_OPTS the user set wins."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    code = "import kerascnn.speedups.conv_grad as f; print(f.onednn_enabled())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == expected
