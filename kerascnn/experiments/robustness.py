"""Robustness of trained models to transformed validation images (artists section 1.7).

Each transformation is applied at a fixed strength, with its random choices (direction of a
rotation or shift, perspective corners) drawn from one fixed seed, so every model sees exactly the
same transformed images and a re-run gives the same numbers. Geometric transforms fill the border
by reflection, as the training augmentations do. Pixels stay raw [0, 255]; the models normalise.
"""
from pathlib import Path

import numpy as np

from kerascnn.tables import put_mean_sd
from kerascnn.vis.figure import pyplot, save_figure

SEED = 1234


# ---------------------------------------------------------------- transformations (float32 NHWC, [0, 255])

def _signs(rng, n):
    return rng.choice([-1.0, 1.0], size=n)


def _gray(x):
    import keras

    return keras.ops.convert_to_numpy(keras.ops.image.rgb_to_grayscale(x))


def brightness(x, delta, rng):
    """Shift every pixel by +-delta of the value range (sign per image)."""
    return x + (_signs(rng, len(x)) * delta * 255.0)[:, None, None, None]


def contrast(x, factor, rng):
    """Scale the distance from the image's mean grey level by ``factor`` (torchvision's definition)."""
    mean = _gray(x).mean(axis=(1, 2, 3), keepdims=True)
    return (x - mean) * factor + mean


def saturation(x, factor, rng):
    """Blend with the grey image: 0 is grey, 1 unchanged, 2 doubly saturated."""
    gray = _gray(x)
    return gray + (x - gray) * factor


def hue(x, shift, rng):
    """Rotate the hue by +-shift of the colour circle (sign per image)."""
    import keras

    hsv = keras.ops.convert_to_numpy(keras.ops.image.rgb_to_hsv(np.clip(x, 0, 255) / 255.0))
    hsv[..., 0] = (hsv[..., 0] + _signs(rng, len(x))[:, None, None] * shift) % 1.0
    return keras.ops.convert_to_numpy(keras.ops.image.hsv_to_rgb(hsv)) * 255.0


def blur(x, sigma, rng):
    import keras

    k = 2 * int(np.ceil(3 * sigma)) + 1
    return keras.ops.convert_to_numpy(keras.ops.image.gaussian_blur(x, kernel_size=(k, k), sigma=(sigma, sigma)))


def _warp(x, matrices):
    """Apply 3x3 homographies mapping output pixel (col, row) to input pixel, reflecting at the border."""
    import keras

    m = np.asarray(matrices, dtype=np.float64)
    m = m / m[:, 2:3, 2:3]
    params = m.reshape(len(m), 9)[:, :8].astype(np.float32)
    return keras.ops.convert_to_numpy(keras.ops.image.affine_transform(x, params, fill_mode="reflect"))


def _about_centre(x, linear):
    """Homographies applying 2x2 ``linear`` maps (output -> input offsets) about the image centre."""
    h, w = x.shape[1:3]
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    mats = np.repeat(np.eye(3)[None], len(linear), axis=0)
    mats[:, :2, :2] = linear
    mats[:, :2, 2] = c - np.einsum("nij,j->ni", linear, c)
    return mats


def rotation(x, degrees, rng):
    """Rotate by +-degrees (direction per image) about the centre."""
    t = np.deg2rad(degrees) * _signs(rng, len(x))
    linear = np.stack([np.stack([np.cos(t), -np.sin(t)], -1), np.stack([np.sin(t), np.cos(t)], -1)], 1)
    return _warp(x, _about_centre(x, linear))


def scaling(x, factor, rng):
    """Zoom by ``factor`` about the centre: above 1 enlarges the content, below 1 shrinks it."""
    linear = np.repeat((np.eye(2) / factor)[None], len(x), axis=0)
    return _warp(x, _about_centre(x, linear))


def translation(x, fraction, rng):
    """Shift by ``fraction`` of the size along both axes, each direction chosen per image."""
    h, w = x.shape[1:3]
    mats = np.repeat(np.eye(3)[None], len(x), axis=0)
    mats[:, 0, 2] = -_signs(rng, len(x)) * fraction * w
    mats[:, 1, 2] = -_signs(rng, len(x)) * fraction * h
    return _warp(x, mats)


def _homography(src, dst):
    """The 3x3 matrix mapping four ``src`` points onto four ``dst`` points."""
    rows, rhs = [], []
    for (u, v), (p, q) in zip(src, dst):
        rows += [[u, v, 1, 0, 0, 0, -p * u, -p * v], [0, 0, 0, u, v, 1, -q * u, -q * v]]
        rhs += [p, q]
    return np.append(np.linalg.solve(np.array(rows, float), np.array(rhs, float)), 1.0).reshape(3, 3)


def perspective(x, distortion, rng):
    """Move each corner by up to ``distortion`` of the size (per image, seeded): a perspective warp."""
    h, w = x.shape[1:3]
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], float)
    mats = [_homography(corners, corners + rng.uniform(-distortion, distortion, (4, 2)) * [w, h])
            for _ in range(len(x))]
    return _warp(x, mats)


