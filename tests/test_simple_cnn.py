"""SimpleCNN: the starter network's shapes and parameter counts, and its configurable surface."""
import numpy as np
import pytest

from kerascnn.models import create_model


def conv_params(k, cin, cout):
    return k * k * cin * cout + cout


def test_default_is_the_starter_network():
    model = create_model("simple_cnn", (50, 50, 3), 11)
    # 50 -> 23 -> 10 with 5x5 stride-2 valid convs; 10*10*16 = 1600 features into dense 64.
    assert model.get_layer("conv2").output.shape[1:] == (10, 10, 16)
    expected = conv_params(5, 3, 16) + conv_params(5, 16, 16) + (1600 * 64 + 64) + (64 * 11 + 11)
    assert model.count_params() == expected == 110_811
    assert model.get_layer("conv1").activation.__name__ == "linear"
    assert model.get_layer("act1").activation.__name__ == "relu"
    out = model.predict(np.zeros((2, 50, 50, 3), "float32"), verbose=0)
    assert out.shape == (2, 11) and np.allclose(out.sum(1), 1, atol=1e-5)


def test_pooling_shrinks_the_dense_layer():
    model = create_model("simple_cnn", (50, 50, 3), 11, pooling=True)
    # 50 -> 23 -> pool 11 -> 4 -> pool 2: 2*2*16 = 64 features.
    assert model.get_layer("flatten").output.shape[-1] == 64
    assert model.count_params() == conv_params(5, 3, 16) + conv_params(5, 16, 16) + 64 * 64 + 64 + 64 * 11 + 11


@pytest.mark.parametrize("filters", [[16, 32, 64], [32, 32, 32], [64, 32, 16]])
def test_pyramidal_flat_and_inverse_shapes(filters):
    model = create_model("simple_cnn", (50, 50, 3), 11, filters=filters, kernel_size=3, strides=1,
                         padding="same", pooling=True)
    assert [model.get_layer(f"conv{i + 1}").filters for i in range(3)] == filters
    assert model.get_layer("conv3").output.shape[1:3] == (12, 12)


def test_per_layer_kernels_batch_norm_and_dropout_placement():
    model = create_model("simple_cnn", (50, 50, 3), 11, filters=[8, 8], kernel_size=[7, 3], strides=[1, 2],
                         batch_norm=True, dropout=0.3, dropout_placement=["conv", "flatten", "dense"], l2=1e-4)
    names = {layer.name for layer in model.layers}
    assert {"bn1", "bn2", "conv_dropout1", "flatten_dropout", "dense_dropout1"} <= names
    assert model.get_layer("conv1").kernel_size == (7, 7) and model.get_layer("conv2").strides == (2, 2)
    assert model.get_layer("conv1").use_bias is False  # the batch norm's beta replaces the bias
    assert len(model.losses) == 3  # L2 on two convs and the hidden dense layer


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="kernel_size has 3 entries but there are 2 conv layers"):
        create_model("simple_cnn", (50, 50, 3), 11, kernel_size=[3, 3, 3])
    with pytest.raises(ValueError, match="dropout_placement"):
        create_model("simple_cnn", (50, 50, 3), 11, dropout=0.2, dropout_placement=["everywhere"])
