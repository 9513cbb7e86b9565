import io
import json
import pickle
import tarfile
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from kerascnn.cli import main
from kerascnn.data import cifar10, load_dataset
from kerascnn.data.augment import build_augmentation
from kerascnn.data.images import DatasetNotFoundError
from kerascnn.experiments import STUDIES
from kerascnn.tasks import resolve_config

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SUBSET = SHARED / "cifar10" / "cifar10_subset.npz"
TINY_CONVNET = ["model.widths=[4,8,8,8,8]", "batch_size=16", "tensorboard=false"]


def synthetic(n, seed):
    """n labelled 32x32 images cycling through the 10 classes; each image's first pixel encodes its index."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    x[:, 0, 0, 0] = np.arange(n) % 256
    return x, (np.arange(n) % 10).astype(np.uint8)


def write_npz(path, n_train=40, n_more=20, n_test=20):
    (x, y), (xm, ym), (xt, yt) = synthetic(n_train, 0), synthetic(n_more, 1), synthetic(n_test, 2)
    np.savez(path, x_train=x, y_train=y, x_train_more=xm, y_train_more=ym, x_test=xt, y_test=yt)
    return x, xm, xt


def write_batch(path, x, y):
    """One official python batch: rows of 3072 bytes, all red then green then blue, row-major."""
    rows = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
    with open(path, "wb") as f:
        pickle.dump({b"data": rows, b"labels": [int(v) for v in y], b"batch_label": b"x"}, f)


def write_pickle_layout(root, batches=5, per_batch=10):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    xs = []
    for b in range(1, batches + 1):
        x, y = synthetic(per_batch, b)
        write_batch(folder / f"data_batch_{b}", x, y)
        xs.append(x)
    xt, yt = synthetic(per_batch, 99)
    write_batch(folder / "test_batch", xt, yt)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in cifar10.CLASS_NAMES], b"num_vis": 3072}, f)
    return folder, np.concatenate(xs), xt


def config(data_dir, *overrides):
    return resolve_config("cifar10", list(overrides), data_dir=str(data_dir))


def all_train_images(splits):
    """Train and val rows put back in their source order (files are named train/<index>)."""
    index = [int(f.split("/")[1]) for f in splits.train.files + splits.val.files]
    x = np.concatenate([splits.train.x, splits.val.x])
    return x[np.argsort(index)]


def test_npz_appends_train_more_and_holds_out_stratified_val(tmp_path):
    x, xm, xt = write_npz(tmp_path / "c.npz")
    splits = load_dataset(config(tmp_path / "c.npz", "val_fraction=0.2"))
    assert (len(splits.train.x), len(splits.val.x), len(splits.test.x)) == (50, 10, 20)
    assert np.bincount(splits.val.y, minlength=10).tolist() == [1] * 10  # round(0.2 * 6) per class
    np.testing.assert_array_equal(all_train_images(splits), np.concatenate([x, xm]))
    np.testing.assert_array_equal(splits.test.x, xt)
    assert splits.class_names == cifar10.CLASS_NAMES
    again = load_dataset(config(tmp_path / "c.npz", "val_fraction=0.2", "seed=5"))
    assert again.val.files == splits.val.files  # the split follows split_seed, not seed


def test_pickle_layout_found_from_parent_and_decoded_channel_major(tmp_path):
    folder, x, xt = write_pickle_layout(tmp_path)
    for data_dir in (tmp_path, folder):
        splits = load_dataset(config(data_dir))
        np.testing.assert_array_equal(all_train_images(splits), x)
        np.testing.assert_array_equal(splits.test.x, xt)
        assert splits.class_names == cifar10.CLASS_NAMES


def test_official_archive_read_without_unpacking(tmp_path):
    folder, x, xt = write_pickle_layout(tmp_path / "src", batches=2)
    with tarfile.open(tmp_path / cifar10.ARCHIVE_NAME, "w:gz") as archive:
        archive.add(folder, arcname="cifar-10-batches-py")
    splits = load_dataset(config(tmp_path))
    np.testing.assert_array_equal(all_train_images(splits), x)
    np.testing.assert_array_equal(splits.test.x, xt)


def test_bad_sources_name_the_expected_layout(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py"):
        load_dataset(config(tmp_path / "missing"))
    np.savez(tmp_path / "wrong.npz", images=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(DatasetNotFoundError, match="lacks arrays"):
        load_dataset(config(tmp_path / "wrong.npz"))
    write_npz(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        load_dataset(config(tmp_path / "c.npz", "val_fraction=0"))


def test_offline_without_local_copy_fails_fast_and_never_downloads(tmp_path, monkeypatch):
    import keras

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.keras/datasets cache
    monkeypatch.setenv("KERASCNN_DATA", str(tmp_path / "data"))  # no data-home copy
    monkeypatch.setattr(cifar10, "online", lambda url, timeout=3.0: False)
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", lambda: pytest.fail("tried to download"))
    with pytest.raises(DatasetNotFoundError, match="cannot reach"):
        load_dataset(resolve_config("cifar10"))


def test_unprepared_tfds_offline_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar10, "online", lambda url, timeout=3.0: False)
    with pytest.raises(DatasetNotFoundError, match="no prepared cifar10"):
        load_dataset(config(f"tfds:{tmp_path}"))


def test_image_size_resizes_both_splits(tmp_path):
    write_npz(tmp_path / "c.npz")
    splits = load_dataset(config(tmp_path / "c.npz", "image_size=48"))
    assert splits.input_shape == (48, 48, 3) and splits.test.x.shape[1:] == (48, 48, 3)
    assert splits.train.x.dtype == np.uint8


@pytest.mark.integration
def test_real_subset_sizes_and_classes():
    if not SUBSET.exists():
        pytest.skip(f"real CIFAR-10 subset not found at {SUBSET}")
    splits = load_dataset(config(SUBSET))
    assert len(splits.train.x) + len(splits.val.x) == 5170
    assert len(splits.test.x) == 1017
    assert splits.class_names == cifar10.CLASS_NAMES
    assert np.bincount(splits.val.y, minlength=10).min() > 0


def cli_json(*argv):
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(list(argv)) == 0
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_params_command_gives_the_assignment_counts():
    plain = cli_json("params", "cifar10", "--json")
    assert plain["total"] == 7_678_474 and plain["non_trainable"] == 0
    bn = cli_json("params", "cifar10_bn", "--json")
    assert bn["trainable"] == 7_678_474 + 2 * (128 + 4 * 512)  # gamma and beta per channel
    assert bn["non_trainable"] == 2 * (128 + 4 * 512)  # moving mean and variance


def test_study_definitions_are_valid_configs():
    from kerascnn.models import model_arguments

    for name in ("cifar10.batchnorm", "cifar10.early_stopping", "cifar10.augmentation", "cifar10.dropout",
                 "cifar10.transfer"):
        s = STUDIES[name]
        for _, overrides in s.variants:
            cfg = resolve_config(s.task, s.base + overrides)
            assert set(cfg.model_args) <= set(model_arguments(cfg.model))
            build_augmentation(cfg.augment)
    dropout = [resolve_config("cifar10_bn", STUDIES["cifar10.dropout"].base + o) for _, o in
               STUDIES["cifar10.dropout"].variants]
    assert [c.model_args["dropout"] for c in dropout] == pytest.approx(np.arange(0, 1, 0.1))
    assert all(c.augment == [] for c in dropout)
    assert resolve_config("cifar10", STUDIES["cifar10.early_stopping"].base).epochs == 50


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    from kerascnn.experiments import run_study

    root = tmp_path_factory.mktemp("cifar10_study")
    write_npz(root / "c.npz", n_train=60, n_more=0, n_test=20)
    result = run_study("cifar10.early_stopping", epochs=1, overrides=TINY_CONVNET, data_dir=str(root / "c.npz"),
                       out_root=str(root / "studies"), quiet=True)
    return root, result


def test_early_stopping_study_smoke_writes_best_vs_last_table(tiny_study):
    root, result = tiny_study
    study_dir = Path(result["study_dir"])
    assert (study_dir / "curves.png").stat().st_size > 0
    table = (study_dir / "table.md").read_text()
    assert "best_train_accuracy" in table and "last_val_accuracy" in table
    assert [r["variant"] for r in result["rows"]] == ["plain", "batch_norm"]
    assert all(r["epochs_run"] == 1 for r in result["rows"])


def test_filters_figure_before_and_after(tiny_study):
    from kerascnn import rundir
    from kerascnn.vis.commands import visualize

    root, result = tiny_study
    run = Path(result["study_dir"]) / "runs" / "batch_norm" / "seed0"
    written = visualize(str(run), kind="filters", out=str(root / "vis"), checkpoint="best")
    assert [p.name for p in written] == ["filters_best.png", "filters_initial_vs_best.png"]
    assert all(p.stat().st_size > 0 for p in written)
    initial = rundir.load_model(run, "initial").get_layer("block1_conv").get_weights()[0]
    trained = rundir.load_model(run, "best").get_layer("block1_conv").get_weights()[0]
    assert initial.shape == (3, 3, 3, 4) and not np.allclose(initial, trained)


def test_filter_grid_layout_and_scaling():
    from kerascnn.vis.filters import filter_grid, normalise_filters

    kernel = np.zeros((3, 3, 3, 128))
    kernel[0, 0, 0, 5] = -2.0
    kernel[1, 1, 2, 5] = 1.0
    images = normalise_filters(kernel)
    assert images.shape == (128, 3, 3, 3)
    assert images[5, 0, 0, 0] == 0.0 and images[5, 1, 1, 2] == 0.75 and images[5, 2, 2, 1] == 0.5
    assert np.all(images[0] == 0.5)  # an all-zero filter is plain grey
    grid = filter_grid(images, columns=16)
    assert grid.shape == (8 * 4 + 1, 16 * 4 + 1, 3)
    np.testing.assert_array_equal(grid[1:4, 1 + 5 * 4:4 + 5 * 4], images[5])


def test_transfer_table_adds_test_accuracy_and_names_the_backbone(tiny_study, monkeypatch):
    """The transfer hook on stand-in runs (a VGG study is too heavy for a unit test; the doc has a real one)."""
    from kerascnn import rundir
    from kerascnn.experiments.transfer import transfer_table

    post = transfer_table(test_accuracy=True)
    _, result = tiny_study
    run = Path(result["study_dir"]) / "runs" / "plain" / "seed0"
    cfg, metrics = rundir.load_config(run), rundir.read_json(run, "metrics.json")
    s = STUDIES["cifar10.transfer"]

    def results(weights):
        out = []
        for variant, overrides in s.variants:
            args = {"weights": weights, "train_backbone": "model.train_backbone=true" in overrides,
                    "pretrained": "model.pretrained=false" not in overrides}
            out.append({"variant": variant, "seed": 0, "cfg": cfg.replace(model_args=args), "run_dir": run,
                        "metrics": metrics})
        return out

    with pytest.warns(UserWarning, match="RANDOM weights"):
        table = post(s, run.parent, results(None), quiet=True)
    assert [r["backbone"] for r in table["rows"]] == ["random init, frozen", "random init, trained",
                                                      "random init, trained"]
    test_accuracy = cli_json("evaluate", str(run), "--split", "test", "--json")["accuracy"]
    assert all(r["test_accuracy"] == pytest.approx(test_accuracy) for r in table["rows"])
    assert "test_accuracy" in table["columns"]
    monkeypatch.setattr("kerascnn.evaluate.evaluate_run", lambda *a, **k: {"accuracy": 0.5})
    rows = post(s, run.parent, results("vgg11_bn.npz"), quiet=True)["rows"]
    assert [r["backbone"] for r in rows] == ["vgg11_bn.npz, frozen", "vgg11_bn.npz, trained", "random init, trained"]


def test_pretrained_false_ignores_the_weights_file(tmp_path):
    import keras

    from kerascnn.models import create_model

    source = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    source.save_weights(tmp_path / "vgg16.weights.h5")
    saved = source.get_layer("block1_conv1").get_weights()[0]
    kwargs = dict(backbone="vgg16", weights=str(tmp_path / "vgg16.weights.h5"), hidden=(8,))
    loaded = create_model("vgg_transfer", (32, 32, 3), 10, **kwargs)
    scratch = create_model("vgg_transfer", (32, 32, 3), 10, pretrained=False, **kwargs)
    np.testing.assert_array_equal(loaded.get_layer("block1_conv1").get_weights()[0], saved)
    assert not np.allclose(scratch.get_layer("block1_conv1").get_weights()[0], saved)
