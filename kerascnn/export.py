"""Export a run's best model as .keras, TensorFlow SavedModel or TFLite, and verify the copies.

The SavedModel's ``serve`` signature takes raw uint8 images (batch, H, W, 3) and returns class
probabilities: the model's own preprocessing layers are part of the graph. TFLite is converted
from that SavedModel (``TFLiteConverter.from_keras_model`` fails for Keras 3 models on TF >= 2.16).
``verify_export`` reloads the exported files in a fresh Python process and compares them with
``best.keras`` on the validation images.
"""
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from kerascnn import rundir
from kerascnn.io import atomic_path

FORMATS = ("keras", "savedmodel", "tflite")
TENSORFLOW_FORMATS = ("savedmodel", "tflite")


def available_formats():
    """The formats this environment can write: SavedModel and TFLite are TensorFlow's own."""
    if importlib.util.find_spec("tensorflow") is None:
        return tuple(f for f in FORMATS if f not in TENSORFLOW_FORMATS)
    return FORMATS


def export_savedmodel(model, path):
    import keras
    import tensorflow as tf

    height, width, channels = model.input_shape[1:]
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serve",
        fn=lambda images: model(tf.cast(images, tf.float32), training=False),
        input_signature=[tf.TensorSpec([None, height, width, channels], tf.uint8, name="images")],
    )
    tmp = Path(str(path) + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    archive.write_out(str(tmp), verbose=False)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


def export_tflite(savedmodel_dir, path):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel_dir), signature_keys=["serve"])
    with atomic_path(path) as tmp:
        tmp.write_bytes(converter.convert())


def export_run(run_dir, formats=FORMATS, out_dir=None, checkpoint="best"):
    """Write the requested formats under ``RUN/export/``; returns {format: path}."""
    unavailable = [f for f in formats if f not in available_formats()]
    if unavailable:
        raise ValueError(f"exporting {', '.join(unavailable)} needs TensorFlow, which is not installed here "
                         "(pip install tensorflow, or export with --format keras on this backend)")
    out = Path(out_dir or Path(run_dir) / "export")
    out.mkdir(parents=True, exist_ok=True)
    model = rundir.load_model(run_dir, checkpoint)
    written = {}
    if "keras" in formats:
        with atomic_path(out / "model.keras") as tmp:
            model.save(tmp)
        written["keras"] = str(out / "model.keras")
    if "savedmodel" in formats or "tflite" in formats:
        export_savedmodel(model, out / "savedmodel")
        if "savedmodel" in formats:
            written["savedmodel"] = str(out / "savedmodel")
    if "tflite" in formats:
        export_tflite(out / "savedmodel", out / "model.tflite")
        written["tflite"] = str(out / "model.tflite")
        if "savedmodel" not in formats:
            shutil.rmtree(out / "savedmodel")
    shutil.copy(rundir.require(run_dir, "class_names.json"), out / "class_names.json")
    return written


def verify_export(run_dir, written, checkpoint="best", max_images=None):
    """Compare each exported file, reloaded in a new process, with the checkpoint on val images."""
    from kerascnn.data import load_dataset
    from kerascnn.evaluate import predict_arrays

    cfg = rundir.load_config(run_dir)
    x = load_dataset(cfg).val.x[:max_images]
    reference = predict_arrays(rundir.load_model(run_dir, checkpoint), x)
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "images.npz"
        np.savez(inputs, x=x)
        report = {}
        for fmt, path in written.items():
            out = Path(tmp) / f"{fmt}.npy"
            subprocess.run([sys.executable, "-m", "kerascnn.export", fmt, str(path), str(inputs), str(out)],
                           check=True, capture_output=True, text=True)
            probs = np.load(out)
            report[fmt] = {"images": int(len(x)), "max_abs_diff": float(np.abs(probs - reference).max()),
                           "same_predictions": int((probs.argmax(1) == reference.argmax(1)).sum())}
    return report


def _run_exported(fmt, path, x):
    """Class probabilities from an exported file, loaded the way a user would load it."""
    if fmt == "keras":
        import keras

        import kerascnn.data.augment  # noqa: F401
        import kerascnn.models.common  # noqa: F401

        return np.asarray(keras.models.load_model(path, compile=False).predict(x.astype("float32"), verbose=0))
    import tensorflow as tf

    if fmt == "savedmodel":
        serve = tf.saved_model.load(path).signatures["serve"]
        return np.concatenate([next(iter(serve(images=tf.constant(x[i:i + 256])).values())).numpy()
                               for i in range(0, len(x), 256)])
    interpreter = tf.lite.Interpreter(model_path=path)
    runner = interpreter.get_signature_runner("serve")
    return np.concatenate([next(iter(runner(images=x[i:i + 1]).values())) for i in range(len(x))])


if __name__ == "__main__":
    fmt, path, inputs, out = sys.argv[1:5]
    np.save(out, _run_exported(fmt, path, np.load(inputs)["x"]))
