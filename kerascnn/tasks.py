"""Task registry: a task name -> dataset, model and default recipe (a Config).

``resolve_config("artists", ["epochs=10", "model.filters=[16,32]"])`` gives the fully resolved
configuration a run is built from and records in its ``config.json``.
"""
from dataclasses import dataclass

from kerascnn.config import Config, ConfigError, apply_overrides
from kerascnn.models import model_arguments


@dataclass
class Task:
    name: str
    description: str
    config: Config
    # The Caltech-101 pretraining task whose run is this task's backbone in `kerascnn reproduce`, and the
    # setting that takes the run directory (model.weights, or feature_weights for cached features).
    pretrained_on: str = None
    backbone_setting: str = "model.weights"


TASKS = {}


def register_task(name, description, *, pretrained_on=None, backbone_setting="model.weights", **fields):
    TASKS[name] = Task(name, description, Config(task=name, **fields), pretrained_on, backbone_setting)


def get_task(name):
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; available: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def resolve_config(task, overrides=(), **fields):
    """The task's recipe, then explicit fields (e.g. data_dir from --data-dir), then --set overrides."""
    recipe = get_task(task).config
    cfg = recipe.replace(**{k: v for k, v in fields.items() if v is not None})
    model = _model_override(overrides) or cfg.model
    if model != recipe.model:
        # The recipe's model_args belong to its own model; model.* overrides are checked against the new one's.
        cfg = cfg.replace(model=model, model_args={})
    try:
        model_defaults = model_arguments(cfg.model)
    except KeyError as exc:
        raise ConfigError(f"model={cfg.model!r}: {exc.args[0]}") from None
    return apply_overrides(cfg, overrides, model_defaults)


def _model_override(overrides):
    """The model named by the last ``model=NAME`` override, or None."""
    names = [value.strip().strip("'\"") for key, _, value in (item.partition("=") for item in overrides)
             if key.strip() == "model"]
    return names[-1] if names else None


register_task(
    "artists",
    "11-artist painting classification at 50x50 with the starter's SimpleCNN (assignment section 1.2)",
    dataset="artists", model="simple_cnn", image_size=50, preprocess="centered",
    val_fraction=0.2, epochs=50, batch_size=128, optimizer="adam", learning_rate=1e-3,
)

register_task(
    "artists_tuned",
    "the artists SimpleCNN with what the studies taught: stride-1 convs with 2x2 max pooling, dropout 0.25 "
    "after flatten and the dense layer, up to 150 epochs with early stopping (sections 1.6-1.7)",
    dataset="artists", model="simple_cnn", image_size=50, preprocess="centered",
    model_args={"strides": 1, "pooling": True, "pool_size": 2, "pool_strides": 2, "dropout": 0.25,
                "dropout_placement": ["flatten", "dense"]},
    val_fraction=0.2, epochs=150, early_stopping=50, batch_size=128, optimizer="adam", learning_rate=1e-3,
)

register_task(
    "artists_searched",
    "the KerasTuner Hyperband winner over artists_tuned (docs/tuning.md): one 3x3 stride-2 conv of 16 "
    "filters, 3x3/2 max pooling, dense 64, dropout 0.3 after the conv, flatten and dense layers, RMSprop, "
    "and the robustness study's augmentation",
    dataset="artists", model="simple_cnn", image_size=50, preprocess="centered",
    model_args={"filters": [16], "kernel_size": [3], "strides": [2], "padding": "valid", "pooling": True,
                "pool_type": "max", "pool_size": 3, "pool_strides": 2, "dense": [64], "dropout": 0.3,
                "dropout_placement": ["conv", "flatten", "dense"], "batch_norm": False},
    augment=["flip", "rotate:15", "translate:0.1", "zoom:0.15", "jitter:0.15"],
    val_fraction=0.2, epochs=150, early_stopping=50, batch_size=128, optimizer="rmsprop",
    learning_rate=0.000647522, weight_decay=0.01,
)

# ---- cifar10 tasks ----
# The ex3 starter's recipe: Adam at 2e-3 decayed x0.95 per epoch, batch 200, 20 epochs, torch
# weight_decay=1e-3 (coupled L2, i.e. model.l2=5e-4 on the conv kernels), pixels centred on 0.
_CIFAR10_CONVNET = dict(
    dataset="cifar10", model="convnet", image_size=32, preprocess="centered", val_fraction=0.2,
    epochs=20, batch_size=200, optimizer="adam", learning_rate=2e-3, lr_schedule="step", lr_step_size=1,
    lr_gamma=0.95,
)
register_task("cifar10", "CIFAR-10 with the five-block ConvNet, no batch norm (assignment 3, Q1)",
              model_args={"l2": 5e-4}, **_CIFAR10_CONVNET)
