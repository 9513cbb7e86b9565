"""kerascnn: train, study, tune, explain and export image classifiers with Keras 3."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
