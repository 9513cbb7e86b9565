"""The SimpleCNN hypermodel (every sampled configuration builds at 50x50) and `kerascnn tune` end to end."""
import itertools
import json
import random

import keras_tuner
import pytest

from conftest import write_image_folder
from kerascnn.tasks import resolve_config
from tuning.hypermodels import (KERNELS, MAX_DEPTH, POOL_SIZES, STRIDES, SimpleCNNHyperModel, block_output,
                                fit_to_input, overrides_for, sample_space)


def random_hyperparameters(seed):
    """A HyperParameters object with every active value drawn at random, as a random-search oracle would."""
    hp = keras_tuner.HyperParameters()
    sample_space(hp)
    rng = random.Random(seed)
    for _ in range(2):  # a second pass fills values whose condition the first pass switched on
        for p in hp.space:
            if hp.is_active(p):
                hp.values[p.name] = p.random_sample(rng.randint(0, 2**31))
    return hp


def test_fit_to_input_keeps_every_map_at_least_one_pixel_for_all_stacks():
    rng = random.Random(0)
    for _ in range(3000):
        depth = rng.randint(1, MAX_DEPTH)
        kernels = [rng.choice(KERNELS) for _ in range(depth)]
        strides = [rng.choice(STRIDES) for _ in range(depth)]
        padding = rng.choice(["valid", "same"])
        pool = rng.choice((0,) + POOL_SIZES)
        plan = fit_to_input(50, kernels, strides, padding, pool)
        assert plan.sizes and min(plan.sizes) >= 1
        assert all(f <= s for f, s in zip(plan.strides, strides))
        size = 50
        for k, s, expected in zip(plan.kernels, plan.strides, plan.sizes):
            size = block_output(size, k, s, plan.padding, plan.pool_size)
            assert size == expected


def test_deepest_largest_stride_stack_keeps_all_five_layers():
    plan = fit_to_input(50, [7] * 5, [3] * 5, "valid", 3)
    assert len(plan.kernels) == 5 and min(plan.sizes) >= 1
    assert "padding valid->same" in plan.adjustments and "pool_size->2" in plan.adjustments


def test_feasible_stacks_are_left_alone():
    plan = fit_to_input(50, [5, 5], [2, 2], "valid", 0)
    assert (plan.strides, plan.padding, plan.sizes, plan.adjustments) == ([2, 2], "valid", [23, 10], [])


@pytest.fixture(scope="module")
def hypermodel():
    return SimpleCNNHyperModel(resolve_config("artists"), (50, 50, 3), 11)


def test_sampled_configurations_build_valid_models_at_50x50(hypermodel):
    deep = 0
    for seed in range(40):
        hp = random_hyperparameters(seed)
        model = hypermodel.build(hp)
        assert tuple(model.output.shape) == (None, 11)
        assert all(d >= 1 for d in model.get_layer("flatten").input.shape[1:])
        deep += hp.values["depth"] >= 4
    assert deep >= 5  # the sample did include deep stacks


@pytest.mark.parametrize("padding,pooling", itertools.product(["valid", "same"], ["none", "max"]))
def test_deep_stacks_with_large_strides_build(hypermodel, padding, pooling):
    hp = keras_tuner.HyperParameters()
    sample_space(hp)
    hp.values.update({"depth": MAX_DEPTH, "padding": padding, "pooling": pooling, "pool_size": 3})
    for i in range(1, MAX_DEPTH + 1):
        hp.values.update({f"filters_{i}": 16, f"kernel_{i}": 7, f"stride_{i}": 3})
    model = hypermodel.build(hp)
    assert tuple(model.output.shape) == (None, 11)
    assert len([layer for layer in model.layers if layer.name.startswith("conv")]) == MAX_DEPTH


def test_overrides_are_the_config_the_model_is_built_from(hypermodel):
    hp = random_hyperparameters(7)
    overrides, plan = overrides_for(sample_space(hp), 50)
    cfg = hypermodel.config_for(hp)
    assert cfg.model_args["strides"] == plan.strides and cfg.optimizer == hp.values["optimizer"]
    assert cfg.learning_rate == pytest.approx(hp.values["learning_rate"], rel=1e-5)
    assert resolve_config("artists", overrides).model_args == cfg.model_args


def test_non_simple_cnn_task_is_refused():
    cfg = resolve_config("artists").replace(model="lenet5", task="other")
    with pytest.raises(ValueError, match="simple_cnn"):
        SimpleCNNHyperModel(cfg, (50, 50, 3), 11)


def tune_args(data, out, **changes):
    args = dict(task="artists", tuner="random", max_epochs=1, max_trials=2, out=str(out), name="t",
                retrain_seeds=2, data_dir=str(data), verbose=0,
                overrides=["epochs=1", "batch_size=16", "tensorboard=false"])
    return {**args, **changes}


def test_search_tabulates_retrains_and_resumes(tmp_path, capsys):
    from tuning.search import run_search

    data = write_image_folder(tmp_path / "data", classes=3, per_class=8, size=50)
    progress = []
    result = run_search(**tune_args(data, tmp_path / "tuning", progress=progress.append))
    assert progress == [f"retraining the best configuration, seed {k}: {tmp_path / 'tuning' / 't' / 'retrain'}/seed{k}"
                        for k in (0, 1)]
    assert "text" not in result
    project = tmp_path / "tuning" / "t"
    assert result["trials_finished"] == 2 and len(result["top_trials"]) == 2
    assert (project / "top_trials.csv").read_text().startswith("rank,trial,val_accuracy")
    assert [r["seed"] for r in result["retrain"]] == [0, 1]
    for r in result["retrain"]:
        assert json.loads((tmp_path / r["run_dir"] / "metrics.json").read_text())["epochs_run"] == 1
    assert json.loads((project / "summary.json").read_text())["command"].startswith("kerascnn train --task artists")
    assert result["val_accuracy_std"] is not None

    again = run_search(**tune_args(data, tmp_path / "tuning"))  # resumes: nothing left to search or retrain
    assert again["trials_finished"] == 2 and again["retrain"] == result["retrain"]

    from kerascnn.cli import main

    assert main(["tune", "--task", "artists", "--tuner", "random", "--max-epochs", "1", "--max-trials", "2",
                 "--out", str(tmp_path / "tuning"), "--name", "t", "--retrain-seeds", "2", "--data-dir", str(data),
                 "--set", "epochs=1", "batch_size=16", "tensorboard=false", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["retrain"] == result["retrain"]
    text = payload["text"].splitlines()
    assert text[0].startswith("2 trials finished (random, ") and text[0].endswith("top 2:")
    assert text[-3] == "best configuration: " + " ".join(result["best_overrides"][3:])
    assert text[-2].startswith("retrained 2 seed(s) for 1 epochs: val accuracy ") and " ± " in text[-2]
    assert text[-1] == "reproduce: " + result["command"]


def test_spent_time_budget_starts_no_trial(tmp_path):
    from tuning.search import run_search

    data = write_image_folder(tmp_path / "data", classes=3, per_class=8, size=50)
    with pytest.raises(ValueError, match="no finished trials"):
        run_search(**tune_args(data, tmp_path / "tuning", time_budget=1e-9, tuner="hyperband"))
