"""download(): retries, timeouts, Range resume, checksums and atomicity against a local server."""
import dataclasses
import hashlib
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kerascnn.data.download import ChecksumError, DownloadError, DownloadTimeout, HTTPStatusError, download
from kerascnn.io import atomic_path, atomic_write, sha256_file

BODY = bytes(range(256)) * 400  # 100 KiB, several read chunks


@dataclasses.dataclass
class Route:
    """How the test server answers one path; `ranges` logs the Range header of each request."""

    body: bytes = b""
    status: int = 200
    fail_first: int = 0  # answer 500 to this many requests first
    slow_first: int = 0  # stall this many requests for `delay` seconds before answering
    delay: float = 0.0
    honour_range: bool = False
    cut_first_at: int = None  # first request: close the connection after this many body bytes
    ranges: list = dataclasses.field(default_factory=list)

    @property
    def hits(self):
        return len(self.ranges)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        route.ranges.append(self.headers.get("Range"))
        if route.hits <= route.slow_first:
            time.sleep(route.delay)
        if route.hits <= route.fail_first:
            self.send_error(500)
            return
        if route.status != 200:
            self.send_error(route.status)
            return
        body, status, extra = route.body, 200, {}
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if route.honour_range and match:
            start = int(match.group(1))
            if start >= len(body):
                self.send_error(416)
                return
            status, body = 206, body[start:]
            extra["Content-Range"] = f"bytes {start}-{len(route.body) - 1}/{len(route.body)}"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        if route.cut_first_at is not None and route.hits == 1:
            self.wfile.write(body[:route.cut_first_at])
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that timed out leave broken pipes behind; that is the point of those tests


@pytest.fixture
def server():
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    httpd.routes = {}
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()

    def serve(path, **route):
        httpd.routes[path] = Route(**route)
        return f"http://127.0.0.1:{httpd.server_address[1]}{path}", httpd.routes[path]

    yield serve
    httpd.shutdown()
    httpd.server_close()


def sha(data):
    return hashlib.sha256(data).hexdigest()


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir())


