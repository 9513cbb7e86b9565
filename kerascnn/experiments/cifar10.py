"""The cifar10 assignment's studies (seed 002, questions 2-4) as data, plus their table hooks.

Run one with ``kerascnn experiment cifar10.<name> --data-dir DATA [--epochs N] [--repeats N]``.
"""
import numpy as np

from kerascnn.experiments import study
from kerascnn.experiments.transfer import transfer_table
from kerascnn.tables import put_mean_sd

# ------------------------------------------------------------------ post hooks

def _runs(results, variant):
    return [r["metrics"] for r in results if r["variant"] == variant]


def with_gap(study, study_dir, results, quiet=False):
    """The standard table plus accuracy_gap: train minus val accuracy of the best checkpoint, per seed."""
    from kerascnn.experiments.runner import COLUMNS, summarise

    rows = summarise(results, study)
    for row in rows:
        runs = _runs(results, row["variant"])
        put_mean_sd(row, "accuracy_gap", [m["best"]["train_accuracy"] - m["best"]["val_accuracy"] for m in runs])
    columns = COLUMNS[:3] + ["accuracy_gap"] + COLUMNS[3:] + ["overrides"]
    if study.sweep:
        columns.insert(1, study.sweep)
    return {"rows": rows, "columns": columns}


def best_vs_last(study, study_dir, results, quiet=False):
    """Best-validation and last checkpoints side by side, on train and val, mean and std over seeds."""
    rows = []
    for variant, overrides in study.variants:
        runs = _runs(results, variant)
        row = {"variant": variant, "overrides": " ".join(overrides), "seeds": len(runs)}
        put_mean_sd(row, "best_epoch", [m["best_epoch"] for m in runs])
        put_mean_sd(row, "epochs_run", [m["epochs_run"] for m in runs])
        for which in ("best", "last"):
            for split in ("train", "val"):
                put_mean_sd(row, f"{which}_{split}_accuracy", [m[which][f"{split}_accuracy"] for m in runs])
        rows.append(row)
    columns = ["variant", "seeds", "best_epoch", "epochs_run", "best_train_accuracy", "last_train_accuracy",
               "best_val_accuracy", "last_val_accuracy"]
    return {"rows": rows, "columns": columns}


# ------------------------------------------------------------------ studies

study(
    "cifar10.batchnorm", "cifar10",
    "the ConvNet with and without batch norm, all else equal (Q2a): loss and accuracy curves overlaid",
    variants=[("plain", []), ("batch_norm", ["model.batch_norm=true"])],
    post=with_gap,
)

study(
    "cifar10.early_stopping", "cifar10",
    "the best-validation checkpoint against the last one, on train and val (Q2b; use --repeats)",
    variants=[("plain", []), ("batch_norm", ["model.batch_norm=true"])],
    base=["epochs=50"],
    post=best_vs_last,
    # The ConvNet overfits the 4,136 training images well before epoch 30, so the best-vs-last gap shows there.
    reproduce_sets=["epochs=30"],
)

# Geometric and colour augmentations one at a time, then combined (Q3a). Names and strengths
# are entries of kerascnn.data.augment (`kerascnn data augmentations`).
GEOMETRIC = ["flip", "crop:4", "rotate:10", "zoom:0.1"]
COLOUR = ["brightness:0.2", "contrast:0.2", "saturation:0.3", "hue:0.05"]


def _augment(entries):
    return [f"augment=[{','.join(entries)}]"]


study(
    "cifar10.augmentation", "cifar10_bn",
    "geometric and colour augmentation, single and combined, on the batch-norm ConvNet (Q3a)",
    variants=[
        ("none", _augment([])),
        ("flip", _augment(["flip"])),
        ("crop", _augment(["crop:4"])),
        ("rotate", _augment(["rotate:10"])),
        ("zoom", _augment(["zoom:0.1"])),
        ("colour", _augment(COLOUR)),
        ("grayscale", _augment(["grayscale:0.2"])),
        ("flip_crop", _augment(["flip", "crop:4"])),
        ("geometric", _augment(GEOMETRIC)),
        ("geometric_colour", _augment(GEOMETRIC + COLOUR)),
    ],
    post=with_gap,
    # Overnight: no augmentation, the two classic geometric ones alone and together, colour alone, and all.
    reproduce_only=["none", "flip", "crop", "colour", "flip_crop", "geometric_colour"],
)

study(
    "cifar10.dropout", "cifar10_bn",
    "dropout p between conv blocks and before the classifier, augmentation off (Q3b)",
    variants=[(f"p{p:.1f}", [f"model.dropout={p:.1f}"]) for p in np.round(np.arange(0.0, 1.0, 0.1), 1)],
    base=["augment=[]"],
    sweep="model.dropout",
    post=with_gap,
    reproduce_only=["p0.0", "p0.2", "p0.4", "p0.6", "p0.8"],  # every other p still traces the curve
)

study(
    "cifar10.transfer", "cifar10_vgg",
    "VGG11-BN backbone frozen, fine-tuned from the same weights, and trained from scratch (Q4); "
    "pass the backbone with --set model.weights=RUN_DIR|PATH (e.g. a caltech101_vgg11_bn run)",
    variants=[
        ("frozen", ["model.train_backbone=false"]),
        ("fine_tuned", ["model.train_backbone=true"]),
        ("scratch", ["model.train_backbone=true", "model.pretrained=false"]),
    ],
    post=transfer_table(test_accuracy=True),
    pretrained_on="caltech101_vgg11_bn",
)
