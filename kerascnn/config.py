"""The resolved configuration of a run: one dataclass, overridable with ``--set key=value``.

Recipe fields are typed dataclass fields; model arguments live in ``model_args`` and are set as
``model.KEY`` and checked against the model builder's own keyword defaults. Values are Python
literals (``8``, ``0.5``, ``true``, ``[16,32,64]``, ``adam``); every override is type-checked and
an unknown key is an error that lists the valid ones.
"""
import ast
import dataclasses
import typing
from dataclasses import dataclass, field

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
LR_SCHEDULES = ("constant", "step", "cosine", "cosine_restarts", "plateau")
PRECISIONS = ("off", "float16", "bfloat16")
PIPELINES = ("auto", "tfdata", "numpy")
TRAIN_LOOPS = ("auto", "graph", "fit")
CLASS_WEIGHTS = ("none", "balanced")
CHOICES = {"optimizer": OPTIMIZERS, "lr_schedule": LR_SCHEDULES, "mixed_precision": PRECISIONS,
           "input_pipeline": PIPELINES, "train_loop": TRAIN_LOOPS,
           "class_weight": CLASS_WEIGHTS}


class ConfigError(ValueError):
    """A bad ``--set`` override or configuration value."""


@dataclass
class Config:
    task: str = ""
    dataset: str = ""
    model: str = ""
    model_args: dict = field(default_factory=dict)
    data_dir: typing.Optional[str] = None
    cache_dir: typing.Optional[str] = None
    image_size: int = 50
    preprocess: str = "unit"
    zca_epsilon: float = 1.0
    grayscale: bool = False
    feature_layer: str = "conv4"
    feature_weights: typing.Optional[str] = None
    feature_pretrained: bool = True
    val_fraction: float = 0.2
    split_seed: int = 0
    seed: int = 0
    epochs: int = 50
    batch_size: int = 128
    eval_batch_size: int = 0
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    lr_step_size: int = 30
    lr_gamma: float = 0.1
    lr_min: float = 0.0
    lr_restart_period: int = 10
    warmup_epochs: int = 0
    plateau_patience: int = 5
    early_stopping: int = 0
    validation_freq: int = 1
    augment: list = field(default_factory=list)
    label_smoothing: float = 0.0
    class_weight: str = "none"
    ema: float = 0.0
    mixed_precision: str = "off"
    jit_compile: bool = False
    fast_conv_grad: bool = True
    fused_adam: bool = True
    fine_tune_epochs: int = 0
    fine_tune_learning_rate: float = 1e-5
    fine_tune_from: str = ""
    fine_tune_batch_norm: bool = False
    track_test: bool = False
    input_pipeline: str = "auto"
    train_loop: str = "auto"
    steps_per_execution: int = 1
    distribute: bool = False
    checkpoint_every: float = 10.0
    tensorboard: bool = True

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