register_task("cifar10_bn", "CIFAR-10 with the five-block ConvNet and batch norm (assignment 3, Q2a)",
              model_args={"l2": 5e-4, "batch_norm": True}, **_CIFAR10_CONVNET)
register_task(
    "cifar10_vgg",
    "CIFAR-10 on a VGG11-BN backbone + 2 dense layers; frozen unless model.train_backbone=true; "
    "ImageNet weights via model.weights=PATH (assignment 3, Q4)",
    dataset="cifar10", model="vgg_transfer", image_size=32, preprocess="imagenet", val_fraction=0.2,
    model_args={"backbone": "vgg11_bn", "hidden": [256]}, augment=["flip"],
    epochs=30, batch_size=200, optimizer="adam", learning_rate=1e-3, lr_schedule="step", lr_step_size=1,
    lr_gamma=0.99, pretrained_on="caltech101_vgg11_bn",
)

# ---- caltech101 tasks ----
register_task(
    "caltech101_lenet",
    "Caltech-101 at 64x64 with the assignment's LeNet-5 variant, plain Adam (assignment 2, Q1a)",
    dataset="caltech101", model="lenet5", image_size=64, preprocess="unit", val_fraction=0.1,
    epochs=20, batch_size=64, optimizer="adam", learning_rate=1e-3,
)
register_task(
    "caltech101_improved",
    "Caltech-101 at 64x64, compact BN CNN with GAP, augmentation, label smoothing, cosine LR (Q1b)",
    dataset="caltech101", model="caltech_net", image_size=64, preprocess="imagenet", val_fraction=0.1,
    epochs=25, batch_size=64, optimizer="adam", learning_rate=2e-3, lr_schedule="cosine", warmup_epochs=2,
    label_smoothing=0.1, augment=["flip", "translate:0.1", "zoom:0.15"],
)
register_task(
    "caltech101_resnet18",
    "Caltech-101 at 64x64 with ResNet-18 written layer by layer (assignment 2, Q3)",
    dataset="caltech101", model="resnet18", image_size=64, preprocess="imagenet", val_fraction=0.1,
    epochs=30, batch_size=64, optimizer="adam", learning_rate=1e-3, lr_schedule="cosine",
    augment=["flip"],
)

# ---- pretraining on Caltech-101, the offline stand-in for ImageNet ----
# Each trains a backbone from scratch on Caltech-101's 101 object classes, so a clip-art, CIFAR-10 or faces
# task can start from it with model.weights=RUN_DIR. Preprocessing matches the target task's, resolution and
# epochs are sized from the step throughput so a run fits 45 minutes on a 2-core CPU (BENCHMARKS.md,
# "Pretraining on Caltech-101"; `kerascnn reproduce caltech101 --plan` estimates them). A backbone loads at
# another resolution, since convolution weights do not depend on input size.
_PRETRAIN = dict(dataset="caltech101", val_fraction=0.1, optimizer="adam", lr_schedule="cosine", warmup_epochs=1,
                 label_smoothing=0.1, augment=["flip", "translate:0.1", "zoom:0.15"])
register_task(
    "caltech101_resnet50",
    "Keras's ResNet-50 trained from scratch on Caltech-101 at 64 px: a backbone for clipart_resnet50_finetune",
    model="resnet50", preprocess="caffe", image_size=64, model_args={"weights": None, "train_backbone": True},
    epochs=16, batch_size=32, learning_rate=1e-3, **_PRETRAIN,
)
register_task(
    "caltech101_vgg11_bn",
    "VGG11-BN trained from scratch on Caltech-101 at 32 px (CIFAR scale): a backbone for cifar10_vgg",
    model="vgg_transfer", preprocess="imagenet", image_size=32,
    model_args={"backbone": "vgg11_bn", "weights": None, "train_backbone": True, "hidden": [256]},
    epochs=40, batch_size=64, learning_rate=1e-3, **_PRETRAIN,
)
register_task(
    "caltech101_alexnet",
    "AlexNet trained from scratch on Caltech-101 at 112 px: a backbone for faces_alexnet_features and "
    "faces_alexnet_finetune",
    model="alexnet", preprocess="imagenet", image_size=112,
    epochs=35, batch_size=64, learning_rate=3e-4, **_PRETRAIN,
)

