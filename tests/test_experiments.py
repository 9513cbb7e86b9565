"""The study runner (variants, repeats, resume, tables), the artists studies and the robustness hook."""
import csv
import json

import numpy as np
import pytest

from conftest import hparams_of, shared_data, write_image_folder
from kerascnn.cli import main
from kerascnn.experiments import STUDIES, Study, run_study
from kerascnn.experiments import robustness
from kerascnn.experiments.runner import COLUMNS

ARTISTS_STUDIES = {"artists.pooling", "artists.dropout", "artists.optimizers", "artists.early_stopping",
                   "artists.lr_schedules", "artists.architecture", "artists.robustness"}
TINY = ["epochs=1", "batch_size=16", "tensorboard=false"]
TINY_HPARAMS = {"epochs": "1", "batch_size": "16", "tensorboard": "false"}


@pytest.fixture
def tiny_data(tmp_path):
    return write_image_folder(tmp_path / "data", classes=3, per_class=10, size=50)


@pytest.fixture
def register(monkeypatch):
    """Register a throwaway study for one test."""
    def add(name, variants, **kwargs):
        monkeypatch.setitem(STUDIES, name, Study(name, "artists", "a test study", variants, TINY, **kwargs))
        return STUDIES[name]
    return add


def test_list_names_all_seven_artists_studies(capsys):
    assert main(["experiment", "--list", "--json"]) == 0
    listed = {row["study"] for row in json.loads(capsys.readouterr().out.strip().splitlines()[-1])}
    assert ARTISTS_STUDIES <= listed


@pytest.mark.parametrize("name", sorted(ARTISTS_STUDIES))
def test_every_artists_variant_builds_at_50x50(name):
    from kerascnn.tasks import resolve_config
    from kerascnn.train import build_model

    study = STUDIES[name]
    for variant, overrides in study.variants:
        cfg = resolve_config(study.task, study.base + overrides)
        model = build_model(cfg, (50, 50, 3), 11)
        assert tuple(model.output.shape) == (None, 11), variant


