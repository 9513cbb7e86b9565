"""Model registry: ``create_model(name, input_shape, num_classes, **kwargs)``, timm style.

Each family lives in its own module, listed in ``_load_all``, and registers its builders with
``@register``. A builder is a plain function returning a functional ``keras.Model``; its keyword
arguments and their defaults are the model's configurable surface (``--set model.KEY=VALUE`` is
checked against them). A new family module is added to that list; helpers such as ``common`` are not.
"""
import inspect

_BUILDERS = {}


def register(fn):
    _BUILDERS[fn.__name__] = fn
    return fn


def _load_all():
    """Import the family modules on first use: they import Keras, which takes seconds."""
    from kerascnn.models import (  # noqa: F401
        alexnet, caltech_net, clipnet, convnet, lenet, mlp, resnet, resnet50, simple_cnn, vgg,
    )


def available_models():
    _load_all()
    return sorted(_BUILDERS)


def get_builder(name):
    _load_all()
    if name not in _BUILDERS:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(sorted(_BUILDERS))}")
    return _BUILDERS[name]


def model_arguments(name):
    """The builder's configurable keyword arguments and defaults.

    Shape, class count and preprocessing come from the dataset and recipe, not from ``model.*``.
    """
    sig = inspect.signature(get_builder(name))
    return {
        k: p.default
        for k, p in sig.parameters.items()
        if k not in ("input_shape", "num_classes", "preprocess") and p.default is not inspect.Parameter.empty
    }


def trains_backbone(name, model_args):
    """Whether a model built from ``model_args`` trains its backbone: the ``train_backbone`` it is given, else
    its builder's default, which differs by family (vgg_transfer freezes, resnet50 trains). Models without a
    separate backbone train all of it."""
    return (model_args or {}).get("train_backbone", model_arguments(name).get("train_backbone", True)) is not False


def create_model(name, input_shape, num_classes, **kwargs):
    return get_builder(name)(input_shape=tuple(input_shape), num_classes=num_classes, **kwargs)
