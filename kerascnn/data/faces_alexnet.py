"""The faces as AlexNet activations (part 2.2): each crop mapped once through a fixed AlexNet.

The extractor is ``alexnet_features`` cut at ``cfg.feature_layer`` (conv4 by default: 13x13x256
post-ReLU maps at 224x224) with the weights in ``cfg.feature_weights`` (a torchvision ``.npz``,
see ``kerascnn.models.alexnet``, or a run directory / ``.keras`` model holding AlexNet's conv
layers), or seeded random weights when none are given (no ImageNet weights can be downloaded here). The activations are computed once and cached as float16 under
the cache directory, keyed by the layer, the weights file's SHA-256 (or the seed) and the image
pixels themselves, so a second training run, another classifier or an evaluation skips AlexNet
entirely. The split is the faces one (``split_per_person``), so results compare with faces_mlp.
"""
import dataclasses
import hashlib
import io
import json

import numpy as np

from kerascnn.data import cache_dir
from kerascnn.data import faces
from kerascnn.io import atomic_write, sha256_file

LAYOUT = faces.LAYOUT
CACHE_VERSION = 1


def extractor_weights(cfg):
    """The extractor's weights source, or None for seeded random weights."""
    return cfg.feature_weights if cfg.feature_pretrained else None


def weights_identity(cfg):
    """What fixes the extractor's weights: the file's SHA-256, or the seed of the random ones."""
    source = extractor_weights(cfg)
    if not source:
        return f"random-seed:{cfg.seed}"
    from kerascnn.models.backbone import is_model_source, model_source_path

    # A run directory is identified by its best.keras, the file its weights come from.
    path = model_source_path(source) if is_model_source(source) else source
    return f"sha256:{sha256_file(path)}"


def build_extractor(cfg, input_shape):
    """AlexNet up to ``cfg.feature_layer`` with the configured weights (seeded Glorot init otherwise)."""
    import keras

    from kerascnn.models.alexnet import alexnet_features

    model = alexnet_features(input_shape, layer=cfg.feature_layer, weights=extractor_weights(cfg))
    if not extractor_weights(cfg):
        convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        for i, layer in enumerate(convs):
            kernel, bias = layer.get_weights()
            init = keras.initializers.GlorotUniform(seed=cfg.seed * 100 + i)
            layer.set_weights([np.asarray(init(kernel.shape)), np.zeros_like(bias)])
    return model


def feature_cache_path(cfg, x):
    """Cache file for the features of images ``x`` under ``cfg``'s extractor."""
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_VERSION, cfg.feature_layer, weights_identity(cfg), list(x.shape)]).encode())
    h.update(np.ascontiguousarray(x).data)
    return cache_dir(cfg) / f"faces_alexnet-{cfg.feature_layer}-{x.shape[1]}px-{h.hexdigest()[:16]}.npy"


def compute_features(cfg, x, batch_size=32):
    """AlexNet activations of uint8 images, as float16 (ample for post-ReLU values, half the bytes)."""
    model = build_extractor(cfg, tuple(x.shape[1:]))
    out = [np.asarray(model.predict_on_batch(x[i:i + batch_size].astype(np.float32))).astype(np.float16)
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out)


def cached_features(cfg, x):
    """The features of ``x``, float16 in the cache and float32 in memory: float16 tensors would send the MLP's
    input through TensorFlow's half-precision kernels, which oneDNN lacks on CPUs without AVX-512."""
    path = feature_cache_path(cfg, x)
    if path.exists():
        return np.load(path).astype(np.float32)
    features = compute_features(cfg, x)
    buf = io.BytesIO()
    np.save(buf, features)
    atomic_write(path, buf.getvalue())
    return features.astype(np.float32)


def load(cfg):
    if cfg.grayscale:
        raise ValueError("AlexNet features need RGB images; drop grayscale=true for the faces_alexnet dataset")
    images = faces.load_images(cfg)
    features = dataclasses.replace(images, x=cached_features(cfg, images.x))
    return faces.make_splits("faces_alexnet", features, cfg)


def input_spec(cfg):
    """(feature map shape, class count): the extractor's output shape at ``cfg.image_size``."""
    from kerascnn.models.alexnet import alexnet_features

    extractor = alexnet_features((cfg.image_size, cfg.image_size, 3), layer=cfg.feature_layer)
    return tuple(extractor.output.shape[1:]), faces.num_people(cfg)
