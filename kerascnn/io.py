"""Atomic file writes (a reader, or a killed run, never sees a half-written file) and file checksums."""
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _file_mode():
    """The mode a plain ``open()`` would give a new file (mkstemp's own is 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


@contextmanager
def atomic_path(path, *, fsync=False):
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds.

    With ``fsync`` the bytes reach the disk before the rename, for files whose mere presence is
    trusted later (verified downloads and what is made from them), even after a power loss.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + "".join(path.suffixes), dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, FILE_MODE)
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(path, data, *, fsync=False):
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically; returns ``path`` as a Path."""
    with atomic_path(path, fsync=fsync) as tmp:
        Path(tmp).write_bytes(data if isinstance(data, bytes) else data.encode())
    return Path(path)


def sha256_file(path, chunk_bytes=1 << 20):
    """Hex SHA-256 of a file, read in chunks so large files need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def link_or_copy(src, dst):
    """Make ``dst`` a second name for the finished file ``src`` (a copy where links are not allowed).
    Safe because run files are only ever replaced by rename, never written in place."""
    src, dst = Path(src), Path(dst)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def write_json(path, obj):
    atomic_write(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
