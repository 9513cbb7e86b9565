"""Augmentation described as data: ``["flip", "rotate:15", "jitter:0.2"]`` -> Keras layers.

One spec language serves training augmentation, the robustness study's fixed transformations and
``--set augment=[...]``. Each entry is ``name`` or ``name:strength``; pixel values are raw [0, 255].
"""
import math

import keras
from keras import layers

VALUE_RANGE = (0, 255)


def _flip(s):
    return layers.RandomFlip({"h": "horizontal", "v": "vertical", "hv": "horizontal_and_vertical"}[s or "h"])


# name -> (default strength, factory(strength) -> layer, what it does)
AUGMENTATIONS = {
    "flip": ("h", _flip, "random flip: h (default), v or hv"),
    "hflip": (1.0, lambda p: RandomApply(layers.RandomFlip("horizontal"), p), "horizontal flip with probability p"),
    "rotate": (15.0, lambda deg: layers.RandomRotation(float(deg) / 360.0, fill_mode="reflect"), "rotation up to +-deg degrees"),
    "translate": (0.1, lambda f: layers.RandomTranslation(float(f), float(f), fill_mode="reflect"), "shift up to a fraction of the size"),
    "zoom": (0.1, lambda f: layers.RandomZoom((-float(f), float(f)), fill_mode="reflect"), "zoom in or out by up to a fraction"),
    "crop": (4, lambda px: PadAndCrop(int(px)), "pad by px pixels (reflect) then random crop back"),
    "brightness": (0.2, lambda f: layers.RandomBrightness(float(f), value_range=VALUE_RANGE), "brightness shift by up to a fraction of the range"),
    "contrast": (0.2, lambda f: layers.RandomContrast(float(f), value_range=VALUE_RANGE), "contrast scaled by 1 +- f"),
    "saturation": (0.2, lambda f: layers.RandomSaturation((0.5 - float(f) / 2, 0.5 + float(f) / 2), value_range=VALUE_RANGE), "saturation changed by up to f"),
    "hue": (0.1, lambda f: layers.RandomHue(float(f), value_range=VALUE_RANGE), "hue rotated by up to f of the circle"),
    "jitter": (0.2, lambda f: layers.RandomColorJitter(VALUE_RANGE, brightness_factor=float(f), contrast_factor=float(f),
                                                       saturation_factor=(0.5 - float(f) / 2, 0.5 + float(f) / 2),
                                                       hue_factor=float(f) / 2), "brightness, contrast, saturation and hue together"),
    "grayscale": (1.0, lambda p: layers.RandomGrayscale(float(p)), "grey (3 equal channels) with probability p"),
    "blur": (1.0, lambda sigma: layers.RandomGaussianBlur(1.0, kernel_size=max(3, 2 * int(2 * float(sigma)) + 1),
                                                          sigma=float(sigma), value_range=VALUE_RANGE), "Gaussian blur, sigma up to s"),
    "perspective": (0.3, lambda f: layers.RandomPerspective(1.0, scale=float(f)), "perspective warp of strength f"),
    "shear": (0.2, lambda f: layers.RandomShear(float(f), float(f), fill_mode="reflect"), "shear by up to f"),
    "erasing": (0.3, lambda f: layers.RandomErasing(1.0, scale=(0.02, float(f)), value_range=VALUE_RANGE), "random erasing up to f of the area"),
}


@keras.saving.register_keras_serializable(package="kerascnn")
class RandomApply(layers.Layer):
    """Apply ``layer`` to each image with probability ``rate``."""

    def __init__(self, layer, rate=0.5, **kwargs):
        super().__init__(**kwargs)
        self.layer, self.rate = layer, float(rate)
        self.seed_generator = keras.random.SeedGenerator()

    def call(self, x, training=True):
        if not training:
            return x
        batch = keras.ops.shape(x)[0]
        pick = keras.random.uniform((batch, 1, 1, 1), seed=self.seed_generator) < self.rate
        return keras.ops.where(pick, self.layer(x, training=True), x)


@keras.saving.register_keras_serializable(package="kerascnn")
class PadAndCrop(layers.Layer):
    """The classic CIFAR augmentation: reflect-pad by ``pad`` pixels, crop a random window back,
    with an independent window for every image of the batch."""

    def __init__(self, pad=4, **kwargs):
        super().__init__(**kwargs)
        self.pad = int(pad)
        self.seed_generator = keras.random.SeedGenerator()

    def call(self, x, training=True):
        if not training or not self.pad:
            return x
        ops, p = keras.ops, self.pad
        height, width = x.shape[1], x.shape[2]
        padded = ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")
        offsets = keras.random.randint((ops.shape(x)[0], 2), 0, 2 * p + 1, seed=self.seed_generator)
        rows = offsets[:, :1] + ops.arange(height)[None, :]  # (batch, height)
        cols = offsets[:, 1:] + ops.arange(width)[None, :]  # (batch, width)
        picked = ops.take_along_axis(padded, rows[:, :, None, None], axis=1)
        return ops.take_along_axis(picked, cols[:, None, :, None], axis=2)

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


