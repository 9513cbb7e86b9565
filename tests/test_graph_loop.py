"""The graph training loop (train_loop=graph): same results as model.fit, however an epoch is split."""
import keras
import numpy as np
import pytest

from kerascnn.speedups import graph_loop
from kerascnn.config import Config, ConfigError
from kerascnn.data.pipeline import make_dataset
from kerascnn.speedups.graph_loop import GraphLoop, use_graph_loop
from kerascnn.tasks import resolve_config
from kerascnn.train import compile_model


def colour_data(n, seed):
    """uint8 16x16 images whose class (of 3) is the dominant channel."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 60, (n, 16, 16, 3), dtype=np.uint8)
    x[np.arange(n), :, :, y] += 150
    return x, y


def small_model(learning_rate=1e-2, **recipe):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    h = keras.layers.Rescaling(1 / 255)(inputs)
    h = keras.layers.Conv2D(4, 3, activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(h))
    compile_model(model, Config(learning_rate=learning_rate, **recipe))
    return model


class EpochLogs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs, self.calls = [], 0

    def on_train_batch_end(self, batch, logs=None):
        self.calls += 1

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(dict(logs))


def assert_same_training(a_model, a_logs, b_model, b_logs):
    for wa, wb in zip(a_model.get_weights(), b_model.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-5)
    assert len(a_logs) == len(b_logs)
    for ra, rb in zip(a_logs, b_logs):
        assert set(ra) == set(rb) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        for key in ra:
            assert ra[key] == pytest.approx(rb[key], rel=1e-4, abs=1e-5), key


def test_trains_like_model_fit():
    # One batch per epoch, so fit's tf.data shuffle and the loop's own visit the same images.
    train, val = colour_data(48, 0), colour_data(20, 1)
    fitted, fit_logs = small_model(), EpochLogs()
    fitted.fit(make_dataset(*train, 3, 64, training=True), validation_data=make_dataset(*val, 3, 64),
               epochs=4, verbose=0, callbacks=[fit_logs])
    looped, loop_logs = small_model(), EpochLogs()
    GraphLoop(looped, train, val, 3, 64).fit([loop_logs], epochs=4, verbose=0)
    assert_same_training(fitted, fit_logs.epochs, looped, loop_logs.epochs)
    assert loop_logs.epochs[-1]["loss"] < loop_logs.epochs[0]["loss"]


def compiled_state(model):
    """Metric variables by path, optimizer variables by shape (their paths carry unique layer numbers)."""
    return (sorted(v.path for v in model.metrics_variables),
            sorted((tuple(v.shape), str(v.dtype)) for v in model.optimizer.variables))


@pytest.mark.parametrize("recipe", [{}, {"ema": 0.5, "label_smoothing": 0.1}])
def test_compiled_state_is_built_as_keras_builds_it(recipe):
    # The loop builds the loss, metrics and optimizer state from the model's symbolic outputs instead of
    # Keras's symbolic forward pass: the same variables, so the same training (test above).
    batch = (np.zeros((1, 16, 16, 3), np.uint8), np.eye(3, dtype=np.float32)[:1])
    ours, keras_own = small_model(**recipe), small_model(**recipe)
    graph_loop.build_compiled_state(ours, batch)
    keras_own._symbolic_build(data_batch=batch)
    assert compiled_state(ours) == compiled_state(keras_own)
    assert all(compiled_state(ours))
    assert ours.optimizer.built and ours._compile_metrics.built and ours._compile_loss.built


def test_weight_averaging_validates_like_model_fit():
    # Keras's EMA swap acts in on_test_begin, so the loop validates in a call of its own, after the swap.
    train, val = colour_data(48, 0), colour_data(20, 1)
    fitted, fit_logs = small_model(ema=0.5), EpochLogs()
    fitted.fit(make_dataset(*train, 3, 64, training=True), validation_data=make_dataset(*val, 3, 64), epochs=3,
               verbose=0, callbacks=[keras.callbacks.SwapEMAWeights(swap_on_epoch=True), fit_logs])
    looped, loop_logs = small_model(ema=0.5), EpochLogs()
    GraphLoop(looped, train, val, 3, 64).fit([keras.callbacks.SwapEMAWeights(swap_on_epoch=True), loop_logs],
                                             epochs=3, verbose=0)
    assert_same_training(fitted, fit_logs.epochs, looped, loop_logs.epochs)


def test_an_epoch_split_over_many_calls_trains_as_one_call(monkeypatch):
    train, val = colour_data(60, 0), colour_data(20, 1)
    whole, whole_logs = small_model(), EpochLogs()
    GraphLoop(whole, train, val, 3, 8).fit([whole_logs], epochs=3, verbose=0)
    monkeypatch.setattr(graph_loop, "CALL_SECONDS", 0.0)  # every call one batch, as a slow model gets
    split, split_logs = small_model(), EpochLogs()
    GraphLoop(split, train, val, 3, 8).fit([split_logs], epochs=3, verbose=0)
    assert split_logs.calls == 3 * 8 and whole_logs.calls < split_logs.calls
    assert_same_training(whole, whole_logs.epochs, split, split_logs.epochs)


def test_validation_is_prepared_beside_training_and_its_errors_surface(monkeypatch):
    train, val = colour_data(48, 0), colour_data(20, 1)

    def broken(self):
        raise RuntimeError("tracing failed")

    monkeypatch.setattr(GraphLoop, "_prepare_evaluation", broken)
    with pytest.raises(RuntimeError, match="tracing failed"):
        GraphLoop(small_model(), train, val, 3, 16).fit([], epochs=2, verbose=0)


def test_scoring_runs_in_batches_of_its_own_size_with_the_same_metrics():
    import tensorflow as tf

    train, val = colour_data(40, 0), colour_data(37, 2)
    scores = {}
    for eval_batch_size, batches in [(None, 5), (32, 2)]:  # 37 images: 5 batches of 8, or 2 of 32
        model = small_model()
        executed = tf.Variable(0)
        test_step = model.test_step

        def counting_test_step(data, test_step=test_step, executed=executed):
            executed.assign_add(1)
            return test_step(data)

        model.test_step = counting_test_step
        loop = GraphLoop(model, train, val, 3, 8, eval_batch_size=eval_batch_size)
        loop.fit([], epochs=1, verbose=0)
        executed.assign(0)
        scores[eval_batch_size] = loop.evaluate(*val)
        assert int(executed.numpy()) == batches
    assert scores[32] == pytest.approx(scores[None], rel=1e-5)


@pytest.mark.parametrize("batch_size, eval_batch_size, scored", [
    (32, 0, 128), (128, 0, 256), (200, 0, 256), (300, 0, 300), (32, 50, 50)])
def test_the_scoring_batch_is_four_training_batches_up_to_256_unless_set(batch_size, eval_batch_size, scored):
    from kerascnn.loops import evaluation_batch_size

    assert evaluation_batch_size(Config(batch_size=batch_size, eval_batch_size=eval_batch_size)) == scored


def test_evaluate_matches_keras_evaluate():
    train, other = colour_data(40, 0), colour_data(37, 2)  # 37: the last batch is partial
    model = small_model()
    loop = GraphLoop(model, train, other, 3, 16)
    loop.fit([], epochs=2, verbose=0)
    ours = loop.evaluate(*other)
    loss, accuracy = model.evaluate(make_dataset(*other, 3, 16), verbose=0)
    assert ours == pytest.approx({"loss": loss, "accuracy": accuracy}, rel=1e-5)


def test_augmentation_runs_inside_the_loop():
    # An augmentation that blanks every image leaves nothing to learn from: training accuracy stays near
    # chance while validation images (never augmented) are still seen.
    train, val = colour_data(96, 0), colour_data(30, 1)
    blank = keras.layers.Lambda(lambda images: images * 0.0)
    logs = EpochLogs()
    GraphLoop(small_model(3e-2), train, val, 3, 32, augmentation=blank).fit([logs], epochs=6, verbose=0)
    assert logs.epochs[-1]["accuracy"] < 0.6
    plain = EpochLogs()
    GraphLoop(small_model(3e-2), train, val, 3, 32).fit([plain], epochs=6, verbose=0)
    assert plain.epochs[-1]["accuracy"] > 0.9


def test_train_loop_choice(tmp_path):
    def cfg(*sets):
        return resolve_config("artists", ["tensorboard=false", *sets], data_dir=str(tmp_path))

    assert use_graph_loop(cfg())
    assert use_graph_loop(cfg("train_loop=graph"))
    assert not use_graph_loop(cfg("train_loop=fit"))
    assert not use_graph_loop(cfg("distribute=true"))
    assert not use_graph_loop(cfg("input_pipeline=numpy"))
    with pytest.raises(ValueError, match="distribute=true.*train_loop=auto or fit"):
        use_graph_loop(cfg("train_loop=graph", "distribute=true"))
    with pytest.raises(ConfigError, match="auto, graph, fit"):
        cfg("train_loop=eager")
    # train() refuses before writing anything, so no half-made run directory is left behind.
    from kerascnn.train import train

    with pytest.raises(ValueError, match="train_loop=graph cannot run here"):
        train(cfg("train_loop=graph", "jit_compile=true"), run_dir=tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()
