"""Faces studies (seed 000, part 2): the MLP's input preprocessing, what its hidden units learn, and
whether pretrained AlexNet conv4 features beat random ones."""
from pathlib import Path

from kerascnn.experiments import study

WEIGHT_UNITS = 6  # units drawn per variant: the ones the output layer weighs most

def with_test_accuracy(rows, results):
    """Each row gets the mean (and spread) test accuracy of its runs' best-validation checkpoints."""
    from kerascnn.evaluate import evaluate_run
    from kerascnn.tables import put_mean_sd

    for row in rows:
        runs = [r for r in results if r["variant"] == row["variant"]]
        accuracies = [evaluate_run(r["run_dir"], split="test")["accuracy"] for r in runs]
        put_mean_sd(row, "test_accuracy", accuracies)
        row["test_accuracies"] = " ".join(f"{a:.4f}" for a in accuracies)
    return rows


def add_test_accuracy(study, study_dir, results, quiet=False):
    from kerascnn.experiments.runner import COLUMNS, summarise

    rows = with_test_accuracy(summarise(results, study), results)
    return {"rows": rows, "columns": COLUMNS[:3] + ["test_accuracy", "test_accuracies"] + COLUMNS[3:]}


def feature_source_table(study, study_dir, results, quiet=False):
    """add_test_accuracy's table with a column naming where each variant's AlexNet weights came from."""
    import warnings

    from kerascnn.data.faces_alexnet import extractor_weights
    from kerascnn.experiments.runner import COLUMNS, summarise
    from kerascnn.experiments.transfer import describe_weights

    rows = with_test_accuracy(summarise(results, study), results)
    for row in rows:
        run = next(r for r in results if r["variant"] == row["variant"])
        row["features_from"] = describe_weights(extractor_weights(run["cfg"]))
    if not any(extractor_weights(r["cfg"]) for r in results):
        note = (f"{study.name} ran without --set feature_weights=RUN_DIR|PATH: both variants used RANDOM AlexNet "
                "weights, so the table compares nothing.")
        warnings.warn(note, stacklevel=2)
        if not quiet:
            print(f"note: {note}")
    columns = ["variant", "features_from"] + COLUMNS[1:3] + ["test_accuracy", "test_accuracies"] + COLUMNS[3:]
    return {"rows": rows, "columns": columns}


def draw_weights(study, study_dir, results, quiet=False):
    """Weight pictures of each variant's strongest units (from its first seed's run), and test accuracy added to
    the table."""
    from kerascnn import rundir
    from kerascnn.experiments.runner import COLUMNS, summarise
    from kerascnn.vis.weights import plot_dense_weights, strongest_units

    rows = with_test_accuracy(summarise(results, study), results)
    for row in rows:
        runs = [r for r in results if r["variant"] == row["variant"]]
        first = runs[0]["run_dir"]
        model = rundir.load_model(first, "best")
        layer = model.get_layer("dense1")
        units = strongest_units(model, layer, WEIGHT_UNITS)
        figure_dir = study_dir / "weights" / row["variant"]
        figure_dir.mkdir(parents=True, exist_ok=True)
        written = plot_dense_weights(model, units, study_dir / f"weights_{row['variant']}.png",
                                     class_names=rundir.class_names(first), single_dir=figure_dir,
                                     title=f"{row['variant']}: incoming weights of the {len(units)} units "
                                           "the output layer weighs most")
        # Relative to the study, so the table reads the same wherever the study is copied or reported.
        row["weights_png"] = str(Path(written[0]).relative_to(study_dir))
        if not quiet:
            print(f"[{study.name}] {row['variant']}: {written[0]}", flush=True)
    columns = COLUMNS[:3] + ["test_accuracy"] + COLUMNS[3:] + ["weights_png"]
    return {"rows": rows, "columns": columns}


study(
    "faces.weights",
    "faces_mlp",
    "300 vs 800 hidden units on grey 28x28 faces with L2, and pictures of their hidden units' weights",
    variants=[("hidden300", ["model.hidden=[300]"]), ("hidden800", ["model.hidden=[800]"])],
    # [0, 1] pixels, not the recipe's ZCA whitening: whitened inputs make high-frequency weight pictures.
    base=["grayscale=true", "model.l2=0.001", "preprocess=unit"],
    post=draw_weights,
    repeats=3,  # the two widths differ by a point or two of validation accuracy: seeds tell that from noise
)

study(
    "faces.preprocessing",
    "faces_mlp",
    "the MLP's input: [0, 1] pixels, per-pixel standardisation, and ZCA whitening at four strengths "
    "(test accuracy of each best-validation checkpoint added to the table)",
    variants=[("unit", ["preprocess=unit"]), ("pixelwise", ["preprocess=pixelwise"]),
              ("zca_0.3", ["preprocess=zca", "zca_epsilon=0.3"]), ("zca_1", ["preprocess=zca", "zca_epsilon=1.0"]),
              ("zca_3", ["preprocess=zca", "zca_epsilon=3.0"]), ("zca_10", ["preprocess=zca", "zca_epsilon=10.0"])],
    post=add_test_accuracy,
    repeats=3,  # the ZCA strengths lie within a few validation images of each other
)

study(
    "faces.transfer",
    "faces_alexnet_features",
    "the 300-unit MLP on AlexNet conv4 features: from a pretrained AlexNet (--set feature_weights=RUN_DIR, "
    "e.g. a caltech101_alexnet run) against the same AlexNet with random weights; test accuracy added",
    # feature_pretrained, not feature_weights=none: the user's --set feature_weights comes after the variant's.
    variants=[("pretrained", []), ("random", ["feature_pretrained=false"])],
    post=feature_source_table,
    repeats=3,
    pretrained_on="caltech101_alexnet",
    backbone_setting="feature_weights",
)
