"""A faster gradient for TensorFlow's stride-1 Conv2D on CPU.

TensorFlow's CPU kernel for ``Conv2DBackpropInput`` (the gradient of a convolution with respect to its
input) is several times slower than a forward convolution of the same size, and catastrophically so on
small feature maps: on the cifar10 ConvNet's 2x2x512 layer it takes 1047 ms per batch of 128 where the
equivalent forward convolution takes 20 ms (``kerascnn benchmark --parts step`` shows the whole-step
effect). For stride 1 and no dilation the input gradient *is* a forward convolution: the output
gradient convolved with the spatially flipped kernel, its input and output channels swapped, with the
complementary padding. On small maps the filter gradient is also faster as a forward convolution
(batch and channels swapped), and so it is for first layers with few filters at any stride (the
output gradient as a kernel dilated by the stride). ``install()`` re-registers TensorFlow's ``Conv2D``
gradient so these cases use the forward kernel; every other case (dilations, NCHW, shapes unknown
while tracing) keeps TensorFlow's own.

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
# A first layer (fewer than MIN_INPUT_CHANNELS inputs) with at most this many filters gets its filter
# gradient as a forward convolution at any map size and stride: artists' 5x5 stride-2 conv1, LeNet's
# 5x5 conv1 and a ResNet stem on 64 px are 1.8-4.8x faster (scripts/bench_conv_grad.py); with the
# cifar10 ConvNet's 128 filters it was slower, so that layer keeps TensorFlow's kernel.
FIRST_LAYER_MAX_FILTERS = 64


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
    return gen_nn_ops.conv2d(x, kernel, strides=[1, 1, 1, 1], padding="EXPLICIT", explicit_paddings=explicit,
                             dilations=[1, *dilations, 1])


def _filter_grad_as_conv(x, grad, pads, strides, kernel_h, kernel_w):
    """dK[a, b, i, o] = sum over n, h, w of x_padded[n, s*h + a, s*w + b, i] * grad[n, h, w, o]: a convolution
    of the input with the batch as channels and the channels as batch, by the output gradient as kernel
    dilated by the stride; its output is at least the kernel's size and the rest is cut off."""
    out = _conv(array_ops.transpose(x, [3, 1, 2, 0]), array_ops.transpose(grad, [1, 2, 0, 3]), pads, strides)
    return array_ops.transpose(out, [1, 2, 0, 3])[:kernel_h, :kernel_w]


def _conv2d_grad(op, grad):
    """TensorFlow's Conv2D gradient, with parts computed as forward convolutions where exact and faster."""
    kernel = op.inputs[1]
    kernel_h, kernel_w, channels_in, channels_out = kernel.shape
    data_format = op.get_attr("data_format")
    strides = list(op.get_attr("strides"))
    plain = (strides[0] == strides[3] == 1 and list(op.get_attr("dilations")) == [1, 1, 1, 1]
             and data_format in (b"NHWC", "NHWC") and None not in (kernel_h, kernel_w, channels_in, channels_out))
    forward = _forward_padding(op, kernel_h, kernel_w, strides[1:3]) if plain else None
    if forward is None:
        return _ORIGINAL(op, grad)
    stride_one = strides == [1, 1, 1, 1]
    flipped_pads = [(k - 1 - before, k - 1 - after) for (before, after), k in zip(forward, (kernel_h, kernel_w))]
    if stride_one and channels_in >= MIN_INPUT_CHANNELS and min(min(pair) for pair in flipped_pads) >= 0:
        flipped = array_ops.transpose(array_ops.reverse(kernel, [0, 1]), [0, 1, 3, 2])
        input_grad = _conv(grad, flipped, flipped_pads)
    else:
        input_grad = gen_nn_ops.conv2d_backprop_input(
            array_ops.shape(op.inputs[0]), kernel, grad, strides=strides, padding=op.get_attr("padding"),
            explicit_paddings=op.get_attr("explicit_paddings"), data_format=data_format)
    out_h, out_w = grad.shape[1], grad.shape[2]
    small_map = stride_one and out_h is not None and out_w is not None and out_h * out_w <= SMALL_MAP_PIXELS
    first_layer = channels_in < MIN_INPUT_CHANNELS and channels_out <= FIRST_LAYER_MAX_FILTERS
    if small_map or first_layer:
        filter_grad = _filter_grad_as_conv(op.inputs[0], grad, forward, strides[1:3], kernel_h, kernel_w)
    else:
        filter_grad = gen_nn_ops.conv2d_backprop_filter(
            op.inputs[0], array_ops.shape(kernel), grad, strides=strides, padding=op.get_attr("padding"),
            explicit_paddings=op.get_attr("explicit_paddings"), data_format=data_format)
    return [input_grad, filter_grad]


def _set(fn):
    ops._gradient_registry._registry["Conv2D"]["type"] = fn


def install(enabled=True):
    """Use the fast gradient (``enabled=True``) or TensorFlow's own (``False``) for every Conv2D."""
    _set(_conv2d_grad if enabled else _ORIGINAL)


def installed():
    return ops._gradient_registry.lookup("Conv2D") is _conv2d_grad
