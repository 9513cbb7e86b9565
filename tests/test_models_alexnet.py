import keras
import numpy as np

from kerascnn.models import create_model
from kerascnn.models.alexnet import load_torchvision_alexnet

# torchvision alexnet(): (index in features, out, in, kernel) for each Conv2d.
TORCH_CONVS = ((0, 64, 3, 11), (3, 192, 64, 5), (6, 384, 192, 3), (8, 256, 384, 3), (10, 256, 256, 3))


def torchvision_alexnet_state(rng, hidden=4096, classes=1000):
    """Random arrays with torchvision's keys and shapes; ``hidden`` shrinks fc1/fc2 to keep tests light."""
    state = {}
    for k, c_out, c_in, size in TORCH_CONVS:
        shape = (c_out, c_in, size, size)
        state[f"features.{k}.weight"] = (0.1 * rng.standard_normal(shape)).astype("float32")
        state[f"features.{k}.bias"] = (0.1 * rng.standard_normal(c_out)).astype("float32")
    for k, (c_out, c_in) in {1: (hidden, 256 * 6 * 6), 4: (hidden, hidden), 6: (classes, hidden)}.items():
        state[f"classifier.{k}.weight"] = (0.01 * rng.standard_normal((c_out, c_in))).astype("float32")
        state[f"classifier.{k}.bias"] = (0.1 * rng.standard_normal(c_out)).astype("float32")
    return state


def numpy_conv(x, w_oihw, bias, stride=1, pad=0):
    """PyTorch Conv2d semantics on one HWC image: cross-correlation, symmetric zero padding."""
    x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    c_out, _, kh, kw = w_oihw.shape
    h = (x.shape[0] - kh) // stride + 1
    w = (x.shape[1] - kw) // stride + 1
    out = np.empty((h, w, c_out))
    for i in range(h):
        for j in range(w):
            patch = x[i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            out[i, j] = np.einsum("hwc,ochw->o", patch, w_oihw) + bias
    return out


def test_torchvision_geometry():
    model = create_model("alexnet", (224, 224, 3), 1000)
    assert model.count_params() == 61_100_840
    # At 224x224 the conv stack already ends at 6x6, so the adaptive pool changes nothing.
    assert model.get_layer("conv5_pool").output.shape[1:] == (6, 6, 256)
    assert model.get_layer("avg_pool").output.shape[1:] == (6, 6, 256)


def test_conv4_feature_extractor_shape():
    model = create_model("alexnet_features", (224, 224, 3), None, layer="conv4")
    assert model.output_shape == (None, 13, 13, 256)
    assert model.layers[-1].name == "conv4"


def test_npz_conv1_matches_numpy_convolution(tmp_path):
    rng = np.random.default_rng(0)
    state = torchvision_alexnet_state(rng, hidden=8, classes=5)
    path = tmp_path / "alexnet.npz"
    np.savez(path, **state)
    model = create_model("alexnet_features", (19, 19, 3), None, layer="conv1", weights=str(path),
                         preprocess="none")
    x = rng.standard_normal((1, 19, 19, 3)).astype("float32")
    conv = numpy_conv(x[0], state["features.0.weight"], state["features.0.bias"], stride=4, pad=2)
    expected = np.maximum(conv, 0)
    out = model.predict(x, verbose=0)[0]
    assert out.shape == (4, 4, 64)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_npz_fc1_rows_follow_torch_flatten_order(tmp_path):
    rng = np.random.default_rng(1)
    state = torchvision_alexnet_state(rng, hidden=16, classes=1000)
    path = tmp_path / "alexnet.npz"
    np.savez(path, **state)
    model = create_model("alexnet", (224, 224, 3), 1000, hidden=16, weights=str(path), preprocess="none")
    names = ("conv5_pool", "avg_pool", "fc1")
    probe = keras.Model(model.input, [model.get_layer(name).output for name in names] + [model.output])
    maps, pooled, fc1, probs = probe.predict(rng.uniform(0, 1, (1, 224, 224, 3)).astype("float32"), verbose=0)
    np.testing.assert_allclose(pooled, maps, rtol=1e-6)  # adaptive 6x6 pooling of a 6x6 map is the identity
    assert pooled.std() > 0  # the 36 positions must differ for the order to matter
    torch_flat = pooled.transpose(0, 3, 1, 2).reshape(1, -1)  # PyTorch flattens C, H, W
    expected = np.maximum(torch_flat @ state["classifier.1.weight"].T + state["classifier.1.bias"], 0)
    np.testing.assert_allclose(fc1, expected, rtol=1e-3, atol=1e-4)
    fc2 = np.maximum(expected @ state["classifier.4.weight"].T + state["classifier.4.bias"], 0)
    logits = fc2 @ state["classifier.6.weight"].T + state["classifier.6.bias"]
    expected_probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(probs, expected_probs, rtol=1e-3, atol=1e-6)


def test_new_class_count_skips_only_the_output_layer(tmp_path):
    state = torchvision_alexnet_state(np.random.default_rng(2), hidden=8)
    path = tmp_path / "alexnet.npz"
    np.savez(path, **state)
    model = create_model("alexnet", (224, 224, 3), 6, hidden=8, weights=str(path))
    fc2_kernel = model.get_layer("fc2").get_weights()[0]
    np.testing.assert_array_equal(fc2_kernel, state["classifier.4.weight"].T)
    assert model.output_shape == (None, 6)
    features_only = create_model("alexnet", (224, 224, 3), 1000, hidden=8)
    load_torchvision_alexnet(features_only, str(path), skip_classifier=True)
    np.testing.assert_array_equal(features_only.get_layer("conv3").get_weights()[1], state["features.6.bias"])
    assert not np.array_equal(features_only.get_layer("fc2").get_weights()[1], state["classifier.4.bias"])
