"""The clip-art assignment: its data layout, ResNet-50 (A/B) weight loading, ClipNet (C), the ablation
study's definitions, predictions in the ``id,label`` format and the t-SNE / activation-max figures."""
import csv
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_data
from kerascnn.data.images import CorruptImageWarning, DatasetNotFoundError


def write_clipart_tree(root, classes=11, per_class=3, size=24, test_images=5, seed=0, names=True):
    """The assignment's layout: train/<k>/, valid/<k>/, flat test/, class_names.txt; colour-coded classes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)

    def picture(k):
        img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
        img[..., k % 3] += 120 + 10 * (k // 3)
        return Image.fromarray(img)

    for split, count in (("train", per_class), ("valid", max(1, per_class // 2))):
        for k in range(classes):
            folder = root / split / str(k)
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                picture(k).save(folder / f"img_{k}_{i}.jpg")
    (root / "test").mkdir()
    for i in range(1, test_images + 1):
        picture(i % classes).save(root / "test" / f"{i:04d}.jpg")
    if names:
        (root / "class_names.txt").write_text("\n".join(f"thing{k}" for k in range(classes)) + "\n")
    return root


def clipart_config(root, cache, *overrides, task="clipart_own"):
    from kerascnn.tasks import resolve_config

    return resolve_config(task, ["image_size=32", f"cache_dir={cache}", "tensorboard=false", *overrides],
                          data_dir=str(root))


# ---------------------------------------------------------------- data

def test_loader_orders_folders_numerically_and_names_classes(tmp_path):
    from kerascnn.data.clipart import input_spec, load, test_ids

    root = write_clipart_tree(tmp_path / "clipart")
    (root / "train" / "3" / "broken.jpg").write_bytes(b"not a jpeg")
    cfg = clipart_config(root, tmp_path / "cache")
    with pytest.warns(CorruptImageWarning, match="broken.jpg"):
        splits = load(cfg)
    assert splits.class_names == [f"thing{k}" for k in range(11)]
    for part in (splits.train, splits.val):
        folder_of = np.array([int(Path(f).parts[0]) for f in part.files])
        np.testing.assert_array_equal(part.y, folder_of)  # folder "10" is label 10, not 2
    assert (splits.train.y == 10).sum() == 3 and len(splits.train.x) == 33
    assert splits.train.x.shape[1:] == (32, 32, 3) and splits.val.x.shape[1:] == (32, 32, 3)
    assert test_ids(splits.test) == ["0001", "0002", "0003", "0004", "0005"]
    assert (splits.test.y == -1).all() and splits.test.x.shape == (5, 32, 32, 3)
    assert input_spec(cfg) == ((32, 32, 3), 11)
    with pytest.warns(CorruptImageWarning, match="broken.jpg"):  # the cached reload still names it
        load(cfg)


def test_receptive_fields_of_a_clipart_task_need_no_data(tmp_path):
    """The class count comes from the folders, but fields end before the classifier: without the data the task's
    network gives the fields of the one built for the data's 11 classes, and `params` still needs the data."""
    from kerascnn.analysis import network_for_fields, receptive_fields, stack_from_model
    from kerascnn.data.clipart import input_spec
    from kerascnn.train import build_model

    with_data = clipart_config(write_clipart_tree(tmp_path / "clipart"), tmp_path / "cache")
    without = clipart_config(tmp_path / "absent", tmp_path / "cache")
    with pytest.raises(DatasetNotFoundError, match="Expected layout"):
        input_spec(without)
    model = build_model(with_data, *input_spec(with_data))
    assert model.output.shape[-1] == 11
    fields = receptive_fields(stack_from_model(model))
    assert len(fields) > 20 and receptive_fields(stack_from_model(network_for_fields(without))) == fields


def test_loader_without_class_names_or_test_folder(tmp_path):
    import shutil

    from kerascnn.data.clipart import load

    root = write_clipart_tree(tmp_path / "clipart", classes=3, names=False)
    shutil.rmtree(root / "test")
    splits = load(clipart_config(root, tmp_path / "cache"))
    assert splits.class_names == ["0", "1", "2"] and splits.test is None


