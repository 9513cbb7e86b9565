"""The ``folder`` dataset and task: any image folder, in either layout, with clear errors for bad ones."""
import json
import shutil
import warnings

import pytest
from conftest import write_image_folder

from kerascnn.config import ConfigError
from kerascnn.data import load_dataset
from kerascnn.data.folder import FolderLayoutError
from kerascnn.data.images import EmptyClassWarning
from kerascnn.tasks import resolve_config

SMALL = ["image_size=32", "epochs=1", "batch_size=8", "tensorboard=false"]


def folder_config(root, *overrides):
    return resolve_config("folder", [*SMALL, *overrides], data_dir=str(root) if root else None)


def write_split_tree(root, classes=4, flat_test=True):
    """train/ and valid/ class folders, and a test/ folder either flat (unlabelled) or with class folders."""
    write_image_folder(root / "train", classes=classes, per_class=8, seed=0)
    write_image_folder(root / "valid", classes=classes, per_class=3, seed=1)
    if flat_test:
        write_image_folder(root / "_tmp_test", classes=1, per_class=5, seed=2)
        shutil.move(str(root / "_tmp_test" / "class_0"), root / "test")
        shutil.rmtree(root / "_tmp_test")
    else:
        write_image_folder(root / "test", classes=classes, per_class=2, seed=2)
    return root


def test_class_folders_train_end_to_end_with_the_class_count_from_the_data(tmp_path):
    from kerascnn.cli import main

    root = write_image_folder(tmp_path / "images", classes=4, per_class=10)
    run = tmp_path / "run"
    assert main(["train", "--task", "folder", "--data-dir", str(root), "--run-dir", str(run), "--quiet",
                 "--set", *SMALL]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["dataset"] == "folder" and cfg["model"] == "clipnet"
    splits = load_dataset(folder_config(root))
    assert splits.num_classes == 4 and splits.class_names == [f"class_{k}" for k in range(4)]
    assert len(splits.train.x) + len(splits.val.x) == 40
    assert sorted(set(splits.val.y)) == [0, 1, 2, 3]  # stratified: every class on both sides
    assert splits.test is None


def test_split_folders_with_simple_cnn_and_an_unlabelled_test_folder(tmp_path):
    from kerascnn.train import train

    root = write_split_tree(tmp_path / "images")
    cfg = folder_config(root, "model=simple_cnn", "model.filters=[8,16]")
    assert cfg.model == "simple_cnn" and cfg.model_args == {"filters": [8, 16]}
    metrics = train(cfg, run_dir=tmp_path / "run", quiet=True)
    assert metrics["epochs_run"] == 1
    splits = load_dataset(cfg)
    assert splits.num_classes == 4
    assert (len(splits.train.x), len(splits.val.x), len(splits.test.x)) == (32, 12, 5)
    assert (splits.test.y == -1).all()


def test_labelled_test_folders_and_numeric_class_order(tmp_path):
    root = tmp_path / "images"
    for split, n in (("train", 3), ("val", 2), ("test", 1)):
        for k in (0, 2, 10):
            write_image_folder(tmp_path / "tmp", classes=1, per_class=n, seed=k)
            shutil.move(str(tmp_path / "tmp" / "class_0"), root / split / str(k))
    splits = load_dataset(folder_config(root))
    assert splits.class_names == ["0", "2", "10"]
    assert sorted(splits.test.y) == [0, 1, 2]


def test_model_override_checks_model_args_against_the_new_model():
    cfg = resolve_config("artists_tuned", ["model=convnet"])
    assert cfg.model == "convnet" and cfg.model_args == {}  # artists_tuned's simple_cnn args are dropped
    assert resolve_config("artists_tuned", ["model.dropout=0.5"]).model_args["pooling"] is True
    with pytest.raises(ConfigError, match="for model 'simple_cnn'"):
        resolve_config("folder", ["model=simple_cnn", "model.stem_width=8"])
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        resolve_config("folder", ["model=nope"])


def test_models_command_lists_families_with_their_arguments(capsys):
    from kerascnn.cli import main

    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    by_name = {r["model"]: r["arguments"] for r in rows}
    assert {"clipnet", "simple_cnn"} <= set(by_name)
    assert by_name["simple_cnn"]["kernel_size"] == 5


def test_without_data_dir_the_error_names_the_layout():
    with pytest.raises(FileNotFoundError, match="(?s)needs --data-dir.*<data-dir>/<class>/"):
        load_dataset(folder_config(None))


def test_bad_layouts_fail_clearly(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(ValueError, match=f"no data directory at {missing}"):
        load_dataset(folder_config(missing))

    flat = tmp_path / "flat"
    write_image_folder(tmp_path / "tmp", classes=1, per_class=3)
    shutil.move(str(tmp_path / "tmp" / "class_0"), flat)
    with pytest.raises(ValueError, match="found 3 images directly in it and no class folders"):
        load_dataset(folder_config(flat))

    one = write_image_folder(tmp_path / "one", classes=1, per_class=3)
    with pytest.raises(ValueError, match="only one class folder"):
        load_dataset(folder_config(one))

    mixed = write_split_tree(tmp_path / "mixed", classes=2)
    write_image_folder(mixed, classes=1, per_class=2)
    with pytest.raises(ValueError, match=r"mixes layouts: class folders \['class_0'\]"):
        load_dataset(folder_config(mixed))

    no_valid = write_image_folder(tmp_path / "no_valid" / "train", classes=2, per_class=2).parent
    with pytest.raises(ValueError, match="has train/ but no valid/"):
        load_dataset(folder_config(no_valid))

    extra = write_split_tree(tmp_path / "extra", classes=2)
    write_image_folder(extra / "valid", classes=3, per_class=1)
    with pytest.raises(FolderLayoutError, match=r"class folders \['class_2'\] that train/ lacks"):
        load_dataset(folder_config(extra))


def test_empty_class_warns_and_an_error_when_fewer_than_two_classes_remain(tmp_path):
    root = write_image_folder(tmp_path / "images", classes=3, per_class=4)
    (root / "class_9").mkdir()
    with pytest.warns(EmptyClassWarning, match="class_9"):
        splits = load_dataset(folder_config(root))
    assert splits.num_classes == 3 and splits.empty_classes == ["class_9"]

    two = write_image_folder(tmp_path / "two", classes=1, per_class=4)
    (two / "empty").mkdir()
    with warnings.catch_warnings(), pytest.raises(ValueError, match="only one class folder.*empty hold no images"):
        warnings.simplefilter("ignore")
        load_dataset(folder_config(two))
