"""CIFAR-10: 32x32 RGB images of 10 object classes; 50,000 training and 10,000 test images.

Sources, in the order ``load`` tries them:

* ``--data-dir PATH``: an ``.npz`` file, the official python-pickle folder, the official
  ``cifar-10-python.tar.gz`` archive, or a folder holding one of these (see ``LAYOUT``);
* ``--data-dir tfds`` (or ``tfds:DIR``): the tensorflow-datasets ``cifar10`` build, downloaded
  and prepared once by tfds into its data directory;
* no ``--data-dir``: ``<data home>/cifar10`` if present, else Keras' cached download
  (``~/.keras/datasets/cifar-10-batches-py``), else ``keras.datasets.cifar10.load_data()``, which
  downloads it once; offline that last step fails at once with the layout help rather than hanging.

Validation is a stratified hold-out of the training images (``val_fraction``, ``split_seed``);
test is the official test split. Images are kept at 32x32 unless ``image_size`` asks otherwise
(a transfer model can upsample inside itself instead: ``--set model.upsample=64``).
"""
import pickle
import socket
import tarfile
from pathlib import Path

import numpy as np

from kerascnn.data import Splits, dataset_dir
from kerascnn.data.images import DatasetNotFoundError, ImageSet, stratified_split

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
NATIVE_SIZE = 32
PICKLE_FOLDER = "cifar-10-batches-py"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
ARCHIVE_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"

LAYOUT = f"""CIFAR-10 is read from any of these (give the file or a folder holding it with --data-dir):
  an .npz file with x_train, y_train, x_test, y_test (optionally x_train_more, y_train_more,
      appended to the training set; optional class_names); images N x 32 x 32 x 3 uint8 RGB
      (N x 3 x 32 x 32 and N x 3072 official rows are accepted too), labels 0..9
  the official python version, unpacked: <data-dir>/{PICKLE_FOLDER}/data_batch_1 .. data_batch_5,
      test_batch, batches.meta (or those files directly in <data-dir>)
  the official archive itself: <data-dir>/{ARCHIVE_NAME}
Get it with one of:
  download {ARCHIVE_URL} (163 MB) and pass --data-dir to it or to where you unpacked it
  run once online without --data-dir: keras.datasets.cifar10 caches it in ~/.keras/datasets
  --data-dir tfds (or tfds:DIR): the tensorflow-datasets build, prepared once online
  --data-dir ../shared/data/cifar10/cifar10_subset.npz (a real 5,170/1,017-image subset, on the course machines)"""


def load(cfg):
    x_train, y_train, x_test, y_test, class_names = read_arrays(cfg)
    if not 0 < cfg.val_fraction < 1:
        raise ValueError(f"val_fraction={cfg.val_fraction}: cifar10 holds out a share of the training images "
                         "for validation, so it must lie strictly between 0 and 1")
    if cfg.image_size != NATIVE_SIZE:
        x_train, x_test = resize(x_train, cfg.image_size), resize(x_test, cfg.image_size)
    train = ImageSet(x_train, y_train, class_names, [f"train/{i}" for i in range(len(x_train))])
    test = ImageSet(x_test, y_test, class_names, [f"test/{i}" for i in range(len(x_test))])
    train_idx, val_idx = stratified_split(y_train, cfg.val_fraction, cfg.split_seed)
    return Splits("cifar10", class_names, train.subset(train_idx), train.subset(val_idx), test)


def input_spec(cfg):
    """(input shape, class count) without reading the images, for `params` and `receptive-field`."""
    return (cfg.image_size, cfg.image_size, 3), len(CLASS_NAMES)


# ------------------------------------------------------------------ sources

def read_arrays(cfg):
    """(x_train, y_train, x_test, y_test, class_names) from the source ``cfg.data_dir`` names."""
    source = cfg.data_dir
    if source and (source == "tfds" or source.startswith("tfds:")):
        return read_tfds(source.partition(":")[2] or None)
    if source:
        return read_path(Path(source))
    local = dataset_dir(cfg, "cifar10")
    if local.exists():
        return read_path(local)
    keras_cache = Path.home() / ".keras" / "datasets" / PICKLE_FOLDER
    if keras_cache.is_dir():
        return read_path(keras_cache)
    return read_keras_download()


