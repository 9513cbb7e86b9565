"""--set parsing, type checking and the errors a user sees."""
import pytest

from kerascnn.config import ConfigError
from kerascnn.tasks import resolve_config


def test_overrides_are_parsed_and_typed():
    cfg = resolve_config("artists", ["epochs=7", "learning_rate=1e-2", "mixed_precision=off",
                                     "augment=[flip,rotate:15]", "model.filters=[16,32,64]",
                                     "model.pooling=true", "model.dropout=0.25", "tensorboard=false",
                                     "data_dir=none"])
    assert cfg.epochs == 7 and cfg.learning_rate == 0.01 and cfg.tensorboard is False
    assert cfg.augment == ["flip", "rotate:15"]
    assert cfg.model_args == {"filters": [16, 32, 64], "pooling": True, "dropout": 0.25}
    assert cfg.data_dir is None


def test_int_accepted_where_float_expected_and_list_for_per_layer_ints():
    cfg = resolve_config("artists", ["learning_rate=1", "model.kernel_size=[5,3]"])
    assert cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float)
    assert cfg.model_args["kernel_size"] == [5, 3]


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as err:
        resolve_config("artists", ["epoch=3"])
    assert "unknown key 'epoch'" in str(err.value) and "epochs" in str(err.value) and "model.<arg>" in str(err.value)


def test_unknown_model_argument_lists_the_builder_arguments():
    with pytest.raises(ConfigError, match="valid: .*model.filters"):
        resolve_config("artists", ["model.filter=[1]"])


@pytest.mark.parametrize("override, message", [
    ("epochs=ten", "expected a value like 0"),
    ("model.pooling=3", "expected a value like False"),
    ("optimizer=adagrad", "choose one of sgd, adam, adamw, rmsprop"),
    ("augment=[wobble]", "unknown augmentation 'wobble'"),
    ("epochs", "not of the form key=value"),
    ("batch_size=0", "N >= 1 images per step"),
    ("eval_batch_size=-1", "N >= 1 images per batch, or 0 for the default"),
])
def test_bad_values_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config("artists", [override])


@pytest.mark.parametrize("override, kind", [("epochs=[5,10]", "int"), ("learning_rate=[0.1,0.01]", "float")])
def test_a_list_for_a_numeric_recipe_field_is_an_error(override, kind):
    key = override.partition("=")[0]
    with pytest.raises(ConfigError, match=rf"{key} takes one {kind}, not a list"):
        resolve_config("artists", [override])


def test_train_with_a_list_for_epochs_exits_with_a_message(capsys):
    from kerascnn.cli import main

    assert main(["train", "--task", "artists", "--set", "epochs=[5,10]"]) == 2
    err = capsys.readouterr().err
    assert "epochs=[5, 10]: epochs takes one int, not a list" in err and "Traceback" not in err


def test_unknown_task_lists_tasks():
    with pytest.raises(KeyError, match="available: .*artists"):
        resolve_config("painters")
