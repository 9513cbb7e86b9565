"""kerascnn: train, study, tune, explain and export image classifiers with Keras 3."""
import os

if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    # Marks the level as kerascnn's default, for this process and the ones it starts.
    os.environ["KERASCNN_DEFAULT_TF_LOG_LEVEL"] = "2"
# The level a user chose, or None: kerascnn.quiet leaves TensorFlow's start-up lines alone for a user who chose.
USER_TF_CPP_MIN_LOG_LEVEL = os.environ["TF_CPP_MIN_LOG_LEVEL"]
if USER_TF_CPP_MIN_LOG_LEVEL == os.environ.get("KERASCNN_DEFAULT_TF_LOG_LEVEL"):
    USER_TF_CPP_MIN_LOG_LEVEL = None
# TensorFlow reads this once, at import, and left unset turns oneDNN on only on CPUs with AVX-512 VNNI/BF16
# or AMX. On AVX2 CPUs its Eigen kernels then train most of the models here markedly slower per step, and none
# faster (BENCHMARKS.md, "Training step per task"). Set it to 0 to keep Eigen; importing TensorFlow before
# kerascnn keeps TensorFlow's own choice.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
