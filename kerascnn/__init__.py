"""kerascnn: train, study, tune, explain and export image classifiers with Keras 3."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow reads this once, at import, and left unset turns oneDNN on only on CPUs with AVX-512 VNNI/BF16
# or AMX. On AVX2 CPUs its Eigen kernels then train LeNet, the caltech101 CNN, ResNet-18, ClipNet and AlexNet
# 1.2-1.8x slower per step and the SimpleCNN's epochs about 1.8x slower; ResNet-50 and the cifar10 ConvNets
# are within about 5% (BENCHMARKS.md). Set it to 0 to keep Eigen; importing TensorFlow before kerascnn
# keeps TensorFlow's own choice.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
