"""The artists set: 451 paintings by 11 artists, one folder per artist, used at 50x50.

Labels follow the sorted folder names, as the original starter's loader did. Pixels are scaled
to [-0.5, 0.5] by the model's own preprocessing layer (``preprocess="centered"``).
"""
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path

from kerascnn.data import Splits, cache_dir, dataset_dir
from kerascnn.data.images import DatasetNotFoundError, list_class_folders, load_image_folder, stratified_split

LAYOUT = """Expected layout (one folder per artist, any common image format):
  <data-dir>/Canaletto/*.png
  <data-dir>/Claude_Monet/*.png
  ... 11 artist folders in all
Get it with one of:
  kerascnn train --task artists --data-dir PATH     (a local copy, e.g. ../shared/data/artists)
  kerascnn data artists download --url URL [--sha256 HEX]   (the course's art_data archive, if you have its URL)
The archive's URL is course material and is not public; see data/artists.json."""

NUM_CLASSES = 11


def load(cfg):
    root = dataset_dir(cfg, "artists")
    images = load_image_folder(root, (cfg.image_size, cfg.image_size), cache_dir=cache_dir(cfg),
                               name="artists", layout_help=LAYOUT)
    train_idx, val_idx = stratified_split(images.y, cfg.val_fraction, cfg.split_seed)
    return Splits("artists", images.class_names, images.subset(train_idx), images.subset(val_idx))


def find_artist_root(folder):
    """The folder inside an extracted archive that holds the artist folders (e.g. art_data/artists)."""
    candidates = [Path(folder)] + sorted(p for p in Path(folder).rglob("*") if p.is_dir())
    for candidate in candidates:
        try:
            classes, _ = list_class_folders(candidate, LAYOUT)
        except DatasetNotFoundError:
            continue
        if len(classes) == NUM_CLASSES:
            return candidate
    raise DatasetNotFoundError(f"no folder with {NUM_CLASSES} artist folders inside {folder}.\n{LAYOUT}")


def download(url, dest, sha256=None, progress=None):
    """Fetch the art_data archive (zip or tar), verify it, and unpack the artist folders to ``dest``.

    ``progress`` as in ``kerascnn.data.download.download`` (True: a byte bar on stderr)."""
    from kerascnn.data.download import download as fetch

    dest = Path(dest)
    archive = fetch(url, dest.parent / "downloads" / Path(url.split("?")[0]).name, sha256=sha256, progress=progress)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        else:
            with tarfile.open(archive) as t:
                t.extractall(tmp, filter="data")
        root = find_artist_root(tmp)
        if dest.exists():
            shutil.rmtree(dest)
        shutil.move(str(root), dest)
    return dest


def input_spec(cfg):
    """(input shape, class count) without reading the images, for `params` and `receptive-field`."""
    return (cfg.image_size, cfg.image_size, 3), NUM_CLASSES
