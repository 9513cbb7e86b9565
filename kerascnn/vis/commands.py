"""``kerascnn visualize RUN --kind K``: a registry of figure kinds, each writing into RUN/vis/."""
import importlib
import importlib.util
from pathlib import Path

# kind -> "module:function"; each function takes (run_dir, out_dir, args) and returns the paths written.
KINDS = {
    "curves": "kerascnn.vis.commands:curves",
    "confusion": "kerascnn.vis.commands:confusion",
    "dense-weights": "kerascnn.vis.weights:dense_weights",
    "guided-backprop": "kerascnn.vis.saliency:guided_backprop_kind",
    "gradcam": "kerascnn.vis.saliency:gradcam_kind",
    "tsne": "kerascnn.vis.embedding:tsne_kind",
    "activation-max": "kerascnn.vis.activation_max:activation_max_kind",
    "filters": "kerascnn.vis.filters:plot_filters",
    "activations": "kerascnn.vis.activations:plot_activations",
}
# Kinds drawn with tf-keras-vis, which runs on TensorFlow whatever Keras's backend.
TENSORFLOW_KINDS = ("guided-backprop", "gradcam", "activation-max")


def visualize(args):
    if args.kind not in KINDS:
        raise ValueError(f"unknown --kind {args.kind!r}; available: {', '.join(sorted(KINDS))}")
    missing = [name for name in ("tensorflow", "tf_keras_vis") if importlib.util.find_spec(name) is None]
    if args.kind in TENSORFLOW_KINDS and missing:
        verb = "is" if len(missing) == 1 else "are"
        raise ValueError(f"--kind {args.kind} is drawn with tf-keras-vis on TensorFlow, and {' and '.join(missing)} "
                         f"{verb} not installed here (pip install tensorflow tf-keras-vis); the run directory can "
                         "be visualized on any machine that has them")
    module, fn = KINDS[args.kind].split(":")
    out_dir = Path(args.out or Path(args.run) / "vis")
    out_dir.mkdir(parents=True, exist_ok=True)
    return getattr(importlib.import_module(module), fn)(Path(args.run), out_dir, args)


def curves(run_dir, out_dir, args):
    from kerascnn import rundir
    from kerascnn.vis.curves import plot_history

    path = out_dir / "curves.png"
    plot_history(rundir.read_history(run_dir), path, title=run_dir.name)
    return [path]


def confusion(run_dir, out_dir, args):
    from kerascnn.evaluate import evaluate_run

    m = evaluate_run(run_dir, split=args.split, checkpoint=args.checkpoint, out_dir=out_dir)
    return [Path(m["confusion_png"]), Path(m["confusion_csv"])]
