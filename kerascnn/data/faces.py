"""FaceScrub faces of the assignment's 12 actors (seed 000, part 2): crops in one folder per person.

The split is per person, as the assignment sets it: 70 training images each, the rest shared
between validation and test. A person with fewer than 70 + ``HELD_OUT_MIN`` images keeps
``HELD_OUT_MIN`` (at most a third of them) back for evaluation and trains on the rest, with a
warning naming them; Peri Gilpin, with 60 verified crops, trains on 50. The split depends only on
``split_seed`` and each person's sorted file list, so repeats with other ``seed`` values share it.
``grayscale=true`` keeps one luma channel, so a 28x28 MLP sees 784 inputs.
"""
import dataclasses
import warnings

import numpy as np

from kerascnn.data import Splits, cache_dir, dataset_dir
from kerascnn.data.images import list_class_folders, load_image_folder

LAYOUT = """Expected layout (one folder per person, face crops in any common image format):
  <data-dir>/Alec_Baldwin/<face_id>.jpg
  <data-dir>/America_Ferrera/<face_id>.jpg
  ... 12 people in the course's subset
Get it with one of:
  kerascnn data faces fetch --lists facescrub_actors.txt facescrub_actresses.txt --out data/faces/crops
      (downloads, keeps SHA-256-verified originals, crops the faces; add --from-dir DIR to use
      originals you already have)
  kerascnn train --task faces_mlp --data-dir PATH   (existing crops, e.g. ../shared/data/faces/crops)"""

NUM_CLASSES = 12
TRAIN_PER_PERSON = 70
HELD_OUT_MIN = 10  # validation + test images kept back from a person with fewer than 80
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as PIL's "L" mode


class FewImagesWarning(UserWarning):
    """A person has fewer images than the training quota; fewer are used for training."""


def to_grayscale(x):
    """uint8 NHWC RGB -> uint8 NHW1 luma."""
    grey = np.tensordot(x.astype(np.float32), LUMA, axes=([-1], [0]))
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None]


def split_per_person(labels, class_names, seed, train_per_person=TRAIN_PER_PERSON, held_out_min=HELD_OUT_MIN):
    """(train, val, test) sorted index arrays: ``train_per_person`` images of each person for training.

    The images not trained on are divided between validation and test (test gets the odd one).
    A person with too few images keeps ``max(2, min(held_out_min, n // 3))`` for evaluation and
    trains on the rest; one warning names every such person. Each person's shuffle is seeded by
    (seed, label), so adding images for one person leaves the others' split alone.
    """
    labels = np.asarray(labels)
    train, val, test, short = [], [], [], []
    for k, name in enumerate(class_names):
        idx = np.flatnonzero(labels == k)
        n = len(idx)
        if n < 3:
            raise ValueError(f"{name} has {n} image(s); every person needs at least 3 "
                             "(training, validation and test)")
        n_train = min(train_per_person, n - max(2, min(held_out_min, n // 3)))
        if n_train < train_per_person:
            short.append(f"{name} ({n} images: {n_train} for training)")
        order = idx[np.random.default_rng([seed, k]).permutation(n)]
        n_val = (n - n_train) // 2
        train.append(order[:n_train])
        val.append(order[n_train:n_train + n_val])
        test.append(order[n_train + n_val:])
    if short:
        warnings.warn(f"fewer than {train_per_person} training images for: {', '.join(short)}",
                      FewImagesWarning, stacklevel=2)
    return tuple(np.sort(np.concatenate(parts)).astype(np.int64) for parts in (train, val, test))


def image_root(cfg):
    """``--data-dir``, else ``faces/crops`` under the data home."""
    return dataset_dir(cfg, "faces/crops")


def load_images(cfg):
    """Every crop at ``cfg.image_size`` square (grey when ``cfg.grayscale``), labels by sorted folder."""
    images = load_image_folder(image_root(cfg), (cfg.image_size, cfg.image_size), cache_dir=cache_dir(cfg),
                               name="faces", layout_help=LAYOUT)
    if cfg.grayscale:
        images = dataclasses.replace(images, x=to_grayscale(images.x))
    return images


def make_splits(name, images, cfg):
    """Splits of an ImageSet (images or features) by ``split_per_person``."""
    train, val, test = split_per_person(images.y, images.class_names, cfg.split_seed)
    return Splits(name, list(images.class_names), images.subset(train), images.subset(val), images.subset(test))


def load(cfg):
    return make_splits("faces", load_images(cfg), cfg)


def num_people(cfg):
    """Class folders present under the data directory; the course's 12 when it is absent."""
    try:
        return len(list_class_folders(image_root(cfg), LAYOUT)[0])
    except FileNotFoundError:
        return NUM_CLASSES


def input_spec(cfg):
    """(input shape, class count) without decoding images, for `params` and `receptive-field`."""
    return (cfg.image_size, cfg.image_size, 1 if cfg.grayscale else 3), num_people(cfg)
