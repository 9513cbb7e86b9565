"""Faces dataset, split, MLP, AlexNet feature cache and the faces tasks end to end (tiny, offline)."""
import hashlib
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kerascnn.data import faces, faces_alexnet
from kerascnn.models import create_model
from kerascnn.tasks import resolve_config

SHARED_FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"
PEOPLE = ("Alice_Able", "Bob_Baker", "Carol_Cole")


def make_crops(root, per_person=12, size=10):
    """One folder per person; each person's images share a colour, so they are learnable."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(PEOPLE):
        (root / name).mkdir(parents=True)
        base = np.zeros(3)
        base[k] = 200
        for i in range(per_person):
            pixels = np.clip(base + rng.normal(0, 25, (size + i % 3, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{100 + i}.png")
    return root


def tiny_config(task, tmp_path, *overrides):
    return resolve_config(task, ["tensorboard=false", f"cache_dir={tmp_path / 'cache'}", *overrides],
                          data_dir=str(tmp_path / "crops"))


# ---------------------------------------------------------------- split

def test_split_gives_70_per_person_and_divides_the_rest():
    labels = np.repeat([0, 1], [85, 100])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nobody is short: no warning
        train, val, test = faces.split_per_person(labels, ["a", "b"], seed=0)
    assert np.bincount(labels[train]).tolist() == [70, 70]
    assert np.bincount(labels[val]).tolist() == [7, 15]
    assert np.bincount(labels[test]).tolist() == [8, 15]
    everything = np.concatenate([train, val, test])
    assert sorted(everything.tolist()) == list(range(len(labels)))  # disjoint and complete


def test_split_warns_and_keeps_some_back_for_short_people():
    labels = np.repeat([0, 1, 2], [90, 60, 9])
    with pytest.warns(faces.FewImagesWarning, match=r"b \(60 images: 50 for training\), c \(9 images: 6"):
        train, val, test = faces.split_per_person(labels, ["a", "b", "c"], seed=0)
    assert np.bincount(labels[train]).tolist() == [70, 50, 6]
    assert np.bincount(labels[val], minlength=3).tolist() == [10, 5, 1]
    assert np.bincount(labels[test], minlength=3).tolist() == [10, 5, 2]


def test_the_cli_shows_a_data_warning_once_even_when_a_library_resets_the_filters():
    import warnings

    from kerascnn.quiet import warn_once

    def load_three_times(name):
        for _ in range(3):  # a search's trials, each loading the data after KerasTuner touched the filters
            faces.split_per_person(np.repeat([0, 1], [90, 40]), ["a", name], seed=0)
            warnings.filterwarnings("ignore", message="something else")

    with warnings.catch_warnings(record=True) as shown:
        warnings.resetwarnings()
        load_three_times("person_b")
        assert len(shown) == 3
        warn_once()
        load_three_times("person_c")
    assert [type(w.message) for w in shown[3:]] == [faces.FewImagesWarning]



def test_the_cli_prints_its_own_warnings_without_source_lines_and_others_as_python_does(monkeypatch):
    import warnings

    from kerascnn.quiet import plain_own_warnings

    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # restored after the test
    plain_own_warnings()
    own = warnings.formatwarning(faces.FewImagesWarning("fewer than 70 training images for: b"),
                                 faces.FewImagesWarning, faces.__file__, 90)
    other = warnings.formatwarning(UserWarning("from a library"), UserWarning, "lib.py", 7, line="x = 1")
    assert (own, other) == ("warning: fewer than 70 training images for: b\n",
                            "lib.py:7: UserWarning: from a library\n  x = 1\n")

def test_split_is_deterministic_in_the_split_seed():
    labels = np.repeat([0, 1], [80, 80])
    first = faces.split_per_person(labels, ["a", "b"], seed=3)
    again = faces.split_per_person(labels, ["a", "b"], seed=3)
    other = faces.split_per_person(labels, ["a", "b"], seed=4)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_split_rejects_a_person_with_too_few_images():
    with pytest.raises(ValueError, match="b has 2 image"):
        faces.split_per_person(np.array([0, 0, 0, 1, 1]), ["a", "b"], seed=0)


def test_load_grey_crops_at_the_recipe_size(tmp_path):
    make_crops(tmp_path / "crops")
    cfg = tiny_config("faces_mlp", tmp_path, "image_size=8", "grayscale=true")
    with pytest.warns(faces.FewImagesWarning, match="Alice_Able"):
        splits = faces.load(cfg)
    assert splits.class_names == list(PEOPLE)
    assert splits.train.x.shape == (3 * 8, 8, 8, 1) and splits.train.x.dtype == np.uint8
    assert len(splits.val.x) == len(splits.test.x) == 3 * 2
    assert faces.input_spec(cfg) == ((8, 8, 1), 3)
    assert not set(splits.train.files) & set(splits.test.files)


def test_missing_data_dir_explains_the_layout(tmp_path):
    cfg = resolve_config("faces_mlp", [], data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="kerascnn data faces fetch"):
        faces.load(cfg)


def test_to_grayscale_uses_luma_weights():
    x = np.array([[[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]]], dtype=np.uint8)
    assert faces.to_grayscale(x)[0, 0, :, 0].tolist() == [76, 150, 29, 255]


# ---------------------------------------------------------------- MLP

def test_mlp_is_flatten_relu_dense_softmax():
    model = create_model("mlp", (28, 28, 1), 12)
    hidden = model.get_layer("dense1")
    assert hidden.get_weights()[0].shape == (784, 300)
    assert hidden.activation.__name__ == "relu"
    assert model.output_shape == (None, 12)
    assert model.count_params() == 784 * 300 + 300 + 300 * 12 + 12
    wide = create_model("mlp", (28, 28, 3), 12, hidden=(800, 50), l2=1e-3)
    assert wide.get_layer("dense1").get_weights()[0].shape == (28 * 28 * 3, 800)
    assert wide.get_layer("dense2").get_weights()[0].shape == (800, 50)
    assert len(wide.losses) == 2  # the L2 penalty of each hidden kernel


def test_mlp_standardize_removes_brightness_and_contrast():
    import keras

    model = create_model("mlp", (4, 4, 1), 2, standardize=True)
    probe = keras.Model(model.input, model.get_layer("standardize").output)
    image = np.random.default_rng(0).uniform(0, 100, (1, 4, 4, 1)).astype(np.float32)
    np.testing.assert_allclose(probe(image), probe(image * 2 + 50), atol=1e-3)


# ---------------------------------------------------------------- a tiny run end to end

def test_tiny_mlp_run_tracks_test_and_draws_weights(tmp_path, capsys):
    from kerascnn import cli, rundir
    from kerascnn.train import train
    from kerascnn.vis.weights import NotPixelDenseError, dense_weights

    make_crops(tmp_path / "crops")
    cfg = tiny_config("faces_mlp", tmp_path, "image_size=8", "grayscale=true", "epochs=2", "batch_size=8",
                      "model.hidden=[6]")
    run = tmp_path / "run"
    with pytest.warns(faces.FewImagesWarning):
        train(cfg, run_dir=run, quiet=True)
    history = rundir.read_history(run)
    assert len(history) == 2
    # The tracked test figures are the last epoch's model on the test split, as evaluate computes them.
    from kerascnn.evaluate import evaluate_run

    tested = evaluate_run(run, split="test", checkpoint="last", out_dir=tmp_path / "eval")
    assert history[-1]["test_accuracy"] == pytest.approx(tested["accuracy"], abs=1e-6)
    assert history[-1]["test_loss"] == pytest.approx(tested["loss"], rel=1e-4)

    written = dense_weights(run, tmp_path / "vis", units=[0, 5])
    assert written[0].name == "dense_weights_best.png" and all(p.stat().st_size > 0 for p in written)
    assert [p.name for p in written[1:]] == ["dense1_unit0.png", "dense1_unit5.png"]
    with pytest.raises(ValueError, match="units \\[6\\] out of range"):
        dense_weights(run, tmp_path / "vis", checkpoint="best", units=[6])
    with pytest.raises(NotPixelDenseError, match="predictions has 6 inputs"):
        dense_weights(run, tmp_path / "vis", units=[0], layers=["predictions"])

    image = sorted((tmp_path / "crops" / "Bob_Baker").iterdir())[0]
    assert cli.main(["predict", str(run), str(image)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"{image}: ") and ", probability " in line
    assert line.split(": ")[1].split(" (class")[0] in PEOPLE


def test_the_weights_study_draws_each_variants_units_and_tables_them_relative_to_the_study(tmp_path):
    from kerascnn.experiments.runner import run_study

    make_crops(tmp_path / "crops")
    with pytest.warns(faces.FewImagesWarning):
        result = run_study("faces.weights", epochs=2, repeats=1, data_dir=str(tmp_path / "crops"),
                           out_root=tmp_path / "studies", quiet=True,
                           overrides=["image_size=8", "batch_size=8", "tensorboard=false",
                                      f"cache_dir={tmp_path / 'cache'}"])
    study_dir = Path(result["study_dir"])
    assert [row["variant"] for row in result["rows"]] == ["hidden300", "hidden800"]
    for row in result["rows"]:
        assert row["weights_png"] == f"weights_{row['variant']}.png"  # readable wherever the study is reported
        assert (study_dir / row["weights_png"]).stat().st_size > 0 and 0 <= row["test_accuracy"] <= 1
    assert "| weights_hidden300.png |" in (study_dir / "table.md").read_text()


def test_tiny_alexnet_finetune_run_and_guided_backprop(tmp_path):
    from kerascnn.train import train
    from kerascnn.vis.saliency import gradcam_kind, guided_backprop_kind

    make_crops(tmp_path / "crops", per_person=6)
    cfg = tiny_config("faces_alexnet_finetune", tmp_path, "image_size=64", "epochs=1", "batch_size=8",
                      "model.hidden=8", "augment=[]")
    run = tmp_path / "run"
    with pytest.warns(faces.FewImagesWarning):
        train(cfg, run_dir=run, quiet=True)
    image = sorted((tmp_path / "crops" / "Carol_Cole").iterdir())[0]
    options = dict(checkpoint="best", images=[str(image)], class_name="carol cole", split="val")
    written = guided_backprop_kind(run, tmp_path / "vis", **options)
    names = [p.name for p in written]
    assert names[0] == "guided_backprop.png"
    for kind in ("colour", "grey", "positive", "negative", "gradcam", "guided_gradcam"):
        assert f"{image.stem}_Carol_Cole_{kind}.png" in names
    options["layers"] = ["conv2", "conv5"]
    written = gradcam_kind(run, tmp_path / "vis", **options)
    assert [p.name for p in written[1:]] == [f"{image.stem}_Carol_Cole_gradcam_conv2.png",
                                            f"{image.stem}_Carol_Cole_gradcam_conv5.png"]
    options["class_name"] = "Dave"
    with pytest.raises(ValueError, match="not a class of this run"):
        gradcam_kind(run, tmp_path / "vis", **options)


# ---------------------------------------------------------------- AlexNet features

def test_alexnet_features_are_cached_and_keyed_by_weights(tmp_path, monkeypatch):
    make_crops(tmp_path / "crops", per_person=4)
    cfg = tiny_config("faces_alexnet_features", tmp_path, "image_size=64")
    with pytest.warns(faces.FewImagesWarning):
        first = faces_alexnet.load(cfg)
    assert first.train.x.shape[1:] == (3, 3, 256) == faces_alexnet.input_spec(cfg)[0]
    assert first.train.x.dtype == np.float32 and first.train.x.any()  # float16 tensors would need AVX-512 kernels
    cached = list((tmp_path / "cache").glob("faces_alexnet-conv4-64px-*.npy"))
    assert len(cached) == 1 and np.load(cached[0]).dtype == np.float16  # half the bytes on disk

    def no_alexnet(*args, **kwargs):
        raise AssertionError("the features should come from the cache")

    monkeypatch.setattr(faces_alexnet, "compute_features", no_alexnet)
    with pytest.warns(faces.FewImagesWarning):
        second = faces_alexnet.load(cfg)
    np.testing.assert_array_equal(first.train.x, second.train.x)
    images = faces.load_images(cfg).x
    other_seed = cfg.replace(seed=1)
    assert faces_alexnet.feature_cache_path(other_seed, images) != faces_alexnet.feature_cache_path(cfg, images)


def test_alexnet_features_use_the_weights_file(tmp_path):
    make_crops(tmp_path / "crops", per_person=4)
    rng = np.random.default_rng(0)
    shapes = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
    state = {}
    for k, shape in shapes.items():
        state[f"features.{k}.weight"] = rng.normal(0, 0.02, shape).astype(np.float32)
        state[f"features.{k}.bias"] = np.full(shape[0], 0.01, np.float32)
    np.savez(tmp_path / "alexnet.npz", **state)
    cfg = tiny_config("faces_alexnet_features", tmp_path, "image_size=64", f"feature_weights={tmp_path / 'alexnet.npz'}",
                      "feature_layer=conv1")
    extractor = faces_alexnet.build_extractor(cfg, (64, 64, 3))
    np.testing.assert_array_equal(extractor.get_layer("conv1").get_weights()[0],
                                  state["features.0.weight"].transpose(2, 3, 1, 0))
    images = faces.load_images(cfg).x
    random_cfg = cfg.replace(feature_weights=None)
    assert faces_alexnet.feature_cache_path(cfg, images) != faces_alexnet.feature_cache_path(random_cfg, images)
    with pytest.raises(ValueError, match="need RGB"):
        faces_alexnet.load(cfg.replace(grayscale=True))


# ---------------------------------------------------------------- the fetch command's wiring

def test_fetch_command_from_dir_and_its_exit_status(tmp_path, capsys):
    from kerascnn import cli

    original = tmp_path / "originals" / "x.png"
    original.parent.mkdir()
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(original)
    digest = hashlib.sha256(original.read_bytes()).hexdigest()
    lists = tmp_path / "list.txt"
    lists.write_text(f"Ann Lee\t7\t70\thttp://127.0.0.1:9/x.png\t2,3,12,15\t{digest}\n")
    out = tmp_path / "crops"
    cli.main(["data", "faces", "fetch", "--lists", str(lists), "--from-dir", str(original.parent),
              "--out", str(out), "--no-progress"])
    assert re.search(r"^kept\s+1$", capsys.readouterr().out, re.MULTILINE)
    assert Image.open(out / "Ann_Lee" / "70.jpg").size == (10, 12)
    with pytest.raises(SystemExit) as failed:
        cli.main(["data", "faces", "fetch", "--lists", str(tmp_path / "absent.txt"), "--out", str(out)])
    assert failed.value.code == 2


# ---------------------------------------------------------------- the real crops

@pytest.mark.integration
def test_real_crops_split_sizes(tmp_path):
    if not (SHARED_FACES / "crops").is_dir():
        pytest.skip(f"real faces crops not found at {SHARED_FACES / 'crops'}")
    cfg = resolve_config("faces_mlp", [f"cache_dir={tmp_path}"], data_dir=str(SHARED_FACES / "crops"))
    with pytest.warns(faces.FewImagesWarning, match=r"Peri_Gilpin \(60 images: 50 for training\)$"):
        splits = faces.load(cfg)
    assert splits.num_classes == 12
    assert len(splits.train.x) == 11 * 70 + 50
    assert len(splits.train.x) + len(splits.val.x) + len(splits.test.x) == 1353
    assert splits.train.x.shape[1:] == (28, 28, 3)
