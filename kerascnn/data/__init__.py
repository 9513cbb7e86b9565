"""Dataset registry. Each dataset module exposes ``load(cfg) -> Splits`` and a ``LAYOUT`` help text.

Paths: ``--data-dir`` always wins. Otherwise datasets live under the data home: ``$KERASCNN_DATA``
if set, else the project's ``data/`` folder in a source checkout, else ``~/.cache/kerascnn``.
Decoded-array caches go to ``<data home>/cache``.
"""
import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from kerascnn.data.images import ImageSet

# The dataset modules of this package, imported by name on first use; a new dataset is added here.
DATASETS = ("artists", "caltech101", "cifar10", "clipart", "faces", "faces_alexnet", "folder")


@dataclass
class Splits:
    """A dataset ready for training: uint8 image arrays per split and the class names."""

    name: str
    class_names: list
    train: ImageSet
    val: ImageSet
    test: ImageSet = None

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def input_shape(self):
        return tuple(self.train.x.shape[1:])

    @property
    def empty_classes(self):
        """Class folders without images in any of the splits: classes a user may expect that the data lacks."""
        parts = (self.train, self.val, self.test)
        return sorted({c for part in parts if part is not None for c in part.empty_classes})

    def split(self, name):
        part = getattr(self, name, None)
        if part is None:
            raise ValueError(f"dataset {self.name!r} has no {name!r} split")
        return part


def data_home():
    if os.environ.get("KERASCNN_DATA"):
        return Path(os.environ["KERASCNN_DATA"])
    project_data = Path(__file__).resolve().parents[2] / "data"
    if (project_data / "README.md").exists():
        return project_data
    return Path.home() / ".cache" / "kerascnn"


def cache_dir(cfg=None):
    if cfg is not None and getattr(cfg, "cache_dir", None):
        return Path(cfg.cache_dir)
    return data_home() / "cache"


# Where each dataset sits under a data root laid out like ../shared/data (and the data home).
DATA_SUBDIRS = {"artists": "artists", "caltech101": "caltech101", "cifar10": "cifar10", "clipart": "clipart",
                "faces": "faces/crops", "faces_alexnet": "faces/crops"}


def dataset_dir(cfg, name):
    return Path(cfg.data_dir) if cfg.data_dir else data_home() / name


def available_datasets():
    return sorted(DATASETS)


def dataset_module(name):
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; available: {', '.join(available_datasets())}")
    return importlib.import_module(f"kerascnn.data.{name}")


def load_dataset(cfg):
    return dataset_module(cfg.dataset).load(cfg)