# The entries RandomAffine composes, mapped to its argument names.
AFFINE_PARTS = ("flip", "rotate", "translate", "zoom")


@keras.saving.register_keras_serializable(package="kerascnn")
class RandomAffine(layers.Layer):
    """Flip, rotation, translation and zoom drawn per image as Keras's layers draw them, applied as one
    bilinear warp with reflected borders.

    ``flip``: "h", "v", "hv" or None; ``rotate``: up to +- degrees; ``translate``: up to +- a fraction of the
    size, independently in x and y; ``zoom``: scale 1 +- a fraction, the same in x and y (RandomZoom's default).
    """

    def __init__(self, flip=None, rotate=0.0, translate=0.0, zoom=0.0, fill_mode="reflect", seed=None, **kwargs):
        super().__init__(**kwargs)
        self.flip, self.fill_mode, self.seed = flip or None, fill_mode, seed
        self.rotate, self.translate, self.zoom = float(rotate), float(translate), float(zoom)
        if self.flip not in (None, "h", "v", "hv"):
            raise ValueError(f"flip must be h, v or hv, not {flip!r}")
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=True):
        if not training:
            return x
        draws = keras.random.uniform((keras.ops.shape(x)[0], 6), seed=self.seed_generator)
        return keras.ops.image.affine_transform(x, self.transforms(draws, x.shape[1], x.shape[2]),
                                                interpolation="bilinear", fill_mode=self.fill_mode)

    def transforms(self, draws, height, width):
        """The (batch, 8) output-to-input transforms for uniform ``draws`` in [0, 1), six per image:
        flip x, flip y, angle, scale, shift x, shift y; 0.5 is no change for the last four."""
        ops = keras.ops
        flip_x = ops.where(draws[:, 0] < 0.5, -1.0, 1.0) if self.flip in ("h", "hv") else ops.ones_like(draws[:, 0])
        flip_y = ops.where(draws[:, 1] < 0.5, -1.0, 1.0) if self.flip in ("v", "hv") else ops.ones_like(draws[:, 1])
        angle = (2 * draws[:, 2] - 1) * (self.rotate * math.pi / 180)
        scale = 1 + (2 * draws[:, 3] - 1) * self.zoom
        shift_x = (2 * draws[:, 4] - 1) * self.translate * width
        shift_y = (2 * draws[:, 5] - 1) * self.translate * height
        cos, sin = ops.cos(angle) * scale, ops.sin(angle) * scale
        m00, m01, m10, m11 = cos * flip_x, -sin * flip_y, sin * flip_x, cos * flip_y
        cx, cy = (width - 1) / 2, (height - 1) / 2  # pixel centres, so a flip maps pixels onto pixels
        zeros = ops.zeros_like(m00)
        return ops.stack([m00, m01, cx - m00 * cx - m01 * cy - shift_x,
                          m10, m11, cy - m10 * cx - m11 * cy - shift_y, zeros, zeros], axis=1)

    def get_config(self):
        return {**super().get_config(), "flip": self.flip, "rotate": self.rotate, "translate": self.translate,
                "zoom": self.zoom, "fill_mode": self.fill_mode, "seed": self.seed}


@keras.saving.register_keras_serializable(package="kerascnn")
class ClipPixels(layers.Layer):
    """Keep augmented pixels in [0, 255]: Keras's RandomSaturation does not clamp saturation before
    converting back to RGB, so strong settings leave the valid range otherwise."""

    def call(self, x):
        return keras.ops.clip(x, VALUE_RANGE[0], VALUE_RANGE[1])


def parse_entry(entry):
    name, _, strength = str(entry).partition(":")
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; available: {', '.join(sorted(AUGMENTATIONS))}")
    default, factory, _ = AUGMENTATIONS[name]
    return name, (strength if strength else default), factory


def build_augmentation(spec, seed=None):
    """A ``keras.Sequential`` of augmentation layers for ``spec``, or None when the spec is empty.

    Consecutive geometric entries (flip, rotate, translate, zoom) become one ``RandomAffine``: Keras's layers
    warp the image once each, and on a CPU those warps cost a small model's training a fifth of its cores."""
    if not spec:
        return None
    stack, geometric = [], {}

    def flush():
        if len(geometric) > 1:
            stack.append(RandomAffine(**{k: v for k, (v, _) in geometric.items()},
                                      seed=None if seed is None else seed + len(stack)))
        elif geometric:
            (name, (strength, factory)), = geometric.items()
            stack.append(_seeded(factory(strength), seed, len(stack)))
        geometric.clear()

    for entry in spec:
        name, strength, factory = parse_entry(entry)
        if name in AFFINE_PARTS and name not in geometric:
            geometric[name] = (strength, factory)
            continue
        flush()
        if name in AFFINE_PARTS:
            geometric[name] = (strength, factory)
        else:
            stack.append(_seeded(factory(strength), seed, len(stack)))
    flush()
    return keras.Sequential(stack + [ClipPixels(name="clip_pixels")], name="augmentation")


def _seeded(layer, seed, position):
    if seed is not None and hasattr(layer, "seed"):
        layer.seed = seed + position
    return layer
