"""Augmentation specs: every name builds and keeps the batch's shape; crops differ per image."""
import keras
import numpy as np
import pytest

from kerascnn.data.augment import AUGMENTATIONS, PadAndCrop, build_augmentation, parse_entry


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_every_augmentation_keeps_shape_and_range(name):
    x = np.random.default_rng(0).uniform(0, 255, (4, 24, 24, 3)).astype("float32")
    out = keras.ops.convert_to_numpy(build_augmentation([name], seed=1)(x, training=True))
    assert out.shape == x.shape
    assert out.min() >= -1e-3 and out.max() <= 255 + 1e-3


def test_pad_and_crop_picks_a_window_per_image_and_is_identity_at_inference():
    x = np.tile(np.arange(64, dtype="float32").reshape(1, 8, 8, 1), (32, 1, 1, 3))
    out = keras.ops.convert_to_numpy(PadAndCrop(2)(x, training=True))
    windows = {tuple(img[:, :, 0].ravel()) for img in out}
    assert len(windows) > 4  # one shared offset per batch would give exactly one
    assert np.array_equal(keras.ops.convert_to_numpy(PadAndCrop(2)(x, training=False)), x)
    # A crop of the reflect-padded image keeps each row's pixels consecutive when the shift is inside.
    assert all(set(img[:, :, 0].ravel()) <= set(range(64)) for img in out)


def test_strength_parsing_and_unknown_names():
    assert parse_entry("rotate:45")[1] == "45" and parse_entry("flip")[1] == "h"
    with pytest.raises(ValueError, match="available:"):
        parse_entry("wobble")
    assert build_augmentation([]) is None
