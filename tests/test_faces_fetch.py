"""FaceScrub fetch: outcome counts, resume, atomicity and crop geometry, offline."""
import csv
import functools
import hashlib
import io
import json
import shutil
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kerascnn.data.faces_fetch import crop_face, fetch_faces, main, read_lists

REPO = Path(__file__).resolve().parents[1]
FACES = REPO.parent / "shared" / "data" / "faces"
RED, BLUE, GREY = (220, 20, 30), (20, 40, 210), (128, 128, 128)
FAST = dict(workers=4, timeout=0.2, retries=1, backoff=0.01, progress=False)


def boxed_jpeg(size=(160, 120), box=(30, 20, 90, 60), colour=RED, exif_orientation=None):
    """A grey JPEG with one flat coloured rectangle at `box` (x1, y1, x2, y2)."""
    image = Image.new("RGB", size, GREY)
    image.paste(colour, box)
    exif = Image.Exif()
    if exif_orientation:
        exif[0x0112] = exif_orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, exif=exif)
    return buffer.getvalue()


def sha(data):
    return hashlib.sha256(data).hexdigest()


def list_line(name, face_id, url, box, digest):
    return f"{name}\t{face_id + 1000}\t{face_id}\t{url}\t{','.join(map(str, box))}\t{digest}\n"


class _Handler(SimpleHTTPRequestHandler):
    """Serves the test's files; /slow/* stalls, /flaky/* answers 500 the first time."""

    def do_GET(self):
        self.server.hits[self.path] = hits = self.server.hits.get(self.path, 0) + 1
        if self.path.startswith("/slow/"):
            time.sleep(0.6)
        if self.path.startswith("/flaky/") and hits == 1:
            self.send_error(500)
            return
        super().do_GET()

    def log_message(self, *args):
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # broken pipes from clients that gave up on /slow/