def test_variants_repeats_table_sweep_and_resume(tiny_data, tmp_path, register, monkeypatch):
    register("t.runner", [("p0", ["model.dropout=0.0"]), ("p5", ["model.dropout=0.5"])], sweep="model.dropout")
    result = run_study("t.runner", repeats=2, data_dir=str(tiny_data), out_root=tmp_path, quiet=True)
    study_dir = tmp_path / "t.runner"
    assert sorted(p.relative_to(study_dir / "runs").as_posix() for p in (study_dir / "runs").glob("*/*")) == \
        ["p0/seed0", "p0/seed1", "p5/seed0", "p5/seed1"]
    with open(study_dir / "table.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["variant"] for r in rows] == ["p0", "p5"]
    assert set(COLUMNS) | {"val_accuracy_std", "train_accuracy_std", "seeds", "model.dropout"} <= set(rows[0])
    assert rows[0]["seeds"] == "2" and [r["model.dropout"] for r in result["rows"]] == [0.0, 0.5]
    seed_scores = [json.loads((study_dir / "runs" / "p0" / f"seed{k}" / "metrics.json").read_text())
                   ["best"]["val_accuracy"] for k in (0, 1)]
    assert float(rows[0]["val_accuracy"]) == pytest.approx(np.mean(seed_scores))
    markdown = (study_dir / "table.md").read_text()
    assert "| variant | train_accuracy | val_accuracy | verdict | best_epoch | epochs_run | seconds |" in markdown
    assert "| reference |" in markdown
    assert " ± " in markdown
    assert (study_dir / "curves.png").stat().st_size > 0 and (study_dir / "sweep.png").stat().st_size > 0
    records = sorted(p.name for p in (study_dir / "tensorboard").iterdir())
    assert records == ["p0_seed0", "p0_seed1", "p5_seed0", "p5_seed1"]
    assert hparams_of(study_dir / "tensorboard" / "p5_seed1") == {"variant": "p5", "seed": 1.0,
                                                                 "model.dropout": "0.5", **TINY_HPARAMS}

    import kerascnn.train

    def no_training(*args, **kwargs):
        raise AssertionError("a finished variant was trained again")

    monkeypatch.setattr(kerascnn.train, "train", no_training)
    first = (study_dir / "table.csv").read_text()
    run_study("t.runner", repeats=2, data_dir=str(tiny_data), out_root=tmp_path, quiet=True)
    assert (study_dir / "table.csv").read_text() == first


def test_ctrl_c_in_a_runs_last_epoch_stops_the_study_before_the_next_run(tiny_data, tmp_path, register,
                                                                        ctrl_c_in_each_runs_last_epoch):
    from kerascnn.interrupt import Interrupted

    trained = ctrl_c_in_each_runs_last_epoch
    register("t.stop", [("a", []), ("b", ["model.dropout=0.5"])])
    with pytest.raises(Interrupted, match="stopped before b seed 0, with 1 of 2 runs finished"):
        run_study("t.stop", data_dir=str(tiny_data), out_root=tmp_path, quiet=True)
    runs = tmp_path / "t.stop" / "runs"
    assert [p.name for p in runs.iterdir()] == ["a"] and len(trained) == 1
    result = run_study("t.stop", data_dir=str(tiny_data), out_root=tmp_path, quiet=True)  # the same call goes on
    assert [r["variant"] for r in result["rows"]] == ["a", "b"] and trained == [runs / "a" / "seed0",
                                                                                 runs / "b" / "seed0"]


def test_robustness_hook_tabulates_every_transformation(tiny_data, tmp_path, register):
    register("t.robust", [("plain", []), ("flipped", ["augment=[flip]"])],
             post=robustness.evaluate_transformed)
    result = run_study("t.robust", data_dir=str(tiny_data), out_root=tmp_path, quiet=True)
    rows = result["rows"]
    assert [(r["transformation"], r["strength"]) for r in rows] == [(t[0], t[2]) for t in robustness.TRANSFORMS]
    assert "| transformation | strength | plain_accuracy | flipped_accuracy |" in result["markdown"]
    for variant in ("plain", "flipped"):
        metrics = json.loads((tmp_path / "t.robust" / "runs" / variant / "seed0" / "metrics.json").read_text())
        assert rows[0][f"{variant}_accuracy"] == pytest.approx(metrics["best"]["val_accuracy"], abs=1e-6)
    for figure in ("robustness.png", "transformed_examples.png", "curves.png"):
        assert (tmp_path / "t.robust" / figure).stat().st_size > 0


def test_transformations_are_repeatable_and_change_the_images():
    images = np.random.default_rng(0).integers(0, 256, (4, 20, 20, 3)).astype(np.uint8)
    for name, strength, _, fn in robustness.TRANSFORMS[1:]:
        a = robustness.transform_images(images, fn, strength)
        assert a.shape == images.shape and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 255
        assert np.array_equal(a, robustness.transform_images(images, fn, strength)), name
        assert not np.allclose(a, images), name
    flipped = robustness.transform_images(images, robustness.hflip, 1)
    assert np.array_equal(robustness.transform_images(flipped, robustness.hflip, 1), images)


def test_identity_strengths_leave_geometry_unchanged():
    images = np.random.default_rng(1).integers(0, 256, (3, 16, 16, 3)).astype(np.float32)
    for fn, strength in ((robustness.rotation, 0.0), (robustness.scaling, 1.0), (robustness.translation, 0.0)):
        np.testing.assert_allclose(robustness.transform_images(images, fn, strength), images, atol=1e-3)


@pytest.mark.integration
def test_a_study_runs_on_the_real_artists(tmp_path, register):
    data = shared_data("artists")
    register("t.real", [("max_pooling", ["model.pooling=true"])])
    result = run_study("t.real", data_dir=str(data), out_root=tmp_path, quiet=True)
    assert result["rows"][0]["epochs_run"] == 1 and 0.0 <= result["rows"][0]["val_accuracy"] <= 1.0
    assert json.loads((tmp_path / "t.real" / "runs" / "max_pooling" / "seed0" / "metrics.json").read_text()
                      )["val_images"] == 91


def test_only_runs_the_named_variants_and_rejects_unknown_ones(tiny_data, tmp_path, register):
    register("t.only", [("a", []), ("b", ["model.dropout=0.5"]), ("c", ["model.dropout=0.2"])])
    result = run_study("t.only", data_dir=str(tiny_data), out_root=tmp_path, quiet=True, only=["c", "a"])
    assert [r["variant"] for r in result["rows"]] == ["a", "c"]
    assert sorted(p.name for p in (tmp_path / "t.only" / "runs").iterdir()) == ["a", "c"]
    with pytest.raises(ValueError, match="no variant zz; its variants: a, b, c"):
        run_study("t.only", data_dir=str(tiny_data), out_root=tmp_path, quiet=True, only=["zz"])


def test_a_difference_is_a_finding_only_beyond_the_seeds_spread():
    from kerascnn.experiments.runner import add_verdicts

    rows = [{"val_accuracy": 0.70, "val_accuracy_std": 0.01}, {"val_accuracy": 0.73, "val_accuracy_std": 0.01},
            {"val_accuracy": 0.715, "val_accuracy_std": 0.01}, {"val_accuracy": 0.60}, {"val_accuracy": 0.72}]
    assert add_verdicts(rows)
    assert [r["verdict"] for r in rows] == ["reference", "+0.0300, finding", "+0.0150, within noise",
                                            "-0.1000, one seed, no verdict", "+0.0200, one seed, no verdict, needs 2 seeds"]
    assert not add_verdicts(rows[:1])
