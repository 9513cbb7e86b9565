"""Caltech-101: 101 object categories, one folder per class, used at 64x64 (the caltech101 assignment).

The assignment's set has no fixed split, so train/validation is a deterministic stratified 90/10
split drawn from ``cfg.split_seed`` (every class keeps about a tenth of its images for validation,
and repeats with different ``seed`` values share the split). ``BACKGROUND_Google``, the clutter
folder of the original release, is not an object class and is ignored when present. Greyscale
images become RGB when decoded; labels follow the sorted folder names.
"""
from kerascnn.data import Splits, cache_dir, dataset_dir
from kerascnn.data.images import load_image_folder, stratified_split

LAYOUT = """Expected layout (the original Caltech-101 release, 101_ObjectCategories):
  <data-dir>/accordion/image_0001.jpg
  <data-dir>/airplanes/image_0001.jpg
  ... 101 class folders in all (a BACKGROUND_Google folder is ignored)
Get it with one of:
  kerascnn train --task caltech101_lenet --data-dir PATH   (a local copy, e.g. ../shared/data/caltech101)
  the CaltechDATA release (https://data.caltech.edu/records/mzrjq-6wc02): unpack caltech-101.zip and
  101_ObjectCategories.tar.gz inside it, then pass --data-dir .../101_ObjectCategories
tensorflow-datasets also has "caltech101", but it downloads from the same upstream (which has moved);
export its images into class folders if you already have that copy."""

NUM_CLASSES = 101
IGNORED_FOLDERS = ("BACKGROUND_Google",)


def load(cfg):
    root = dataset_dir(cfg, "caltech101")
    images = load_image_folder(root, (cfg.image_size, cfg.image_size), cache_dir=cache_dir(cfg),
                               name="caltech101", layout_help=LAYOUT, ignore=IGNORED_FOLDERS)
    train_idx, val_idx = stratified_split(images.y, cfg.val_fraction, cfg.split_seed)
    return Splits("caltech101", images.class_names, images.subset(train_idx), images.subset(val_idx))


def input_spec(cfg):
    """(input shape, class count) without reading the images, for `params` and `receptive-field`."""
    return (cfg.image_size, cfg.image_size, 3), NUM_CLASSES
