"""FaceScrub subset: download the originals, keep the SHA-256-verified ones, crop the faces.

The course lists (tab-separated, no header: name, image_id, face_id, url, "x1,y1,x2,y2", sha256)
point at web images, many of them dead or changed since. Only bytes whose SHA-256 equals the
list's are trusted, because the boxes are only right for those exact files.

Output layout (matching the reference crops in shared/data/faces/crops):
    out/<First_Last>/<face_id>.jpg   the face I[y1:y2, x1:x2] of the raw decoded pixels (box clamped
                                     to the image; EXIF orientation is NOT applied, because the
                                     boxes were drawn on the stored pixel grid), converted to RGB,
                                     shrunk with bicubic resampling so the longer side is at most
                                     227 px (AlexNet's input size; never enlarged), JPEG quality 92.
                                     With these defaults the crops are byte-identical to the
                                     reference ones.
    out/_originals/<First_Last>/<image_id><ext>   verified downloads, so a rerun never downloads
                                     twice; the folder can itself serve as `from_dir`.
    out/manifest.csv                 one row per crop present.

Every selected list entry ends in exactly one outcome (kept, skipped, hash_mismatch, ...), so the
summary's entry counts add up to the number of entries. Does not import TensorFlow.
"""
import argparse
import csv
import dataclasses
import io
import json
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from urllib.parse import urlparse

from PIL import Image

from kerascnn.data.download import ChecksumError, DownloadError, DownloadTimeout, download
from kerascnn.io import atomic_write, sha256_file
from kerascnn.tables import csv_text

MAX_SIDE = 227
JPEG_QUALITY = 92
ORIGINALS_DIR = "_originals"
MANIFEST_NAME = "manifest.csv"
MANIFEST_FIELDS = ("file", "name", "image_id", "face_id", "bbox", "sha256", "source")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}

KEPT, SKIPPED, HASH_MISMATCH, HTTP_ERROR, TIMEOUT, UNREADABLE, BAD_BOX, NOT_FOUND = (
    "kept", "skipped", "hash_mismatch", "http_errors", "timeouts", "unreadable", "bad_box",
    "not_found")


@dataclasses.dataclass(frozen=True)
class FaceEntry:
    """One line of a FaceScrub list: one face in one original image."""

    name: str
    image_id: int
    face_id: int
    url: str
    bbox: tuple  # (x1, y1, x2, y2) in raw pixel coordinates, x2/y2 exclusive
    sha256: str

    @property
    def folder(self):
        return self.name.replace(" ", "_")

    @property
    def crop_relpath(self):
        return f"{self.folder}/{self.face_id}.jpg"


@dataclasses.dataclass
class FaceLists:
    """Parsed list files; `malformed` names the lines that were skipped (file:line)."""

    entries: list
    malformed: list


@dataclasses.dataclass
class FetchSummary:
    """What a fetch run did. Entry counts add up to `entries`; file counts are for `from_dir`."""

    entries: int = 0
    kept: int = 0
    skipped: int = 0
    hash_mismatch: int = 0
    http_errors: int = 0  # HTTP error status or a failed connection (DNS, refused, TLS)
    timeouts: int = 0
    unreadable: int = 0  # verified bytes that Pillow cannot decode
    bad_box: int = 0  # box lies outside the image
    not_found: int = 0  # from_dir: no file has this entry's SHA-256
    matched_files: int = 0  # from_dir: files whose SHA-256 is in the lists
    duplicate_files: int = 0  # from_dir: matched files with the same bytes as an earlier file
    rejected: int = 0  # from_dir: files whose SHA-256 is in no selected list entry
    malformed_lines: int = 0

    def to_dict(self):
        return dataclasses.asdict(self)

    def table(self):
        """Aligned two-column text, one count per line."""
        width = max(len(key) for key in self.to_dict())
        return "\n".join(f"{key:<{width}}  {value:>7}" for key, value in self.to_dict().items())


def normalize_name(name):
    """'Alec_Baldwin', 'alec baldwin' and 'Alec Baldwin' all denote the same person."""
    return " ".join(name.replace("_", " ").split()).casefold()


def read_lists(paths, names=None):
    """Parse FaceScrub list files, optionally keeping only `names`.

    Malformed lines (the course's actresses file ends in a truncated one) are skipped and
    reported, not fatal. Unknown `names` raise ValueError, since a typo would silently select
    nothing.
    """
    entries, malformed = [], []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line_number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                entry = _parse_line(line)
                if entry is None:
                    malformed.append(f"{path}:{line_number}")
                else:
                    entries.append(entry)
    if names:
        wanted = {normalize_name(n): n for n in names}
        present = {normalize_name(e.name) for e in entries}
        unknown = sorted(n for key, n in wanted.items() if key not in present)
        if unknown:
            raise ValueError(f"names not in the lists: {', '.join(unknown)}")
        entries = [e for e in entries if normalize_name(e.name) in wanted]
    return FaceLists(entries, malformed)


