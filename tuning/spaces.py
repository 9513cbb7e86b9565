"""Search spaces of the cifar10, caltech101, clipart and faces families, as ``--set`` overrides.

Each function declares its hyperparameters on a KerasTuner ``HyperParameters`` and returns the
overrides they stand for. Architecture hyperparameters apply when the task trains the family's own
model (ConvNet, caltech_net, ClipNet, the faces MLP); every task of the family also gets the
recipe's (learning rate, augmentation, label smoothing, regularisation), so e.g.
``kerascnn tune --task caltech101_resnet18`` searches ResNet-18's training recipe.
"""

# Augmentation strengths, weakest first; names and strengths are entries of kerascnn.data.augment.
CIFAR_AUGMENT = {"none": [], "flip": ["flip"], "flip_crop": ["flip", "crop:4"],
                 "geometric": ["flip", "crop:4", "rotate:10", "zoom:0.1"]}
# Faces at 28x28: flips (the recipe's), then small shifts and zooms, which a pixel MLP cannot learn to ignore.
FACE_AUGMENT = {"flip": ["flip"], "flip_shift": ["flip", "translate:0.05"],
                "flip_shift_zoom": ["flip", "translate:0.08", "zoom:0.1"]}
# Paintings: the robustness study's augmentation (artists.robustness) and the steps up to it.
PAINTING_AUGMENT = {"none": [], "flip": ["flip"], "geometric": ["flip", "rotate:15", "translate:0.1", "zoom:0.15"],
                    "geometric_jitter": ["flip", "rotate:15", "translate:0.1", "zoom:0.15", "jitter:0.15"]}
PHOTO_AUGMENT = {"none": [], "flip": ["flip"], "standard": ["flip", "translate:0.1", "zoom:0.15"],
                 "strong": ["flip", "translate:0.1", "zoom:0.15", "rotate:10", "contrast:0.2"]}


def _list(values):
    return "[" + ",".join(str(v) for v in values) + "]"


def _augment(hp, presets):
    return f"augment={_list(presets[hp.Choice('augment', list(presets))])}"


def _learning_rate(hp, low, high):
    return f"learning_rate={hp.Float('learning_rate', low, high, sampling='log'):.6g}"


def _dashed(text):
    return [int(v) for v in text.split("-")]


def artists_augmentation(hp, cfg):
    """Training augmentation for every artists task: on 360 paintings it is the regulariser that moves
    validation accuracy most (artists.robustness)."""
    return [_augment(hp, PAINTING_AUGMENT)]


def cifar10_space(hp, cfg):
    """The ConvNet's depth and per-block widths, batch norm, dropout and L2 (the assignment's weight decay);
    augmentation strength and learning rate for every cifar10 task."""
    overrides = []
    if cfg.model == "convnet":
        depth = hp.Int("depth", 3, 5)
        widths = []
        for i in range(5):
            with hp.conditional_scope("depth", list(range(i + 1, 6))):
                widths.append(hp.Choice(f"width_{i + 1}", [64, 128, 256, 512]))
        overrides += [f"model.widths={_list(widths[:depth])}",
                      f"model.batch_norm={str(hp.Boolean('batch_norm')).lower()}",
                      f"model.dropout={hp.Float('dropout', 0.0, 0.5, step=0.1):.2g}",
                      f"model.l2={hp.Choice('l2', [0.0, 1e-4, 5e-4, 1e-3]):g}"]
    return overrides + [_augment(hp, CIFAR_AUGMENT), _learning_rate(hp, 3e-4, 5e-3)]


def caltech101_space(hp, cfg):
    """caltech_net's width (doubling per stage) and convs per stage, dropout and L2; augmentation, label
    smoothing and learning rate for every caltech101 task."""
    overrides = []
    if cfg.model == "caltech_net":
        width = hp.Choice("width", [32, 48, 64, 96])
        overrides += [f"model.stem_width={width // 2}", f"model.widths={_list([width, 2 * width, 4 * width])}",
                      f"model.convs_per_stage={_list(_dashed(hp.Choice('convs_per_stage', ['1-1-1', '1-2-2', '2-2-2'])))}",
                      f"model.dropout={hp.Float('dropout', 0.1, 0.5, step=0.1):.2g}",
                      f"model.l2={hp.Choice('l2', [0.0, 1e-4, 5e-4]):g}"]
    return overrides + [_augment(hp, PHOTO_AUGMENT),
                        f"label_smoothing={hp.Choice('label_smoothing', [0.0, 0.05, 0.1, 0.2]):g}",
                        _learning_rate(hp, 5e-4, 5e-3)]


def clipart_space(hp, cfg):
    """ClipNet's stage widths and blocks, expansion, squeeze-excitation, stochastic depth and dropout;
    augmentation, label smoothing and learning rate for every clipart task."""
    overrides = []
    if cfg.model == "clipnet":
        overrides += [
            f"model.widths={_list(_dashed(hp.Choice('widths', ['24-48-96-144', '32-64-128-192', '48-96-160-256'])))}",
            f"model.blocks={_list(_dashed(hp.Choice('blocks', ['1-1-1-1', '1-2-2-2', '1-2-3-2'])))}",
            f"model.expansion={hp.Choice('expansion', [2, 4, 6])}",
            f"model.squeeze_excitation={str(hp.Boolean('squeeze_excitation')).lower()}",
            f"model.stochastic_depth={hp.Choice('stochastic_depth', [0.0, 0.1, 0.2]):g}",
            f"model.dropout={hp.Float('dropout', 0.1, 0.5, step=0.1):.2g}",
        ]
    return overrides + [_augment(hp, PHOTO_AUGMENT),
                        f"label_smoothing={hp.Choice('label_smoothing', [0.0, 0.1]):g}",
                        _learning_rate(hp, 5e-4, 5e-3)]


def faces_space(hp, cfg):
    """The MLP's hidden units, dropout and L2 on the hidden kernels (the assignment's two regularisers),
    the pixels' preprocessing (unit or ZCA with its epsilon) and augmentation where the task sees
    pixels, label smoothing and the learning rate. One hidden layer throughout: the assignment fixes it."""
    overrides = []
    if cfg.model == "mlp":
        overrides += [f"model.hidden=[{hp.Choice('hidden_units', [100, 300, 500, 800, 1200])}]",
                      f"model.dropout={hp.Float('dropout', 0.0, 0.5, step=0.1):.2g}",
                      f"model.l2={hp.Choice('l2', [0.0, 1e-5, 1e-4, 1e-3]):g}"]
    if cfg.dataset == "faces":
        preprocess = hp.Choice("preprocess", ["unit", "zca"])
        overrides.append(f"preprocess={preprocess}")
        with hp.conditional_scope("preprocess", ["zca"]):
            epsilon = hp.Float("zca_epsilon", 1e-3, 10.0, sampling="log")
        if preprocess == "zca":
            overrides.append(f"zca_epsilon={epsilon:.4g}")
        overrides.append(_augment(hp, FACE_AUGMENT))
    return overrides + [f"label_smoothing={hp.Choice('label_smoothing', [0.0, 0.1]):g}",
                        _learning_rate(hp, 1e-4, 3e-3)]
