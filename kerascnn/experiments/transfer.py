"""The table shared by the transfer studies (cifar10.transfer, clipart.transfer): where each variant's
backbone came from, how much of it trained, and its accuracy."""
import warnings
from pathlib import Path

from kerascnn.models import trains_backbone
from kerascnn.tables import put_mean_sd


def describe_weights(weights):
    """"random init", "run NAME (TASK)" for a run directory, or the weights source as given."""
    if not weights:
        return "random init"
    if Path(str(weights)).is_dir():
        from kerascnn.models.backbone import _run_task

        return f"run {Path(weights).name} ({_run_task(weights)})"
    return str(weights)


def describe_backbone(cfg):
    """"random init" or the weights source, then how the backbone trains: frozen, fine-tuned after a
    head-only phase (from which layer), or trained throughout."""
    args = cfg.model_args or {}
    start = describe_weights(args.get("weights") if args.get("pretrained", True) is not False else None)
    if trains_backbone(cfg.model, args):
        how = "trained"
    elif cfg.fine_tune_epochs:
        how = (f"frozen {cfg.epochs} epochs, then fine-tuned {cfg.fine_tune_epochs} "
               f"from {cfg.fine_tune_from or 'the first layer'}"
               f"{' with batch norm trained' if cfg.fine_tune_batch_norm else ''}")
    else:
        how = "frozen"
    return f"{start}, {how}"


def transfer_table(*, test_accuracy):
    """A study post hook: the standard table plus the backbone column and, when the dataset's test split
    has labels (``test_accuracy``), each best checkpoint's test accuracy."""

    def post(study, study_dir, results, quiet=False):
        from kerascnn.evaluate import evaluate_run
        from kerascnn.experiments.runner import COLUMNS, summarise

        rows = summarise(results, study)
        for row in rows:
            runs = [r for r in results if r["variant"] == row["variant"]]
            row["backbone"] = describe_backbone(runs[0]["cfg"])
            if test_accuracy:
                put_mean_sd(row, "test_accuracy",
                            [evaluate_run(r["run_dir"], split="test", checkpoint="best")["accuracy"] for r in runs])
        if not any(r["cfg"].model_args.get("weights") for r in results):
            note = (f"{study.name} ran without --set model.weights=RUN_DIR|PATH: every pretrained variant started "
                    "from RANDOM weights, so the table compares nothing but training schedules.")
            warnings.warn(note, stacklevel=2)
            if not quiet:
                print(f"note: {note}")
        columns = ["variant", "backbone"] + COLUMNS[1:3] + (["test_accuracy"] if test_accuracy else []) + COLUMNS[3:]
        return {"rows": rows, "columns": columns}

    post.__name__ = post.__qualname__ = "transfer_table"
    return post
