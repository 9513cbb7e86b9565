"""Guided backpropagation and Grad-CAM on small hand-made models (flat and with a nested backbone)."""
import keras
import numpy as np
import pytest
from keras import layers

from kerascnn.vis import saliency

POSITIVE = keras.initializers.RandomUniform(0.0, 0.1, seed=0)


def flat_cnn(size=12, classes=3):
    """Positive weights on positive pixels: every ReLU is active, so both maps must be non-zero."""
    inputs = keras.Input((size, size, 3))
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(4, 3, activation="relu", kernel_initializer=POSITIVE, name="first")(x)
    x = layers.Conv2D(4, 3, activation="relu", kernel_initializer=POSITIVE, name="second")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(5, activation="relu", kernel_initializer=POSITIVE)(x)
    return keras.Model(inputs, layers.Dense(classes, activation="softmax", kernel_initializer=POSITIVE)(x))


def nested_cnn(size=12, classes=3):
    backbone_in = keras.Input((size, size, 3))
    y = layers.Conv2D(4, 3, activation="relu", kernel_initializer=POSITIVE)(backbone_in)
    backbone = keras.Model(backbone_in, y, name="backbone")
    inputs = keras.Input((size, size, 3))
    x = layers.GlobalAveragePooling2D()(backbone(inputs))
    return keras.Model(inputs, layers.Dense(classes, activation="softmax", kernel_initializer=POSITIVE)(x))


def image(size=12, channels=3):
    return np.random.default_rng(0).uniform(50, 250, (size, size, channels)).astype(np.float32)


def test_guided_gradient_and_maps_have_the_image_shape():
    model = flat_cnn()
    gradient = saliency.Explainer(model).guided_gradients(image(), 1)
    assert gradient.shape == (12, 12, 3) and np.abs(gradient).max() > 0
    maps = saliency.gradient_maps(gradient)
    assert maps["colour"].shape == maps["positive"].shape == maps["negative"].shape == (12, 12, 3)
    assert maps["grey"].shape == (12, 12)
    for name, array in maps.items():
        assert array.min() >= 0 and array.max() <= 1, name
    assert maps["grey"].max() == 1


def test_gradient_maps_split_signs():
    g = np.zeros((2, 2, 1), np.float32)
    g[0, 0], g[1, 1] = 2.0, -4.0
    maps = saliency.gradient_maps(g)
    assert maps["positive"][..., 0].tolist() == [[1, 0], [0, 0]]
    assert maps["negative"][..., 0].tolist() == [[0, 0], [0, 1]]
    np.testing.assert_allclose(maps["colour"][..., 0], [[1, 4 / 6], [4 / 6, 0]], rtol=1e-6)


def test_guided_backprop_passes_only_positive_gradients_through_relus():
    inputs = keras.Input((2,))
    hidden = layers.Dense(2, activation="relu", use_bias=False,
                          kernel_initializer=keras.initializers.Constant([[1.0, 1.0], [0.0, 0.0]]))(inputs)
    outputs = layers.Dense(2, activation="softmax", use_bias=False,
                           kernel_initializer=keras.initializers.Constant([[1.0, 0.0], [-1.0, 0.0]]))(hidden)
    model = keras.Model(inputs, outputs)
    # score 0 = h0 - h1 with h0 = h1 = x0: plain gradient w.r.t. x0 is 0, guided keeps only h0's +1 path.
    gradient = saliency.Explainer(model).guided_gradients(np.array([1.0, 1.0], np.float32), 0)
    np.testing.assert_allclose(gradient, [1.0, 0.0])


def test_gradcam_defaults_to_the_last_conv_layer():
    model = flat_cnn()
    assert saliency.find_last_conv_layer(model) == "second"
    explainer = saliency.Explainer(model)
    cam = explainer.gradcam(image(), 2)
    assert cam.shape == (12, 12) and cam.max() == pytest.approx(1.0) and cam.min() >= 0
    early = explainer.gradcam(image(), 2, saliency.resolve_layer(model, "conv1"))
    assert early.shape == (12, 12) and not np.allclose(early, cam)


def test_gradcam_through_a_nested_backbone():
    model = nested_cnn()
    assert saliency.find_last_conv_layer(model) == "backbone"
    explainer = saliency.Explainer(model)
    cam = explainer.gradcam(image(), 0)
    assert cam.shape == (12, 12) and cam.max() > 0
    assert np.abs(explainer.guided_gradients(image(), 0)).max() > 0


def test_gradcam_needs_a_conv_layer():
    inputs = keras.Input((4, 4, 1))
    x = layers.Dense(3, activation="relu")(layers.Flatten()(inputs))
    model = keras.Model(inputs, layers.Dense(2, activation="softmax")(x))
    explainer = saliency.Explainer(model)
    with pytest.raises(saliency.NoConvLayerError):
        explainer.gradcam(image(4, 1), 0)
    maps = explainer.explain(image(4, 1), 0)
    assert "gradcam" not in maps and maps["grey"].shape == (4, 4)


def test_class_argument_accepts_names_and_indices():
    names = ["Alec_Baldwin", "Peri_Gilpin"]
    assert saliency.class_index("peri gilpin", names, 0) == 1
    assert saliency.class_index("0", names, 1) == 0
    assert saliency.class_index(None, names, 1) == 1
    with pytest.raises(ValueError, match="out of range"):
        saliency.class_index("2", names, 0)


def test_figure_writes_one_png_per_map(tmp_path):
    model = flat_cnn()
    images = np.stack([image(), image()[::-1]]).astype(np.uint8)
    written = saliency.guided_backprop_figure(model, images, ["a", "b"], ["x", "y", "z"], "y", tmp_path)
    assert written[0].name == "guided_backprop.png"
    assert {p.name for p in written[1:]} == {f"{s}_y_{m}.png" for s in "ab" for m in
                                             ("colour", "grey", "positive", "negative", "gradcam", "guided_gradcam")}
