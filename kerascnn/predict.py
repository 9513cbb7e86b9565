"""Predict classes for image files or folders with a run's model; write ``id,label,...`` rows."""
from pathlib import Path

import numpy as np

from kerascnn import rundir
from kerascnn.data.images import decode_many, is_image_file, warn_skipped
from kerascnn.evaluate import predict_arrays
from kerascnn.io import atomic_write
from kerascnn.tables import csv_text


def collect_images(inputs):
    """Image files named directly, plus every image inside named folders (sorted, recursive)."""
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.is_file() and is_image_file(p))
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"no image or folder at {item}")
    if not files:
        raise FileNotFoundError(f"no images found in {', '.join(map(str, inputs))}")
    return files


def decode_for_model(model, files):
    """Decode image files at the model's input size, as one grey channel when the model takes that.

    Returns (uint8 images, indices of the files kept, [(path, reason)] skipped).
    """
    height, width, channels = model.input_shape[1:4]
    if channels not in (1, 3):
        raise ValueError(f"this model takes {tuple(model.input_shape[1:])} inputs, not images "
                         "(a run trained on precomputed features?)")
    x, kept, skipped = decode_many(files, (height, width))
    if channels == 1:
        from kerascnn.data.faces import to_grayscale

        x = to_grayscale(x)
    return x, kept, skipped


def predict_files(run_dir, inputs, checkpoint="best", batch_size=256):
    """Rows of id (file stem), label (class index), class_name and probability, one per readable image."""
    model = rundir.load_model(run_dir, checkpoint)
    names = rundir.class_names(run_dir)
    files = collect_images(inputs)
    x, kept, skipped = decode_for_model(model, files)
    warn_skipped(skipped)
    probs = predict_arrays(model, x, batch_size)
    rows = []
    for i, p in zip(kept, probs):
        k = int(np.argmax(p))
        rows.append({"id": files[i].stem, "label": k, "class_name": names[k], "probability": round(float(p[k]), 6),
                     "file": str(files[i])})
    return rows, [path for path, _ in skipped]


def write_predictions(rows, out, minimal=False):
    """CSV with header ``id,label`` (the assignments' format) or ``id,label,class_name,probability``."""
    fields = ["id", "label"] if minimal else ["id", "label", "class_name", "probability"]
    atomic_write(out, csv_text(rows, fields))
