import numpy as np

from kerascnn.models import create_model


def lenet_params(flat, classes=101):
    conv1 = 5 * 5 * 3 * 32 + 32
    conv2 = 5 * 5 * 32 * 64 + 64
    return conv1 + conv2 + (flat * 1021 + 1021) + (1021 * 84 + 84) + (84 * classes + classes)


def test_same_padding_geometry_and_count():
    model = create_model("lenet5", (64, 64, 3), 101)
    assert model.get_layer("relu1").output.shape[1:] == (64, 64, 32)
    assert model.get_layer("pool2").output.shape[1:] == (4, 4, 64)
    assert model.count_params() == lenet_params(4 * 4 * 64) == 1_194_654


def test_valid_padding_geometry_and_count():
    model = create_model("lenet5", (64, 64, 3), 101, padding="valid")
    assert model.get_layer("relu1").output.shape[1:] == (60, 60, 32)
    assert model.get_layer("pool2").output.shape[1:] == (2, 2, 64)
    assert model.count_params() == lenet_params(2 * 2 * 64) == 410_526


def test_forward_pass():
    model = create_model("lenet5", (64, 64, 3), 101, batch_norm=True, dropout=0.5, l2=1e-4)
    probs = model.predict(np.random.default_rng(0).uniform(0, 255, (3, 64, 64, 3)), verbose=0)
    assert probs.shape == (3, 101)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
