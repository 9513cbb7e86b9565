"""A faster gradient for TensorFlow's stride-1 Conv2D on CPU.

TensorFlow's CPU kernel for ``Conv2DBackpropInput`` (the gradient of a convolution with respect to its
input) is several times slower than a forward convolution of the same size, and catastrophically so on
small feature maps: on the cifar10 ConvNet's 2x2x512 layer it takes 1047 ms per batch of 128 where the
equivalent forward convolution takes 20 ms (``kerascnn benchmark --parts step`` shows the whole-step
effect). For stride 1 and no dilation the input gradient *is* a forward convolution: the output
gradient convolved with the spatially flipped kernel, its input and output channels swapped, with the
complementary padding. On small maps the filter gradient is also faster as a forward convolution
(batch and channels swapped). ``install()`` re-registers TensorFlow's ``Conv2D`` gradient so these
cases use the forward kernel; every other case (strides, dilations, NCHW) keeps TensorFlow's own.

The change is process-wide and affects only how gradients are computed, never a model or a saved file;
``tests/test_fast_conv_grad.py`` checks the gradients equal TensorFlow's. JAX's XLA gradient does not
have the problem and is left alone.
"""
from tensorflow.python.framework import ops
from tensorflow.python.ops import array_ops, gen_nn_ops, nn_grad

_ORIGINAL = nn_grad._Conv2DGrad


# Below this many output pixels per map, the filter gradient is faster as a forward convolution too
# (on the ConvNet's 4x4 and 2x2 maps 3-4x; at 16x16 TensorFlow's own kernel is as fast).
SMALL_MAP_PIXELS = 100
# With fewer input channels than this, the flipped convolution (this many output channels) is slower
# than TensorFlow's own input gradient (3 channels: 80 ms against 28 ms, scripts/bench_conv_grad.py).
MIN_INPUT_CHANNELS = 8


def _forward_padding(op, kernel_h, kernel_w):
    """The convolution's [(top, bottom), (left, right)] padding for stride 1."""
    padding = op.get_attr("padding")
    if isinstance(padding, bytes):
        padding = padding.decode()
    if padding == "VALID":
        return [(0, 0), (0, 0)]
    if padding == "SAME":
        return [((kernel_h - 1) // 2, kernel_h // 2), ((kernel_w - 1) // 2, kernel_w // 2)]
    p = op.get_attr("explicit_paddings")  # NHWC: [[0, 0], [top, bottom], [left, right], [0, 0]] flattened
    return [(p[2], p[3]), (p[4], p[5])]


def _conv(x, kernel, pads):
    explicit = [0, 0, pads[0][0], pads[0][1], pads[1][0], pads[1][1], 0, 0]
    return gen_nn_ops.conv2d(x, kernel, strides=[1, 1, 1, 1], padding="EXPLICIT", explicit_paddings=explicit)


def _filter_grad_as_conv(x, grad, pads):
    """dK[a, b, i, o] = sum over n, h, w of x_padded[n, h + a, w + b, i] * grad[n, h, w, o]: a convolution of
    the input with the batch as channels and the channels as batch, by the output gradient as kernel."""
    out = _conv(array_ops.transpose(x, [3, 1, 2, 0]), array_ops.transpose(grad, [1, 2, 0, 3]), pads)
    return array_ops.transpose(out, [1, 2, 0, 3])


def _conv2d_grad(op, grad):
    """TensorFlow's Conv2D gradient, with the input gradient as a forward convolution where exact."""
    kernel = op.inputs[1]
    kernel_h, kernel_w = kernel.shape[0], kernel.shape[1]
    data_format = op.get_attr("data_format")
    plain = (list(op.get_attr("strides")) == [1, 1, 1, 1] and list(op.get_attr("dilations")) == [1, 1, 1, 1]
             and data_format in (b"NHWC", "NHWC") and kernel_h is not None and kernel_w is not None)
    if not plain:
        return _ORIGINAL(op, grad)
    forward = _forward_padding(op, kernel_h, kernel_w)
    flipped_pads = [(k - 1 - before, k - 1 - after) for (before, after), k in zip(forward, (kernel_h, kernel_w))]
    if any(p < 0 for pair in flipped_pads for p in pair):
        return _ORIGINAL(op, grad)
    if kernel.shape[2] is not None and kernel.shape[2] >= MIN_INPUT_CHANNELS:
        flipped = array_ops.transpose(array_ops.reverse(kernel, [0, 1]), [0, 1, 3, 2])
        input_grad = _conv(grad, flipped, flipped_pads)
    else:
        input_grad = gen_nn_ops.conv2d_backprop_input(
            array_ops.shape(op.inputs[0]), kernel, grad, strides=[1, 1, 1, 1], padding=op.get_attr("padding"),
            explicit_paddings=op.get_attr("explicit_paddings"), data_format=data_format)
    out_h, out_w = grad.shape[1], grad.shape[2]
    if out_h is not None and out_w is not None and out_h * out_w <= SMALL_MAP_PIXELS:
        filter_grad = _filter_grad_as_conv(op.inputs[0], grad, forward)
    else:
        filter_grad = gen_nn_ops.conv2d_backprop_filter(
            op.inputs[0], array_ops.shape(kernel), grad, strides=[1, 1, 1, 1], padding=op.get_attr("padding"),
            explicit_paddings=op.get_attr("explicit_paddings"), data_format=data_format)
    return [input_grad, filter_grad]


def _set(fn):
    ops._gradient_registry._registry["Conv2D"]["type"] = fn


def install(enabled=True):
    """Use the fast gradient (``enabled=True``) or TensorFlow's own (``False``) for every Conv2D."""
    _set(_conv2d_grad if enabled else _ORIGINAL)


def installed():
    return ops._gradient_registry.lookup("Conv2D") is _conv2d_grad
