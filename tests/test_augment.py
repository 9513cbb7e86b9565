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


def test_geometric_entries_fuse_into_one_warp_and_others_keep_their_layers():
    from kerascnn.data.augment import RandomAffine

    layers = build_augmentation(["flip", "translate:0.1", "zoom:0.15", "brightness", "rotate:10"], seed=0).layers
    assert [type(layer).__name__ for layer in layers] == ["RandomAffine", "RandomBrightness", "RandomRotation",
                                                          "ClipPixels"]
    assert (layers[0].flip, layers[0].translate, layers[0].zoom, layers[0].rotate) == ("h", 0.1, 0.15, 0.0)
    assert [type(layer).__name__ for layer in build_augmentation(["rotate", "rotate"]).layers] == [
        "RandomRotation", "RandomRotation", "ClipPixels"]


def test_random_affine_transforms_are_exact_flips_shifts_and_centred_zooms():
    from kerascnn.data.augment import RandomAffine

    x = np.random.default_rng(0).uniform(0, 255, (1, 8, 8, 3)).astype("float32")

    def warp(layer, draws):
        transform = layer.transforms(keras.ops.convert_to_tensor(np.array([draws], "float32")), 8, 8)
        return keras.ops.convert_to_numpy(keras.ops.image.affine_transform(x, transform, fill_mode="reflect"))

    layer = RandomAffine(flip="hv", rotate=30, translate=0.25, zoom=0.5)
    np.testing.assert_allclose(warp(layer, [0.9, 0.9, 0.5, 0.5, 0.5, 0.5]), x, atol=1e-4)  # no change
    np.testing.assert_allclose(warp(layer, [0.1, 0.9, 0.5, 0.5, 0.5, 0.5]), x[:, :, ::-1], atol=1e-4)
    np.testing.assert_allclose(warp(layer, [0.9, 0.1, 0.5, 0.5, 0.5, 0.5]), x[:, ::-1], atol=1e-4)
    # The largest shift, 25% of 8 px: the draw 1.0 moves the content 2 px right (input x = output x - 2).
    np.testing.assert_allclose(warp(layer, [0.9, 0.9, 0.5, 0.5, 1.0, 0.5])[:, :, 2:], x[:, :, :6], atol=1e-4)
    np.testing.assert_allclose(warp(layer, [0.9, 0.9, 0.5, 0.5, 0.5, 0.0])[:, :6], x[:, 2:], atol=1e-4)
    # Rotation and zoom keep the centre of the image where it is: a symmetric image stays symmetric.
    symmetric = np.zeros((1, 8, 8, 3), "float32")
    symmetric[:, 3:5, 2:6] = 200
    x[...] = symmetric
    for draws in ([0.9, 0.9, 0.0, 0.5, 0.5, 0.5], [0.9, 0.9, 0.5, 0.0, 0.5, 0.5], [0.9, 0.9, 0.5, 1.0, 0.5, 0.5]):
        out = warp(layer, draws)
        np.testing.assert_allclose(out, out[:, ::-1, ::-1], atol=1e-3)


def test_random_affine_draws_differently_per_image_and_passes_through_at_inference():
    from kerascnn.data.augment import RandomAffine

    x = np.tile(np.random.default_rng(1).uniform(0, 255, (1, 16, 16, 3)).astype("float32"), (16, 1, 1, 1))
    layer = RandomAffine(flip="h", translate=0.1, zoom=0.15, seed=3)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    assert len({img.tobytes() for img in out}) == 16
    assert np.array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)
    restored = RandomAffine.from_config(layer.get_config())
    assert (restored.flip, restored.translate, restored.zoom, restored.seed) == ("h", 0.1, 0.15, 3)