def test_loader_errors_name_the_problem(tmp_path):
    import shutil

    from kerascnn.data.clipart import load

    root = write_clipart_tree(tmp_path / "clipart", classes=4)
    cfg = clipart_config(root, tmp_path / "cache")
    (root / "class_names.txt").write_text("a\nb\n")
    with pytest.raises(DatasetNotFoundError, match="names 2 classes"):
        load(cfg)
    (root / "class_names.txt").unlink()
    shutil.rmtree(root / "train" / "2")
    with pytest.raises(DatasetNotFoundError, match=r"missing \[2\]"):
        load(cfg)
    with pytest.raises(DatasetNotFoundError, match="train/ and valid/"):
        load(clipart_config(tmp_path / "nowhere", tmp_path / "cache"))


@pytest.mark.integration
def test_real_substitute_data(tmp_path):
    from kerascnn.data.clipart import load, test_ids

    root = shared_data("clipart")
    splits = load(clipart_config(root, tmp_path / "cache", "image_size=16"))
    names = (root / "class_names.txt").read_text().split()
    assert splits.class_names == names and splits.num_classes == len(names)
    assert len(splits.test.x) == len(list((root / "test").glob("*.jpg")))
    assert test_ids(splits.test)[0] == "0001"
    assert set(np.unique(splits.val.y)) == set(range(len(names)))


# ---------------------------------------------------------------- model A / B: ResNet-50 weights

@pytest.fixture(scope="module")
def backbone_file(tmp_path_factory):
    """A standalone ResNet50(include_top=False) with random weights, saved as .weights.h5, and the model."""
    import keras

    keras.utils.set_random_seed(1)
    standalone = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path_factory.mktemp("backbone") / "resnet50_notop.weights.h5"
    standalone.save_weights(path)
    return path, standalone


def assert_same_backbone(model, source, names=None):
    names = names or [layer.name for layer in source.layers if layer.weights]
    for name in names:
        for a, b in zip(model.get_layer(name).get_weights(), source.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b, err_msg=name)
    return len(names)


def test_resnet50_loads_backbone_from_file_and_freezes_it(backbone_file):
    from kerascnn.models import create_model

    path, standalone = backbone_file
    model = create_model("resnet50", (32, 32, 3), 5, weights=str(path), train_backbone=False)
    assert assert_same_backbone(model, standalone) > 100  # every conv and BN layer
    assert [w.path for w in model.trainable_weights] == ["predictions/kernel", "predictions/bias"]
    assert model.output_shape == (None, 5)


def test_frozen_backbone_survives_training_and_a_run_dir_is_a_weights_source(tmp_path, backbone_file):
    """A train step with the backbone frozen leaves every backbone weight (BN statistics too) as loaded;
    the run directory then serves as model.weights for a ResNet-50 at another input size."""
    from kerascnn import rundir
    from kerascnn.models import create_model
    from kerascnn.train import train

    path, standalone = backbone_file
    root = write_clipart_tree(tmp_path / "clipart", classes=3, per_class=4)
    cfg = clipart_config(root, tmp_path / "cache", f"model.weights={path}", "epochs=1", "fine_tune_epochs=0",
                         "batch_size=6", "augment=[]", "learning_rate=0.05", task="clipart_resnet50_finetune")
    run = tmp_path / "run_a"
    train(cfg, run_dir=run, quiet=True)
    trained = rundir.load_model(run, "best")
    assert_same_backbone(trained, standalone)
    initial = rundir.load_model(run, "initial")
    assert not np.allclose(trained.get_layer("predictions").get_weights()[0],
                           initial.get_layer("predictions").get_weights()[0])

    bigger = create_model("resnet50", (48, 48, 3), 3, weights=str(run))
    assert assert_same_backbone(bigger, trained, ["conv1_conv", "conv3_block2_2_bn", "conv5_block3_3_conv"]) == 3


