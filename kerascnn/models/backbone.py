"""Backbone weights from this project's own runs, shared by every backbone model.

``model.weights=RUN_DIR`` (a run directory: ``config.json`` and ``best.keras``) or
``model.weights=MODEL.keras`` makes ``resnet50``, ``vgg_transfer``, ``alexnet`` and
``alexnet_features`` start from that model's backbone: each model names its own backbone layers
(those with weights that are not its head), every one of them must be found in the source by name
with the same weight shapes, and whatever else the source holds, its head included, is ignored.
Convolution weights do not depend on the input size, so a backbone trained at 64 px loads into a
model built at 224 px.

Without ImageNet weights (offline), this is how transfer learning works here: pretrain a backbone on
one dataset (e.g. Caltech-101), then fine-tune from that run on another.
"""
import json
import os
import zipfile
from pathlib import Path

RUN_CHECKPOINT = "best.keras"


class BackboneWeightsError(ValueError):
    """The weights source holds no usable backbone for the model being built."""


def is_model_source(weights):
    """Whether ``weights`` names a run directory or a ``.keras`` model (rather than "imagenet" or an array file)."""
    if not isinstance(weights, (str, os.PathLike)) or weights == "imagenet":
        return False
    return Path(weights).is_dir() or str(weights).endswith(".keras")


def model_source_path(weights):
    """The ``.keras`` file that ``weights`` (a run directory or a ``.keras`` file) names, checked to exist.

    Cheap: no model is loaded, so a run can check its source before it creates anything.
    """
    path = Path(weights)
    if not path.exists():
        raise FileNotFoundError(f"backbone weights {str(weights)!r} not found (expected a run directory with "
                                f"config.json and {RUN_CHECKPOINT}, a .keras model file, or a weights file)")
    if path.is_dir():
        if not (path / RUN_CHECKPOINT).exists():
            raise BackboneWeightsError(f"{path} is a folder without {RUN_CHECKPOINT}: not a run directory of this "
                                       f"project (expected config.json and {RUN_CHECKPOINT})")
        if not (path / "config.json").exists():
            raise BackboneWeightsError(f"{path} has {RUN_CHECKPOINT} but no config.json: not a run directory of "
                                       "this project")
        path = path / RUN_CHECKPOINT
    if not zipfile.is_zipfile(path):
        raise BackboneWeightsError(f"{path} is not a Keras model file (expected a .keras archive saved by Keras)")
    return path


def describe_source(weights):
    """How errors name the source: "run R's model (task T)" or "model file F"."""
    path = Path(weights)
    if path.is_dir():
        return f"run {path}'s model (task {_run_task(path)})"
    return f"model file {path}"


def load_source_model(weights):
    """The Keras model ``weights`` names (run directory or ``.keras`` file), loaded without its optimizer."""
    import keras

    from kerascnn.rundir import register_custom_layers

    path = model_source_path(weights)
    register_custom_layers()  # whatever family built the saved model
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # a damaged or foreign archive fails in many ways; all mean the same here
        raise BackboneWeightsError(f"{path} could not be loaded as a Keras model "
                                   f"({type(exc).__name__}: {exc})") from exc


def weight_layers(model):
    """name -> layer for every layer with weights, looking inside nested models too."""
    import keras

    found = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.update(weight_layers(layer))
        elif layer.weights:
            found[layer.name] = layer
    return found


def copy_backbone_weights(backbone_layers, source, family, source_name):
    """Set every layer of ``backbone_layers`` (the target's backbone layers with weights) from ``source``.

    ``source`` is a Keras model, matched by layer name (nested models searched too); layers of the
    source outside the backbone, e.g. its head, are skipped. A missing layer or a weight shape that
    differs raises ``BackboneWeightsError`` naming the layer; ``family`` and ``source_name`` make that
    message readable. Returns the number of layers set.
    """
    found = weight_layers(source)
    targets = [layer for layer in backbone_layers if layer.weights]
    missing = [layer.name for layer in targets if layer.name not in found]
    if missing:
        more = f" (nor {len(missing) - 1} more of its {len(targets)} layers)" if len(missing) > 1 else ""
        article = "an" if family[0].lower() in "aeiou" else "a"
        raise BackboneWeightsError(f"{source_name} has no layer {missing[0]} of {family}'s backbone{more}; "
                                   f"is it {article} {family}?")
    for layer in targets:
        values = found[layer.name].get_weights()
        shapes = [tuple(v.shape) for v in values]
        expected = [tuple(w.shape) for w in layer.weights]
        if shapes != expected:
            raise BackboneWeightsError(f"layer {layer.name} of {source_name} has weight shapes {shapes}; "
                                       f"{family}'s backbone here expects {expected}")
        layer.set_weights(values)
    return len(targets)


def load_backbone_from_model(backbone_layers, weights, family):
    """``copy_backbone_weights`` from the run directory or ``.keras`` file ``weights``."""
    return copy_backbone_weights(backbone_layers, load_source_model(weights), family, describe_source(weights))


def _run_task(run_dir):
    try:
        return json.loads((Path(run_dir) / "config.json").read_text()).get("task")
    except (OSError, ValueError):
        return None


def _weight_settings(cfg):
    """(setting, value) for each backbone weights source ``cfg`` uses."""
    settings = []
    args = cfg.model_args or {}
    if args.get("weights") and args.get("pretrained", True) is not False:
        settings.append(("model.weights", args["weights"]))
    if cfg.dataset == "faces_alexnet" and cfg.feature_weights and cfg.feature_pretrained:
        settings.append(("feature_weights", cfg.feature_weights))
    return settings


def check_weights_sources(cfg):
    """Fail before a run creates anything when a configured weights source is missing or not a model.

    Only existence and form are checked here; whether the backbone layers match is known once the
    model is built.
    """
    for _, value in _weight_settings(cfg):
        if value == "imagenet":
            continue
        if is_model_source(value) or not Path(value).exists():
            model_source_path(value)


def backbone_source(cfg):
    """Where a run's backbone came from, for its metrics.json: ``{"setting", "run_dir", "task"}`` for a
    run directory, ``{"setting", "model_file"}`` for a ``.keras`` file, None otherwise."""
    for setting, value in _weight_settings(cfg):
        if value == "imagenet" or not is_model_source(value):
            continue
        path = Path(value)
        if path.is_dir():
            return {"setting": setting, "run_dir": str(path), "task": _run_task(path)}
        return {"setting": setting, "model_file": str(path)}
    return None
