"""Time TensorFlow's Conv2D gradient against kerascnn's (kerascnn/fast_conv_grad.py), layer by layer.

For each of the cifar10 ConvNet's five 3x3 convolutions at batch 128: milliseconds of the forward
convolution, and of the input and filter gradients with TensorFlow's own gradient and with the fast
one (each gradient figure includes its forward convolution). Run it on a quiet machine:

    python scripts/bench_conv_grad.py [--batch 128] [--repeats 5] [--json]
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONVNET_LAYERS = [(32, 3, 128), (16, 128, 512), (8, 512, 512), (4, 512, 512), (2, 512, 512)]


def milliseconds(fn, repeats):
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return round((time.perf_counter() - start) / repeats * 1000, 1)


def gradient_timings(tf, fast_conv_grad, enabled, x, kernel, repeats):
    """ms of the input gradient alone and of the filter gradient alone, with the chosen gradient."""
    fast_conv_grad.install(enabled)
    try:
        def grad_of(source):
            @tf.function
            def run():
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    out = tf.nn.conv2d(x, kernel, 1, "SAME")
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
    import tensorflow as tf

    from kerascnn import fast_conv_grad

    rows = []
    for size, cin, cout in CONVNET_LAYERS:
        x = tf.random.normal((args.batch, size, size, cin))
        kernel = tf.Variable(tf.random.normal((3, 3, cin, cout)))
        forward = milliseconds(tf.function(lambda: tf.nn.conv2d(x, kernel, 1, "SAME")), args.repeats)
        tf_input, tf_filter = gradient_timings(tf, fast_conv_grad, False, x, kernel, args.repeats)
        fast_input, fast_filter = gradient_timings(tf, fast_conv_grad, True, x, kernel, args.repeats)
        rows.append({"layer": f"{size}x{size} {cin}->{cout}", "forward_ms": forward,
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
