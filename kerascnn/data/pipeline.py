"""The one tf.data input pipeline every task trains and evaluates through.

Arrays stay uint8 in memory; batches are cast to float32 [0, 255] (models normalise inside),
labels become one-hot (so label smoothing and mixing work with one loss), augmentation runs as
Keras layers on whole batches, and the next batch is prepared while the model trains.
"""
import numpy as np


def make_dataset(x, y, num_classes, batch_size, *, training=False, augmentation=None, seed=0):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, np.asarray(y, dtype=np.int32)))
    if training:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def to_model_inputs(images, labels):
        return tf.cast(images, tf.float32), tf.one_hot(labels, num_classes)

    ds = ds.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if training and augmentation is not None:
        ds = ds.map(lambda images, labels: (augmentation(images, training=True), labels),
                    num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