FIELD_HELP = {
    "model_args": "set as model.KEY=VALUE",
    "preprocess": "unit | centered | imagenet | caffe | pixelwise (training-set mean and variance per pixel) | "
                  "zca (ZCA whitening fitted to the training images) | none",
    "zca_epsilon": "preprocess=zca regulariser, a multiple of the mean eigenvalue: small = full whitening, "
                   "large = mean subtraction only",
    "grayscale": "decode images as one grey channel (faces datasets)",
    "feature_layer": "AlexNet layer whose activations are the features (faces_alexnet dataset)",
    "feature_weights": ("torchvision AlexNet .npz, or a run directory / .keras model with AlexNet's conv "
                        "layers, for the feature extractor; None = random (seeded) weights"),
    "feature_pretrained": ("false draws the feature extractor's weights at random (seeded) even when feature_weights "
                           "is set, as model.pretrained=false does for backbones, so one study compares both"),
    "eval_batch_size": ("images per batch when scoring (validation, test tracking, final scores); 0 = four training "
                        "batches, at most 256 images and never fewer than batch_size"),
    "val_fraction": "held-out share of the training data for validation",
    "split_seed": "seed of the train/val split (kept fixed across repeats)",
    "seed": "seed of initialisation, shuffling and augmentation",
    "optimizer": " | ".join(OPTIMIZERS),
    "weight_decay": "decoupled weight decay applied by the optimizer (L2 penalty: model.l2)",
    "lr_schedule": " | ".join(LR_SCHEDULES),
    "lr_step_size": "epochs between decays (step)",
    "lr_gamma": "decay factor (step, plateau)",
    "lr_min": "floor of cosine schedules",
    "lr_restart_period": "epochs per cosine warm restart cycle",
    "early_stopping": "patience in validations on val accuracy (epochs, with validation_freq=1); 0 = off",
    "validation_freq": "validate every N epochs, and always after a phase's last epoch (as model.fit's "
                       "validation_freq); rows in between have no val metrics, and the best checkpoint, early "
                       "stopping and the plateau schedule act on validated epochs only",
    "augment": "list of augmentations, e.g. [flip,rotate:15]; see `kerascnn data augmentations`",
    "class_weight": "none | balanced (weight each class's training loss by n_samples / (n_classes * count), as "
                    "scikit-learn's compute_class_weight; validation stays unweighted)",
    "ema": "momentum of an exponential moving average of the weights (e.g. 0.99); validation, test tracking, "
           "checkpoints and evaluation use the averaged weights; 0 = off",
    "mixed_precision": "off | float16 (GPU) | bfloat16 (faster on CPUs with AMX, much slower without bf16 units; "
                       "BENCHMARKS.md)",
    "fast_conv_grad": "TensorFlow: compute Conv2D gradients as forward convolutions where that is faster for "
                      "the CPU kernels in use (same result; see kerascnn/speedups/conv_grad.py)",
    "fused_adam": "TensorFlow: Adam/AdamW update as one ResourceApplyAdam kernel per variable "
                  "(same result, less tracing; see kerascnn/speedups/fused_adam.py)",
    "fine_tune_epochs": "second phase: unfreeze the backbone and train this many more epochs",
    "fine_tune_learning_rate": "learning rate of the fine-tuning phase",
    "fine_tune_from": "first layer to unfreeze in the fine-tuning phase ('' = all); batch norm stays frozen unless "
                      "fine_tune_batch_norm",
    "fine_tune_batch_norm": ("true also trains the unfrozen batch norm layers, so their statistics move to the "
                             "target's images and resolution (false: inference mode, as Keras recommends)"),
    "track_test": "evaluate the test split after every epoch (test_loss, test_accuracy in the history)",
    "input_pipeline": "auto (tf.data when TensorFlow is installed) | tfdata | numpy (keras PyDataset)",
    "train_loop": "auto (graph wherever it applies) | graph (TensorFlow: many steps per call from in-memory "
                  "tensors, validation in one call; see kerascnn/speedups/graph_loop.py) | fit (Keras's model.fit "
                  "over the input pipeline; always used for distribute, jit_compile or an explicit input_pipeline)",
    "steps_per_execution": "training steps per call of Keras's compiled function when model.fit trains "
                           "(train_loop=fit); the graph loop sizes its own calls",
    "distribute": "data-parallel over every visible device (MirroredStrategy on TF, DataParallel on JAX)",
    "checkpoint_every": "seconds between resume checkpoints; 0 = every epoch",
}