@pytest.fixture
def site(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/site; yields (site_dir, base_url, hits)."""
    root = tmp_path / "site"
    for folder in ("", "slow", "flaky"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    httpd = _QuietServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    httpd.hits = {}
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", httpd.hits
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def scenario(site, tmp_path):
    """One list covering every outcome; returns (list_path, hits)."""
    root, base, hits = site
    good = boxed_jpeg()
    two_faces = boxed_jpeg(box=(10, 10, 50, 40), colour=BLUE)
    flaky = boxed_jpeg(colour=BLUE)
    truncated = boxed_jpeg(size=(400, 300))[:2000]
    files = {"good.jpg": good, "two.jpg": two_faces, "wrong.jpg": b"not the listed bytes",
             "truncated.jpg": truncated, "slow/a.jpg": good, "flaky/a.jpg": flaky}
    for path, data in files.items():
        (root / path).write_bytes(data)
    lines = [
        list_line("Ann Actor", 1, f"{base}/good.jpg", (30, 20, 90, 60), sha(good)),
        list_line("Ann Actor", 2, f"{base}/two.jpg", (10, 10, 50, 40), sha(two_faces)),
        list_line("Ann Actor", 3, f"{base}/two.jpg", (60, 50, 100, 110), sha(two_faces)),
        list_line("Ann Actor", 4, f"{base}/wrong.jpg", (0, 0, 10, 10), sha(b"listed bytes")),
        list_line("Bob Actor", 5, f"{base}/missing.jpg", (0, 0, 10, 10), sha(b"x")),
        list_line("Bob Actor", 6, f"{base}/truncated.jpg", (0, 0, 50, 50), sha(truncated)),
        list_line("Bob Actor", 7, f"{base}/slow/a.jpg", (0, 0, 10, 10), sha(b"slow")),
        list_line("Bob Actor", 8, f"{base}/flaky/a.jpg", (30, 20, 90, 60), sha(flaky).upper()),
        # Same bytes as face 1, so the same original: downloaded once, box off the image.
        list_line("Bob Actor", 9, f"{base}/good.jpg?again", (500, 500, 600, 600), sha(good)),
        "Bob Actor\t10\t10\thttp://cut.example/\n",
    ]
    list_path = tmp_path / "list.txt"
    list_path.write_text("".join(lines))
    return list_path, hits


def all_files(directory):
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def test_every_outcome_is_counted_once(scenario, tmp_path):
    list_path, hits = scenario
    out = tmp_path / "out"
    summary = fetch_faces([list_path], out, **FAST)
    counts = {k: v for k, v in summary.to_dict().items() if v}
    assert counts == {"entries": 9, "kept": 4, "hash_mismatch": 1, "http_errors": 1,
                      "timeouts": 1, "unreadable": 1, "bad_box": 1, "malformed_lines": 1}
    assert hits["/two.jpg"] == 1  # one download serves both faces of an original
    assert "/good.jpg?again" not in hits
    assert hits["/flaky/a.jpg"] == 2  # 500, then success on the retry
    crops = {p for p in all_files(out) if not p.startswith("_originals")}
    assert crops == {"Ann_Actor/1.jpg", "Ann_Actor/2.jpg", "Ann_Actor/3.jpg", "Bob_Actor/8.jpg",
                     "manifest.csv"}
    # Nothing half-written: no temporary or partial files, and only verified originals cached.
    assert not [p for p in all_files(out) if p.endswith((".tmp", ".part"))]
    cached = [p for p in all_files(out) if p.startswith("_originals")]
    assert cached == ["_originals/Ann_Actor/1001.jpg", "_originals/Ann_Actor/1002.jpg",
                      "_originals/Bob_Actor/1006.jpg", "_originals/Bob_Actor/1008.jpg"]
    served = {"1001": "good.jpg", "1002": "two.jpg", "1006": "truncated.jpg", "1008": "flaky/a.jpg"}
    for path in cached:
        original = tmp_path / "site" / served[Path(path).stem]
        assert Path(out, path).read_bytes() == original.read_bytes()
    with open(out / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["file"] for row in rows] == ["Ann_Actor/1.jpg", "Ann_Actor/2.jpg",
                                             "Ann_Actor/3.jpg", "Bob_Actor/8.jpg"]
    assert rows[0]["source"].endswith("/good.jpg")


def test_second_run_skips_finished_faces_without_downloading(scenario, tmp_path):
    list_path, hits = scenario
    out = tmp_path / "out"
    first = fetch_faces([list_path], out, **FAST)
    downloads = dict(hits)
    second = fetch_faces([list_path], out, **FAST)
    assert (second.kept, second.skipped) == (0, first.kept)
    for path in ("/good.jpg", "/two.jpg", "/flaky/a.jpg"):
        assert hits[path] == downloads[path]
    manifest = (out / "manifest.csv").read_text()
    assert manifest.count("\n") == 1 + first.kept


def test_cached_originals_are_recropped_without_network(scenario, tmp_path):
    list_path, hits = scenario
    out = tmp_path / "out"
    fetch_faces([list_path], out, **FAST)
    shutil.rmtree(out / "Ann_Actor")
    downloads = dict(hits)
    again = fetch_faces([list_path], out, **FAST)
    assert again.kept == 3 and hits["/good.jpg"] == downloads["/good.jpg"]
    assert hits["/two.jpg"] == downloads["/two.jpg"]


def test_crop_has_the_box_size_and_colour(scenario, tmp_path):
    list_path, _ = scenario
    out = tmp_path / "out"
    fetch_faces([list_path], out, names=["Ann Actor"], **FAST)
    red = np.asarray(Image.open(out / "Ann_Actor/1.jpg"), dtype=float)
    blue = np.asarray(Image.open(out / "Ann_Actor/2.jpg"), dtype=float)
    assert red.shape == (40, 60, 3) and blue.shape == (30, 40, 3)
    assert np.abs(red.mean(axis=(0, 1)) - RED).max() < 8
    assert np.abs(blue.mean(axis=(0, 1)) - BLUE).max() < 8


def test_box_is_clamped_to_the_image():
    image = Image.open(io.BytesIO(boxed_jpeg(size=(100, 80))))
    assert crop_face(image, (-10, 50, 120, 200)).size == (100, 30)
    assert crop_face(image, (100, 0, 150, 10)) is None


def test_large_faces_are_shrunk_to_227_on_the_longer_side():
    image = Image.new("RGB", (800, 600), RED)
    assert crop_face(image, (100, 100, 600, 400)).size == (227, 136)
    assert crop_face(image, (100, 100, 600, 400), max_side=None).size == (500, 300)
    assert crop_face(image, (0, 0, 100, 50)).size == (100, 50)  # never enlarged


def test_exif_orientation_is_not_applied_before_cropping():
    # Orientation 6 would rotate the image by 90 degrees; the box refers to the stored pixels.
    raw = Image.open(io.BytesIO(boxed_jpeg(box=(30, 20, 90, 60), exif_orientation=6)))
    face = np.asarray(crop_face(raw, (30, 20, 90, 60)), dtype=float)
    assert face.shape == (40, 60, 3)
    assert np.abs(face.mean(axis=(0, 1)) - RED).max() < 8


def test_from_dir_matches_files_by_hash(tmp_path):
    originals = tmp_path / "originals"
    (originals / "Ann").mkdir(parents=True)
    two_faces = boxed_jpeg(box=(10, 10, 50, 40), colour=BLUE)
    truncated = boxed_jpeg(size=(400, 300))[:2000]
    (originals / "Ann" / "a.jpg").write_bytes(two_faces)
    (originals / "Ann" / "b.jpg").write_bytes(two_faces)  # same bytes under another name
    (originals / "Ann" / "c.jpg").write_bytes(boxed_jpeg(colour=BLUE))  # in no list
    (originals / "Ann" / "d.jpg").write_bytes(truncated)
    list_path = tmp_path / "list.txt"
    list_path.write_text(
        list_line("Ann Actor", 1, "http://127.0.0.1:9/a", (10, 10, 50, 40), sha(two_faces))
        + list_line("Ann Actor", 2, "http://127.0.0.1:9/a", (60, 50, 100, 110), sha(two_faces))
        + list_line("Ann Actor", 3, "http://127.0.0.1:9/d", (0, 0, 9, 9), sha(truncated))
        + list_line("Ann Actor", 4, "http://127.0.0.1:9/gone", (0, 0, 9, 9), sha(b"gone")))
    summary = fetch_faces([list_path], tmp_path / "out", from_dir=originals, progress=False)
    counts = {k: v for k, v in summary.to_dict().items() if v}
    assert counts == {"entries": 4, "kept": 2, "unreadable": 1, "not_found": 1,
                      "matched_files": 3, "duplicate_files": 1, "rejected": 1}
    rows = (tmp_path / "out" / "manifest.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].endswith("a.jpg")


def test_read_lists_filters_names_and_reports_malformed_lines(scenario):
    list_path, _ = scenario
    parsed = read_lists([list_path], names=["bob_actor"])
    assert {e.face_id for e in parsed.entries} == {5, 6, 7, 8, 9}
    assert parsed.entries[0].bbox == (0, 0, 10, 10)
    assert parsed.malformed == [f"{list_path}:10"]
    with pytest.raises(ValueError, match="Nobody"):
        read_lists([list_path], names=["Nobody"])


def test_names_restrict_the_fetch(scenario, tmp_path):
    list_path, hits = scenario
    summary = fetch_faces([list_path], tmp_path / "out", names=["Ann Actor"], **FAST)
    assert (summary.entries, summary.kept, summary.hash_mismatch) == (4, 3, 1)
    assert "/slow/a.jpg" not in hits


def test_cli_prints_a_table_and_json_last_line(scenario, tmp_path, capsys):
    list_path, _ = scenario
    status = main(["--lists", str(list_path), "--out", str(tmp_path / "out"), "--workers", "4",
                   "--timeout", "0.2", "--retries", "0", "--no-progress", "--json"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert status == 0 and lines[0].split() == ["entries", "9"]
    result = json.loads(lines[-1])
    assert (result["kept"], result["http_errors"]) == (3, 2)  # no retry for the flaky server


def test_cli_reports_unknown_names(scenario, tmp_path, capsys):
    list_path, _ = scenario
    assert main(["--lists", str(list_path), "--out", str(tmp_path), "--names", "Nobody"]) == 2
    assert "Nobody" in capsys.readouterr().err


def test_module_does_not_import_tensorflow():
    code = "import sys, kerascnn.data.faces_fetch; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


@pytest.mark.skipif(not (FACES / "images").is_dir(),
                    reason=f"shared FaceScrub data absent ({FACES})")
def test_real_originals_match_the_reference_crops(tmp_path):
    lists = [FACES / "facescrub_actors.txt", FACES / "facescrub_actresses.txt"]
    out = tmp_path / "crops"
    summary = fetch_faces(lists, out, from_dir=FACES / "images", progress=False)
    # 144 files: 120 whose SHA-256 is listed (32 of them byte-identical copies, so 88 distinct
    # originals holding 89 listed faces) and 24 listed nowhere.
    assert (summary.matched_files, summary.rejected, summary.duplicate_files) == (120, 24, 32)
    assert (summary.kept, summary.unreadable, summary.bad_box) == (89, 0, 0)
    assert summary.malformed_lines == 1  # the actresses list ends in a truncated line
    ours = sorted(p.relative_to(out) for p in out.glob("*/*.jpg"))
    missing_in_reference = [p for p in ours if not (FACES / "crops" / p).is_file()]
    # The reference keeps one crop per original; Vartan's image 83117 lists two faces.
    assert missing_in_reference == [Path("Michael_Vartan/43751.jpg")]
    for relative in set(ours) - set(missing_in_reference):
        reference = FACES / "crops" / relative
        assert Image.open(out / relative).size == Image.open(reference).size, relative
        assert (out / relative).read_bytes() == reference.read_bytes(), relative
