"""Any image folder, as ``--data-dir`` gives it: one folder per class, or train/valid(/test) split folders.

``<dir>/<class>/*`` is split into train and val per class (``val_fraction``, ``split_seed``).
``<dir>/train/<class>/*`` + ``<dir>/valid/<class>/*`` keeps the given split; an optional
``<dir>/test/`` holds either the same class folders or a flat folder of unlabelled images (y = -1,
the file name's stem is its id, as in the clip-art layout). Class names are the folder names, in
sorted order (numerical when all are integers); the class count always comes from the data.
"""
from pathlib import Path

from kerascnn.data import Splits, cache_dir
from kerascnn.data.images import (DatasetNotFoundError, is_image_file, list_class_folders, load_image_folder,
                                  stratified_split)

LAYOUT = """Expected one of these layouts under --data-dir (any common image format, at least 2 classes):
  <data-dir>/<class>/*.jpg            one folder per class; split into train/val by val_fraction, split_seed
or
  <data-dir>/train/<class>/*.jpg      the training images
  <data-dir>/valid/<class>/*.jpg      the validation images, the same class folders ("val/" works too)
  <data-dir>/test/<class>/*.jpg       (optional; or test/*.jpg flat, unlabelled)
Train with: kerascnn train --task folder --data-dir PATH"""

SPLIT_FOLDERS = ("train", "valid", "val", "test")


class FolderLayoutError(DatasetNotFoundError, ValueError):
    """The folder is not laid out as LAYOUT describes; both a FileNotFoundError and a ValueError, so
    callers that catch either see it."""


def _subdirs(root):
    return sorted(d for d in Path(root).iterdir() if d.is_dir() and not d.name.startswith((".", "_")))


def _has_images(folder):
    return any(p.is_file() and is_image_file(p) for p in Path(folder).rglob("*"))


def data_root(cfg):
    """The dataset folder: ``--data-dir`` is required, since there is no default folder of one's own images."""
    if not cfg.data_dir:
        raise FolderLayoutError(f"the folder dataset needs --data-dir PATH (a folder of your images).\n{LAYOUT}")
    root = Path(cfg.data_dir).expanduser()
    if not root.is_dir():
        raise FolderLayoutError(f"no data directory at {root}.\n{LAYOUT}")
    return root


def split_folders(root):
    """``{"train": path, "valid": path, "test": path or None}`` for the split layout, ``None`` for one folder
    per class; mixed layouts are an error."""
    names = {d.name: d for d in _subdirs(root)}
    if "train" not in names and "valid" not in names and "val" not in names:
        return None
    if "valid" in names and "val" in names:
        raise FolderLayoutError(f"{root} has both valid/ and val/; keep one validation folder.\n{LAYOUT}")
    valid = names.get("valid") or names.get("val")
    if "train" not in names or valid is None:
        have, lack = ("train/", "valid/") if "train" in names else (f"{valid.name}/", "train/")
        raise FolderLayoutError(f"{root} has {have} but no {lack}; give both, or only class folders.\n{LAYOUT}")
    others = [n for n, d in names.items() if n not in SPLIT_FOLDERS and _has_images(d)]
    if others:
        raise FolderLayoutError(f"{root} mixes layouts: class folders {others} next to train/ and {valid.name}/; "
                                f"move them into the split folders or use one folder per class.\n{LAYOUT}")
    return {"train": names["train"], "valid": valid, "test": names.get("test")}


def class_order(folders):
    """Label order of class folder names: numerical when all are integers ("10" after "9"), else sorted."""
    if folders and all(name.isdigit() for name in folders):
        return sorted(folders, key=int)
    return sorted(folders)


def class_names(root):
    """Class names in label order, from the folder listing alone; fewer than two is an error."""
    try:
        folders, files = list_class_folders(root, LAYOUT)
    except DatasetNotFoundError as exc:
        raise FolderLayoutError(str(exc)) from None
    if len(folders) < 2:
        empty = sorted(c for c, found in files.items() if not found)
        besides = f"; class folder(s) {', '.join(empty)} hold no images" if empty else ""
        raise FolderLayoutError(f"{root} has images in only one class folder ({folders[0]}){besides}; "
                                f"a classifier needs at least 2 classes.\n{LAYOUT}")
    return class_order(folders)


def _check_same_classes(split_root, names):
    """The val/test split's class folders must be the training classes: an extra one has no label."""
    try:
        folders, _ = list_class_folders(split_root, LAYOUT)
    except DatasetNotFoundError as exc:
        raise FolderLayoutError(str(exc)) from None
    extra = sorted(set(folders) - set(names))
    if extra:
        raise FolderLayoutError(f"{split_root} has class folders {extra} that train/ lacks images of; "
                                f"every split uses the training classes {names}.\n{LAYOUT}")


def _load(root, names, cfg, split):
    return load_image_folder(root, (cfg.image_size, cfg.image_size), cache_dir=cache_dir(cfg),
                             name=f"folder-{split}", layout_help=LAYOUT, class_names=names)


def load(cfg):
    root = data_root(cfg)
    splits = split_folders(root)
    if splits is None:
        names = class_names(root)
        images = _load(root, names, cfg, "all")
        train_idx, val_idx = stratified_split(images.y, cfg.val_fraction, cfg.split_seed)
        return Splits("folder", names, images.subset(train_idx), images.subset(val_idx))
    names = class_names(splits["train"])
    _check_same_classes(splits["valid"], names)
    train, val = _load(splits["train"], names, cfg, "train"), _load(splits["valid"], names, cfg, "valid")
    test = _load_test(splits["test"], names, cfg)
    return Splits("folder", names, train, val, test)


def _load_test(folder, names, cfg):
    """Labelled class folders, a flat unlabelled folder, or nothing."""
    if folder is None:
        return None
    if any(_has_images(d) for d in _subdirs(folder)):
        _check_same_classes(folder, names)
        return _load(folder, names, cfg, "test")
    from kerascnn.data.clipart import load_unlabelled_folder

    if not any(p.is_file() and is_image_file(p) for p in folder.iterdir()):
        return None
    test = load_unlabelled_folder(folder, (cfg.image_size, cfg.image_size), cache_dir=cache_dir(cfg),
                                  name="folder-test")
    test.class_names = names
    return test


def input_spec(cfg, *, classes=None):
    """(input shape, class count) from the folder listing, without decoding images; ``classes`` instead of the
    listing where the count changes nothing asked (receptive fields), so the data need not be there."""
    if classes is not None:
        return (cfg.image_size, cfg.image_size, 3), classes
    root = data_root(cfg)
    splits = split_folders(root)
    return (cfg.image_size, cfg.image_size, 3), len(class_names(splits["train"] if splits else root))
