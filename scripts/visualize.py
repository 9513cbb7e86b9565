"""Thin wrapper: `python scripts/visualize.py ...` is `kerascnn visualize ...` (works from a clone without installing)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kerascnn.cli import main  # noqa: E402

sys.exit(main(["visualize", *sys.argv[1:]]))