def test_transfer_study_variants_differ_only_in_their_start_and_what_trains(tmp_path, backbone_file):
    """clipart.transfer passes one backbone to every variant: "scratch" ignores it, the others load it;
    all five spend the same epochs, and the table names each one's start and schedule."""
    from kerascnn.experiments import STUDIES
    from kerascnn.experiments.transfer import describe_backbone
    from kerascnn.models import create_model
    from kerascnn.tasks import resolve_config

    path, standalone = backbone_file
    study = STUDIES["clipart.transfer"]
    assert [name for name, _ in study.variants] == ["scratch", "frozen", "fine_tune_stage5", "fine_tune_all",
                                                       "fine_tune_all_bn"]
    configs = {name: resolve_config(study.task, study.base + overrides + [f"model.weights={path}"])
               for name, overrides in study.variants}
    assert {cfg.epochs + cfg.fine_tune_epochs for cfg in configs.values()} == {9}
    assert [describe_backbone(cfg).split(", ", 1)[1] for cfg in configs.values()] == [
        "trained", "frozen", "frozen 3 epochs, then fine-tuned 6 from conv5_block1_1_conv",
        "frozen 3 epochs, then fine-tuned 6 from the first layer",
        "frozen 3 epochs, then fine-tuned 6 from the first layer with batch norm trained"]
    scratch, frozen = (create_model("resnet50", (32, 32, 3), 3, **configs[name].model_args)
                       for name in ("scratch", "frozen"))
    assert_same_backbone(frozen, standalone, ["conv1_conv", "conv5_block3_3_bn"])
    assert not np.allclose(scratch.get_layer("conv1_conv").get_weights()[0],
                           standalone.get_layer("conv1_conv").get_weights()[0])
    assert len(scratch.trainable_weights) > 100 and len(frozen.trainable_weights) == 2


def test_resnet50_weight_sources_fail_clearly(tmp_path):
    from kerascnn.models import create_model
    from kerascnn.models.resnet50 import BackboneWeightsError

    with pytest.raises(FileNotFoundError, match="not found"):
        create_model("resnet50", (32, 32, 3), 3, weights=str(tmp_path / "missing.weights.h5"))
    with pytest.raises(BackboneWeightsError, match="without best.keras"):
        create_model("resnet50", (32, 32, 3), 3, weights=str(tmp_path))
    other = tmp_path / "clipnet.keras"
    create_model("clipnet", (32, 32, 3), 3).save(other)
    with pytest.raises(BackboneWeightsError, match="is it a ResNet-50"):
        create_model("resnet50", (32, 32, 3), 3, weights=str(other))


# ---------------------------------------------------------------- model C: ClipNet and its ablation

def test_clipnet_builds_under_every_ablation_variant():
    from kerascnn.experiments.clipart import ABLATION
    from kerascnn.tasks import resolve_config
    from kerascnn.train import build_model

    seen = set()
    for _, _, name, overrides in ABLATION:
        cfg = resolve_config("clipart_own", overrides + ["image_size=32"])
        model = build_model(cfg, (32, 32, 3), 4)
        assert model.output_shape == (None, 4), name
        names = {layer.name for layer in model.layers}
        seen.add(name)
        if name == "no_batch_norm":
            assert not any(n.endswith("_bn") for n in names)
        if name in ("no_se", "no_extras"):
            assert not any("_se_" in n for n in names)
        if name in ("no_stochastic_depth", "no_extras"):
            assert not any(n.endswith("drop_path") for n in names)
        if name == "avg_pool":
            assert "stage2_pool" in names and type(model.get_layer("stage2_pool")).__name__ == "AveragePooling2D"
    assert {"sgd", "avg_pool", "no_dropout", "no_batch_norm", "init_glorot", "no_augment", "lr_step"} <= seen


def test_clipnet_rejects_bad_switches():
    from kerascnn.models import create_model

    with pytest.raises(ValueError, match="pooling"):
        create_model("clipnet", (32, 32, 3), 3, pooling="median")
    with pytest.raises(ValueError, match="initializer"):
        create_model("clipnet", (32, 32, 3), 3, initializer="zeros")


