"""The caltech101 assignment's improved network (seed 003, question 1b): a compact VGG-style CNN.

LeNet-5's two wide 5x5 convs and 1021-unit dense layer overfit Caltech-101 fast: ~7,800 training
images, 101 classes. This network trades them for small 3x3 convs with batch norm, more depth,
global average pooling instead of a big dense head, and dropout before the classifier, which
gives far fewer parameters and far better generalisation for the same CPU budget.
"""
import keras
from keras import layers

from kerascnn.models import register
from kerascnn.models.common import classifier_output, preprocessing_layer, regularizer


@register
def caltech_net(
    input_shape=(64, 64, 3),
    num_classes=101,
    *,
    widths=(32, 64, 128, 256),
    convs_per_stage=(1, 1, 2, 2),
    dropout=0.3,
    l2=1e-4,
    initializer="he_normal",
    preprocess="imagenet",
):
    """Stages of (3x3 conv -> BN -> ReLU) x n, each but the last followed by 2x2 max pooling; GAP; softmax.

    At 64x64 the stages see 64, 32, 16 and 8 pixel maps. The early stages have a single conv
    because high-resolution maps cost the most CPU time and learn only edges and textures; the
    widths double as the maps halve, and the two deep stages get two convs each. Convs have no bias (batch norm's shift replaces it) and
    He-normal initialisation (they feed ReLUs). Layers are named ``stage{s}_conv{c}``,
    ``stage{s}_bn{c}``, ``stage{s}_relu{c}`` and ``stage{s}_pool``.
    """
    if len(widths) != len(convs_per_stage):
        raise ValueError(f"widths has {len(widths)} stages but convs_per_stage has {len(convs_per_stage)}")
    reg = regularizer(l2)
    inputs = keras.Input(shape=input_shape, name="image")
    x = preprocessing_layer(preprocess)(inputs)
    for stage, (width, n_convs) in enumerate(zip(widths, convs_per_stage), start=1):
        for c in range(1, n_convs + 1):
            x = layers.Conv2D(width, 3, padding="same", use_bias=False, kernel_initializer=initializer,
                              kernel_regularizer=reg, name=f"stage{stage}_conv{c}")(x)
            x = layers.BatchNormalization(name=f"stage{stage}_bn{c}")(x)
            x = layers.Activation("relu", name=f"stage{stage}_relu{c}")(x)
        if stage < len(widths):
            x = layers.MaxPooling2D(2, name=f"stage{stage}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, classifier_output(x, num_classes), name="caltech_net")
