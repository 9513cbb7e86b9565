"""The one input pipeline every task trains and evaluates through.

Arrays stay uint8 in memory and batches are fed as uint8 [0, 255] (a model's input casts them to float32 and
the model normalises inside),
labels become one-hot (so label smoothing and mixing work with one loss), and augmentation runs
as Keras layers on whole batches. With TensorFlow installed this is a tf.data pipeline that
prepares the next batch while the model trains; where TensorFlow is absent (a JAX-only GPU
machine) the same batches come from a ``keras.utils.PyDataset`` over the arrays.
"""
import importlib.util
import math

import keras
import numpy as np

PIPELINES = ("auto", "tfdata", "numpy")


def make_dataset(x, y, num_classes, batch_size, *, training=False, augmentation=None, seed=0, pipeline="auto",
                 drop_remainder=False):
    """Batches of (float32 images, one-hot labels); ``drop_remainder`` keeps every batch full, which
    data-parallel training needs (batches split evenly across devices; reshuffling still uses every image)."""
    if pipeline not in PIPELINES:
        raise ValueError(f"input_pipeline={pipeline!r}: choose one of {', '.join(PIPELINES)}")
    if pipeline == "numpy" or (pipeline == "auto" and importlib.util.find_spec("tensorflow") is None):
        return ArrayBatches(x, y, num_classes, batch_size, training=training, augmentation=augmentation, seed=seed,
                            drop_remainder=drop_remainder)
    return tf_dataset(x, y, num_classes, batch_size, training=training, augmentation=augmentation, seed=seed,
                      drop_remainder=drop_remainder)


def tf_dataset(x, y, num_classes, batch_size, *, training, augmentation, seed, drop_remainder):
    """uint8 images and one-hot labels sliced, shuffled and batched; no per-batch function unless
    augmenting: a cast/one-hot ``map`` after ``batch`` costs a small model's epoch a visible share in thread
    contention on two cores, and the model's input casts uint8 to float32 itself."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, one_hot_labels(y, num_classes)))
    if training:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if training and augmentation is not None:
        ds = ds.map(lambda images, labels: (augmentation(tf.cast(images, tf.float32), training=True), labels),
                    num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def one_hot_labels(y, num_classes):
    """float32 one-hot rows; an unknown label (-1, an unlabelled test image) is an all-zero row."""
    y = np.asarray(y, dtype=np.int64)
    out = np.zeros((len(y), num_classes), dtype=np.float32)
    known = y >= 0
    out[np.flatnonzero(known), y[known]] = 1.0
    return out


class ArrayBatches(keras.utils.PyDataset):
    """Shuffled float32 batches with one-hot labels from in-memory uint8 arrays, without TensorFlow."""

    def __init__(self, x, y, num_classes, batch_size, *, training=False, augmentation=None, seed=0,
                 drop_remainder=False):
        super().__init__()
        self.drop_remainder = drop_remainder
        self.x, self.y = x, np.asarray(y, dtype=np.int64)
        self.num_classes, self.batch_size = num_classes, batch_size
        self.training, self.augmentation = training, augmentation
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x)) if training else np.arange(len(x))

    def __len__(self):
        if self.drop_remainder:
            return len(self.x) // self.batch_size
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index):
        idx = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        images = self.x[idx].astype("float32")
        if self.training and self.augmentation is not None:
            images = keras.ops.convert_to_numpy(self.augmentation(images, training=True))
        return images, one_hot_labels(self.y[idx], self.num_classes)

    def on_epoch_end(self):
        if self.training:
            self.order = self.rng.permutation(len(self.x))