def _parse_line(line):
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != 6:
        return None
    name, image_id, face_id, url, bbox, sha = (field.strip() for field in fields)
    try:
        box = tuple(int(v) for v in bbox.split(","))
        ids = int(image_id), int(face_id)
    except ValueError:
        return None
    if len(box) != 4 or len(sha) != 64:
        return None
    return FaceEntry(name, ids[0], ids[1], url, box, sha.lower())


def crop_face(image, bbox, max_side=MAX_SIDE):
    """Face I[y1:y2, x1:x2] as RGB, box clamped to the image, shrunk to `max_side` if larger.

    Returns None when the clamped box is empty. `max_side=None` keeps the box's own size.
    """
    x1, y1, x2, y2 = bbox
    width, height = image.size
    x1, x2 = max(0, min(x1, width)), max(0, min(x2, width))
    y1, y2 = max(0, min(y1, height)), max(0, min(y2, height))
    if x2 <= x1 or y2 <= y1:
        return None
    face = image.convert("RGB").crop((x1, y1, x2, y2))
    longer = max(face.size)
    if max_side and longer > max_side:
        scale = max_side / longer
        size = (max(1, round(face.width * scale)), max(1, round(face.height * scale)))
        face = face.resize(size, Image.Resampling.BICUBIC)
    return face


def fetch_faces(lists, out_dir, *, from_dir=None, workers=8, timeout=10.0, retries=2,
                backoff=1.0, names=None, max_side=MAX_SIDE, quality=JPEG_QUALITY, progress=True):
    """Download (or take from `from_dir`), verify, crop and save the faces of the `lists`.

    Rerunnable: entries whose crop exists are skipped without touching the network, and
    verified originals are cached under `out_dir/_originals`. With `from_dir`, files found there
    (any depth) are matched to entries by SHA-256 instead of downloading; one original may hold
    several faces, and identical copies of one original are used once. Returns a FetchSummary.
    """
    out_dir = Path(out_dir)
    parsed = read_lists(lists, names)
    summary = FetchSummary(entries=len(parsed.entries), malformed_lines=len(parsed.malformed))
    originals = _group_by_original(parsed.entries)
    save = _CropWriter(out_dir, max_side, quality)
    todo = {sha: group for sha, group in originals.items() if not save.all_done(group)}
    outcomes = Counter({SKIPPED: sum(len(g) for sha, g in originals.items() if sha not in todo)})

    if from_dir is not None:
        files = _match_files(Path(from_dir), todo, originals, workers, summary)
        jobs = [partial(save.crops, todo[sha], path, source=str(path))
                for sha, path in files.items()]
        outcomes[NOT_FOUND] += sum(len(g) for sha, g in todo.items() if sha not in files)
    else:
        jobs = [partial(_download_and_crop, group, out_dir, save, timeout, retries, backoff)
                for group in todo.values()]

    bar = _ProgressLine(len(jobs), enabled=progress)
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        for result in pool.map(lambda job: job(), jobs):
            outcomes.update(result)
            bar.advance(outcomes)
    finally:
        pool.shutdown(cancel_futures=True)  # on Ctrl-C, do not start the queued originals
    bar.close(outcomes)

    for key, count in outcomes.items():
        setattr(summary, key, getattr(summary, key) + count)
    _write_manifest(out_dir, parsed.entries, save.sources)
    return summary


def _group_by_original(entries):
    """sha256 -> entries; one original image can contain several listed faces."""
    groups = {}
    for entry in entries:
        groups.setdefault(entry.sha256, []).append(entry)
    return groups


def _match_files(from_dir, todo, originals, workers, summary):
    """sha256 -> first file (sorted path order) under `from_dir` with those bytes, for `todo`."""
    paths = sorted(p for p in from_dir.rglob("*")
                   if p.is_file() and not p.name.startswith(".") and p.suffix != ".part")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        hashes = list(pool.map(sha256_file, paths))
    found = {}
    seen = set()
    for path, sha in zip(paths, hashes):
        if sha not in originals:
            summary.rejected += 1
            continue
        summary.matched_files += 1
        if sha in seen:
            summary.duplicate_files += 1
            continue
        seen.add(sha)
        if sha in todo:
            found[sha] = path
    return found


def _download_and_crop(group, out_dir, save, timeout, retries, backoff):
    """Fetch one original (trying each distinct URL of its entries) and crop its faces."""
    first = group[0]
    suffix = Path(urlparse(first.url).path).suffix.lower()
    cached = (out_dir / ORIGINALS_DIR / first.folder
              / f"{first.image_id}{suffix if suffix in IMAGE_SUFFIXES else '.img'}")
    failure = None
    for url in dict.fromkeys(entry.url for entry in group):
        try:
            download(url, cached, sha256=first.sha256, timeout=timeout, retries=retries,
                     backoff=backoff)
        except ChecksumError:
            failure = HASH_MISMATCH
        except DownloadTimeout:
            failure = TIMEOUT
        except DownloadError:
            failure = HTTP_ERROR
        else:
            return save.crops(group, cached, source=url)
    return Counter({failure: len(group)})


