"""The artists assignment's studies (sections 1.3-1.5 and 1.7), each a base task plus named overrides.

Every variant starts from the starter network (``artists``: two 5x5 stride-2 conv layers of 16
filters, no pooling, dense 64, Adam 1e-3, 50 epochs, batch 128) and changes one thing, so a row
differs from the starter row only by what its name says. All variants build at 50x50: spatial
sizes are noted where a variant is close to shrinking a map below the next kernel.
"""
from kerascnn.experiments import study
from kerascnn.experiments.robustness import evaluate_transformed

# One validation image is 1.1 points on the 91-image split, so every artists study runs three seeds.
REPEATS = 3

study(
    "artists.pooling",
    "artists",
    "no pooling vs max/avg pooling after each conv block, several pool sizes and strides (1.3)",
    variants=[
        ("no_pooling", []),
        ("max_2x2_stride2", ["model.pooling=true", "model.pool_size=2", "model.pool_strides=2"]),
        ("max_3x3_stride2", ["model.pooling=true", "model.pool_size=3", "model.pool_strides=2"]),
        ("max_2x2_stride1", ["model.pooling=true", "model.pool_size=2", "model.pool_strides=1"]),
        ("max_3x3_stride1", ["model.pooling=true", "model.pool_size=3", "model.pool_strides=1"]),
        ("avg_2x2_stride2", ["model.pooling=true", "model.pool_type=avg", "model.pool_size=2",
                             "model.pool_strides=2"]),
        # Pooling instead of strided convolution: 50 -> 46 -> 23 -> 19 -> 9.
        ("conv_stride1_max_2x2_stride2", ["model.strides=1", "model.pooling=true", "model.pool_size=2",
                                          "model.pool_strides=2"]),
    ],
    repeats=REPEATS,
)

study(
    "artists.dropout",
    "artists",
    "dropout rate 0-0.5 after flatten and the hidden dense layer, then other placements at 0.25 (1.4)",
    base=["model.dropout=0.25"],
    variants=[(f"rate_{rate:g}", [f"model.dropout={rate:g}"]) for rate in (0.0, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5)]
    + [
        ("after_conv_blocks", ["model.dropout_placement=[conv]"]),
        ("after_flatten_only", ["model.dropout_placement=[flatten]"]),
        ("after_dense_only", ["model.dropout_placement=[dense]"]),
        ("everywhere", ["model.dropout_placement=[conv,flatten,dense]"]),
    ],
    sweep="model.dropout",
    repeats=REPEATS,
)

# Keras applies weight decay decoupled and scaled by the learning rate (w -= lr * wd * w each step),
# and this set has only 3 steps per epoch, so useful values are far larger than PyTorch's coupled L2.
# AdamW's own default (0.004) stands in for "no decay" there.
_DECAYS = (0.01, 0.1, 1.0)
study(
    "artists.optimizers",
    "artists",
    "SGD (momentum 0.9, lr 0.01), Adam, AdamW and RMSprop (lr 1e-3), each with several weight decays (1.4)",
    variants=[
        (f"{name}_wd{wd:g}", [f"optimizer={opt}", *extra, f"weight_decay={wd:g}"])
        for name, opt, extra in (("sgd", "sgd", ["learning_rate=0.01", "momentum=0.9"]), ("adam", "adam", []),
                                 ("adamw", "adamw", []), ("rmsprop", "rmsprop", []))
        for wd in ((0.004,) if opt == "adamw" else (0.0,)) + _DECAYS
    ],
    repeats=REPEATS,
)

study(
    "artists.early_stopping",
    "artists",
    "early stopping on val accuracy with several patiences, up to 150 epochs; best (restored) vs last (1.4)",
    base=["epochs=150"],
    variants=[("no_early_stopping", ["early_stopping=0"])]
    + [(f"patience_{p}", [f"early_stopping={p}"]) for p in (5, 10, 25, 50)],
    repeats=REPEATS,
)

study(
    "artists.lr_schedules",
    "artists",
    "constant, step decay, cosine annealing with and without warm restarts, reduce-on-plateau (1.4)",
    variants=[
        ("constant", ["lr_schedule=constant"]),
        ("step_30_x0.1", ["lr_schedule=step", "lr_step_size=30", "lr_gamma=0.1"]),
        ("step_10_x0.5", ["lr_schedule=step", "lr_step_size=10", "lr_gamma=0.5"]),
        ("cosine", ["lr_schedule=cosine", "lr_min=0.0"]),
        ("cosine_restarts_10", ["lr_schedule=cosine_restarts", "lr_restart_period=10"]),
        ("cosine_restarts_25", ["lr_schedule=cosine_restarts", "lr_restart_period=25"]),
        ("plateau_5_x0.5", ["lr_schedule=plateau", "plateau_patience=5", "lr_gamma=0.5"]),
    ],
    repeats=REPEATS,
)

study(
    "artists.architecture",
    "artists",
    "filter size, stride, depth, and pyramidal vs flat vs inverse-pyramid filter counts (1.5)",
    variants=[
        ("starter_k5_s2_16-16", []),
        ("kernel_3", ["model.kernel_size=3"]),
        ("kernel_7", ["model.kernel_size=7"]),
        ("kernel_9", ["model.kernel_size=9"]),
        ("stride_1", ["model.strides=1"]),  # 50 -> 46 -> 42: a large flatten
        ("stride_3", ["model.strides=3"]),  # 50 -> 16 -> 4
        ("stride_4", ["model.strides=4"]),  # 50 -> 12 -> 2
        ("depth_1", ["model.filters=[16]"]),
        ("depth_3", ["model.filters=[16,16,16]"]),  # 50 -> 23 -> 10 -> 3
        # 'valid' 5x5 stride-2 layers run out of pixels after three; 'same' padding keeps four and five.
        ("depth_4_same", ["model.filters=[16,16,16,16]", "model.padding=same"]),  # -> 25, 13, 7, 4
        ("depth_5_same", ["model.filters=[16,16,16,16,16]", "model.padding=same"]),  # -> ..., 2
        ("pyramid_16-32-64", ["model.filters=[16,32,64]"]),
        ("flat_32-32-32", ["model.filters=[32,32,32]"]),
        ("inverse_64-32-16", ["model.filters=[64,32,16]"]),
    ],
    repeats=REPEATS,
)

# The tuned model trained as is and with augmentation, then both evaluated on transformed
# validation images (1.7): the hook replaces the table with one row per transformation.
ROBUSTNESS_AUGMENTATION = "augment=[flip,rotate:15,translate:0.1,zoom:0.15,jitter:0.15]"
study(
    "artists.robustness",
    "artists_tuned",
    "the tuned model with and without training augmentation, on validation images transformed by "
    "colour jitter, blur, perspective, rotation, translation, scaling, flip and grayscale (1.7)",
    variants=[("no_augmentation", []), ("augmentation", [ROBUSTNESS_AUGMENTATION])],
    post=evaluate_transformed,
    repeats=REPEATS,
)
