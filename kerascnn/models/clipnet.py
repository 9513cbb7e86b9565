"""ClipNet: the clip-art assignment's own network (model C, seed 004), trained from scratch.

Design, for a few thousand cartoon images at 96-128 px on a CPU:

- Clip art is flat colour regions bounded by strong outlines, so little texture capacity is
  needed but shape context is. The net is narrow (24-192 channels, 1.1 M parameters at 7
  classes, a twentieth of ResNet-50's) and its blocks are inverted bottlenecks: a 1x1 expansion,
  a 3x3 depthwise conv (spatial context per channel at a ninth of a full conv's cost) and a
  linear 1x1 projection, with an identity (or 1x1 projection) shortcut so the stack trains from
  scratch without vanishing gradients.
- Resolution is reduced between stages by a 2x2 pooling layer (``pooling``: max or average)
  rather than by strided convolutions, which keeps the downsampling a single, switchable choice
  the ablation can compare.
- The head is multi-scale: the global averages of the last two stages (12x12 and 6x6 maps at
  96 px) are concatenated before the feature layer, because clip-art objects range from
  small icons to full-frame drawings and the coarsest map alone loses the small ones.
- Extra techniques: squeeze-excitation (Hu et al. 2018) rescales each block's channels by a
  gate computed from the whole image, so a block can turn up, say, the "grey and wrinkled"
  channels when the picture is an elephant; it costs ~2% more compute and helps most where
  channels are few, as here. Stochastic depth (Huang et al. 2016) drops whole residual branches
  at random while training (rate growing with depth), an ensemble-like regulariser that suits a
  small training set.

Every switch the ablation study needs is a builder argument: ``initializer``, ``pooling``,
``dropout`` (0 = off), ``batch_norm``, ``squeeze_excitation``, ``stochastic_depth`` (0 = off).
Activations are ``layers.Activation("relu")`` / ``activation="relu"`` so guided backpropagation
recognises them. The last dense layer is named ``features`` (its output is what t-SNE embeds).
"""
import keras
from keras import layers

from kerascnn.models import register
from kerascnn.models.common import classifier_output, preprocessing_layer

INITIALIZERS = ("he_normal", "glorot_uniform", "small_normal")
# An epoch here is only ~50 batches: with Keras' default 0.99 the moving statistics would still be
# a third their initial values after two epochs and validation accuracy meaningless; 0.9 (PyTorch's
# default) tracks the data within an epoch.
BN_MOMENTUM = 0.9
POOLINGS = ("max", "avg")


def make_initializer(name):
    """he_normal (scaled for ReLU), glorot_uniform (Keras' default) or small_normal (N(0, 0.01), the classic naive one)."""
    if name == "small_normal":
        return keras.initializers.RandomNormal(stddev=0.01)
    if name in ("he_normal", "glorot_uniform"):
        return keras.initializers.get(name)
    raise ValueError(f"unknown initializer {name!r}; choose one of {', '.join(INITIALIZERS)}")


