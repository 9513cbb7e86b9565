"""Evaluate a run's checkpoint on a split: metrics (per class and averaged), confusion matrix (CSV and PNG)."""
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


TOP_K = 5
TOP_K_MIN_CLASSES = 20  # below this many classes top-5 is nearly always right and says little


def classification_metrics(y_true, probs, class_names=None):
    """Per-class precision, recall and F1 and their averages, from labels and class probabilities.

    Follows scikit-learn's ``precision_recall_fscore_support`` with ``zero_division=0``: a class never
    predicted has precision 0, one absent from ``y_true`` recall 0. ``macro`` averages over every class,
    ``weighted`` by support. ``mean_per_class_accuracy`` is the mean of per-class recall over the
    classes present in ``y_true`` (the figure Caltech-101 results quote, which a large class cannot
    dominate). ``top5_accuracy`` is given only with at least ``TOP_K_MIN_CLASSES`` classes.
    """
    probs = np.asarray(probs)
    y_true = np.asarray(y_true, dtype=np.int64)
    n = probs.shape[1]
    names = list(class_names) if class_names is not None else [str(k) for k in range(n)]
    pred = probs.argmax(1)
    cm = confusion_matrix(y_true, pred, n)
    tp, support, predicted = np.diag(cm).astype(float), cm.sum(1), cm.sum(0)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(n), where=denom > 0)
    weights = support / max(support.sum(), 1)
    per_class = [{"class": name, "support": int(s), "precision": float(p), "recall": float(r), "f1": float(f),
                  "accuracy": float(r)}
                 for name, s, p, r, f in zip(names, support, precision, recall, f1)]
    present = support > 0
    out = {
        "accuracy": float((pred == y_true).mean()) if len(y_true) else 0.0,
        "macro": {"precision": float(precision.mean()), "recall": float(recall.mean()), "f1": float(f1.mean())},
        "weighted": {"precision": float(weights @ precision), "recall": float(weights @ recall),
                     "f1": float(weights @ f1)},
        "mean_per_class_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "per_class": per_class,
    }
    if n >= TOP_K_MIN_CLASSES and len(y_true):
        # A stable descending sort, so ties rank the lower class index first, as argmax does.
        top = np.argsort(-probs, axis=1, kind="stable")[:, :TOP_K]
        out["top5_accuracy"] = float((top == y_true[:, None]).any(1).mean())
    return out


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
    scores = classification_metrics(part.y, probs, splits.class_names)
    atomic_write(out / f"per_class_{stem}.csv",
                 csv_text(scores["per_class"], ["class", "support", "precision", "recall", "f1", "accuracy"]))
    metrics = {"run_dir": str(run_dir), "split": split, "checkpoint": checkpoint, "tta": tta, "images": int(len(pred)),
               "loss": loss, "accuracy": float((pred == part.y).mean()),
               "per_class_accuracy": dict(zip(splits.class_names, per_class)),
               "mean_per_class_accuracy": scores["mean_per_class_accuracy"],
               "macro": scores["macro"], "weighted": scores["weighted"],
               **({"top5_accuracy": scores["top5_accuracy"]} if "top5_accuracy" in scores else {}),
               "per_class": scores["per_class"],
               "confusion_csv": str(out / f"confusion_{stem}.csv"), "confusion_png": str(out / f"confusion_{stem}.png"),
               "per_class_csv": str(out / f"per_class_{stem}.csv")}
    write_json(out / f"metrics_{stem}.json", metrics)
    return metrics
