"""ZCA whitening (``preprocess=zca``): what the fitted transform does to the data it was fitted on."""
import numpy as np
import pytest

from kerascnn.models.common import ZCAWhitening


def correlated_images(n=600, shape=(4, 4, 3), seed=0):
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    mixing = rng.normal(size=(size, size)) * np.linspace(3.0, 0.1, size)
    flat = 128 + 10 * rng.normal(size=(n, size)) @ mixing.T
    return np.clip(flat, 0, 255).reshape(n, *shape).astype(np.float32)


def fitted(images, epsilon):
    layer = ZCAWhitening()
    layer.build((None, *images.shape[1:]))
    layer.adapt(images, epsilon=epsilon)
    out = np.asarray(layer(images)).reshape(len(images), -1)
    return layer, out


def test_small_epsilon_whitens_the_training_images():
    images = correlated_images()
    _, out = fitted(images, 1e-6)
    cov = np.cov(out, rowvar=False, bias=True)
    mean_eigenvalue = np.trace(np.cov(images.reshape(len(images), -1) / 255.0, rowvar=False, bias=True)) / cov.shape[0]
    # Decorrelated, every direction scaled to the mean eigenvalue; centred on the training mean.
    assert cov == pytest.approx(mean_eigenvalue * np.eye(cov.shape[0]), abs=1e-3 * mean_eigenvalue)
    assert out.mean(axis=0) == pytest.approx(0.0, abs=1e-4)
    assert out.shape[1] == 48


def test_large_epsilon_only_subtracts_the_mean_and_shape_is_kept():
    images = correlated_images()
    layer, out = fitted(images, 1e6)
    assert np.asarray(layer(images[:2])).shape == (2, 4, 4, 3)
    centred = images.reshape(len(images), -1) / 255.0 - images.reshape(len(images), -1).mean(axis=0) / 255.0
    assert out == pytest.approx(centred, abs=1e-4)


def test_bad_epsilon_and_wrong_image_size_are_clear_errors():
    images = correlated_images(n=50)
    layer = ZCAWhitening()
    layer.build((None, 4, 4, 3))
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        layer.adapt(images, epsilon=0.0)
    with pytest.raises(ValueError, match="do not fit"):
        layer.adapt(np.zeros((5, 3, 3, 3)))
