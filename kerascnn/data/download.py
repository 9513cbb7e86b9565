"""Dependency-free downloads that are safe to interrupt and safe to rerun.

Every dataset in the project comes from a URL that may be slow, flaky or gone. `download` keeps the
rules in one place: bytes go to `<dest>.part` (resumed with an HTTP Range request next time), the
SHA-256 is checked when known, and only a complete, verified file is renamed onto `dest`, so a
file at `dest` can always be trusted.
"""
import http.client
import os
import re
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

from kerascnn.io import sha256_file

USER_AGENT = "Mozilla/5.0 (compatible; kerascnn-downloader)"
CHUNK_BYTES = 1 << 16


class DownloadError(Exception):
    """A download that failed for good (after any retries)."""


class HTTPStatusError(DownloadError):
    """The server answered with an error status."""

    def __init__(self, url, status, reason=""):
        super().__init__(f"HTTP {status} {reason} for {url}".replace("  ", " "))
        self.url = url
        self.status = status


class DownloadTimeout(DownloadError):
    """The server stopped answering for longer than the timeout."""


class ChecksumError(DownloadError):
    """The downloaded bytes are not the ones the caller asked for."""

    def __init__(self, path, expected, actual):
        super().__init__(f"SHA-256 mismatch for {path}: expected {expected}, got {actual}")
        self.path = path
        self.expected = expected
        self.actual = actual


class _Retryable(Exception):
    """Internal: a failure worth another attempt; `final` is what to raise if none is left."""

    def __init__(self, final):
        super().__init__(str(final))
        self.final = final


def download(url, dest, *, sha256=None, timeout=30, retries=3, backoff=1.0, resume=True,
             progress=None):
    """Fetch `url` into `dest` and return `dest` as a Path.

    - An existing `dest` is reused without network access when its hash matches `sha256` (or when
      no `sha256` is given); one with the wrong hash is downloaded again.
    - Timeouts, connection failures and 5xx/408/429 answers are retried `retries` times, sleeping
      `backoff * 2**k` seconds in between; other 4xx answers (404...) fail at once.
    - With `resume`, bytes already in `<dest>.part` are kept and the rest is requested with a Range
      header; a server that ignores Range gets a full download. Without `resume`, a failure leaves
      no `.part` behind.
    - A SHA-256 mismatch deletes the bad bytes and raises `ChecksumError`; if the bytes came partly
      from an earlier `.part`, one fresh full download is tried first, as the stale part may be
      the culprit.
    - `progress(done_bytes, total_bytes_or_None)` is called as bytes arrive; `progress=True` draws a
      byte bar on stderr instead when the size is known (None or False: nothing).

    Raises `HTTPStatusError`, `DownloadTimeout`, `ChecksumError` or `DownloadError`.
    """
    dest = Path(dest)
    if progress is True:
        from kerascnn.progress import byte_callback

        progress = byte_callback(f"downloading {dest.name}", enabled=True)
    elif progress is False:
        progress = None
    expected = sha256.lower() if sha256 else None
    if dest.is_file() and (expected is None or sha256_file(dest) == expected):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if not resume:
        part.unlink(missing_ok=True)

    attempt = 0
    while True:
        resumed_from = part.stat().st_size if resume and part.exists() else 0
        try:
            _fetch_into(url, part, resumed_from, timeout, progress)
        except _Retryable as failure:
            if attempt >= retries:
                if not resume:
                    part.unlink(missing_ok=True)
                raise failure.final from failure.__cause__
            time.sleep(backoff * 2 ** attempt)
            attempt += 1
            continue
        except DownloadError:
            part.unlink(missing_ok=True)
            raise
        except BaseException:
            if not resume:
                part.unlink(missing_ok=True)
            raise

        if expected is not None:
            actual = sha256_file(part)
            if actual != expected:
                part.unlink()
                if resumed_from:
                    continue  # retry once from scratch: .part is gone, so resumed_from becomes 0
                raise ChecksumError(dest, expected, actual)
        _fsync_file(part)
        os.replace(part, dest)
        return dest


def _fetch_into(url, part, offset, timeout, progress):
    """One HTTP attempt: append to `part` from byte `offset`, or rewrite it if Range is ignored."""
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if offset and response.status != 206:
                offset = 0  # the server ignored Range: this body is the whole file
            elif offset and not _range_starts_at(response, offset):
                _fetch_from_scratch(url, part, timeout, progress)
                return
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            done = offset
            with open(part, "ab" if offset else "wb") as f:
                while chunk := response.read(CHUNK_BYTES):
                    f.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
            if total is not None and done < total:
                raise _Retryable(DownloadError(f"connection closed after {done} of {total} "
                                               f"bytes for {url}"))
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            # Our .part reaches past what the server has: it cannot be continued.
            _fetch_from_scratch(url, part, timeout, progress)
            return
        failure = HTTPStatusError(url, error.code, error.reason)
        if error.code >= 500 or error.code in (408, 429):
            raise _Retryable(failure) from error
        raise failure from error
    except urllib.error.URLError as error:
        if isinstance(error.reason, ssl.SSLCertVerificationError):
            raise DownloadError(f"{url}: {error.reason}") from error
        if isinstance(error.reason, TimeoutError):
            raise _Retryable(DownloadTimeout(f"timed out after {timeout}s: {url}")) from error
        raise _Retryable(DownloadError(f"{url}: {error.reason}")) from error
    except TimeoutError as error:
        raise _Retryable(DownloadTimeout(f"timed out after {timeout}s: {url}")) from error
    except (ConnectionError, http.client.HTTPException) as error:
        raise _Retryable(DownloadError(f"{url}: {error!r}")) from error


def _fetch_from_scratch(url, part, timeout, progress):
    part.unlink(missing_ok=True)
    _fetch_into(url, part, 0, timeout, progress)


def _range_starts_at(response, offset):
    """True unless the response's Content-Range says it starts somewhere other than `offset`."""
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return match is None or int(match.group(1)) == offset


def _fsync_file(path):
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
