"""Evaluate a run's checkpoint on a split: metrics, confusion matrix (CSV and PNG)."""
from pathlib import Path

import numpy as np

from kerascnn import rundir
from kerascnn.io import atomic_write, write_json
from kerascnn.tables import csv_text


def predict_arrays(model, x, batch_size=256):
    """Class probabilities for uint8 images, batched without tf.data (works on any backend)."""
    out = [model.predict_on_batch(x[i:i + batch_size].astype("float32")) for i in range(0, len(x), batch_size)]
    return np.concatenate([np.asarray(o) for o in out]) if out else np.zeros((0, model.output_shape[-1]))


TTA = ("none", "flip")


def predict_with_tta(model, x, tta="none"):
    """Class probabilities, averaged over the image and its left-right mirror with ``tta="flip"``
    (test-time augmentation: the prediction no longer depends on which way a face or object looks)."""
    if tta not in TTA:
        raise ValueError(f"tta={tta!r}: choose one of {', '.join(TTA)}")
    probs = predict_arrays(model, x)
    if tta == "flip":
        probs = (probs + predict_arrays(model, np.ascontiguousarray(x[:, :, ::-1]))) / 2
    return probs


def confusion_matrix(y_true, y_pred, num_classes):
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def evaluate_run(run_dir, split="val", checkpoint="best", out_dir=None, tta="none"):
    from kerascnn.data import load_dataset
    from kerascnn.vis.confusion import plot_confusion

    cfg = rundir.load_config(run_dir)
    splits = load_dataset(cfg)
    part = splits.split(split)
    if (part.y < 0).all():
        raise ValueError(f"the {split!r} split of {cfg.dataset!r} has no labels; use `kerascnn predict` for it")
    model = rundir.load_model(run_dir, checkpoint)
    probs = predict_with_tta(model, part.x, tta)
    pred = probs.argmax(1)
    eps = 1e-7
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(pred)), part.y], eps, 1.0))))
    cm = confusion_matrix(part.y, pred, splits.num_classes)
    per_class = (np.diag(cm) / np.maximum(cm.sum(1), 1)).tolist()
    out = Path(out_dir or Path(run_dir) / "eval")
    stem = f"{split}_{checkpoint}" + ("" if tta == "none" else f"_tta-{tta}")
    table = [{"true\\pred": name, **dict(zip(splits.class_names, row.tolist()))}
             for name, row in zip(splits.class_names, cm)]
    atomic_write(out / f"confusion_{stem}.csv", csv_text(table, ["true\\pred", *splits.class_names]))
    plot_confusion(cm, splits.class_names, out / f"confusion_{stem}.png", title=f"{cfg.task} {split} ({checkpoint})")
    metrics = {"run_dir": str(run_dir), "split": split, "checkpoint": checkpoint, "tta": tta, "images": int(len(pred)),
               "loss": loss, "accuracy": float((pred == part.y).mean()),
               "per_class_accuracy": dict(zip(splits.class_names, per_class)),
               "confusion_csv": str(out / f"confusion_{stem}.csv"), "confusion_png": str(out / f"confusion_{stem}.png")}
    write_json(out / f"metrics_{stem}.json", metrics)
    return metrics
