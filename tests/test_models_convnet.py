import numpy as np

from kerascnn.models import create_model


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_parameter_count_matches_assignment_network():
    model = create_model("convnet", (32, 32, 3), 10)
    # conv 3->128, four convs into 512 channels, dense 512->10 (weights + biases)
    expected = (9 * 3 * 128 + 128) + (9 * 128 * 512 + 512) + 3 * (9 * 512 * 512 + 512) + (512 * 10 + 10)
    assert expected == 7_678_474
    assert model.count_params() == expected


def test_batch_norm_adds_gamma_and_beta_per_channel():
    model = create_model("convnet", (32, 32, 3), 10, batch_norm=True)
    assert trainable_count(model) == 7_678_474 + 2 * (128 + 4 * 512)


def test_block_order_and_output():
    model = create_model("convnet", (32, 32, 3), 10, batch_norm=True)
    names = [layer.name for layer in model.layers if layer.name.startswith("block1_")]
    assert names == ["block1_conv", "block1_bn", "block1_pool", "block1_relu"]
    assert model.get_layer("block5_relu").output.shape[1:] == (1, 1, 512)
    probs = model.predict(np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)), verbose=0)
    assert probs.shape == (2, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_dropout_between_blocks_and_before_classifier():
    model = create_model("convnet", (32, 32, 3), 10, dropout=0.3)
    dropouts = [layer.name for layer in model.layers if "dropout" in layer.name]
    assert dropouts == [f"block{i}_dropout" for i in range(1, 5)] + ["flatten_dropout"]
    assert model.count_params() == 7_678_474
