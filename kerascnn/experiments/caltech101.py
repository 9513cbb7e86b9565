"""The caltech101 assignment's model comparison (seed 003, questions 1 and 3) as a study.

``kerascnn experiment caltech101.models --data-dir ../shared/data/caltech101`` trains LeNet-5,
the improved network and ResNet-18, each with its own task's full recipe, on the same seed-fixed
90/10 split, and tabulates loss and accuracy on train and validation with the curves overlaid.
"""
import dataclasses

from kerascnn.experiments import study
from kerascnn.tables import put_mean_sd
from kerascnn.tasks import get_task

BASE_TASK = "caltech101_lenet"


def recipe_overrides(task, base=BASE_TASK):
    """The ``--set`` overrides that turn ``base``'s recipe into ``task``'s, so one study runs several tasks.

    The run's config records ``task`` too. Model arguments would be checked against the base
    model's builder, so a task compared this way keeps its model arguments at the builder defaults.
    """
    target, start = get_task(task).config, get_task(base).config
    if target.model_args:
        raise ValueError(f"task {task!r} sets model arguments; give its builder those defaults instead")
    overrides = []
    for f in dataclasses.fields(target):
        value = getattr(target, f.name)
        if f.name == "model_args" or value == getattr(start, f.name):
            continue
        if isinstance(value, list):
            overrides.append(f"{f.name}=[{','.join(map(str, value))}]")
        else:
            overrides.append(f"{f.name}={value}")
    return overrides


def loss_and_accuracy(study, study_dir, results, quiet=False):
    """Train and val loss and accuracy of each best checkpoint (mean over seeds, std when several)."""
    rows = []
    keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    for variant, overrides in study.variants:
        runs = [r["metrics"] for r in results if r["variant"] == variant]
        row = {"variant": variant, "model": runs[0]["model"], "parameters": runs[0]["parameters"],
               "seeds": len(runs), "overrides": " ".join(overrides)}
        columns = {k: [m["best"][k] for m in runs] for k in keys}
        columns.update(best_epoch=[m["best_epoch"] for m in runs], epochs_run=[m["epochs_run"] for m in runs],
                       seconds=[m["train_seconds"] for m in runs])
        for key, values in columns.items():
            put_mean_sd(row, key, values)
        rows.append(row)
    return {"rows": rows, "columns": ["variant", "model", "parameters", *keys, "best_epoch", "epochs_run", "seconds"]}


study(
    "caltech101.models", BASE_TASK,
    "LeNet-5 (Q1a), the improved compact BN network (Q1b) and ResNet-18 (Q3), each with its task's recipe",
    variants=[("lenet5", []),
              ("improved", recipe_overrides("caltech101_improved")),
              ("resnet18", recipe_overrides("caltech101_resnet18"))],
    post=loss_and_accuracy,
)