def test_download_verifies_and_leaves_only_the_file(server, tmp_path):
    url, route = server("/a.bin", body=BODY)
    seen = []
    path = download(url, tmp_path / "a.bin", sha256=sha(BODY),
                    progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == BODY
    assert leftovers(tmp_path) == ["a.bin"]
    assert seen[-1] == (len(BODY), len(BODY))


def test_existing_file_with_right_hash_is_not_downloaded_again(server, tmp_path):
    url, route = server("/a.bin", body=BODY)
    (tmp_path / "a.bin").write_bytes(BODY)
    download(url, tmp_path / "a.bin", sha256=sha(BODY))
    assert route.hits == 0


def test_existing_file_with_wrong_hash_is_replaced(server, tmp_path):
    url, route = server("/a.bin", body=BODY)
    (tmp_path / "a.bin").write_bytes(b"stale")
    download(url, tmp_path / "a.bin", sha256=sha(BODY))
    assert (tmp_path / "a.bin").read_bytes() == BODY and route.hits == 1


def test_checksum_mismatch_names_both_hashes_and_deletes_the_bytes(server, tmp_path):
    url, _ = server("/a.bin", body=BODY)
    expected = sha(b"something else")
    with pytest.raises(ChecksumError) as error:
        download(url, tmp_path / "a.bin", sha256=expected)
    assert expected in str(error.value) and sha(BODY) in str(error.value)
    assert (error.value.expected, error.value.actual) == (expected, sha(BODY))
    assert leftovers(tmp_path) == []


def test_404_fails_at_once_without_retrying(server, tmp_path):
    url, route = server("/gone", status=404)
    with pytest.raises(HTTPStatusError) as error:
        download(url, tmp_path / "gone", retries=3, backoff=0.01)
    assert error.value.status == 404 and route.hits == 1
    assert leftovers(tmp_path) == []


def test_5xx_is_retried_with_backoff(server, tmp_path):
    url, route = server("/flaky", body=BODY, fail_first=2)
    download(url, tmp_path / "flaky", sha256=sha(BODY), retries=2, backoff=0.01)
    assert route.hits == 3 and (tmp_path / "flaky").read_bytes() == BODY


def test_5xx_gives_up_after_the_retries(server, tmp_path):
    url, route = server("/down", body=BODY, fail_first=99)
    start = time.monotonic()
    with pytest.raises(HTTPStatusError) as error:
        download(url, tmp_path / "down", retries=2, backoff=0.05)
    assert error.value.status == 500 and route.hits == 3
    assert time.monotonic() - start >= 0.05 + 0.1  # slept backoff * 2**k between attempts
    assert leftovers(tmp_path) == []


def test_timeout_then_success_on_retry(server, tmp_path):
    url, route = server("/slow", body=BODY, slow_first=1, delay=0.6)
    download(url, tmp_path / "slow", sha256=sha(BODY), timeout=0.2, retries=1, backoff=0.01)
    assert route.hits == 2 and (tmp_path / "slow").read_bytes() == BODY


@pytest.mark.parametrize("resume", [True, False])
def test_timeout_every_time_fails_cleanly(server, tmp_path, resume):
    url, route = server("/slow", body=BODY, slow_first=99, delay=0.6)
    start = time.monotonic()
    with pytest.raises(DownloadTimeout):
        download(url, tmp_path / "slow", timeout=0.2, retries=1, backoff=0.01, resume=resume)
    assert time.monotonic() - start < 2 and route.hits == 2
    assert leftovers(tmp_path) == []


def test_connection_refused_is_a_download_error(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again on exit, so nothing listens there
    with pytest.raises(DownloadError):
        download(f"http://127.0.0.1:{port}/x", tmp_path / "x", retries=1, backoff=0.01)
    assert leftovers(tmp_path) == []


def test_partial_file_is_resumed_with_a_range_request(server, tmp_path):
    url, route = server("/a.bin", body=BODY, honour_range=True)
    (tmp_path / "a.bin.part").write_bytes(BODY[:30000])
    download(url, tmp_path / "a.bin", sha256=sha(BODY))
    assert route.ranges == ["bytes=30000-"]
    assert leftovers(tmp_path) == ["a.bin"] and (tmp_path / "a.bin").read_bytes() == BODY


def test_server_ignoring_range_gets_a_full_download(server, tmp_path):
    url, route = server("/a.bin", body=BODY, honour_range=False)
    (tmp_path / "a.bin.part").write_bytes(BODY[:30000])
    download(url, tmp_path / "a.bin", sha256=sha(BODY))
    assert route.hits == 1 and (tmp_path / "a.bin").read_bytes() == BODY


def test_connection_dropped_midway_resumes_on_the_retry(server, tmp_path):
    url, route = server("/a.bin", body=BODY, honour_range=True, cut_first_at=40000)
    download(url, tmp_path / "a.bin", sha256=sha(BODY), retries=1, backoff=0.01)
    assert route.ranges == [None, "bytes=40000-"]
    assert (tmp_path / "a.bin").read_bytes() == BODY


@pytest.mark.parametrize("resume", [True, False])
def test_dropped_connection_keeps_a_part_only_for_resuming(server, tmp_path, resume):
    url, _ = server("/a.bin", body=BODY, cut_first_at=40000)
    with pytest.raises(DownloadError):
        download(url, tmp_path / "a.bin", sha256=sha(BODY), retries=0, resume=resume)
    assert leftovers(tmp_path) == (["a.bin.part"] if resume else [])


def test_corrupt_partial_file_is_discarded_after_the_mismatch(server, tmp_path):
    url, route = server("/a.bin", body=BODY, honour_range=True)
    (tmp_path / "a.bin.part").write_bytes(b"\0" * 30000)
    download(url, tmp_path / "a.bin", sha256=sha(BODY), retries=0)
    assert route.ranges == ["bytes=30000-", None]
    assert (tmp_path / "a.bin").read_bytes() == BODY


def test_partial_file_longer_than_the_body_starts_over(server, tmp_path):
    url, route = server("/a.bin", body=BODY, honour_range=True)
    (tmp_path / "a.bin.part").write_bytes(BODY + b"junk")
    download(url, tmp_path / "a.bin", sha256=sha(BODY), retries=0)
    assert route.ranges == [f"bytes={len(BODY) + 4}-", None]
    assert (tmp_path / "a.bin").read_bytes() == BODY


def test_without_resume_a_partial_file_is_ignored(server, tmp_path):
    url, route = server("/a.bin", body=BODY, honour_range=True)
    (tmp_path / "a.bin.part").write_bytes(BODY[:30000])
    download(url, tmp_path / "a.bin", sha256=sha(BODY), resume=False)
    assert route.ranges == [None] and (tmp_path / "a.bin").read_bytes() == BODY


def test_sha256_file(tmp_path):
    (tmp_path / "f").write_bytes(BODY)
    assert sha256_file(tmp_path / "f", chunk_bytes=1000) == sha(BODY)


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic_write(target, b"first")
    assert atomic_write(target, "second", fsync=True) == target
    assert target.read_bytes() == b"second"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"second" and leftovers(target.parent) == ["f.txt"]


def test_atomic_writes_get_the_mode_a_plain_open_gives(tmp_path):
    import os

    atomic_write(tmp_path / "a.json", "{}")
    with open(tmp_path / "b.json", "w") as f:
        f.write("{}")
    assert os.stat(tmp_path / "a.json").st_mode == os.stat(tmp_path / "b.json").st_mode