def _parse_literal(text):
    """Parse a value as a Python literal; bare words and bracketed bare words become strings."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    stripped = text.strip()
    if stripped[:1] in "[(" and stripped[-1:] in "])":
        inner = stripped[1:-1].strip()
        return [_parse_literal(item) for item in inner.split(",")] if inner else []
    return text


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_like(key, value, example, per_layer=False):
    """Coerce ``value`` to the kind of ``example`` (a default), or raise ConfigError.

    ``per_layer`` also accepts a list of numbers where the example is one number: model builders
    take one value per layer there (``model.kernel_size=[5,3]``), while a recipe field holds one.
    """
    if example is None:
        return value
    if isinstance(example, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(example, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if per_layer and isinstance(value, (list, tuple)) and all(_is_number(v) for v in value):
            return list(value)
    elif isinstance(example, float):
        if _is_number(value):
            return float(value)
        if per_layer and isinstance(value, (list, tuple)) and all(_is_number(v) for v in value):
            return [float(v) for v in value]
    elif isinstance(example, str):
        if isinstance(value, str):
            return value
        if _is_number(value) or isinstance(value, bool):
            return str(value)
    elif isinstance(example, (list, tuple)):
        if isinstance(value, (list, tuple)):
            return list(value)
        if value is not None and not isinstance(value, dict):
            return [value]
    if not per_layer and _is_number(example) and isinstance(value, (list, tuple)):
        raise ConfigError(f"{key}={value!r}: {key} takes one {type(example).__name__}, not a list")
    raise ConfigError(f"{key}={value!r}: expected a value like {example!r} ({type(example).__name__})")


def _field_types():
    return typing.get_type_hints(Config)


def apply_overrides(cfg, overrides, model_defaults):
    """Return a copy of ``cfg`` with each ``key=value`` override applied and checked."""
    changes, model_args = {}, dict(cfg.model_args)
    types = _field_types()
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        value = _parse_literal(raw)
        if key.startswith("model."):
            arg = key[len("model."):]
            if arg not in model_defaults:
                valid = ", ".join(f"model.{k}" for k in sorted(model_defaults))
                raise ConfigError(f"unknown model argument {key!r} for model {cfg.model!r}; valid: {valid}")
            model_args[arg] = _check_like(key, value, model_defaults[arg], per_layer=True)
            continue
        if key not in types or key == "model_args":
            valid = ", ".join(sorted(k for k in types if k != "model_args")) + ", model.<arg>"
            raise ConfigError(f"unknown key {key!r}; valid keys: {valid}")
        changes[key] = _check_field(key, value, types[key])
    return dataclasses.replace(cfg, model_args=model_args, **changes)


def _check_field(key, value, hint):
    optional = typing.get_origin(hint) is typing.Union and type(None) in typing.get_args(hint)
    if value is None and optional:
        return None
    base = typing.get_args(hint)[0] if optional else hint
    example = {int: 0, float: 0.0, bool: False, str: "", list: [], dict: {}}[base]
    value = _check_like(key, value, example) if base is not dict else value
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"{key}={value!r}: choose one of {', '.join(CHOICES[key])}")
    if key == "ema" and not 0.0 <= value < 1.0:
        raise ConfigError(f"ema={value!r}: a momentum in [0, 1), e.g. 0.99 (0 = off)")
    if key == "batch_size" and value < 1:
        raise ConfigError(f"batch_size={value!r}: train on N >= 1 images per step, e.g. 64")
    if key == "eval_batch_size" and value < 0:
        raise ConfigError(f"eval_batch_size={value!r}: score N >= 1 images per batch, or 0 for the default")
    if key == "steps_per_execution" and value < 1:
        raise ConfigError(f"steps_per_execution={value!r}: run N >= 1 training steps per call, e.g. 8")
    if key == "validation_freq" and value < 1:
        raise ConfigError(f"validation_freq={value!r}: validate every N >= 1 epochs, e.g. 5")
    if key == "zca_epsilon" and not value > 0:
        raise ConfigError(f"zca_epsilon={value!r}: must be > 0, e.g. 1.0")
    if key == "augment":
        from kerascnn.data.augment import parse_entry

        for entry in value:
            try:
                parse_entry(entry)
            except ValueError as exc:
                raise ConfigError(f"augment: {exc}") from None
    return value


def describe_fields(cfg, model_defaults):
    """(key, current value, help) rows for ``--help-config`` listings."""
    rows = [(f.name, getattr(cfg, f.name), FIELD_HELP.get(f.name, "")) for f in dataclasses.fields(cfg)
            if f.name != "model_args"]
    rows += [(f"model.{k}", cfg.model_args.get(k, v), "") for k, v in sorted(model_defaults.items())]
    return rows
