"""Figure kinds of a run, as library functions, and ``visualize`` that dispatches to one by name.

Every kind is a function ``kind(run_dir, out_dir, **options)`` returning the paths it wrote; its
keyword-only parameters are the options it takes (``checkpoint``, ``split``, ``layers``, ``images``,
``units``, ``class_name``, ``count``), each with the default used when it is not given.
"""
import importlib.util
import inspect
from pathlib import Path

from kerascnn.vis.activation_max import activation_max_kind
from kerascnn.vis.activations import plot_activations
from kerascnn.vis.embedding import tsne_kind
from kerascnn.vis.filters import plot_filters
from kerascnn.vis.saliency import gradcam_kind, guided_backprop_kind
from kerascnn.vis.top_losses import top_losses_kind
from kerascnn.vis.weights import dense_weights


def curves(run_dir, out_dir):
    """The ``curves`` kind: loss and accuracy per epoch, train against validation."""
    from kerascnn import rundir
    from kerascnn.vis.curves import plot_history

    path = out_dir / "curves.png"
    plot_history(rundir.read_history(run_dir), path, title=run_dir.name)
    return [path]


def confusion(run_dir, out_dir, *, split="val", checkpoint="best"):
    """The ``confusion`` kind: the confusion matrix of ``checkpoint`` on ``split``, as PNG and CSV."""
    from kerascnn.evaluate import evaluate_run

    m = evaluate_run(run_dir, split=split, checkpoint=checkpoint, out_dir=out_dir)
    return [Path(m["confusion_png"]), Path(m["confusion_csv"])]


KINDS = {
    "curves": curves,
    "confusion": confusion,
    "top-losses": top_losses_kind,
    "dense-weights": dense_weights,
    "guided-backprop": guided_backprop_kind,
    "gradcam": gradcam_kind,
    "tsne": tsne_kind,
    "activation-max": activation_max_kind,
    "filters": plot_filters,
    "activations": plot_activations,
}
# Kinds drawn with tf-keras-vis, which runs on TensorFlow whatever Keras's backend.
TENSORFLOW_KINDS = ("guided-backprop", "gradcam", "activation-max")


def kind_options(kind):
    """The names of the options figure ``kind`` takes."""
    parameters = inspect.signature(KINDS[kind]).parameters.values()
    return [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]


def visualize(run_dir, *, kind, out=None, **options):
    """Draw figure ``kind`` of the run in ``run_dir`` into ``out`` (default ``RUN/vis``); returns the paths written.

    ``options`` go to the kind's function (``kind_options(kind)`` names them); one it does not take
    is an error rather than silently ignored.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown figure kind {kind!r}; available: {', '.join(sorted(KINDS))}")
    unknown = sorted(set(options) - set(kind_options(kind)))
    if unknown:
        takes = ", ".join(kind_options(kind)) or "no options"
        raise ValueError(f"the {kind} figure does not take {', '.join(unknown)}; it takes {takes}")
    missing = [name for name in ("tensorflow", "tf_keras_vis") if importlib.util.find_spec(name) is None]
    if kind in TENSORFLOW_KINDS and missing:
        verb = "is" if len(missing) == 1 else "are"
        raise ValueError(f"the {kind} figure is drawn with tf-keras-vis on TensorFlow, and {' and '.join(missing)} "
                         f"{verb} not installed here (pip install tensorflow tf-keras-vis); the run directory can "
                         "be visualized on any machine that has them")
    out_dir = Path(out or Path(run_dir) / "vis")
    out_dir.mkdir(parents=True, exist_ok=True)
    return KINDS[kind](Path(run_dir), out_dir, **options)
