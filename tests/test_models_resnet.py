import numpy as np

from kerascnn.models import create_model


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_imagenet_geometry_matches_torchvision():
    model = create_model("resnet18", (224, 224, 3), 1000)
    assert trainable_count(model) == 11_689_512
    assert model.get_layer("conv1_relu").output.shape[1:] == (112, 112, 64)
    assert model.get_layer("pool1").output.shape[1:] == (56, 56, 64)
    assert model.get_layer("conv2_block2_out").output.shape[1:] == (56, 56, 64)
    assert model.get_layer("conv3_block1_out").output.shape[1:] == (28, 28, 128)
    assert model.get_layer("conv5_block2_out").output.shape[1:] == (7, 7, 512)
    projections = [layer.name for layer in model.layers if layer.name.endswith("proj_conv")]
    assert projections == ["conv3_block1_proj_conv", "conv4_block1_proj_conv", "conv5_block1_proj_conv"]


def test_forward_and_training_step_at_64():
    model = create_model("resnet18", (64, 64, 3), 101)
    assert model.get_layer("conv5_block2_out").output.shape[1:] == (2, 2, 512)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, 64, 64, 3)).astype("float32")
    y = rng.integers(0, 101, 4)
    probs = model.predict(x, verbose=0)
    assert probs.shape == (4, 101)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    before = model.get_layer("conv1_conv").get_weights()[0].copy()
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert not np.allclose(before, model.get_layer("conv1_conv").get_weights()[0])