def read_path(path):
    """An .npz, an archive, a pickle folder, or a folder holding any of them."""
    if not path.exists():
        raise DatasetNotFoundError(f"no CIFAR-10 data at {path}.\n{LAYOUT}")
    if path.is_file():
        if path.suffix == ".npz":
            return read_npz(path)
        if path.name.endswith((".tar.gz", ".tgz", ".tar")):
            return read_archive(path)
        raise DatasetNotFoundError(f"{path} is neither an .npz nor the official archive.\n{LAYOUT}")
    for folder in (path, path / PICKLE_FOLDER):
        if (folder / "test_batch").exists():
            return read_pickle_folder(folder)
    if (path / ARCHIVE_NAME).exists():
        return read_archive(path / ARCHIVE_NAME)
    npz_files = sorted(path.glob("*.npz"))
    if len(npz_files) == 1:
        return read_npz(npz_files[0])
    found = (f"found {len(npz_files)} .npz files ({', '.join(p.name for p in npz_files)}); name one"
             if npz_files else "found no test_batch, archive or .npz file in it")
    raise DatasetNotFoundError(f"{path} is not laid out as expected: {found}.\n{LAYOUT}")


def read_npz(path):
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z.files]
        if missing:
            raise DatasetNotFoundError(f"{path} lacks arrays {missing} (it has {z.files}).\n{LAYOUT}")
        x_train, y_train = [as_images(z["x_train"], path, "x_train")], [as_labels(z["y_train"])]
        if "x_train_more" in z.files:
            x_train.append(as_images(z["x_train_more"], path, "x_train_more"))
            y_train.append(as_labels(z["y_train_more"]))
        names = [str(n) for n in z["class_names"]] if "class_names" in z.files else CLASS_NAMES
        arrays = (np.concatenate(x_train), np.concatenate(y_train),
                  as_images(z["x_test"], path, "x_test"), as_labels(z["y_test"]))
    return check(*arrays, names, path)


def _unpickle(handle):
    return pickle.load(handle, encoding="bytes")


def _batch_arrays(batch, where):
    try:
        return batch[b"data"], batch[b"labels"]
    except (KeyError, TypeError):
        raise DatasetNotFoundError(f"{where} is not a CIFAR-10 python batch (no data/labels entries)") from None


def _meta_names(meta):
    return [n.decode() if isinstance(n, bytes) else str(n) for n in meta[b"label_names"]]


def read_pickle_folder(folder):
    """``data_batch_*`` (all present, in order) + ``test_batch`` + ``batches.meta``; rows are CHW-flattened."""
    batches = sorted(folder.glob("data_batch_*"), key=lambda p: p.name)
    if not batches:
        raise DatasetNotFoundError(f"{folder} has test_batch but no data_batch_* files.\n{LAYOUT}")
    parts = []
    for path in batches + [folder / "test_batch"]:
        with path.open("rb") as handle:
            parts.append(_batch_arrays(_unpickle(handle), path))
    names = CLASS_NAMES
    if (folder / "batches.meta").exists():
        with (folder / "batches.meta").open("rb") as handle:
            names = _meta_names(_unpickle(handle))
    x_train = np.concatenate([as_images(d, folder, "data_batch") for d, _ in parts[:-1]])
    y_train = np.concatenate([as_labels(labels) for _, labels in parts[:-1]])
    return check(x_train, y_train, as_images(parts[-1][0], folder, "test_batch"), as_labels(parts[-1][1]),
                 names, folder)


def read_archive(path):
    """The official tar.gz, read in memory (no unpacking needed)."""
    train, test, names = {}, None, CLASS_NAMES
    with tarfile.open(path) as archive:
        for member in archive.getmembers():
            name = Path(member.name).name
            if not member.isfile() or not (name.startswith("data_batch_") or name in ("test_batch", "batches.meta")):
                continue
            content = _unpickle(archive.extractfile(member))
            if name == "batches.meta":
                names = _meta_names(content)
            elif name == "test_batch":
                test = _batch_arrays(content, f"{path}:{member.name}")
            else:
                train[name] = _batch_arrays(content, f"{path}:{member.name}")
    if test is None or not train:
        raise DatasetNotFoundError(f"{path} holds no test_batch or no data_batch_* files.\n{LAYOUT}")
    ordered = [train[k] for k in sorted(train)]
    return check(np.concatenate([as_images(d, path, "data_batch") for d, _ in ordered]),
                 np.concatenate([as_labels(labels) for _, labels in ordered]),
                 as_images(test[0], path, "test_batch"), as_labels(test[1]), names, path)


