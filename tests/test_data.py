"""The shared image-folder loader: real data, broken files, colour modes, layouts, cache, split."""
import warnings

import numpy as np
import pytest
from PIL import Image

from conftest import shared_data
from kerascnn.data import images
from kerascnn.data.images import (CorruptImageWarning, DatasetNotFoundError, EmptyClassWarning, load_image_folder,
                                  stratified_split)


def load(root, tmp_path, size=(16, 16)):
    return load_image_folder(root, size, cache_dir=tmp_path / "cache", name="t", layout_help="LAYOUT HELP")


def test_loads_classes_in_sorted_order_as_uint8(image_folder, tmp_path):
    data = load(image_folder, tmp_path)
    assert data.class_names == ["class_0", "class_1", "class_2"]
    assert data.x.shape == (36, 16, 16, 3) and data.x.dtype == np.uint8
    assert np.bincount(data.y).tolist() == [12, 12, 12]


def test_corrupt_files_are_skipped_and_named(image_folder, tmp_path):
    (image_folder / "class_1" / "broken.jpg").write_bytes(b"not a jpeg at all")
    good = image_folder / "class_2" / "img_000.png"
    (image_folder / "class_2" / "truncated.png").write_bytes(good.read_bytes()[:60])
    with pytest.warns(CorruptImageWarning) as record:
        data = load(image_folder, tmp_path)
    message = str(record[0].message)
    assert "broken.jpg" in message and "truncated.png" in message and "skipped 2" in message
    assert len(data.x) == 36
    with pytest.warns(CorruptImageWarning, match="broken.jpg"):  # still named when read from the cache
        load(image_folder, tmp_path)


def test_grey_palette_and_alpha_images_become_rgb(tmp_path):
    root = tmp_path / "modes" / "only"
    root.mkdir(parents=True)
    Image.new("L", (20, 10), 128).save(root / "grey.png")
    Image.new("P", (20, 10), 3).save(root / "palette.gif")
    rgba = Image.new("RGBA", (20, 10), (255, 0, 0, 0))
    rgba.save(root / "transparent.png")
    Image.new("RGB", (30, 30), (0, 255, 0)).save(root / "photo.jpg")
    data = load(root.parent, tmp_path, size=(8, 8))
    assert data.x.shape == (4, 8, 8, 3)
    by_name = dict(zip(data.files, data.x))
    assert (by_name["only/grey.png"] == 128).all()
    assert (by_name["only/transparent.png"] == 255).all()  # fully transparent -> white background
    assert by_name["only/photo.jpg"][..., 1].min() > 200


def test_missing_directory_names_path_and_layout(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="LAYOUT HELP") as err:
        load(tmp_path / "nowhere", tmp_path)
    assert str(tmp_path / "nowhere") in str(err.value)


def test_flat_folder_is_a_layout_error(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "a.png")
    with pytest.raises(DatasetNotFoundError, match="found 1 images directly in it"):
        load(flat, tmp_path)


def test_empty_class_folder_is_named_in_a_warning_and_by_data_info(image_folder, tmp_path, capsys):
    import json

    from kerascnn.cli import main

    (image_folder / "class_3").mkdir()
    (image_folder / "class_3" / "notes.txt").write_text("not an image")
    with pytest.warns(EmptyClassWarning) as record:
        data = load(image_folder, tmp_path)
    message = str(record[0].message)
    assert "class_3" in message and str(image_folder) in message and "3 classes have images" in message
    assert data.class_names == ["class_0", "class_1", "class_2"] and data.empty_classes == ["class_3"]
    with pytest.warns(EmptyClassWarning, match="class_3"):  # also when the images come from the cache
        assert load(image_folder, tmp_path).empty_classes == ["class_3"]

    with pytest.warns(EmptyClassWarning):
        assert main(["data", "info", "artists", "--data-dir", str(image_folder)]) == 0
    assert "class folders without images: class_3" in capsys.readouterr().out
    with pytest.warns(EmptyClassWarning):
        assert main(["data", "info", "artists", "--data-dir", str(image_folder), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["empty_classes"] == ["class_3"] and len(payload["class_names"]) == 3


def test_cache_is_reused_and_invalidated_by_changes(image_folder, tmp_path, monkeypatch):
    load(image_folder, tmp_path)
    calls = []
    real = images.decode_many
    monkeypatch.setattr(images, "decode_many", lambda *a, **k: calls.append(1) or real(*a, **k))
    load(image_folder, tmp_path)
    assert calls == []
    Image.new("RGB", (8, 8)).save(image_folder / "class_0" / "new.png")
    assert len(load(image_folder, tmp_path).x) == 37
    assert calls == [1]


def test_stratified_split_is_deterministic_and_balanced():
    labels = np.repeat(np.arange(4), [10, 20, 30, 5])
    keep, held = stratified_split(labels, 0.2, seed=3)
    keep2, held2 = stratified_split(labels, 0.2, seed=3)
    assert (held == held2).all() and (keep == keep2).all()
    assert np.bincount(labels[held]).tolist() == [2, 4, 6, 1]
    assert len(np.intersect1d(keep, held)) == 0 and len(keep) + len(held) == len(labels)
    assert not np.array_equal(stratified_split(labels, 0.2, seed=4)[1], held)


@pytest.mark.integration
def test_real_artists_data(tmp_path):
    from kerascnn.data.artists import load as load_artists
    from kerascnn.tasks import resolve_config

    cfg = resolve_config("artists", data_dir=str(shared_data("artists")), cache_dir=str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptImageWarning)
        splits = load_artists(cfg)
    assert splits.num_classes == 11 and splits.class_names[0] == "Canaletto"
    assert len(splits.train.x) + len(splits.val.x) == 451
    assert splits.train.x.shape[1:] == (50, 50, 3)
    assert abs(len(splits.val.x) / 451 - 0.2) < 0.02


def test_every_registered_dataset_loads_and_states_its_input_spec():
    # The CLI, the benchmark and the reproduce plan size a task's model from input_spec alone.
    from kerascnn.data import available_datasets, dataset_module

    for name in available_datasets():
        module = dataset_module(name)
        assert callable(module.load) and callable(module.input_spec), name
