"""t-SNE of a model's feature layer: ``visualize RUN --kind tsne [--split val] [--layers NAME]``.

The features are what the classifier sees: the input of the output layer (ClipNet's ReLU
``features`` dense layer, ResNet-50's pooled 2048-vector), or the output of a layer named with
``--layers``. scikit-learn's t-SNE (van der Maaten and Hinton 2008) embeds them in 2-D; points
are coloured by true class, and misclassified ones are drawn hollow, so a class that the
network mixes up shows as a cluster of rings inside another class's colour.
"""
import numpy as np

from kerascnn.io import atomic_write
from kerascnn.tables import csv_text
from kerascnn.vis.figure import pyplot, save_figure


def feature_model(model, layer=None):
    """A model from the input to ``layer``'s output, or to the input of the output layer by default."""
    import keras

    tensor = model.get_layer(layer).output if layer else model.layers[-1].input
    if isinstance(tensor, (list, tuple)):
        raise ValueError(f"the layer feeding {model.layers[-1].name} has several inputs; name one with --layers")
    return keras.Model(model.inputs, tensor, name=f"{model.name}_features")


def extract_features(model, x, layer=None, batch_size=128):
    """Feature vectors (n, d) of uint8 images ``x``; spatial maps are averaged over height and width."""
    from kerascnn.evaluate import predict_arrays

    features = predict_arrays(feature_model(model, layer), x, batch_size)
    return features.reshape(len(features), -1, features.shape[-1]).mean(axis=1) if features.ndim > 2 else features


def embed(features, seed=0):
    """2-D t-SNE embedding; perplexity 30, lowered for small sets (it must stay below n)."""
    from sklearn.manifold import TSNE

    n = len(features)
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 images, got {n}")
    perplexity = float(min(30.0, (n - 1) / 3))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(np.asarray(features, dtype=np.float32))


def plot_embedding(points, labels, predicted, class_names, path, title=""):
    plt = pyplot()
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(8, 7))
    for k, name in enumerate(class_names):
        colour = cmap(k % cmap.N)
        right = (labels == k) & (predicted == k)
        wrong = (labels == k) & (predicted != k)
        ax.scatter(points[right, 0], points[right, 1], s=14, color=colour, label=f"{k} {name}")
        ax.scatter(points[wrong, 0], points[wrong, 1], s=22, facecolors="none", edgecolors=colour, linewidths=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    errors = int((labels != predicted).sum())
    ax.set_title(title + f"\n{len(labels)} images, filled = correct, hollow = misclassified ({errors})", fontsize=9)
    ax.legend(fontsize=7, markerscale=1.5, loc="best", ncol=1 if len(class_names) <= 20 else 2, title="true class")
    fig.tight_layout()
    save_figure(fig, path)


def tsne_kind(run_dir, out_dir, *, split="val", checkpoint="best", layers=None):
    """The ``tsne`` kind: embed the ``split``'s features of the ``checkpoint`` model, taken at the first of
    ``layers`` (default: the input of the output layer); the figure and a CSV of the points."""
    from kerascnn import rundir
    from kerascnn.data import load_dataset
    from kerascnn.evaluate import predict_arrays
    from kerascnn.vis.saliency import layer_specs

    cfg = rundir.load_config(run_dir)
    model = rundir.load_model(run_dir, checkpoint)
    part = load_dataset(cfg).split(split)
    if (part.y < 0).all():
        raise ValueError(f"the {split!r} split has no labels to colour the t-SNE by; use --split val")
    layer = next(iter(layer_specs(layers)), None)
    features = extract_features(model, part.x, layer)
    predicted = predict_arrays(model, part.x).argmax(1)
    points = embed(features, seed=cfg.seed)
    names = rundir.class_names(run_dir)
    source = layer or f"input of {model.layers[-1].name}"
    path = out_dir / f"tsne_{split}_{checkpoint}.png"
    plot_embedding(points, part.y, predicted, names, path,
                   title=f"{run_dir.name}: t-SNE of {source} ({features.shape[1]}-d), {split} split")
    rows = [{"file": f, "label": y, "predicted": p, "x": f"{a:.4f}", "y": f"{b:.4f}"}
            for f, y, p, (a, b) in zip(part.files, part.y, predicted, points)]
    table = atomic_write(out_dir / f"tsne_{split}_{checkpoint}.csv", csv_text(rows))
    return [path, table]
