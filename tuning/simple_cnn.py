"""The artists search space: the SimpleCNN family, expressed as ``--set`` overrides.

The space: depth 1-5; per layer filters, kernel size and stride; padding; pooling (none, max, avg)
and pool size; dense width; dropout rate and placement; batch norm; optimizer, learning rate and
weight decay. Sampled strides are free, so a deep net with stride 3 everywhere would shrink a
50x50 image below one pixel; ``fit_to_input`` derives the largest strides (never above the sampled
ones) that keep every feature map at least one pixel, falling back to 'same' padding, then to
2x2 pooling, then to fewer layers only when even stride 1 cannot fit.
"""
import math
from dataclasses import dataclass, field

MAX_DEPTH = 5
FILTERS = (16, 32, 64, 128)
KERNELS = (3, 5, 7)
STRIDES = (1, 2, 3)
POOL_SIZES = (2, 3)
POOL_STRIDES = 2
DENSE_UNITS = (32, 64, 128, 256)
DROPOUT_PLACEMENTS = ("flatten,dense", "conv,flatten,dense", "dense")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
WEIGHT_DECAYS = (0.0, 1e-4, 1e-3, 1e-2, 5e-2)


# ---------------------------------------------------------------- spatial arithmetic

def conv_output(size, kernel, stride, padding):
    """Side length after a conv layer (0 when a 'valid' kernel does not fit)."""
    if padding == "same":
        return math.ceil(size / stride)
    return (size - kernel) // stride + 1 if size >= kernel else 0


def pool_output(size, pool_size, pool_strides):
    return (size - pool_size) // pool_strides + 1 if size >= pool_size else 0


def block_output(size, kernel, stride, padding, pool_size):
    """Side length after conv (+ pooling when ``pool_size``), as simple_cnn stacks them."""
    out = conv_output(size, kernel, stride, padding)
    return pool_output(out, pool_size, POOL_STRIDES) if pool_size and out else out


def smallest_inputs(kernels, padding, pool_size):
    """need[j]: the smallest side length layers j.. can take at stride 1 and still end with >= 1 pixel."""
    need = [1] * (len(kernels) + 1)
    for j in range(len(kernels) - 1, -1, -1):
        before_pool = (need[j + 1] - 1) * POOL_STRIDES + pool_size if pool_size else need[j + 1]
        need[j] = before_pool + (kernels[j] - 1 if padding == "valid" else 0)
    return need


@dataclass
class Plan:
    """The conv stack actually built: sampled values made to fit the input size."""

    kernels: list
    strides: list
    padding: str
    pool_size: int  # 0 = no pooling
    sizes: list  # side length after each block
    adjustments: list = field(default_factory=list)  # what had to change, for the trial log


def fit_to_input(size, kernels, strides, padding, pool_size):
    """Largest strides (<= the sampled ones) that keep every feature map >= 1 pixel; see module doc."""
    kernels, strides, adjustments = list(kernels), list(strides), []
    while smallest_inputs(kernels, padding, pool_size)[0] > size:
        if padding == "valid":
            padding = "same"
            adjustments.append("padding valid->same")
        elif pool_size > 2:
            pool_size = 2
            adjustments.append("pool_size->2")
        else:
            kernels, strides = kernels[:-1], strides[:-1]
            adjustments.append(f"depth->{len(kernels)}")
    need = smallest_inputs(kernels, padding, pool_size)
    fitted, sizes = [], []
    for j, (k, s) in enumerate(zip(kernels, strides)):
        while s > 1 and block_output(size, k, s, padding, pool_size) < need[j + 1]:
            s -= 1
        if s != strides[j]:
            adjustments.append(f"stride{j + 1} {strides[j]}->{s}")
        size = block_output(size, k, s, padding, pool_size)
        fitted.append(s)
        sizes.append(size)
    return Plan(kernels, fitted, padding, pool_size, sizes, adjustments)


# ---------------------------------------------------------------- hyperparameters -> overrides

def _list(values):
    return "[" + ",".join(str(v) for v in values) + "]"


def sample_space(hp):
    """Declare (or read) every hyperparameter; per-layer ones are conditional on the depth."""
    depth = hp.Int("depth", 1, MAX_DEPTH)
    layers = []
    for i in range(MAX_DEPTH):
        with hp.conditional_scope("depth", list(range(i + 1, MAX_DEPTH + 1))):
            layers.append((hp.Choice(f"filters_{i + 1}", FILTERS), hp.Choice(f"kernel_{i + 1}", KERNELS),
                           hp.Choice(f"stride_{i + 1}", STRIDES)))
    values = {
        "layers": layers[:depth],
        "padding": hp.Choice("padding", ("valid", "same")),
        "pooling": hp.Choice("pooling", ("none", "max", "avg")),
    }
    with hp.conditional_scope("pooling", ["max", "avg"]):
        values["pool_size"] = hp.Choice("pool_size", POOL_SIZES)
    values.update(
        dense=hp.Choice("dense_units", DENSE_UNITS),
        dropout=hp.Float("dropout", 0.0, 0.5, step=0.05),
        dropout_placement=hp.Choice("dropout_placement", DROPOUT_PLACEMENTS),
        batch_norm=hp.Boolean("batch_norm"),
        optimizer=hp.Choice("optimizer", OPTIMIZERS),
        learning_rate=hp.Float("learning_rate", 1e-4, 1e-2, sampling="log"),
        weight_decay=hp.Choice("weight_decay", WEIGHT_DECAYS),
    )
    return values


def overrides_for(values, input_size):
    """``--set`` overrides for sampled values, with the conv stack fitted to ``input_size``; and the Plan."""
    filters = [f for f, _, _ in values["layers"]]
    pooled = values["pooling"] != "none"
    plan = fit_to_input(input_size, [k for _, k, _ in values["layers"]], [s for _, _, s in values["layers"]],
                        values["padding"], values["pool_size"] if pooled else 0)
    overrides = [
        f"model.filters={_list(filters[:len(plan.kernels)])}",
        f"model.kernel_size={_list(plan.kernels)}",
        f"model.strides={_list(plan.strides)}",
        f"model.padding={plan.padding}",
        f"model.pooling={str(pooled).lower()}",
    ]
    if pooled:
        overrides += [f"model.pool_type={values['pooling']}", f"model.pool_size={plan.pool_size}",
                      f"model.pool_strides={POOL_STRIDES}"]
    overrides += [
        f"model.dense=[{values['dense']}]",
        f"model.dropout={round(values['dropout'], 4)}",
        f"model.dropout_placement=[{values['dropout_placement']}]",
        f"model.batch_norm={str(values['batch_norm']).lower()}",
        f"optimizer={values['optimizer']}",
        f"learning_rate={values['learning_rate']:.6g}",
        f"weight_decay={values['weight_decay']:g}",
    ]
    return overrides, plan
