"""The caltech101 task: folder loader and split, activation maps, the model study and the real data."""
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import shared_data
from kerascnn.data import caltech101, load_dataset
from kerascnn.data.images import CorruptImageWarning, DatasetNotFoundError
from kerascnn.experiments import STUDIES
from kerascnn.experiments.caltech101 import recipe_overrides
from kerascnn.models import create_model
from kerascnn.tasks import get_task, resolve_config

CLASSES = ["accordion", "camera", "zebra"]
PER_CLASS = 20
# Small enough for a test: the study's three recipes at 32x32, one batch per epoch.
TINY = ["image_size=32", "batch_size=64", "tensorboard=false"]


def write_caltech_folder(root, per_class=PER_CLASS, size=24):
    """Caltech-style class folders of JPEGs, plus what the real release has: clutter, grey and bad files."""
    rng = np.random.default_rng(0)
    root = Path(root)
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(1, per_class + 1):
            img = rng.integers(0, 60, (size, size + 6, 3), dtype=np.uint8)
            img[..., k] += 150
            Image.fromarray(img).save(root / name / f"image_{i:04d}.jpg")
    Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8), mode="L").save(root / "camera" / "grey.jpg")
    (root / "camera" / "broken.jpg").write_bytes(b"not a jpeg at all")
    (root / "BACKGROUND_Google").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
            root / "BACKGROUND_Google" / f"image_{i:04d}.jpg")
    return root


@pytest.fixture(scope="module")
def caltech_root(tmp_path_factory):
    return write_caltech_folder(tmp_path_factory.mktemp("caltech") / "101_ObjectCategories")


def config(root, *overrides):
    return resolve_config("caltech101_lenet", list(overrides), data_dir=str(root))


def load_quietly(cfg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptImageWarning)
        return load_dataset(cfg)


def test_loader_ignores_background_converts_grey_and_names_corrupt_files(caltech_root):
    with pytest.warns(CorruptImageWarning, match="broken.jpg"):
        splits = load_dataset(config(caltech_root, "image_size=16"))
    assert splits.class_names == CLASSES
    assert splits.input_shape == (16, 16, 3)
    files = splits.train.files + splits.val.files
    assert len(files) == 3 * PER_CLASS + 1  # the grey image kept, the broken one left out
    assert not any("BACKGROUND_Google" in f or "broken" in f for f in files)
    grey = np.concatenate([splits.train.x, splits.val.x])[files.index("camera/grey.jpg")]
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 0], grey[..., 2])


def test_split_is_stratified_ninety_ten_and_fixed_by_split_seed(caltech_root):
    splits = load_quietly(config(caltech_root, "image_size=16"))
    assert np.bincount(splits.val.y).tolist() == [2, 2, 2]  # 10% of 20 (and of camera's 21)
    assert np.bincount(splits.train.y).tolist() == [18, 19, 18]
    other_seed = load_quietly(config(caltech_root, "image_size=16", "seed=5"))
    assert other_seed.val.files == splits.val.files  # training seed leaves the split alone
    other_split = load_quietly(config(caltech_root, "image_size=16", "split_seed=1"))
    assert other_split.val.files != splits.val.files
    assert sorted(other_split.val.files + other_split.train.files) == sorted(splits.val.files + splits.train.files)


def test_missing_or_flat_folder_explains_the_layout(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="101_ObjectCategories"):
        load_dataset(config(tmp_path / "nowhere"))
    Image.new("RGB", (8, 8)).save(tmp_path / "loose.jpg")
    with pytest.raises(DatasetNotFoundError, match="no class folders"):
        load_dataset(config(tmp_path))


def test_tasks_follow_the_assignment():
    for task in ("caltech101_lenet", "caltech101_improved", "caltech101_resnet18"):
        cfg = get_task(task).config
        assert (cfg.dataset, cfg.image_size, cfg.val_fraction) == ("caltech101", 64, 0.1)
        assert caltech101.input_spec(cfg) == ((64, 64, 3), 101)
    assert get_task("caltech101_lenet").config.model == "lenet5"
    assert get_task("caltech101_resnet18").config.model == "resnet18"


def test_improved_network_shapes_and_options():
    model = create_model("caltech_net", (64, 64, 3), 101)
    assert model.get_layer("stem_relu").output.shape[1:] == (32, 32, 32)
    assert model.get_layer("stage3_relu2").output.shape[1:] == (4, 4, 256)
    assert model.output.shape[1:] == (101,)
    assert create_model("caltech_net", (64, 64, 3), 101, dropout=0.0).count_params() == model.count_params()
    with pytest.raises(ValueError, match="convs_per_stage"):
        create_model("caltech_net", (64, 64, 3), 101, widths=(8, 16), convs_per_stage=(1,))


def test_recipe_overrides_reproduce_each_task():
    for task in ("caltech101_improved", "caltech101_resnet18"):
        cfg = resolve_config("caltech101_lenet", recipe_overrides(task))
        assert cfg == get_task(task).config


# ---------------------------------------------------------------- activation maps

