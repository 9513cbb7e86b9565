"""Every registered model, timm style: it builds, runs, survives a .keras round trip, and its
assignment configurations keep their parameter counts. A newly registered model is included
automatically and must add its configuration to PARAMETERS."""
import keras
import numpy as np
import pytest

from kerascnn.models import available_models, create_model
from kerascnn.rundir import register_custom_layers

CLASSES = 3
SIZE = 32  # the smallest input most families take (five 2x2 pools, Keras' ResNet-50 minimum)
# Models that need more: AlexNet's 11x11/4 stem and three 3x3/2 pools leave nothing of a 32 px image.
SIZES = {"alexnet": 64, "alexnet_features": 64}
# Smaller than the defaults where only the save/load time would grow: AlexNet's 4096-unit
# classifier holds 55 M of its 57 M parameters at 3 classes (PARAMETERS checks the full one).
SMALL = {"alexnet": {"hidden": 64}}

# name -> [(input shape, classes, builder arguments, total parameters, trainable parameters)]:
# the configurations the assignments and their tasks define. Figures in docs/ or a torchvision
# counterpart are noted; the others were counted once from the builders and are pinned so that a
# refactoring that changes a layer (and would break loading saved runs) fails here.
PARAMETERS = {
    "alexnet": [((224, 224, 3), 1000, {}, 61_100_840, 61_100_840)],  # torchvision alexnet
    "alexnet_features": [((224, 224, 3), None, {}, 1_879_616, 1_879_616)],  # conv1-conv4, faces part 2.2
    "caltech_net": [((64, 64, 3), 101, {}, 1_156_165, 1_154_437)],  # docs/caltech101.md
    "clipnet": [((96, 96, 3), 7, {}, 1_136_107, 1_123_515)],  # docs/clipart.md: 1.14 M
    "convnet": [((32, 32, 3), 10, {}, 7_678_474, 7_678_474),  # docs/cifar10.md
                ((32, 32, 3), 10, {"batch_norm": True}, 7_687_178, 7_682_826)],
    "lenet5": [((64, 64, 3), 101, {}, 1_194_654, 1_194_654),  # docs/caltech101.md
               ((64, 64, 3), 101, {"padding": "valid"}, 410_526, 410_526)],
    "mlp": [((28, 28, 3), 12, {}, 709_512, 709_512),  # faces_mlp, docs/faces.md
            ((28, 28, 1), 12, {}, 239_112, 239_112),  # grey faces
            ((13, 13, 256), 12, {"hidden": [300], "dropout": 0.5}, 12_983_112, 12_983_112)],  # on AlexNet conv4
    "resnet18": [((224, 224, 3), 1000, {}, 11_699_112, 11_689_512),  # torchvision resnet18 (trainable)
                 ((64, 64, 3), 101, {}, 11_237_925, 11_228_325)],  # caltech101_resnet18
    "resnet50": [((224, 224, 3), 65, {}, 23_720_897, 23_667_777)],  # the clip-art assignment's 65 classes
    "simple_cnn": [((50, 50, 3), 11, {}, 110_811, 110_811)],  # the artists starter network
    "vgg_transfer": [((32, 32, 3), 10, {"backbone": "vgg11_bn", "hidden": [256]}, 9_366_410, 134_410)],  # cifar10_vgg
}


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("name", available_models())
def test_model_builds_runs_and_round_trips_through_keras_file(name, tmp_path):
    size = SIZES.get(name, SIZE)
    model = create_model(name, (size, size, 3), CLASSES, **SMALL.get(name, {}))
    x = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    out = keras.ops.convert_to_numpy(model(x, training=False))
    assert out.shape[0] == 2 and np.isfinite(out).all()
    if model.layers[-1].name == "predictions":
        assert out.shape == (2, CLASSES)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)

    path = tmp_path / f"{name}.keras"
    model.save(path)
    register_custom_layers()
    loaded = keras.models.load_model(path, compile=False)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x, training=False)), out, rtol=0, atol=1e-6)


def test_every_registered_model_has_pinned_parameter_counts():
    assert sorted(PARAMETERS) == available_models()


@pytest.mark.parametrize("name, shape, classes, kwargs, total, trainable", [
    pytest.param(name, *config, id=f"{name}-{'x'.join(map(str, config[0]))}-{config[1]}-{i}")
    for name, configs in PARAMETERS.items() for i, config in enumerate(configs)])
def test_parameter_counts(name, shape, classes, kwargs, total, trainable):
    model = create_model(name, shape, classes, **kwargs)
    assert (model.count_params(), trainable_count(model)) == (total, trainable)