def read_tfds(data_dir):
    """The tensorflow-datasets build: read if prepared; otherwise prepared first (needs a connection)."""
    import tensorflow_datasets as tfds

    builder = tfds.builder("cifar10", data_dir=data_dir)
    if not builder.is_prepared():
        if not online(ARCHIVE_URL):
            raise DatasetNotFoundError(f"tensorflow-datasets has no prepared cifar10 in {builder.data_dir} and "
                                       f"this machine cannot reach the download server.\n{LAYOUT}")
        builder.download_and_prepare()
    arrays = {}
    for split in ("train", "test"):
        data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        arrays[split] = (np.asarray(data["image"], np.uint8), as_labels(data["label"]))
    names = builder.info.features["label"].names
    return check(*arrays["train"], *arrays["test"], names, f"tfds:{builder.data_dir}")


def read_keras_download():
    """``keras.datasets.cifar10.load_data()``: downloads once into ~/.keras/datasets; fails fast offline."""
    if not online(ARCHIVE_URL):
        raise DatasetNotFoundError(
            "no local CIFAR-10 copy (no --data-dir, nothing in the data home or ~/.keras/datasets) and this "
            f"machine cannot reach {ARCHIVE_URL} to download it.\n{LAYOUT}")
    import keras

    (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    return check(x_train, as_labels(y_train), x_test, as_labels(y_test), CLASS_NAMES, "keras.datasets.cifar10")


def online(url, timeout=3.0):
    """Whether the host of ``url`` accepts a TCP connection within ``timeout`` seconds."""
    host = url.split("://", 1)[-1].split("/", 1)[0]
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


# ------------------------------------------------------------------ array checks

def as_images(x, where, key):
    """NHWC uint8 RGB from NHWC, NCHW or official N x 3072 (channel-major) rows."""
    x = np.asarray(x)
    if x.ndim == 2 and x.shape[1] == 3 * NATIVE_SIZE * NATIVE_SIZE:
        x = x.reshape(-1, 3, NATIVE_SIZE, NATIVE_SIZE)
    if x.ndim == 4 and x.shape[1] == 3 and x.shape[3] != 3:
        x = x.transpose(0, 2, 3, 1)
    if x.ndim != 4 or x.shape[3] != 3:
        raise DatasetNotFoundError(f"{where}: {key} has shape {x.shape}; expected N x 32 x 32 x 3 images.\n{LAYOUT}")
    if x.dtype != np.uint8:
        if x.min() < 0 or x.max() > 255:
            raise DatasetNotFoundError(f"{where}: {key} values span {x.min()}..{x.max()}; expected 0..255 pixels")
        x = x.astype(np.uint8)
    return np.ascontiguousarray(x)


def as_labels(y):
    return np.asarray(y).reshape(-1).astype(np.int32)


def check(x_train, y_train, x_test, y_test, class_names, where):
    class_names = list(class_names)
    for key, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if len(x) != len(y):
            raise DatasetNotFoundError(f"{where}: {len(x)} {key} images but {len(y)} labels")
        if len(y) and (y.min() < 0 or y.max() >= len(class_names)):
            raise DatasetNotFoundError(f"{where}: {key} labels span {y.min()}..{y.max()}, "
                                       f"outside 0..{len(class_names) - 1}")
    return x_train, y_train, x_test, y_test, class_names


def resize(x, size, chunk=1000):
    """Bilinear resize to ``size`` x ``size`` (uint8 in and out), in chunks to bound memory."""
    import tensorflow as tf

    out = [tf.image.resize(x[i:i + chunk], (size, size), antialias=True) for i in range(0, len(x), chunk)]
    return np.concatenate([np.clip(np.round(o.numpy()), 0, 255).astype(np.uint8) for o in out])