# ---- clipart tasks ----
# The assignment asks for ResNet-50 at 224 px (~12 GFLOP per training image); these defaults use
# 96 px so a run fits a shared CPU. `--set image_size=224` restores the assignment's resolution.
_CLIPART = dict(dataset="clipart", image_size=96, batch_size=32, augment=["flip", "translate:0.1", "zoom:0.15"])
register_task(
    "clipart_resnet50_finetune",
    "model A: ResNet-50 backbone from model.weights (imagenet | PATH | RUN_DIR), head trained with the "
    "backbone frozen, then fine-tuned with batch norm frozen (clip-art assignment, task A)",
    model="resnet50", preprocess="caffe", model_args={"weights": "imagenet", "train_backbone": False},
    epochs=3, optimizer="adam", learning_rate=1e-3, fine_tune_epochs=6, fine_tune_learning_rate=1e-4,
    lr_schedule="cosine", pretrained_on="caltech101_resnet50", **_CLIPART,
)
register_task(
    "clipart_resnet50_scratch",
    "model B: ResNet-50 from random initialisation, Adam with warm-up and cosine decay, label smoothing "
    "(clip-art assignment, task B)",
    model="resnet50", preprocess="caffe", model_args={"weights": None, "train_backbone": True},
    epochs=30, optimizer="adam", learning_rate=1e-3, lr_schedule="cosine", warmup_epochs=2,
    label_smoothing=0.1, **_CLIPART,
)
register_task(
    "clipart_own",
    "model C: ClipNet, an own compact inverted-bottleneck CNN with squeeze-excitation and stochastic depth, "
    "from scratch (clip-art assignment, task C)",
    model="clipnet", preprocess="imagenet", epochs=40, optimizer="adam", learning_rate=2e-3,
    lr_schedule="cosine", warmup_epochs=2, label_smoothing=0.1, **_CLIPART,
)

# ---- any image folder ----
register_task(
    "folder",
    "any image folder: --data-dir PATH (required) with one folder per class, or train/ and valid/ (and test/) "
    "split folders; ClipNet at 96 px from scratch like clipart_own, --set model=NAME picks any registered "
    "model (`kerascnn models`)",
    dataset="folder", model="clipnet", image_size=96, preprocess="imagenet", val_fraction=0.2, epochs=40,
    batch_size=32, optimizer="adam", learning_rate=2e-3, lr_schedule="cosine", warmup_epochs=2,
    label_smoothing=0.1, augment=["flip", "translate:0.1", "zoom:0.15"],
)

# ---- faces tasks ----

register_task(
    "faces_mlp",
    "12 FaceScrub actors at 28x28, ZCA-whitened, with one hidden layer of 300 ReLU units; test tracked each "
    "epoch (part 2.1)",
    dataset="faces", model="mlp", image_size=28, grayscale=False, preprocess="zca", zca_epsilon=1.0, augment=["flip"],
    track_test=True, epochs=100, batch_size=32, optimizer="adam", learning_rate=1e-3,
)

register_task(
    "faces_mlp_searched",
    "the KerasTuner Hyperband winner over faces_mlp (docs/tuning.md): 100 hidden units, dropout 0.3, ZCA "
    "epsilon 1.957, label smoothing 0.1, Adam at 1.9e-3; test tracked each epoch",
    dataset="faces", model="mlp", image_size=28, grayscale=False, preprocess="zca", zca_epsilon=1.957,
    model_args={"hidden": [100], "dropout": 0.3}, augment=["flip"], label_smoothing=0.1,
    track_test=True, epochs=100, batch_size=32, optimizer="adam", learning_rate=0.00189446,
)

register_task(
    "faces_alexnet_features",
    "a 300-unit MLP on cached AlexNet conv4 activations of the 224x224 faces (part 2.2; "
    "feature_weights=PATH.npz for torchvision weights, random otherwise)",
    dataset="faces_alexnet", model="mlp", image_size=224, preprocess="none", feature_layer="conv4",
    model_args={"hidden": [300], "dropout": 0.5}, track_test=True,
    epochs=30, batch_size=32, optimizer="adam", learning_rate=1e-4,
    pretrained_on="caltech101_alexnet", backbone_setting="feature_weights",
)

register_task(
    "faces_alexnet_finetune",
    "AlexNet with a new 12-way output layer, every layer trained (part 2.4; "
    "model.weights=PATH.npz for torchvision weights, random init otherwise)",
    dataset="faces", model="alexnet", image_size=224, preprocess="imagenet", augment=["flip"], track_test=True,
    epochs=30, batch_size=32, optimizer="sgd", learning_rate=1e-3, momentum=0.9,
    pretrained_on="caltech101_alexnet",
)
