"""Decode a class-per-folder image set once into a cached uint8 array file.

The cache key covers every source file's relative path, size and mtime plus the target size,
so editing, adding or removing an image rebuilds the cache and nothing else does. Images are
validated while building it: a corrupt file is skipped and named, never a mid-epoch crash.
"""
import hashlib
import io
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kerascnn.io import atomic_write

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}
CACHE_VERSION = 1


class DatasetNotFoundError(FileNotFoundError):
    """The data directory is missing or not laid out as the loader expects."""


class CorruptImageWarning(UserWarning):
    """Some images could not be decoded and were left out."""


class EmptyClassWarning(UserWarning):
    """Some class folders hold no images: a class the user expects is missing from the data."""


@dataclass
class ImageSet:
    """Decoded images: uint8 NHWC pixels, int labels, class names and the source file of each row.

    ``empty_classes`` names the class folders that held no image file.
    """

    x: np.ndarray
    y: np.ndarray
    class_names: list
    files: list
    skipped: list = field(default_factory=list)
    empty_classes: list = field(default_factory=list)

    def subset(self, idx):
        return ImageSet(self.x[idx], self.y[idx], self.class_names, [self.files[i] for i in idx],
                        empty_classes=self.empty_classes)


def is_image_file(path):
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def decode_image(source, size):
    """Read one image as RGB uint8 at ``size`` (height, width); raises on unreadable data.

    Greyscale, palette and alpha images become RGB (transparent pixels over white). JPEGs are
    decoded at reduced scale first when much larger than the target, which is several times faster.
    """
    from PIL import Image

    height, width = size
    with Image.open(source) as img:
        if img.format == "JPEG":
            img.draft("RGB", (width * 2, height * 2))
        img.load()
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            img = Image.new("RGB", rgba.size, (255, 255, 255))
            img.paste(rgba, mask=rgba.getchannel("A"))
        else:
            img = img.convert("RGB")
        if img.size != (width, height):
            img = img.resize((width, height), Image.BICUBIC)
        return np.asarray(img, dtype=np.uint8)


def decode_many(paths, size, workers=None, progress=False, label="decoding images"):
    """Decode files in parallel; returns (array of decoded, indices kept, [(path, reason)] skipped).

    ``progress``: a bar on stderr (True), none (False), or one when stderr is a terminal (None)."""
    from kerascnn.progress import bar

    workers = workers or min(8, (os.cpu_count() or 1) * 2)

    def one(path):
        try:
            return decode_image(path, size), None
        except Exception as exc:  # any decode failure means the file is unusable
            return None, f"{type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(workers) as pool, bar(len(paths), label, enabled=progress) as shown:
        results = []
        for result in pool.map(one, paths):
            results.append(result)
            shown.update()
    kept = [i for i, (img, _) in enumerate(results) if img is not None]
    skipped = [(str(paths[i]), err) for i, (img, err) in enumerate(results) if img is None]
    x = np.stack([results[i][0] for i in kept]) if kept else np.zeros((0, *size, 3), np.uint8)
    return x, kept, skipped


def list_class_folders(root, layout_help, ignore=()):
    """Class folders under ``root`` that hold images, and the image files of every folder (an empty
    folder maps to ``[]``); clear errors when the layout is wrong."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"no data directory at {root}.\n{layout_help}")
    classes = sorted(
        d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith((".", "_")) and d.name not in ignore
    )
    files = {c: sorted(p for p in (root / c).rglob("*") if p.is_file() and is_image_file(p)) for c in classes}
    classes = [c for c in classes if files[c]]
    if not classes:
        loose = [p for p in root.iterdir() if p.is_file() and is_image_file(p)]
        found = f"found {len(loose)} images directly in it and no class folders" if loose else "found no images"
        raise DatasetNotFoundError(f"{root} is not laid out as expected: {found}.\n{layout_help}")
    return classes, files


def _cache_key(root, entries, size):
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_VERSION, str(Path(root).resolve()), list(size)]).encode())
    for path in entries:
        st = path.stat()
        h.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def load_image_folder(root, size, *, cache_dir, name, layout_help, ignore=(), class_names=None, progress=None):
    """Load ``root/<class>/*`` as an ImageSet, decoding only when the cache is stale.

    ``progress``: while decoding, a bar on stderr (True), none (False), or (None) one when there are at least
    ``kerascnn.progress.MIN_FILES`` files and stderr is a terminal.

    ``class_names`` fixes the label order (folder names otherwise, sorted). Class folders without
    images are named in an ``EmptyClassWarning`` and in the result's ``empty_classes``.
    """
    root = Path(root)
    folders, files = list_class_folders(root, layout_help, ignore)
    empty = sorted(c for c, found in files.items() if not found)
    if empty:
        warnings.warn(f"{root}: no images in class folder(s) {', '.join(empty)}; "
                      f"{len(folders)} classes have images", EmptyClassWarning, stacklevel=2)
    classes = class_names or folders
    missing = [c for c in classes if c not in files]
    if missing:
        raise DatasetNotFoundError(f"{root} lacks class folders {missing}.\n{layout_help}")
    paths = [p for c in classes for p in files[c]]
    labels = np.array([k for k, c in enumerate(classes) for _ in files[c]], dtype=np.int32)
    size = tuple(int(s) for s in size)
    cache = Path(cache_dir) / f"{name}-{size[0]}x{size[1]}-{_cache_key(root, paths, size)}.npz"
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            images = ImageSet(z["x"], z["y"], list(z["class_names"]), list(z["files"]), list(map(tuple, z["skipped"])),
                              empty)
    else:
        from kerascnn.progress import MIN_FILES

        if progress is None and len(paths) < MIN_FILES:
            progress = False
        x, kept, skipped = decode_many(paths, size, progress=progress, label=f"decoding {name}")
        rel = [str(paths[i].relative_to(root)) for i in kept]
        images = ImageSet(x, labels[kept], list(classes), rel, skipped, empty)
        buf = io.BytesIO()
        np.savez(buf, x=x, y=images.y, class_names=np.array(classes), files=np.array(rel, dtype=str),
                 skipped=np.array(skipped, dtype=str).reshape(-1, 2))
        atomic_write(cache, buf.getvalue())
    warn_skipped(images.skipped)
    return images


def warn_skipped(skipped):
    if skipped:
        listing = "\n".join(f"  {path}: {reason}" for path, reason in skipped)
        warnings.warn(f"skipped {len(skipped)} unreadable image(s):\n{listing}", CorruptImageWarning, stacklevel=3)


def stratified_split(labels, fraction, seed):
    """Deterministic per-class split: returns (keep_idx, held_out_idx), both sorted.

    Each class with at least two images gives round(fraction * n) images (at least one) to the
    held-out part, so every class is represented on both sides.
    """
    rng = np.random.default_rng(seed)
    held = []
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        if len(idx) < 2 or fraction <= 0:
            continue
        n = min(len(idx) - 1, max(1, int(round(fraction * len(idx)))))
        held.extend(rng.permutation(idx)[:n])
    held = np.sort(np.array(held, dtype=np.int64))
    keep = np.setdiff1d(np.arange(len(labels)), held)
    return keep, held