class _CropWriter:
    """Crops the faces of one verified original; records where each crop came from."""

    def __init__(self, out_dir, max_side, quality):
        self.out_dir = out_dir
        self.max_side = max_side
        self.quality = quality
        self.sources = {}  # face_id -> source of crops written in this run
        self._lock = threading.Lock()

    def done(self, entry):
        return (self.out_dir / entry.crop_relpath).is_file()

    def all_done(self, group):
        return all(self.done(entry) for entry in group)

    def crops(self, group, original, source):
        """Write the missing crops of `group` from the file `original`; count the outcomes."""
        pending = [entry for entry in group if not self.done(entry)]
        outcomes = Counter({SKIPPED: len(group) - len(pending)})
        try:
            with Image.open(original) as image:
                image.load()
                faces = [(entry, crop_face(image, entry.bbox, self.max_side))
                         for entry in pending]
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
            outcomes[UNREADABLE] += len(pending)
            return outcomes
        for entry, face in faces:
            if face is None:
                outcomes[BAD_BOX] += 1
            else:
                buffer = io.BytesIO()
                face.save(buffer, "JPEG", quality=self.quality)
                atomic_write(self.out_dir / entry.crop_relpath, buffer.getvalue(), fsync=True)
                with self._lock:
                    self.sources[entry.face_id] = source
                outcomes[KEPT] += 1
        return outcomes


def _write_manifest(out_dir, entries, sources):
    """Rewrite manifest.csv with one row per crop on disk, keeping rows of earlier runs.

    `source` (URL or original file) is known for crops written in this run; for older crops
    it comes from the previous manifest, or stays empty.
    """
    path = out_dir / MANIFEST_NAME
    rows = {}
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as f:
            rows = {row["file"]: row for row in csv.DictReader(f)}
    for entry in entries:
        if (out_dir / entry.crop_relpath).is_file():
            earlier = rows.get(entry.crop_relpath, {}).get("source", "")
            rows[entry.crop_relpath] = {
                "file": entry.crop_relpath, "name": entry.name, "image_id": entry.image_id,
                "face_id": entry.face_id, "bbox": ",".join(map(str, entry.bbox)),
                "sha256": entry.sha256, "source": sources.get(entry.face_id, earlier)}
    present = [row for file, row in sorted(rows.items()) if (out_dir / file).is_file()]
    atomic_write(path, csv_text(present, MANIFEST_FIELDS), fsync=True)


class _ProgressLine:
    """Plain-text progress on stderr: one rewritten line on a terminal, sparse lines otherwise."""

    def __init__(self, total, enabled):
        self.total = total
        self.enabled = enabled
        self.done = 0
        self.interactive = sys.stderr.isatty()
        self.last_shown = 0.0

    def advance(self, outcomes):
        self.done += 1
        if time.monotonic() - self.last_shown >= (0.2 if self.interactive else 10.0):
            self.show(outcomes)

    def show(self, outcomes, end=""):
        if not self.enabled:
            return
        self.last_shown = time.monotonic()
        failed = sum(n for key, n in outcomes.items() if key not in (KEPT, SKIPPED, NOT_FOUND))
        text = (f"faces: {self.done}/{self.total} originals | kept {outcomes[KEPT]} "
                f"skipped {outcomes[SKIPPED]} failed {failed}")
        if self.interactive:
            sys.stderr.write("\r" + text + end)
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def close(self, outcomes):
        self.show(outcomes, end="\n")


def add_arguments(parser):
    """Options of `kerascnn data faces fetch`."""
    parser.add_argument("--lists", nargs="+", required=True, metavar="FILE",
                        help="FaceScrub list files (tab-separated)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--from-dir", metavar="DIR",
                        help="use already-downloaded originals from DIR instead of the network")
    parser.add_argument("--workers", type=int, default=8, help="parallel downloads (default 8)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds without data before a request is abandoned (default 10)")
    parser.add_argument("--retries", type=int, default=2,
                        help="retries after a timeout, connection error or 5xx (default 2)")
    parser.add_argument("--names", nargs="+", metavar="NAME",
                        help="only these people ('Alec Baldwin' or Alec_Baldwin)")
    parser.add_argument("--max-side", type=int, default=MAX_SIDE,
                        help=f"shrink crops so the longer side is at most this; 0 keeps the box "
                             f"size (default {MAX_SIDE})")
    parser.add_argument("--quality", type=int, default=JPEG_QUALITY,
                        help=f"JPEG quality of the crops (default {JPEG_QUALITY})")
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    parser.add_argument("--json", action="store_true",
                        help="also print the summary as one JSON object on the last line")
    return parser


def run(args):
    """Run a fetch from parsed arguments; print the summary; return the exit status."""
    try:
        summary = fetch_faces(args.lists, args.out, from_dir=args.from_dir, workers=args.workers,
                              timeout=args.timeout, retries=args.retries, names=args.names,
                              max_side=args.max_side or None, quality=args.quality,
                              progress=not args.no_progress)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary.table())
    if args.json:
        print(json.dumps(summary.to_dict()))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m kerascnn.data.faces_fetch",
                                     description=__doc__.splitlines()[0])
    return run(add_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
