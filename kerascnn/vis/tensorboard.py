"""TensorBoard extras: the validation confusion matrix as an image and the model's graph at the end of a
run, and HParams records for search trials and study variants.

Keras's TensorBoard callback logs scalars per epoch; its ``write_graph`` reads ``model.train_function``,
which the graph loop (kerascnn/speedups/graph_loop.py) never builds, and it would trace the graph at the
start of training. Both pictures are written here once, after training, from the best checkpoint, so
they cost training nothing and look the same whichever loop ran.
"""
import tempfile
from pathlib import Path


def confusion_png(cm, class_names, title=""):
    """The confusion-matrix figure of kerascnn.vis.confusion, as PNG bytes."""
    from kerascnn.vis.confusion import plot_confusion

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "confusion.png"
        plot_confusion(cm, class_names, path, title=title)
        return path.read_bytes()


def forward_graph(model):
    """The TensorFlow graph of ``model``'s inference forward pass, traced once on a symbolic batch."""
    import tensorflow as tf

    spec = tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32)
    return tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph


def write_run_summaries(run_dir, splits, step, checkpoint="best"):
    """Write the ``checkpoint`` model's validation confusion matrix (an image summary in RUN/tensorboard/validation)
    and, on the TensorFlow backend, its forward graph (RUN/tensorboard/train, where Keras puts a graph).
    Returns the tags written."""
    import keras
    import tensorflow as tf

    from kerascnn import rundir
    from kerascnn.evaluate import confusion_matrix, predict_arrays

    logs, written = Path(run_dir) / "tensorboard", []
    model = rundir.load_model(run_dir, checkpoint)
    if len(splits.val.x):
        pred = predict_arrays(model, splits.val.x).argmax(1)
        cm = confusion_matrix(splits.val.y, pred, splits.num_classes)
        png = confusion_png(cm, splits.class_names, title=f"validation ({checkpoint}, epoch {step})")
        writer = tf.summary.create_file_writer(str(logs / "validation"))
        with writer.as_default():
            tf.summary.image("confusion_matrix", tf.image.decode_png(png, channels=3)[None], step=step,
                             description=f"validation confusion matrix of the {checkpoint} checkpoint")
        writer.close()
        written.append("confusion_matrix")
    if keras.backend.backend() == "tensorflow":
        writer = tf.summary.create_file_writer(str(logs / "train"))
        with writer.as_default():
            tf.summary.graph(forward_graph(model))
        writer.close()
        written.append("graph")
    return written


def hparam_value(value):
    """A value TensorBoard's HParams plugin accepts (bool, int, float or str)."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def write_hparams(logdir, *, name, hparams, metrics):
    """One HParams record: ``hparams`` (name -> value) and final ``metrics`` (name -> number) at step 0,
    so ``tensorboard --logdir`` over the parent folder shows every record in the HParams table and
    parallel-coordinates views."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hparams_api

    with tf.summary.create_file_writer(str(logdir)).as_default():
        hparams_api.hparams({k: hparam_value(v) for k, v in hparams.items()}, trial_id=name)
        for metric, value in metrics.items():
            if value is not None:
                tf.summary.scalar(metric, float(value), step=0)
