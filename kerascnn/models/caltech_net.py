"""The caltech101 assignment's improved network (seed 003, question 1b): a compact VGG-style CNN.

LeNet-5 spends most of its CPU time convolving full-resolution 64x64 maps and most of its
parameters on a 1024x1021 dense layer, a lot of capacity to memorise ~7,800 training images of
101 classes. This network trades them for a strided stem, small 3x3 convs with batch norm,
more depth, global average pooling instead of a big dense head, and dropout before the
classifier: about as many parameters as LeNet-5, placed where they generalise.
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
    stem_width=32,
    stem_kernel=5,
    stem_stride=2,
    widths=(64, 128, 256),
    convs_per_stage=(1, 2, 2),
    dropout=0.3,
    l2=1e-4,
    initializer="he_normal",
    preprocess="imagenet",
):
    """Stem conv -> BN -> ReLU, then stages of 2x2 max pool + (3x3 conv -> BN -> ReLU) x n; GAP; softmax.

    At 64x64 the stem's stride 2 gives 32x32 maps and the stages see 16, 8 and 4 pixel maps.
    Convolving full-resolution maps is what costs the most CPU time, while the stem's 5x5 kernels
    at stride 2 still see every pixel; measured on the training CPU, this is about 3.5 times cheaper
    per epoch than a stride-1 stem with the same widths. The widths double as the maps halve.
    Convs have no bias (batch norm's shift replaces it) and He-normal initialisation (they feed
    ReLUs). Layers are named ``stem_conv``/``stem_bn``/``stem_relu``, then ``stage{s}_pool``,
    ``stage{s}_conv{c}``, ``stage{s}_bn{c}``, ``stage{s}_relu{c}``.
    """
    if len(widths) != len(convs_per_stage):
        raise ValueError(f"widths has {len(widths)} stages but convs_per_stage has {len(convs_per_stage)}")
    reg = regularizer(l2)

    def conv_bn_relu(x, width, kernel, stride, name, suffix=""):
        x = layers.Conv2D(width, kernel, strides=stride, padding="same", use_bias=False,
                          kernel_initializer=initializer, kernel_regularizer=reg, name=f"{name}_conv{suffix}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{suffix}")(x)
        return layers.Activation("relu", name=f"{name}_relu{suffix}")(x)

    inputs = keras.Input(shape=input_shape, name="image")
    x = preprocessing_layer(preprocess)(inputs)
    x = conv_bn_relu(x, stem_width, stem_kernel, stem_stride, "stem")
    for stage, (width, n_convs) in enumerate(zip(widths, convs_per_stage), start=1):
        x = layers.MaxPooling2D(2, name=f"stage{stage}_pool")(x)
        for c in range(1, n_convs + 1):
            x = conv_bn_relu(x, width, 3, 1, f"stage{stage}", c)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, classifier_output(x, num_classes, dropout), name="caltech_net")
