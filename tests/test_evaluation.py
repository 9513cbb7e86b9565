"""Evaluation as the field reports it (per-class P/R/F1, mean per-class accuracy, top-5), the top-losses
figure, and the end-of-run TensorBoard confusion matrix and graph."""
import csv

import numpy as np
import pytest

from conftest import write_image_folder
from kerascnn.evaluate import classification_metrics, evaluate_run
from kerascnn.tasks import resolve_config
from kerascnn.vis.top_losses import top_losses


def fixed_predictions(n=300, classes=25, seed=0):
    """Labels and softmax-like probabilities, right about half the time, with one class never predicted
    and one never present, so zero_division matters."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes - 1, n)  # the last class has no images
    logits = rng.normal(size=(n, classes))
    logits[np.arange(n), y] += rng.choice([0.0, 3.0], n)
    logits[:, 3] -= 10  # class 3 is never predicted
    probs = np.exp(logits)
    return y, probs / probs.sum(1, keepdims=True)


def test_metrics_match_sklearn():
    from sklearn.metrics import (balanced_accuracy_score, classification_report, precision_recall_fscore_support,
                                 top_k_accuracy_score)

    y, probs = fixed_predictions()
    pred, labels = probs.argmax(1), np.arange(probs.shape[1])
    m = classification_metrics(y, probs)
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    np.testing.assert_allclose([row["precision"] for row in m["per_class"]], p)
    np.testing.assert_allclose([row["recall"] for row in m["per_class"]], r)
    np.testing.assert_allclose([row["f1"] for row in m["per_class"]], f)
    assert [row["support"] for row in m["per_class"]] == s.tolist()
    report = classification_report(y, pred, labels=labels, zero_division=0, output_dict=True)
    for avg in ("macro", "weighted"):
        for key in ("precision", "recall", "f1"):
            assert m[avg][key] == pytest.approx(report[f"{avg} avg"]["f1-score" if key == "f1" else key])
    with pytest.warns(UserWarning):  # sklearn notes the never-present class; the mean leaves it out as well
        balanced = balanced_accuracy_score(y, pred)
    assert m["mean_per_class_accuracy"] == pytest.approx(balanced)
    assert m["top5_accuracy"] == pytest.approx(top_k_accuracy_score(y, probs, k=5, labels=labels))
    assert m["accuracy"] == pytest.approx((pred == y).mean())


def test_top5_only_with_twenty_classes_or_more():
    y, probs = fixed_predictions(classes=10)
    assert "top5_accuracy" not in classification_metrics(y, probs)
    assert "top5_accuracy" in classification_metrics(*fixed_predictions(classes=20))


def test_top_losses_are_the_misclassified_images_by_loss():
    y = np.array([0, 1, 2, 0, 1])
    probs = np.array([[0.9, 0.05, 0.05],   # right
                      [0.6, 0.3, 0.1],     # wrong, loss -log 0.3
                      [0.1, 0.85, 0.05],   # wrong, loss -log 0.05: the worst
                      [0.45, 0.5, 0.05],   # wrong, loss -log 0.45
                      [0.2, 0.7, 0.1]])    # right
    indices, losses = top_losses(y, probs, count=16)
    assert indices.tolist() == [2, 1, 3]
    assert losses[2] == pytest.approx(-np.log(0.05))
    assert top_losses(y, probs, count=2)[0].tolist() == [2, 1]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from kerascnn.train import train

    tmp = tmp_path_factory.mktemp("evaluation")
    data = write_image_folder(tmp / "images", classes=3, per_class=12, size=32, seed=1)
    cfg = resolve_config("artists", ["epochs=2", "batch_size=16", "learning_rate=3e-3", "tensorboard=true"],
                         data_dir=str(data))
    train(cfg, run_dir=tmp / "run", quiet=True)
    return tmp / "run"


def test_evaluate_writes_per_class_metrics(tiny_run, capsys):
    from kerascnn.cli import main

    m = evaluate_run(tiny_run)
    assert set(m["macro"]) == set(m["weighted"]) == {"precision", "recall", "f1"}
    assert "top5_accuracy" not in m and 0 <= m["mean_per_class_accuracy"] <= 1
    with open(m["per_class_csv"]) as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows] == ["class_0", "class_1", "class_2"]
    assert list(rows[0]) == ["class", "support", "precision", "recall", "f1", "accuracy"]
    assert sum(int(r["support"]) for r in rows) == m["images"]
    assert [float(r["accuracy"]) for r in rows] == pytest.approx(list(m["per_class_accuracy"].values()))
    main(["evaluate", str(tiny_run)])
    out = capsys.readouterr().out
    assert "macro precision" in out and "mean per-class accuracy" in out and "top-5" not in out


def test_top_losses_figure(tiny_run, tmp_path):
    from kerascnn.vis.commands import kind_options, visualize

    assert "count" in kind_options("top-losses")
    # The initial weights get most images wrong, so the grid is full.
    png, table = visualize(tiny_run, kind="top-losses", out=tmp_path, checkpoint="initial", count=4)
    assert png == tmp_path / "top_losses_val_initial.png" and png.stat().st_size > 1000
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert 0 < len(rows) <= 4 and all(r["true"] != r["predicted"] for r in rows)
    assert [float(r["loss"]) for r in rows] == sorted((float(r["loss"]) for r in rows), reverse=True)
    assert visualize(tiny_run, kind="top-losses", out=tmp_path)[0].stat().st_size > 1000  # drawn with none wrong too


def test_tensorboard_holds_the_confusion_image_and_the_graph(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    validation = EventAccumulator(str(tiny_run / "tensorboard" / "validation"), size_guidance={"images": 0})
    validation.Reload()
    tags = validation.Tags()
    # tf.summary.image writes a tensor summary with the image plugin; older readers list it as images.
    image_tags = tags.get("tensors", []) + tags.get("images", [])
    assert "confusion_matrix" in image_tags
    if "confusion_matrix" in tags.get("tensors", []):
        assert validation.SummaryMetadata("confusion_matrix").plugin_data.plugin_name == "images"
    train_logs = EventAccumulator(str(tiny_run / "tensorboard" / "train"))
    train_logs.Reload()
    assert train_logs.Tags()["graph"]
    assert len(train_logs.Graph().node) > 5
