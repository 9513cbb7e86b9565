"""The one matplotlib set-up of the project: the file-only Agg backend, and figures saved atomically.

Figures are written to files from scripts and servers without a display, so pyplot is always
used with Agg; matplotlib is imported only when a figure is drawn, which keeps the commands that
draw none quick to start.
"""
from pathlib import Path

from kerascnn.io import atomic_path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, *, dpi=110, **savefig_kwargs):
    """Write ``fig`` to ``path`` as PNG (never half-written), close it, and return ``path`` as a Path."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", **savefig_kwargs)
    pyplot().close(fig)
    return Path(path)


def save_image(array, path, *, cmap="gray", vmin=0, vmax=1):
    """Write a 2-D (or H x W x 3) array in [vmin, vmax] as a PNG of its own pixels, without axes."""
    with atomic_path(path) as tmp:
        pyplot().imsave(tmp, array, cmap=cmap, vmin=vmin, vmax=vmax, format="png")
    return Path(path)