@keras.saving.register_keras_serializable(package="kerascnn")
class StochasticDepth(layers.Layer):
    """Drop a residual branch for a whole sample with probability ``rate`` while training.

    Kept branches are scaled by 1 / (1 - rate), so inference uses the branch as it is.
    """

    def __init__(self, rate=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.seed = float(rate), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=False):
        if not training or self.rate <= 0:
            return x
        shape = (keras.ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        keep = keras.random.uniform(shape, seed=self.seed_generator) >= self.rate
        return x * keras.ops.cast(keep, x.dtype) / (1.0 - self.rate)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class _Builder:
    """Layer helpers that share the ablation switches (initializer, batch norm)."""

    def __init__(self, initializer, batch_norm):
        self.initializer, self.batch_norm = initializer, batch_norm

    def init(self):
        return make_initializer(self.initializer)

    def norm(self, x, name):
        if not self.batch_norm:
            return x
        return layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)

    def conv(self, x, filters, kernel, name, strides=1):
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=not self.batch_norm,
                          kernel_initializer=self.init(), name=f"{name}_conv")(x)
        return self.norm(x, name)

    def depthwise(self, x, name):
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=not self.batch_norm,
                                   depthwise_initializer=self.init(), name=f"{name}_dwconv")(x)
        return self.norm(x, f"{name}_dw")

    def squeeze_excite(self, x, name, ratio=8):
        channels = x.shape[-1]
        gate = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(x)
        gate = layers.Dense(max(8, channels // ratio), activation="relu", kernel_initializer=self.init(),
                            name=f"{name}_se_reduce")(gate)
        gate = layers.Dense(channels, activation="sigmoid", name=f"{name}_se_expand")(gate)
        return layers.Multiply(name=f"{name}_se_scale")([x, gate])

    def block(self, x, filters, expansion, name, squeeze_excitation, drop_rate):
        """Inverted bottleneck: 1x1 expand -> ReLU -> 3x3 depthwise -> ReLU -> [SE] -> linear 1x1, + shortcut."""
        shortcut = x if x.shape[-1] == filters else self.conv(x, filters, 1, f"{name}_shortcut")
        y = self.conv(x, x.shape[-1] * expansion, 1, f"{name}_expand")
        y = layers.Activation("relu", name=f"{name}_expand_relu")(y)
        y = self.depthwise(y, name)
        y = layers.Activation("relu", name=f"{name}_dw_relu")(y)
        if squeeze_excitation:
            y = self.squeeze_excite(y, name)
        y = self.conv(y, filters, 1, f"{name}_project")
        if drop_rate:
            y = StochasticDepth(drop_rate, name=f"{name}_drop_path")(y)
        return layers.Add(name=f"{name}_add")([shortcut, y])


@register
def clipnet(input_shape=(96, 96, 3), num_classes=65, *, stem_width=24, widths=(32, 64, 128, 192), blocks=(1, 2, 2, 2),
            expansion=4, feature_units=128, initializer="he_normal", pooling="max", dropout=0.3, batch_norm=True,
            squeeze_excitation=True, stochastic_depth=0.1, preprocess="imagenet"):
    """3x3/2 stem, four stages of inverted-bottleneck blocks with 2x2 pooling between them,
    multi-scale global average pooling (last two stages), a ReLU dense ``features`` layer, dropout, softmax.

    ``stochastic_depth`` is the drop rate of the last block; earlier blocks get linearly less.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r}: choose one of {', '.join(POOLINGS)}")
    if len(widths) != len(blocks) or len(widths) < 2:
        raise ValueError("widths and blocks need one entry per stage, at least two stages")
    make_initializer(initializer)  # fail early on a bad name
    build = _Builder(initializer, batch_norm)
    pool = layers.MaxPooling2D if pooling == "max" else layers.AveragePooling2D
    total_blocks, done = sum(blocks), 0

    inputs = keras.Input(shape=input_shape, name="image")
    x = preprocessing_layer(preprocess)(inputs)
    x = build.conv(x, stem_width, 3, "stem", strides=2)
    x = layers.Activation("relu", name="stem_relu")(x)
    stage_outputs = []
    for s, (width, count) in enumerate(zip(widths, blocks), start=1):
        if s > 1:
            x = pool(2, name=f"stage{s}_pool")(x)
        for b in range(1, count + 1):
            done += 1
            x = build.block(x, width, expansion, f"stage{s}_block{b}", squeeze_excitation,
                            stochastic_depth * done / total_blocks)
        stage_outputs.append(x)
    pooled = [layers.GlobalAveragePooling2D(name=f"stage{s}_gap")(t)
              for s, t in enumerate(stage_outputs[-2:], start=len(stage_outputs) - 1)]
    x = layers.Concatenate(name="multiscale")(pooled)
    x = layers.Dense(feature_units, activation="relu", kernel_initializer=build.init(), name="features")(x)
    return keras.Model(inputs, classifier_output(x, num_classes, dropout, "features_dropout"), name="clipnet")
