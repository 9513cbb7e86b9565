"""Faster gradients for TensorFlow's Conv2D on CPU, where a forward convolution beats its gradient kernels.

TensorFlow has two CPU kernel sets (kerascnn/__init__.py chooses oneDNN unless TF_ENABLE_ONEDNN_OPTS is
set). With its Eigen kernels, ``Conv2DBackpropInput`` (the gradient with respect to the input) is several
times slower than a forward convolution of the same size, catastrophically on small maps such as the
cifar10 ConvNet's 2x2x512 layer (BENCHMARKS.md, "Conv2D gradients"). For stride 1 and no dilation the input
gradient *is* a forward convolution: the output gradient convolved with the spatially flipped kernel, its
input and output channels swapped, with the complementary padding. The filter gradient is a forward
convolution too (batch and channels swapped, the output gradient as a kernel dilated by the stride),
faster on small maps with either kernel set, and with Eigen also for first layers with few filters.
``install()`` re-registers TensorFlow's ``Conv2D`` gradient so these cases, chosen by the ``Rules`` of the
kernels in use, take the forward kernel; every other case (dilations, NCHW, shapes unknown while tracing)
keeps TensorFlow's own.

The change is process-wide and affects only how gradients are computed, never a model or a saved file;
``tests/test_fast_conv_grad.py`` checks the gradients equal TensorFlow's. JAX's XLA gradient does not
have the problem and is left alone. The gradient registry and TensorFlow's own Conv2D gradient function are
private (``INTERNALS``), so ``configure`` installs the rule only where ``kerascnn.speedups`` finds them.
"""
from kerascnn import speedups

# TensorFlow's gradient registry has no public way to replace a gradient, and the replacement falls back
# to TensorFlow's own function for the cases it does not cover.
INTERNALS = (
    ("tensorflow.python.framework.ops", "_gradient_registry._registry"),
    ("tensorflow.python.framework.ops", "_gradient_registry.lookup"),
    ("tensorflow.python.ops.nn_grad", "_Conv2DGrad"),
)
STOCK = "TensorFlow's own Conv2D gradients"


class Rules:
    """Where a forward convolution beats TensorFlow's gradient kernels; measured with
    ``scripts/bench_conv_grad.py``, separately for TensorFlow's two CPU kernel sets."""

    def __init__(self, input_as_conv, small_map_pixels, first_layer_max_filters):
        # Stride-1 input gradient of a layer with at least MIN_INPUT_CHANNELS inputs as the flipped convolution.
        self.input_as_conv = input_as_conv
        # Stride-1 filter gradient as a forward convolution below this many output pixels per map.
        self.small_map_pixels = small_map_pixels
        # A first layer (fewer than MIN_INPUT_CHANNELS inputs) with at most this many filters gets its filter
        # gradient as a forward convolution at any map size and stride (0: never).
        self.first_layer_max_filters = first_layer_max_filters


# Eigen kernels (oneDNN off): the input gradient is several times slower than the forward convolution,
# catastrophically on small maps; the filter gradient is slower on the ConvNet's 4x4 and 2x2 maps, as fast
# at 16x16; artists' conv1, LeNet's conv1 and a ResNet stem get their filter gradient faster as a
# convolution, the ConvNet's 128-filter first layer does not.
EIGEN = Rules(input_as_conv=True, small_map_pixels=100, first_layer_max_filters=64)
# oneDNN kernels: the input gradients and first-layer filter gradients are as fast as or faster than the
# convolutions; only the filter gradient on 4x4 and 2x2 maps (the ConvNet's 512-channel layers) is still
# several times slower.
ONEDNN = Rules(input_as_conv=False, small_map_pixels=16, first_layer_max_filters=0)
# Fewer input channels than this: the flipped convolution (this many output channels) is slower than
# TensorFlow's own input gradient (an RGB input layer, with Eigen).
MIN_INPUT_CHANNELS = 8

_rules = EIGEN
_active = False  # whether the fast gradient is registered