def test_stochastic_depth_drops_whole_samples_only_while_training():
    import keras

    from kerascnn.models.clipnet import StochasticDepth

    layer = StochasticDepth(0.5, seed=3)
    x = np.ones((64, 2, 2, 3), dtype="float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)
    y = keras.ops.convert_to_numpy(layer(x, training=True))
    per_sample = y.reshape(64, -1)
    assert set(np.unique(per_sample)) == {0.0, 2.0}
    assert (per_sample.min(axis=1) == per_sample.max(axis=1)).all()  # all or nothing per sample


def test_ablation_table_labels_rows_and_measures_from_the_baseline():
    from kerascnn.experiments import STUDIES
    from kerascnn.experiments.clipart import ablation_table

    study = STUDIES["clipart.ablation"]

    def metrics(val):
        part = {"train_accuracy": 0.9, "val_accuracy": val, "train_loss": 0.1, "val_loss": 0.2}
        return {"best": part, "last": part, "best_epoch": 2, "epochs_run": 3, "train_seconds": 1.0}

    results = [{"variant": name, "metrics": metrics(0.5 if name == "baseline" else 0.4)}
               for name, _ in study.variants]
    table = ablation_table(study, None, results)
    rows = {r["variant"]: r for r in table["rows"]}
    assert rows["sgd"]["question"] == "optimizer" and rows["sgd"]["delta_val_accuracy"] == pytest.approx(-0.1)
    assert rows["baseline"]["delta_val_accuracy"] == 0.0
    assert {"question", "setting", "delta_val_accuracy"} <= set(table["columns"])


# ---------------------------------------------------------------- a tiny model C run: predictions and figures

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from kerascnn.train import train

    base = tmp_path_factory.mktemp("clipart_run")
    root = write_clipart_tree(base / "clipart", classes=4, per_class=8, test_images=7)
    (root / "test" / "0008.jpg").write_bytes(b"broken")
    cfg = clipart_config(root, base / "cache", "epochs=1", "batch_size=8", "warmup_epochs=0")
    run = base / "run_c"
    with pytest.warns(CorruptImageWarning, match="0008.jpg"):  # the test split is loaded too
        train(cfg, run_dir=run, quiet=True)
    return run, root


def test_predictions_file_is_id_label_for_every_readable_test_image(tiny_run, tmp_path):
    from kerascnn.cli import main

    run, root = tiny_run
    out = tmp_path / "predictions.txt"
    with pytest.warns(CorruptImageWarning, match="0008.jpg"):
        assert main(["predict", str(run), str(root / "test"), "--out", str(out), "--minimal"]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "id,label"
    rows = list(csv.reader(lines[1:]))
    assert [r[0] for r in rows] == [f"{i:04d}" for i in range(1, 8)]
    assert all(len(r) == 2 and r[1].isdigit() and 0 <= int(r[1]) < 4 for r in rows)


def test_evaluate_refuses_the_unlabelled_test_split(tiny_run):
    from kerascnn.evaluate import evaluate_run

    run, _ = tiny_run
    with pytest.raises(ValueError, match="no labels"):
        evaluate_run(run, split="test")


def test_tsne_figure_colours_every_validation_image(tiny_run, tmp_path):
    from kerascnn.vis.embedding import extract_features, tsne_kind

    run, _ = tiny_run
    png, table = tsne_kind(run, tmp_path)
    assert png.stat().st_size > 5000
    rows = table.read_text().splitlines()
    assert rows[0] == "file,label,predicted,x,y" and len(rows) == 1 + 4 * 4
    from kerascnn import rundir

    model = rundir.load_model(run)
    x = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    assert extract_features(model, x).shape == (2, 128)  # ClipNet's `features` layer
    assert extract_features(model, x, "stage4_block2_add").shape == (2, 192)  # maps averaged


def test_activation_max_renders_one_picture_per_unit(tiny_run, tmp_path, monkeypatch):
    import kerascnn.vis.activation_max as am

    run, _ = tiny_run
    monkeypatch.setattr(am, "STEPS", 3)
    png, arrays = am.activation_max_kind(run, tmp_path, layers=["stage2_block1_dwconv"], units=[0, 5])
    assert png.exists()
    with np.load(arrays) as z:
        assert sorted(z.files) == ["stage2_block1_dwconv__0", "stage2_block1_dwconv__5"]
        assert z["stage2_block1_dwconv__0"].shape == (32, 32, 3)
    with pytest.raises(ValueError, match="out of range"):
        am.activation_max_kind(run, tmp_path, layers="stage2_block1_dwconv", units=[999])


def test_a_clipnet_run_loads_in_a_fresh_process(tiny_run):
    """StochasticDepth lives in the model family's module; loading must not depend on it being imported."""
    import subprocess
    import sys

    run, _ = tiny_run
    code = f"from kerascnn import rundir; print(rundir.load_model({str(run)!r}).name)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "clipnet"
