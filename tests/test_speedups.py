"""The speed-ups' guards: an untested release or a missing internal puts training on stock Keras, with one
warning that says why, and the run ends where the speed-up's run ends."""
import warnings

import keras
import numpy as np
import pytest

from kerascnn import rundir, speedups
from kerascnn.loops import FitLoop, make_loop
from kerascnn.speedups import conv_grad, ema, fused_adam, graph_loop
from kerascnn.tasks import resolve_config
from kerascnn.train import train

STOCK_RECIPE = ("train_loop=fit", "fused_adam=false", "fast_conv_grad=false")


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(speedups, "_warned", set())
    yield
    conv_grad.install(True)  # as a default run leaves it, whatever a test did


def recipe(data_dir, *overrides):
    # One batch per epoch: the graph loop's shuffle and tf.data's then visit the same images, so the
    # speed-ups and the stock path must end at the same weights up to float rounding.
    return resolve_config("artists", ["epochs=4", "batch_size=64", "learning_rate=3e-3", "tensorboard=false",
                                      *overrides], data_dir=str(data_dir))


def run(cfg, path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = train(cfg, run_dir=path, quiet=True)
    messages = [str(w.message) for w in caught if issubclass(w.category, speedups.SpeedupWarning)]
    return metrics, rundir.load_model(path, "last").get_weights(), messages


def assert_same_run(a, b):
    (metrics_a, weights_a, _), (metrics_b, weights_b, _) = a, b
    for wa, wb in zip(weights_a, weights_b):
        np.testing.assert_allclose(wa, wb, rtol=1e-3, atol=1e-4)
    assert metrics_a["epochs_run"] == metrics_b["epochs_run"]
    assert metrics_a["last"]["val_loss"] == pytest.approx(metrics_b["last"]["val_loss"], rel=1e-3, abs=1e-4)


@pytest.fixture(scope="module")
def speedup_run(tmp_path_factory):
    """The default run, every speed-up on: the reference the fallbacks are compared with."""
    from conftest import write_image_folder

    root = tmp_path_factory.mktemp("speedups")
    data = write_image_folder(root / "images")
    return data, run(recipe(data), root / "run")


def test_the_default_run_uses_every_speedup_without_a_warning(speedup_run):
    _, (_, _, messages) = speedup_run
    assert messages == []
    assert conv_grad.installed()


def test_an_untested_release_trains_on_stock_keras_with_the_same_result(speedup_run, tmp_path, monkeypatch):
    data, reference = speedup_run
    monkeypatch.setitem(speedups.TESTED, "keras", ((9, 0), (9, 0)))
    fallback = run(recipe(data), tmp_path / "fallback")
    messages = fallback[2]
    assert len(messages) == 3, messages  # one each: graph_loop, fast_conv_grad, fused_adam
    assert all(f"keras {keras.__version__} is not a release" in m for m in messages)
    assert not conv_grad.installed()
    assert_same_run(fallback, reference)
    # and it is exactly the stock path a recipe asks for
    stock = run(recipe(data, *STOCK_RECIPE), tmp_path / "stock")
    for wa, wb in zip(fallback[1], stock[1]):
        np.testing.assert_array_equal(wa, wb)


def test_the_version_check_can_be_skipped_to_try_a_new_release(monkeypatch):
    monkeypatch.setitem(speedups.TESTED, "keras", ((9, 0), (9, 0)))
    assert "not a release" in speedups.untested_versions()
    monkeypatch.setenv(speedups.ALLOW_UNTESTED, "1")
    assert speedups.untested_versions() is None


@pytest.mark.parametrize("module,name", [(graph_loop, "graph_loop"), (conv_grad, "fast_conv_grad"),
                                         (fused_adam, "fused_adam")])
def test_a_missing_internal_turns_that_speedup_off_alone(speedup_run, tmp_path, monkeypatch, module, name):
    data, reference = speedup_run
    monkeypatch.setattr(module, "INTERNALS", module.INTERNALS + (("keras", "NoSuchInternal"),))
    fallback = run(recipe(data), tmp_path / "fallback")
    assert fallback[2] == [f"{name} off: keras.NoSuchInternal is missing; training uses {module.STOCK}"]
    assert_same_run(fallback, reference)


def test_missing_compiled_state_or_adam_slots_fall_back(speedup_run, tmp_path, monkeypatch):
    data, reference = speedup_run
    monkeypatch.setattr(graph_loop, "COMPILED", graph_loop.COMPILED + ("_no_such_state",))
    monkeypatch.setattr(fused_adam, "SLOTS", fused_adam.SLOTS + ("_no_such_slots",))
    fused_adam.missing_slots.cache_clear()
    try:
        fallback = run(recipe(data), tmp_path / "fallback")
    finally:
        fused_adam.missing_slots.cache_clear()
    assert sorted(fallback[2]) == [
        "fused_adam off: keras.optimizers.Adam has no _no_such_slots; training uses Keras's own Adam update",
        "graph_loop off: a compiled keras.Model has no _no_such_state; training uses model.fit"]
    assert_same_run(fallback, reference)


def test_a_recipe_that_switches_speedups_off_says_so_once(speedup_run, tmp_path):
    data, reference = speedup_run
    first = run(recipe(data, *STOCK_RECIPE), tmp_path / "first")
    assert sorted(first[2]) == [
        "fast_conv_grad off: the recipe sets fast_conv_grad=false; training uses TensorFlow's own Conv2D gradients",
        "fused_adam off: the recipe sets fused_adam=false; training uses Keras's own Adam update",
        "graph_loop off: the recipe sets train_loop=fit; training uses model.fit"]
    assert run(recipe(data, *STOCK_RECIPE), tmp_path / "second")[2] == []
    assert_same_run(first, reference)


def test_make_loop_gives_fit_where_the_graph_loop_does_not_apply(speedup_run):
    data, _ = speedup_run
    from kerascnn.data import load_dataset
    from kerascnn.train import build_model, compile_model

    cfg = recipe(data, "input_pipeline=numpy")
    splits = load_dataset(cfg)
    model = build_model(cfg, splits.input_shape, splits.num_classes)
    compile_model(model, cfg)
    loop = make_loop(model, cfg, splits)
    assert isinstance(loop, FitLoop)
    logs = loop.evaluate(splits.val.x, splits.val.y)
    assert set(logs) == {"loss", "accuracy"} and 0 <= logs["accuracy"] <= 1


def test_resuming_an_averaged_run_needs_keras_ema_flag(monkeypatch):
    assert ema.averaged_weights_callback(resumed=True)._ema_weights_in_model
    monkeypatch.setattr(ema, "FLAG", "_no_such_flag")
    ema.averaged_weights_callback(resumed=False)  # a fresh run needs no flag
    with pytest.raises(ema.ResumeError, match="cannot resume a run with ema on this Keras.*_no_such_flag"):
        ema.averaged_weights_callback(resumed=True)