def onednn_enabled():
    """Whether this TensorFlow runs its oneDNN kernels (``TF_ENABLE_ONEDNN_OPTS``, read at import;
    kerascnn/__init__.py turns it on unless the user set it)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return False
    return bool(_pywrap_util_port.IsMklEnabled())


def _forward_padding(op, kernel_h, kernel_w, strides):
    """The convolution's [(top, bottom), (left, right)] padding, or None where the input size is unknown."""
    padding = op.get_attr("padding")
    if isinstance(padding, bytes):
        padding = padding.decode()
    if padding == "VALID":
        return [(0, 0), (0, 0)]
    if padding == "SAME":
        pads = []
        for size, k, s in zip(op.inputs[0].shape[1:3], (kernel_h, kernel_w), strides):
            if s == 1:
                total = k - 1
            elif size is None:
                return None
            else:
                total = max((-(-size // s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        return pads
    p = op.get_attr("explicit_paddings")  # NHWC: [[0, 0], [top, bottom], [left, right], [0, 0]] flattened
    return [(p[2], p[3]), (p[4], p[5])]


def _conv(x, kernel, pads, dilations=(1, 1)):
    explicit = [0, 0, pads[0][0], pads[0][1], pads[1][0], pads[1][1], 0, 0]
    import tensorflow as tf

    return tf.raw_ops.Conv2D(input=x, filter=kernel, strides=[1, 1, 1, 1], padding="EXPLICIT",
                             explicit_paddings=explicit, dilations=[1, *dilations, 1])


def _filter_grad_as_conv(x, grad, pads, strides, kernel_h, kernel_w):
    """dK[a, b, i, o] = sum over n, h, w of x_padded[n, s*h + a, s*w + b, i] * grad[n, h, w, o]: a convolution
    of the input with the batch as channels and the channels as batch, by the output gradient as kernel
    dilated by the stride; its output is at least the kernel's size and the rest is cut off."""
    import tensorflow as tf

    out = _conv(tf.transpose(x, [3, 1, 2, 0]), tf.transpose(grad, [1, 2, 0, 3]), pads, strides)
    return tf.transpose(out, [1, 2, 0, 3])[:kernel_h, :kernel_w]


def _conv2d_grad(op, grad):
    """TensorFlow's Conv2D gradient, with parts computed as forward convolutions where exact and faster."""
    import tensorflow as tf

    kernel = op.inputs[1]
    kernel_h, kernel_w, channels_in, channels_out = kernel.shape
    data_format = op.get_attr("data_format")
    strides = list(op.get_attr("strides"))
    plain = (strides[0] == strides[3] == 1 and list(op.get_attr("dilations")) == [1, 1, 1, 1]
             and data_format in (b"NHWC", "NHWC") and None not in (kernel_h, kernel_w, channels_in, channels_out))
    forward = _forward_padding(op, kernel_h, kernel_w, strides[1:3]) if plain else None
    if forward is None:
        return _tensorflow_gradient()(op, grad)
    stride_one = strides == [1, 1, 1, 1]
    flipped_pads = [(k - 1 - before, k - 1 - after) for (before, after), k in zip(forward, (kernel_h, kernel_w))]
    if (_rules.input_as_conv and stride_one and channels_in >= MIN_INPUT_CHANNELS
            and min(min(pair) for pair in flipped_pads) >= 0):
        flipped = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])
        input_grad = _conv(grad, flipped, flipped_pads)
    else:
        input_grad = tf.raw_ops.Conv2DBackpropInput(
            input_sizes=tf.shape(op.inputs[0]), filter=kernel, out_backprop=grad, strides=strides,
            padding=op.get_attr("padding"), explicit_paddings=op.get_attr("explicit_paddings"),
            data_format=data_format)
    out_h, out_w = grad.shape[1], grad.shape[2]
    small_map = stride_one and out_h is not None and out_w is not None and out_h * out_w <= _rules.small_map_pixels
    first_layer = channels_in < MIN_INPUT_CHANNELS and channels_out <= _rules.first_layer_max_filters
    if small_map or first_layer:
        filter_grad = _filter_grad_as_conv(op.inputs[0], grad, forward, strides[1:3], kernel_h, kernel_w)
    else:
        filter_grad = tf.raw_ops.Conv2DBackpropFilter(
            input=op.inputs[0], filter_sizes=tf.shape(kernel), out_backprop=grad, strides=strides,
            padding=op.get_attr("padding"), explicit_paddings=op.get_attr("explicit_paddings"),
            data_format=data_format)
    return [input_grad, filter_grad]


def _tensorflow_gradient():
    from tensorflow.python.ops import nn_grad

    return nn_grad._Conv2DGrad


def _registry():
    from tensorflow.python.framework import ops

    return ops._gradient_registry


def install(enabled=True, rules=None):
    """Use the fast gradient (``enabled=True``) or TensorFlow's own (``False``) for every Conv2D.
    Call it only where ``configure`` found the internals; tests and benchmarks call it directly.

    ``rules``: EIGEN or ONEDNN; by default those of the kernels this TensorFlow runs."""
    global _rules, _active
    _rules = rules or (ONEDNN if onednn_enabled() else EIGEN)
    _registry()._registry["Conv2D"]["type"] = _conv2d_grad if enabled else _tensorflow_gradient()
    _active = enabled


def configure(requested):
    """Install the fast gradient if the recipe asks for it (``fast_conv_grad``) and its guard passes, else
    leave (or put back) TensorFlow's own; returns whether the fast gradient is in use."""
    enabled = speedups.use("fast_conv_grad", requested=requested, internals=INTERNALS, stock=STOCK,
                           switch="fast_conv_grad=false")
    if enabled or _active:  # put TensorFlow's own back after an earlier run of this process
        install(enabled)
    return enabled


def current_rules():
    return _rules


def installed():
    return _registry().lookup("Conv2D") is _conv2d_grad
