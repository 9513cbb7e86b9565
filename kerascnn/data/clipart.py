"""The clip-art assignment's layout (seed 004): ``train/<k>/``, ``valid/<k>/`` and a flat, unlabelled ``test/``.

Class folders are named by class index ("0", "1", ... "64" in the assignment), so they are ordered
numerically ("10" after "9") and folder k is label k, which is what the ``id,label`` predictions
file must contain. ``class_names.txt`` (line k = name of class k), when present, gives readable
names; the class count always comes from the data, never from a constant. The test images have
no labels: the test split is an ImageSet with ``y = -1`` whose file names' stems are the ids.
"""
import io
from pathlib import Path

import numpy as np

from kerascnn.data import Splits, cache_dir, dataset_dir
from kerascnn.data.images import (DatasetNotFoundError, ImageSet, _cache_key, decode_many, is_image_file,
                                  list_class_folders, load_image_folder, warn_skipped)
from kerascnn.io import atomic_write

LAYOUT = """Expected layout (the clip-art homework's, class folders named by class index):
  <data-dir>/train/0/*.jpg ... <data-dir>/train/<K-1>/*.jpg
  <data-dir>/valid/0/*.jpg ... <data-dir>/valid/<K-1>/*.jpg
  <data-dir>/test/*.jpg          (optional, flat, no labels; the file name without extension is the id)
  <data-dir>/class_names.txt     (optional, line k = name of class k)
Get it with:
  kerascnn train --task clipart_own --data-dir PATH   (a local copy, e.g. ../shared/data/clipart, a 7-class
  PACS-cartoon substitute in this layout; the course's 65-class Office-Home Clipart set is not public)"""

UNLABELLED = -1


def class_folders(split_root):
    """Class folder names of ``split_root`` in label order: numerically when all are integers.

    Integer names must be exactly 0..K-1, since folder k is label k in the predictions file.
    """
    folders, _ = list_class_folders(split_root, LAYOUT)
    if not all(name.isdigit() for name in folders):
        return sorted(folders)
    indices = sorted(int(name) for name in folders)
    if indices != list(range(len(indices))):
        missing = sorted(set(range(indices[-1] + 1)) - set(indices))
        raise DatasetNotFoundError(f"{split_root}: class folders must be 0..K-1; missing {missing}.\n{LAYOUT}")
    by_index = {int(name): name for name in folders}
    return [by_index[k] for k in indices]


def read_class_names(root, folders):
    """Names from ``class_names.txt`` (one per line), else the folder names; the counts must agree."""
    path = Path(root) / "class_names.txt"
    if not path.exists():
        return list(folders)
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(names) != len(folders):
        raise DatasetNotFoundError(f"{path} names {len(names)} classes but {Path(root) / 'train'} has "
                                   f"{len(folders)} class folders.\n{LAYOUT}")
    return names


def load_unlabelled_folder(folder, size, *, cache_dir, name):
    """Every image directly in ``folder`` (sorted by name) as an ImageSet with y = -1, cached like the rest."""
    folder = Path(folder)
    paths = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))
    size = tuple(int(s) for s in size)
    cache = Path(cache_dir) / f"{name}-{size[0]}x{size[1]}-{_cache_key(folder, paths, size)}.npz"
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            x, files, skipped = z["x"], list(z["files"]), list(map(tuple, z["skipped"]))
    else:
        x, kept, skipped = decode_many(paths, size)
        files = [paths[i].name for i in kept]
        buf = io.BytesIO()
        np.savez(buf, x=x, files=np.array(files, dtype=str), skipped=np.array(skipped, dtype=str).reshape(-1, 2))
        atomic_write(cache, buf.getvalue())
    warn_skipped(skipped)
    return ImageSet(x, np.full(len(files), UNLABELLED, dtype=np.int32), [], files, skipped)


def test_ids(images):
    """The assignment's ids of an unlabelled split: file names without extension."""
    return [Path(f).stem for f in images.files]


def load(cfg):
    root = dataset_dir(cfg, "clipart")
    if not (root / "train").is_dir() or not (root / "valid").is_dir():
        raise DatasetNotFoundError(f"{root} has no train/ and valid/ folders.\n{LAYOUT}")
    folders = class_folders(root / "train")
    names = read_class_names(root, folders)
    size = (cfg.image_size, cfg.image_size)
    parts = {}
    for split in ("train", "valid"):
        part = load_image_folder(root / split, size, cache_dir=cache_dir(cfg), name=f"clipart-{split}",
                                 layout_help=LAYOUT, class_names=folders)
        part.class_names = names
        parts[split] = part
    test = None
    if (root / "test").is_dir():
        test = load_unlabelled_folder(root / "test", size, cache_dir=cache_dir(cfg), name="clipart-test")
        test.class_names = names
    return Splits("clipart", names, parts["train"], parts["valid"], test)


def input_spec(cfg, *, classes=None):
    """(input shape, class count) from the folder listing, without decoding images; ``classes`` instead of the
    listing where the count changes nothing asked (receptive fields), so the data need not be there."""
    if classes is not None:
        return (cfg.image_size, cfg.image_size, 3), classes
    root = dataset_dir(cfg, "clipart")
    return (cfg.image_size, cfg.image_size, 3), len(class_folders(root / "train"))