def hflip(x, strength, rng):
    return x[:, :, ::-1, :]


def grayscale(x, strength, rng):
    return np.repeat(_gray(x), 3, axis=-1)


# (transformation, strength, label of the strength, function)
TRANSFORMS = [
    ("none", 0, "-", None),
    ("brightness", 0.1, "+-10% of range", brightness),
    ("brightness", 0.25, "+-25% of range", brightness),
    ("contrast", 0.6, "x0.6", contrast),
    ("contrast", 1.5, "x1.5", contrast),
    ("saturation", 0.5, "x0.5", saturation),
    ("saturation", 2.0, "x2", saturation),
    ("hue", 0.05, "+-0.05 turn", hue),
    ("hue", 0.15, "+-0.15 turn", hue),
    ("gaussian_blur", 0.5, "sigma 0.5", blur),
    ("gaussian_blur", 1.0, "sigma 1", blur),
    ("gaussian_blur", 2.0, "sigma 2", blur),
    ("perspective", 0.1, "corners +-10%", perspective),
    ("perspective", 0.2, "corners +-20%", perspective),
    ("rotation", 15, "+-15 deg", rotation),
    ("rotation", 45, "+-45 deg", rotation),
    ("translation", 0.1, "+-10% per axis", translation),
    ("translation", 0.2, "+-20% per axis", translation),
    ("scaling", 0.8, "x0.8", scaling),
    ("scaling", 1.25, "x1.25", scaling),
    ("horizontal_flip", 1, "all images", hflip),
    ("grayscale", 1, "all images", grayscale),
]


def transform_images(images, fn, strength, seed=SEED):
    """``images`` (uint8 or float NHWC) transformed by ``fn`` at ``strength``, as float32 in [0, 255]."""
    x = np.asarray(images, dtype=np.float32)
    if fn is None:
        return x
    return np.clip(fn(x, strength, np.random.default_rng(seed)), 0, 255).astype(np.float32)


# ---------------------------------------------------------------- the study hook

def _accuracy(model, x, y, batch_size=128):
    probs = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(probs, axis=1) == y))


def evaluate_transformed(study, study_dir, results, quiet=False):
    """Evaluate every variant's best checkpoint on each transformed validation set; one row per transform."""
    from kerascnn import rundir
    from kerascnn.data import load_dataset

    val = load_dataset(results[0]["cfg"]).val
    transformed = [transform_images(val.x, fn, strength) for _, strength, _, fn in TRANSFORMS]
    variants = [name for name, _ in study.variants]
    scores = {}  # (variant, transform index) -> [accuracy per seed]
    for result in results:
        if not quiet:
            print(f"[{study.name}] evaluating {result['variant']} seed {result['seed']} on "
                  f"{len(TRANSFORMS)} transformed validation sets", flush=True)
        model = rundir.load_model(result["run_dir"], "best")
        for i, x in enumerate(transformed):
            scores.setdefault((result["variant"], i), []).append(_accuracy(model, x, val.y))
    rows = []
    for i, (name, _, label, _) in enumerate(TRANSFORMS):
        row = {"transformation": name, "strength": label}
        for variant in variants:
            put_mean_sd(row, f"{variant}_accuracy", scores[(variant, i)])
        rows.append(row)
    plot_robustness(Path(study_dir) / "robustness.png", rows, variants, study.name)
    plot_examples(Path(study_dir) / "transformed_examples.png", val.x[0])
    return {"rows": rows, "columns": ["transformation", "strength"] + [f"{v}_accuracy" for v in variants]}


def plot_robustness(path, rows, variants, title):
    """Grouped horizontal bars: accuracy per transformation and variant, dashed lines at the clean accuracy."""
    plt = pyplot()
    labels = [f"{r['transformation']} ({r['strength']})" if r["strength"] != "-" else "clean" for r in rows]
    height = 0.8 / len(variants)
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(rows) * max(2, len(variants)) / 2 + 1.5))
    y = np.arange(len(rows))
    for k, variant in enumerate(variants):
        acc = [r[f"{variant}_accuracy"] for r in rows]
        err = [r.get(f"{variant}_accuracy_std", 0.0) for r in rows]
        ax.barh(y + (k - (len(variants) - 1) / 2) * height, acc, height, xerr=err, color=f"C{k}", label=variant,
                capsize=2)
        ax.axvline(rows[0][f"{variant}_accuracy"], color=f"C{k}", linestyle="--", linewidth=1)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("validation accuracy (best checkpoint); dashed: clean images")
    ax.set_xlim(0, 1)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path)


def plot_examples(path, image):
    """One validation image under every transformation, to show what the strengths mean."""
    plt = pyplot()
    cols = 6
    rows = -(-len(TRANSFORMS) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.8))
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, strength, label, fn) in zip(axes.flat, TRANSFORMS):
        ax.imshow(transform_images(image[None], fn, strength)[0].astype(np.uint8))
        ax.set_title(f"{name}\n{label}" if fn else "clean", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
