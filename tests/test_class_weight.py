"""class_weight=balanced: sklearn's weights, applied to training on both loops and not to validation."""
import contextlib
import types

import numpy as np
import pytest

from kerascnn.config import ConfigError
from kerascnn.data.pipeline import make_dataset
from kerascnn.loops import FitLoop, balanced_class_weights, make_loop
from kerascnn.speedups.graph_loop import GraphLoop
from kerascnn.tasks import resolve_config
from test_graph_loop import EpochLogs, assert_same_training, small_model


def imbalanced(n, seed):
    """Images like colour_data's (the class is the dominant channel), class 0 six times as common as 1 or 2."""
    y = np.where(np.arange(n) % 8 < 6, 0, 1 + np.arange(n) % 2)
    x = np.random.default_rng(seed).integers(0, 60, (n, 16, 16, 3), dtype=np.uint8)
    x[np.arange(n), :, :, y] += 150
    return x, y


def test_balanced_weights_are_sklearns():
    from sklearn.utils.class_weight import compute_class_weight

    y = imbalanced(48, 0)[1]
    np.testing.assert_allclose(balanced_class_weights(y, 3), compute_class_weight("balanced", classes=np.arange(3), y=y))
    assert balanced_class_weights(np.array([0, 0, 2]), 3)[1] == 1.0  # an absent class: any weight, none uses it


def test_bogus_class_weight_is_a_config_error():
    with pytest.raises(ConfigError, match="class_weight"):
        resolve_config("artists", ["class_weight=bogus"])
    assert resolve_config("artists", ["class_weight=balanced"]).class_weight == "balanced"


def per_image_losses(model, x, y):
    probs = np.asarray(model.predict_on_batch(x.astype("float32")))
    return -np.log(probs[np.arange(len(y)), y])


@pytest.mark.parametrize("loop", ["graph", "fit"])
def test_balanced_first_step_loss_is_the_class_weighted_mean(loop):
    # One batch per epoch: epoch 1's training loss is the loss of the initial weights on the whole split.
    train, val = imbalanced(48, 0), imbalanced(16, 1)
    weights = balanced_class_weights(train[1], 3)
    losses = per_image_losses(small_model(), *train)
    logs = {}
    for name, cw in (("plain", None), ("balanced", weights)):
        model, epoch_logs = small_model(), EpochLogs()
        if loop == "graph":
            GraphLoop(model, train, val, 3, 64, class_weights=cw).fit([epoch_logs], epochs=1, verbose=0)
        else:
            model.fit(make_dataset(*train, 3, 64, training=True), validation_data=make_dataset(*val, 3, 64),
                      epochs=1, verbose=0, callbacks=[epoch_logs],
                      class_weight=None if cw is None else dict(enumerate(cw)))
        logs[name] = epoch_logs.epochs[0]
    assert logs["plain"]["loss"] == pytest.approx(losses.mean(), rel=1e-4)
    assert logs["balanced"]["loss"] == pytest.approx((weights[train[1]] * losses).mean(), rel=1e-4)
    assert logs["balanced"]["loss"] != pytest.approx(logs["plain"]["loss"], rel=1e-3)


def test_graph_loop_trains_like_fit_with_class_weights():
    train, val = imbalanced(48, 0), imbalanced(20, 1)
    weights = balanced_class_weights(train[1], 3)
    fitted, fit_logs = small_model(), EpochLogs()
    fitted.fit(make_dataset(*train, 3, 64, training=True), validation_data=make_dataset(*val, 3, 64), epochs=1,
               verbose=0, callbacks=[fit_logs], class_weight=dict(enumerate(weights)))
    looped, loop_logs = small_model(), EpochLogs()
    GraphLoop(looped, train, val, 3, 64, class_weights=weights).fit([loop_logs], epochs=1, verbose=0)
    assert_same_training(fitted, fit_logs.epochs, looped, loop_logs.epochs)
    # Validation is unweighted: the reported val_loss is the plain mean over the validation images.
    assert loop_logs.epochs[0]["val_loss"] == pytest.approx(per_image_losses(looped, *val).mean(), rel=1e-4)


@pytest.mark.filterwarnings("ignore:graph_loop off")
@pytest.mark.parametrize("train_loop", ["graph", "fit"])
def test_make_loop_passes_the_recipes_weights(train_loop):
    train, val = imbalanced(48, 0), imbalanced(16, 1)
    split = lambda x, y: types.SimpleNamespace(x=x, y=y)  # noqa: E731
    splits = types.SimpleNamespace(train=split(*train), val=split(*val), num_classes=3)
    cfg = resolve_config("artists", ["class_weight=balanced", f"train_loop={train_loop}", "batch_size=64",
                                     "tensorboard=false"])
    loop = make_loop(small_model(), cfg, splits, scope=contextlib.nullcontext)
    expected = balanced_class_weights(train[1], 3)
    if train_loop == "fit":
        assert isinstance(loop, FitLoop) and loop.class_weight == pytest.approx(dict(enumerate(expected)))
    else:
        assert isinstance(loop, GraphLoop)
        np.testing.assert_allclose(loop.class_weights.numpy(), expected, rtol=1e-6)
    plain = make_loop(small_model(), cfg.replace(class_weight="none"), splits,
                      scope=contextlib.nullcontext)
    assert (plain.class_weight if train_loop == "fit" else plain.class_weights) is None
