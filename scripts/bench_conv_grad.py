"""Time TensorFlow's Conv2D gradient against kerascnn's (kerascnn/speedups/conv_grad.py), layer by layer.

For each of the cifar10 ConvNet's five 3x3 convolutions and three first layers with few filters
(artists' SimpleCNN, the caltech101 LeNet, a ResNet stem on 64 px images), at batch 128: milliseconds
of the forward convolution, and of the input and filter gradients with TensorFlow's own gradient and
with the fast one, for the CPU kernels in use (oneDNN, as kerascnn chooses; ``TF_ENABLE_ONEDNN_OPTS=0`` for Eigen). Run it on
a quiet machine:

    python scripts/bench_conv_grad.py [--batch 128] [--repeats 5] [--json]
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# (name, input size, input channels, filters, kernel, stride, padding)
LAYERS = [(f"convnet {size}x{size} {cin}->{cout}", size, cin, cout, 3, 1, "SAME")
          for size, cin, cout in [(32, 3, 128), (16, 128, 512), (8, 512, 512), (4, 512, 512), (2, 512, 512)]]
LAYERS += [("artists conv1 5x5/2", 50, 3, 16, 5, 2, "VALID"), ("lenet conv1 5x5", 64, 3, 6, 5, 1, "VALID"),
           ("resnet stem 7x7/2", 64, 3, 64, 7, 2, "SAME")]


def milliseconds(fn, repeats):
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return round((time.perf_counter() - start) / repeats * 1000, 1)


def gradient_timings(tf, fast_conv_grad, enabled, x, kernel, conv, repeats):
    """ms of the input gradient alone and of the filter gradient alone, with the chosen gradient."""
    fast_conv_grad.install(enabled)
    try:
        def grad_of(source):
            @tf.function
            def run():
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    out = conv(x, kernel)
                return tape.gradient(out, source)
            return run
        return milliseconds(grad_of(x), repeats), milliseconds(grad_of(kernel), repeats)
    finally:
        fast_conv_grad.install(True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from kerascnn.speedups import conv_grad as fast_conv_grad  # first: importing kerascnn chooses the CPU kernels

    import tensorflow as tf

    rows = []
    for name, size, cin, cout, k, stride, padding in LAYERS:
        x = tf.random.normal((args.batch, size, size, cin))
        kernel = tf.Variable(tf.random.normal((k, k, cin, cout)))

        def conv(x, kernel, stride=stride, padding=padding):
            return tf.nn.conv2d(x, kernel, stride, padding)

        forward = milliseconds(tf.function(lambda: conv(x, kernel)), args.repeats)
        tf_input, tf_filter = gradient_timings(tf, fast_conv_grad, False, x, kernel, conv, args.repeats)
        fast_input, fast_filter = gradient_timings(tf, fast_conv_grad, True, x, kernel, conv, args.repeats)
        rows.append({"layer": name, "forward_ms": forward,
                     "tf_input_grad_ms": tf_input, "fast_input_grad_ms": fast_input,
                     "tf_filter_grad_ms": tf_filter, "fast_filter_grad_ms": fast_filter})
    header = list(rows[0])
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in header) + " |")
    if args.json:
        print(json.dumps({"batch": args.batch, "rows": rows}))


if __name__ == "__main__":
    main()