def test_activation_layer_follows_conv_to_its_relu():
    from keras import layers
    import keras

    from kerascnn.vis.activations import activation_layer

    lenet = create_model("lenet5", (32, 32, 3), 5)
    assert activation_layer(lenet, "conv1")[0].name == "relu1"
    assert activation_layer(lenet, "conv2")[0].name == "relu2"
    assert activation_layer(lenet, "relu2")[0].name == "relu2"
    resnet = create_model("resnet18", (32, 32, 3), 5)
    assert activation_layer(resnet, "conv1")[0].name == "conv1_relu"  # through batch norm
    assert activation_layer(resnet, "conv2")[0].name == "conv2_block1_1_relu"
    assert activation_layer(create_model("caltech_net", (32, 32, 3), 5), "conv3")[0].name == "stage2_relu1"

    inputs = keras.Input((8, 8, 3))
    fused = layers.Conv2D(4, 3, activation="relu", name="fused")(inputs)
    linear = layers.Conv2D(4, 3, name="linear")(fused)
    model = keras.Model(inputs, layers.GlobalAveragePooling2D()(linear))
    assert activation_layer(model, "conv1") == (model.get_layer("fused"), "")
    layer, note = activation_layer(model, "conv2")
    assert layer.name == "linear" and "no activation" in note
    with pytest.raises(ValueError, match="conv layers: fused, linear"):
        activation_layer(model, "conv3")


@pytest.fixture(scope="module")
def tiny_study(caltech_root, tmp_path_factory):
    from kerascnn.experiments import run_study

    out = tmp_path_factory.mktemp("studies")
    # Module-scoped, so set up before the per-test cache isolation: keep its cache in tmp too.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptImageWarning)
        return run_study("caltech101.models", epochs=1, overrides=TINY + [f"cache_dir={out / 'cache'}"],
                         data_dir=str(caltech_root), out_root=str(out), quiet=True)


def test_models_study_smoke_tabulates_loss_and_accuracy(tiny_study):
    study_dir = Path(tiny_study["study_dir"])
    rows = tiny_study["rows"]
    assert [(r["variant"], r["model"]) for r in rows] == [
        ("lenet5", "lenet5"), ("improved", "caltech_net"), ("resnet18", "resnet18")]
    for row in rows:
        assert row["epochs_run"] == 1
        assert all(np.isfinite(row[k]) for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"))
    header = (study_dir / "table.md").read_text().splitlines()[2]
    assert "train_loss" in header and "val_loss" in header and "val_accuracy" in header
    assert (study_dir / "curves.png").stat().st_size > 0


def test_activation_figures_for_the_named_images(tiny_study, caltech_root, tmp_path):
    from kerascnn.vis.commands import visualize

    run = Path(tiny_study["study_dir"]) / "runs" / "lenet5" / "seed0"
    written = visualize(str(run), kind="activations", out=str(tmp_path), checkpoint="best", split="val",
                        layers=["conv1", "conv2"],
                        images=["accordion/image_0001.jpg", str(caltech_root / "camera" / "image_0001.jpg")])
    assert sorted(p.name for p in written) == sorted(
        f"activations_{layer}_{image}_image_0001.png" for layer in ("conv1", "conv2") for image in ("accordion", "camera"))
    assert all(p.stat().st_size > 0 for p in written)


def test_activation_maps_and_figure_have_one_panel_per_filter(tiny_study, caltech_root):
    from kerascnn import rundir
    from kerascnn.data.images import decode_image
    from kerascnn.vis.activations import activation_figure, activation_maps

    run = Path(tiny_study["study_dir"]) / "runs" / "lenet5" / "seed0"
    image = decode_image(caltech_root / "accordion" / "image_0001.jpg", (32, 32))
    for checkpoint in ("initial", "best"):  # untrained and trained weights
        model = rundir.load_model(run, checkpoint)
        for spec, filters, side in (("conv1", 32, 32), ("conv2", 64, 8)):
            layer, _, maps = activation_maps(model, image[None], spec)
            assert layer.name == f"relu{spec[-1]}"
            assert maps.shape == (1, side, side, filters) and maps.min() >= 0  # post-ReLU
    import matplotlib.pyplot as plt

    fig = activation_figure(image, maps[0], "conv2")
    assert len(fig.axes) == 1 + 64
    plt.close(fig)


def test_missing_image_is_a_clear_error(tiny_study, tmp_path):
    from kerascnn.vis.commands import visualize

    run = Path(tiny_study["study_dir"]) / "runs" / "lenet5" / "seed0"
    with pytest.raises(FileNotFoundError, match="image_9999"):
        visualize(run, kind="activations", out=tmp_path, layers="conv1", images=["accordion/image_9999.jpg"])


def test_study_is_registered_with_three_models():
    assert [name for name, _ in STUDIES["caltech101.models"].variants] == ["lenet5", "improved", "resnet18"]


# ---------------------------------------------------------------- real data

@pytest.mark.integration
def test_real_caltech101_loads_with_101_classes(tmp_path):
    root = shared_data("caltech101")
    cfg = resolve_config("caltech101_lenet", ["image_size=16"], data_dir=str(root))
    splits = load_dataset(cfg)
    assert splits.num_classes == 101 and "BACKGROUND_Google" not in splits.class_names
    assert len(splits.train.x) + len(splits.val.x) == 8677
    assert 0.09 < len(splits.val.x) / 8677 < 0.11
    assert np.bincount(splits.val.y, minlength=101).min() >= 1
    assert {"accordion/image_0001.jpg", "camera/image_0001.jpg"} <= set(splits.train.files + splits.val.files)
