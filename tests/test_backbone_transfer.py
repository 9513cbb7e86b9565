"""Transfer learning from this project's own runs: model.weights=RUN_DIR for every backbone model."""
import json

import numpy as np
import pytest
from conftest import write_image_folder

from kerascnn.models.backbone import BackboneWeightsError
from kerascnn.tasks import resolve_config

SMALL = ["epochs=1", "batch_size=8", "tensorboard=false", "augment=[]", "warmup_epochs=0"]


def folder_config(root, model, size, *overrides):
    return resolve_config("folder", [*SMALL, f"model={model}", f"image_size={size}", *overrides],
                          data_dir=str(root))


def resnet50_backbone(model):
    from kerascnn.models.resnet50 import RESNET_LAYER_PREFIXES

    return [layer for layer in model.layers if layer.name.startswith(RESNET_LAYER_PREFIXES) and layer.weights]


def vgg_backbone(model):
    from kerascnn.models.vgg import backbone_layers

    return [layer for layer in backbone_layers(model) if layer.weights]


def alexnet_backbone(model):
    from kerascnn.models.alexnet import alexnet_backbone_layers

    return alexnet_backbone_layers(model)


# name -> (model, image size, overrides, fine-tuning overrides, backbone layers, their count). The ResNet-50
# target trains its head only (as clipart_resnet50_finetune's first phase), which halves its graph's size.
CASES = {
    "resnet50": ("resnet50", 32, [], ["model.train_backbone=false"], resnet50_backbone, 106),  # 53 convs, 53 BNs
    "vgg11_bn": ("vgg_transfer", 32, ["model.backbone=vgg11_bn", "model.hidden=[16]", "model.train_backbone=true"],
                 [], vgg_backbone, 16),
    "alexnet": ("alexnet", 64, ["model.hidden=32", "model.dropout=0"], [], alexnet_backbone, 7),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fine_tuning_starts_from_the_pretrained_runs_backbone(tmp_path, case):
    from kerascnn import rundir
    from kerascnn.train import train

    model, size, overrides, fine_tuning, backbone, layers_expected = CASES[case]
    pretrain_data = write_image_folder(tmp_path / "pretrain", classes=3, per_class=5, size=size, seed=0)
    finetune_data = write_image_folder(tmp_path / "finetune", classes=2, per_class=5, size=size, seed=1)
    source = tmp_path / "source"
    train(folder_config(pretrain_data, model, size, *overrides), run_dir=source, quiet=True)

    target = tmp_path / "target"
    metrics = train(folder_config(finetune_data, model, size, *overrides, *fine_tuning, f"model.weights={source}"),
                    run_dir=target, quiet=True)

    assert metrics["backbone_source"] == {"setting": "model.weights", "run_dir": str(source), "task": "folder"}
    assert json.loads((target / "metrics.json").read_text())["backbone_source"]["run_dir"] == str(source)
    pretrained, initial = rundir.load_model(source, "best"), rundir.load_model(target, "initial")
    layers = backbone(initial)
    assert len(layers) == layers_expected
    for layer in layers:
        saved = pretrained.get_layer(layer.name).get_weights()
        for got, want in zip(layer.get_weights(), saved, strict=True):
            np.testing.assert_array_equal(got, want, err_msg=layer.name)
    assert pretrained.get_layer("predictions").get_weights()[0].shape[-1] == 3
    assert initial.get_layer("predictions").get_weights()[0].shape[-1] == 2


def test_bad_weight_sources_fail_clearly_and_leave_no_run_directory(tmp_path):
    from kerascnn.models import create_model
    from kerascnn.train import train

    data = write_image_folder(tmp_path / "images", classes=2, per_class=5, size=64)
    other = tmp_path / "simple_cnn_run"
    train(folder_config(data, "simple_cnn", 64, "model.filters=[4,8]"), run_dir=other, quiet=True)
    text = tmp_path / "notes.txt"
    text.write_text("not a model\n")
    fake = tmp_path / "fake.keras"
    fake.write_text("not a model either\n")
    not_a_run = tmp_path / "plain_folder"
    not_a_run.mkdir()

    cases = [
        (other, BackboneWeightsError, rf"run {other}'s model \(task folder\) has no layer conv3 of AlexNet's backbone"),
        (tmp_path / "missing_run", FileNotFoundError, "not found.*expected a run directory"),
        (text, BackboneWeightsError, "expected a torchvision AlexNet .npz, a .keras model or a run directory"),
        (fake, BackboneWeightsError, "is not a Keras model file"),
        (not_a_run, BackboneWeightsError, "without best.keras: not a run directory"),
    ]
    for i, (weights, error, message) in enumerate(cases):
        run = tmp_path / "runs" / f"target_{i}"
        with pytest.raises(error, match=message):
            train(folder_config(data, "alexnet", 64, "model.hidden=8", f"model.weights={weights}"),
                  run_dir=run, quiet=True)
        assert not run.exists(), weights
    assert not (tmp_path / "runs").exists()

    # faces_alexnet's extractor takes a run directory too: recorded, and cached under its best.keras.
    from kerascnn.data.faces_alexnet import weights_identity
    from kerascnn.io import sha256_file
    from kerascnn.models.backbone import backbone_source

    features_cfg = resolve_config("faces_alexnet_features", [f"feature_weights={other}"])
    assert backbone_source(features_cfg) == {"setting": "feature_weights", "run_dir": str(other), "task": "folder"}
    assert weights_identity(features_cfg) == f"sha256:{sha256_file(other / 'best.keras')}"
    # feature_pretrained=false wins over the weights setting: random seeded features, no backbone recorded.
    random_cfg = resolve_config("faces_alexnet_features", [f"feature_weights={other}", "feature_pretrained=false"])
    assert backbone_source(random_cfg) is None and weights_identity(random_cfg) == "random-seed:0"

    # The other backbone models read the same sources the same way.
    with pytest.raises(BackboneWeightsError, match="has no layer block1_conv1 of vgg11_bn's backbone"):
        create_model("vgg_transfer", (32, 32, 3), 2, backbone="vgg11_bn", weights=str(other))
    with pytest.raises(BackboneWeightsError, match="expected a run directory, a .keras model"):
        create_model("vgg_transfer", (32, 32, 3), 2, backbone="vgg11_bn", weights=str(text))
    with pytest.raises(BackboneWeightsError, match="is not a Keras model file"):
        create_model("alexnet_features", (64, 64, 3), None, weights=str(fake))


def test_a_backbone_shape_mismatch_names_the_layer(tmp_path):
    import keras

    from kerascnn.models import create_model

    source = tmp_path / "alexnet.keras"
    create_model("alexnet", (64, 64, 3), 3, hidden=8).save(source)
    with pytest.raises(BackboneWeightsError, match=r"layer fc1 of model file .* expects \[\(9216, 16\), \(16,\)\]"):
        create_model("alexnet", (64, 64, 3), 2, hidden=16, weights=str(source))
    # Without the hidden layers the convolutions load, at another input size too.
    features = create_model("alexnet_features", (96, 96, 3), None, layer="conv3", weights=str(source))
    saved = keras.models.load_model(source, compile=False)
    np.testing.assert_array_equal(features.get_layer("conv3").get_weights()[0],
                                  saved.get_layer("conv3").get_weights()[0])
