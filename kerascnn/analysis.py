"""Model arithmetic: parameter counts and receptive fields, per layer.

Receptive field recurrences (Dumoulin & Visin; Araujo et al., "Computing Receptive Fields of
Convolutional Neural Networks"), with effective kernel k' = d*(k-1)+1:
    r_out = r_in + (k' - 1) * j_in        size of the input patch one output unit sees
    j_out = j_in * s                      distance in input pixels between adjacent outputs
    start_out = start_in + ((k' - 1)/2 - p_left) * j_in   centre of the first output's field
"""
from dataclasses import dataclass, replace


@dataclass
class RFLayer:
    name: str
    kind: str
    kernel: int
    stride: int
    padding: int  # left/top padding in pixels
    dilation: int = 1


def same_padding(size, kernel, stride, dilation=1):
    """Left padding TF/Keras use for padding='same' on an input of ``size``."""
    k = dilation * (kernel - 1) + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2


def receptive_fields(stack):
    """Rows of (layer, r, j, start) for a list of RFLayer, starting from a 1x1 input pixel."""
    r, j, start = 1, 1, 0.5
    rows = []
    for layer in stack:
        k = layer.dilation * (layer.kernel - 1) + 1
        r = r + (k - 1) * j
        start = start + ((k - 1) / 2 - layer.padding) * j
        j = j * layer.stride
        rows.append({"layer": layer.name, "kind": layer.kind, "kernel": layer.kernel, "stride": layer.stride,
                     "padding": layer.padding, "dilation": layer.dilation,
                     "receptive_field": r, "jump": j, "start": start})
    return rows


def _pair(v):
    return v[0] if isinstance(v, (tuple, list)) else v


def _rf_layer(layer, node):
    """The RFLayer of a conv, pooling or zero-padding layer called at ``node``; None for any other layer."""
    from keras import layers

    if isinstance(layer, layers.ZeroPadding2D):
        pad = layer.padding[0][0] if isinstance(layer.padding[0], (tuple, list)) else layer.padding[0]
        return RFLayer(layer.name, "pad", 1, 1, int(pad))
    if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D)):
        kind, k, s, d = "conv", _pair(layer.kernel_size), _pair(layer.strides), _pair(layer.dilation_rate)
    elif isinstance(layer, (layers.MaxPooling2D, layers.AveragePooling2D)):
        kind, k, s, d = "pool", _pair(layer.pool_size), _pair(layer.strides), 1
    else:
        return None
    # The input of this call, not ``layer.input``: a layer reused from another model has several calls.
    p = same_padding(node.input_tensors[0].shape[1], k, s, d) if layer.padding == "same" else 0
    return RFLayer(layer.name, kind, int(k), int(s), int(p), int(d))


def stack_from_model(model):
    """RFLayers for the conv, pooling and zero-padding layers on the main path of a Keras model.

    The main path runs through the functional graph from the input to the output and, where
    branches merge (Add, Concatenate, Multiply), follows the branch with the largest receptive
    field, which is what bounds the field of everything after the merge. In a residual network
    that is the branch through the 3x3 convolutions: a 1x1 projection shortcut runs beside it, so
    chaining every layer in ``model.layers`` order would apply each stage's stride twice.
    """
    best = {}  # id of a symbolic tensor -> (receptive field, jump, RFLayers) of its main path
    pending = list(model.outputs)
    while pending:
        tensor = pending[-1]
        if id(tensor) in best:
            pending.pop()
            continue
        layer, node_index, _ = tensor._keras_history
        node = layer._inbound_nodes[node_index]
        unresolved = [t for t in node.input_tensors if id(t) not in best]
        if unresolved:
            pending.extend(unresolved)
            continue
        pending.pop()
        r, j, stack = max((best[id(t)] for t in node.input_tensors), key=lambda path: path[:2], default=(1, 1, []))
        rf_layer = _rf_layer(layer, node)
        if rf_layer is not None:
            r, j, stack = r + rf_layer.dilation * (rf_layer.kernel - 1) * j, j * rf_layer.stride, stack + [rf_layer]
        best[id(tensor)] = (r, j, stack)
    return max((best[id(t)] for t in model.outputs), key=lambda path: path[:2])[2]


def network_for_fields(cfg):
    """The network of ``cfg``'s task, built to read its receptive fields, without the data where possible.

    Receptive fields end at the last convolution or pooling layer, before the classifier, so where the class
    count would come from a data directory that is absent (clip-art, a folder of classes) any count draws the
    same fields: the network is built for 2 classes then. Weights do not change them either, so a pretrained
    backbone is built randomly initialised rather than loaded from a source that may be offline.
    """
    from kerascnn.data import dataset_module
    from kerascnn.models import model_arguments
    from kerascnn.train import build_model

    if "weights" in model_arguments(cfg.model):
        cfg = replace(cfg, model_args={**cfg.model_args, "weights": None})
    module = dataset_module(cfg.dataset)
    try:
        shape, classes = module.input_spec(cfg)
    except FileNotFoundError:
        shape, classes = module.input_spec(cfg, classes=2)
    return build_model(cfg, shape, classes)


def parse_stack(text):
    """``"conv:5,conv:3"`` or ``"conv:5:2,pool:2:2,conv:3:1:1:2"`` -> RFLayers (kind:kernel[:stride[:padding[:dilation]]])."""
    stack = []
    for i, part in enumerate(p for p in text.split(",") if p.strip()):
        fields = part.strip().split(":")
        kind = fields[0]
        if kind not in ("conv", "pool"):
            raise ValueError(f"layer {part!r}: kind must be conv or pool")
        nums = [int(v) for v in fields[1:]]
        if not nums:
            raise ValueError(f"layer {part!r}: give at least the kernel size, e.g. {kind}:3")
        kernel = nums[0]
        stride = nums[1] if len(nums) > 1 else (kernel if kind == "pool" else 1)
        padding = nums[2] if len(nums) > 2 else 0
        dilation = nums[3] if len(nums) > 3 else 1
        stack.append(RFLayer(f"{kind}{i + 1}", kind, kernel, stride, padding, dilation))
    return stack


def parameter_table(model):
    """Per-layer parameter counts plus totals (trainable / non-trainable as Keras counts them)."""
    import numpy as np

    rows = []
    for layer in model.layers:
        trainable = int(sum(np.prod(w.shape) for w in layer.trainable_weights))
        frozen = int(sum(np.prod(w.shape) for w in layer.non_trainable_weights))
        shape = getattr(layer, "output", None)
        rows.append({"layer": layer.name, "type": type(layer).__name__,
                     "output_shape": list(shape.shape) if shape is not None and hasattr(shape, "shape") else None,
                     "trainable": trainable, "non_trainable": frozen, "total": trainable + frozen})
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    frozen = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return {"total": trainable + frozen, "trainable": trainable, "non_trainable": frozen, "layers": rows}
