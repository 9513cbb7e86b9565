import keras
import numpy as np

from kerascnn.models import create_model
from kerascnn.models.vgg import backbone_layers, load_torchvision_vgg11_bn, vgg11_bn_features

# torchvision vgg11_bn().features: index of each Conv2d (BatchNorm2d follows at index + 1), and widths.
TORCH_CONV_INDEX = (0, 4, 8, 11, 15, 18, 22, 25)
TORCH_WIDTHS = (64, 128, 256, 256, 512, 512, 512, 512)


def torchvision_vgg11_bn_state(rng):
    """Random arrays with torchvision's feature keys and shapes (the unused classifier is left out)."""
    state, c_in = {}, 3
    for k, c_out in zip(TORCH_CONV_INDEX, TORCH_WIDTHS):
        state[f"features.{k}.weight"] = rng.standard_normal((c_out, c_in, 3, 3)).astype("float32")
        state[f"features.{k}.bias"] = rng.standard_normal(c_out).astype("float32")
        state[f"features.{k + 1}.weight"] = rng.uniform(0.5, 1.5, c_out).astype("float32")
        state[f"features.{k + 1}.bias"] = rng.standard_normal(c_out).astype("float32")
        state[f"features.{k + 1}.running_mean"] = rng.standard_normal(c_out).astype("float32")
        state[f"features.{k + 1}.running_var"] = rng.uniform(0.5, 2.0, c_out).astype("float32")
        state[f"features.{k + 1}.num_batches_tracked"] = np.array(100, dtype="int64")
        c_in = c_out
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
            patch = x[i * stride:i * stride + kh, j * stride:j * stride + kw, :]  # (kh, kw, c_in)
            out[i, j] = np.einsum("hwc,ochw->o", patch, w_oihw) + bias
    return out


def test_features_match_torchvision_shapes():
    model = vgg11_bn_features((32, 32, 3))
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [layer.filters for layer in convs] == list(TORCH_WIDTHS)
    assert model.output_shape == (None, 1, 1, 512)
    # 8 convs with bias, 8 BNs with 2 trainable vectors each
    c_in, expected = 3, 0
    for c_out in TORCH_WIDTHS:
        expected += 9 * c_in * c_out + c_out + 2 * c_out
        c_in = c_out
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == expected


def test_npz_loader_maps_oihw_and_batch_norm(tmp_path):
    rng = np.random.default_rng(0)
    state = torchvision_vgg11_bn_state(rng)
    path = tmp_path / "vgg11_bn.npz"
    np.savez(path, **state)
    model = vgg11_bn_features((32, 32, 3))  # the smallest size five pools allow
    load_torchvision_vgg11_bn(model, str(path))

    x = rng.standard_normal((1, 32, 32, 3)).astype("float32")
    outputs = [model.get_layer("block1_conv1").output, model.get_layer("block1_bn1").output]
    probe = keras.Model(model.input, outputs)
    conv_out, bn_out = probe.predict(x, verbose=0)
    expected = numpy_conv(x[0], state["features.0.weight"], state["features.0.bias"], pad=1)
    np.testing.assert_allclose(conv_out[0], expected, rtol=1e-4, atol=1e-4)
    normed = (expected - state["features.1.running_mean"]) / np.sqrt(state["features.1.running_var"] + 1e-5)
    expected_bn = normed * state["features.1.weight"] + state["features.1.bias"]
    np.testing.assert_allclose(bn_out[0], expected_bn, rtol=1e-4, atol=1e-4)
    last = model.get_layer("block5_conv2").get_weights()[0]
    np.testing.assert_array_equal(last, state["features.25.weight"].transpose(2, 3, 1, 0))


def test_transfer_model_loads_npz_path(tmp_path):
    state = torchvision_vgg11_bn_state(np.random.default_rng(1))
    path = tmp_path / "vgg11_bn.npz"
    np.savez(path, **state)
    model = create_model("vgg_transfer", (32, 32, 3), 10, backbone="vgg11_bn", weights=str(path))
    moving_variance = model.get_layer("block3_bn2").get_weights()[3]
    np.testing.assert_array_equal(moving_variance, state["features.12.running_var"])


def test_vgg16_backbone_loads_saved_keras_weights(tmp_path):
    source = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "vgg16_notop.weights.h5"
    source.save_weights(path)
    model = create_model("vgg_transfer", (32, 32, 3), 10, backbone="vgg16", weights=str(path))
    fresh = create_model("vgg_transfer", (32, 32, 3), 10, backbone="vgg16")
    backbone = backbone_layers(model)
    assert [layer.name for layer in backbone] == [layer.name for layer in source.layers[1:]]
    for layer in backbone:
        for loaded, saved in zip(layer.get_weights(), source.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(loaded, saved)
    random_kernel = fresh.get_layer("block1_conv1").get_weights()[0]
    assert not np.allclose(random_kernel, source.get_layer("block1_conv1").get_weights()[0])


def backbone_snapshot(model):
    return [w.copy() for layer in backbone_layers(model) for w in layer.get_weights()]


def one_step(model):
    rng = np.random.default_rng(0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    model.train_on_batch(rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32"), rng.integers(0, 10, 4))


def test_frozen_backbone_is_unchanged_by_training():
    model = create_model("vgg_transfer", (32, 32, 3), 10, backbone="vgg11_bn")
    before, head = backbone_snapshot(model), model.get_layer("fc1").get_weights()[0].copy()
    one_step(model)
    for old, new in zip(before, backbone_snapshot(model)):
        np.testing.assert_array_equal(old, new)  # kernels and BN moving statistics alike
    assert not np.allclose(head, model.get_layer("fc1").get_weights()[0])


def test_trainable_backbone_changes():
    model = create_model("vgg_transfer", (32, 32, 3), 10, backbone="vgg11_bn", train_backbone=True)
    before = model.get_layer("block1_conv1").get_weights()[0].copy()
    one_step(model)
    assert not np.allclose(before, model.get_layer("block1_conv1").get_weights()[0])


def test_upsample_and_head_shapes():
    model = create_model("vgg_transfer", (32, 32, 3), 10, backbone="vgg11_bn", upsample=64, hidden=(128,))
    assert model.get_layer("upsample").output.shape[1:] == (64, 64, 3)
    assert model.get_layer("flatten").output.shape[1:] == (2 * 2 * 512,)
    assert model.get_layer("fc1").output.shape[1:] == (128,)
    assert model.output_shape == (None, 10)
