"""Downloading one file over HTTP: retried with backoff, written through a `.part` file so that a file that
exists is always complete. COCO's annotations and images come through here, and so do pretrained weights,
which also resume an interrupted `.part` (HTTP Range) and are checked against their sha256."""

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import requests
from tqdm import tqdm
from urllib3.exceptions import NameResolutionError, NewConnectionError

from mlcore.errors import DataError

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
CHUNK_BYTES = 1 << 16


class DownloadError(DataError):
    """A file could not be downloaded; `reason` is short enough to count failures by."""

    def __init__(self, url: str, reason: str, advice: str = ""):
        self.url = url
        self.reason = reason
        super().__init__(f"could not download {url}: {reason}" + (f". {advice}" if advice else ""))


@dataclass(frozen=True)
class DownloadPolicy:
    timeout_seconds: float = 30.0
    retries: int = 4
    backoff_seconds: float = 1.0  # waits 1, 2, 4, ... seconds between attempts
    # False: a host that refuses connections or has no address fails at once. Retrying cannot help a machine
    # that is offline, and its user should hear so within seconds, not after the whole backoff.
    retry_unreachable: bool = True

    @property
    def attempts(self) -> int:
        return self.retries + 1


@dataclass(frozen=True)
class FileRecord:
    """What was downloaded: kept with a model version so a later reader can check the very same bytes."""

    name: str
    url: str
    size: int
    sha256: str

    def to_dict(self) -> dict:
        return asdict(self)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: Path, url: str) -> FileRecord:
    path = Path(path)
    return FileRecord(name=path.name, url=url, size=path.stat().st_size, sha256=file_sha256(path))


def unreachable_reason(error: requests.RequestException) -> str | None:
    """'connection refused' or 'host not found' when the server could not be reached at all, else None."""
    cause = error.args[0] if error.args else None
    cause = getattr(cause, "reason", cause)  # urllib3's MaxRetryError wraps the connection error
    if isinstance(cause, NameResolutionError):
        return "host not found (no network or no DNS?)"
    if isinstance(cause, NewConnectionError):
        return "connection refused or unreachable (offline?)"
    if isinstance(error, requests.ConnectTimeout):
        return "connection timed out (offline or behind a firewall?)"
    return None


def download_file(
    session: requests.Session,
    url: str,
    destination: Path,
    policy: DownloadPolicy,
    validate: Callable[[Path], str | None] | None = None,
    progress_bar: tqdm | None = None,
    resume: bool = False,
    sha256: str | None = None,
) -> None:
    """Downloads into `destination` (via a `.part` file, so a present file is always complete).

    Server errors, timeouts and dropped connections are retried with exponential backoff; other HTTP
    errors and content that `validate` rejects fail at once. With `resume`, a `.part` left by an earlier
    attempt or run is continued with a Range request (a server that answers 200 instead sends it whole) and
    is kept when the download fails. With `sha256`, content of another hash is deleted and refused.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    problem = ""
    for attempt in range(policy.attempts):
        if attempt:
            time.sleep(policy.backoff_seconds * 2 ** (attempt - 1))
        offset = partial.stat().st_size if resume and partial.is_file() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with session.get(url, stream=True, timeout=policy.timeout_seconds, headers=headers) as response:
                if response.status_code == 416 and offset:
                    # The part is not a prefix of what the server has now: start again from nothing.
                    partial.unlink()
                    problem = "HTTP 416 for the partial download"
                    continue
                if response.status_code in RETRYABLE_STATUS:
                    problem = f"HTTP {response.status_code}"
                    continue
                if response.status_code >= 400:
                    raise DownloadError(url, f"HTTP {response.status_code}")
                appending = offset > 0 and _continues_at(response, offset)
                _start_progress(progress_bar, response, offset if appending else 0)
                with partial.open("ab" if appending else "wb") as handle:
                    for chunk in response.iter_content(chunk_size=CHUNK_BYTES):
                        handle.write(chunk)
                        if progress_bar is not None:
                            progress_bar.update(len(chunk))
        except requests.RequestException as error:
            unreachable = unreachable_reason(error)
            if unreachable and not policy.retry_unreachable:
                raise DownloadError(url, unreachable) from None
            if isinstance(error, requests.Timeout):
                problem = "timed out"
            elif isinstance(error, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
                problem = "connection failed"
            else:
                raise DownloadError(url, f"{type(error).__name__}: {error}") from None
            continue
        rejected = validate(partial) if validate else None
        if not rejected and sha256 and (actual := file_sha256(partial)) != sha256.lower():
            rejected = f"sha256 is {actual}, expected {sha256}"
        if rejected:
            partial.unlink(missing_ok=True)
            raise DownloadError(url, rejected)
        partial.replace(destination)
        return
    if not resume:
        partial.unlink(missing_ok=True)
    raise DownloadError(url, f"{problem} after {policy.attempts} attempts")


def _continues_at(response: requests.Response, offset: int) -> bool:
    """True for a 206 whose Content-Range starts where the part ends; a 200 is the whole file again."""
    if response.status_code != 206:
        return False
    content_range = response.headers.get("Content-Range", "")  # "bytes START-END/TOTAL"
    start = content_range.removeprefix("bytes ").split("-", 1)[0]
    return start.isdigit() and int(start) == offset


def _start_progress(progress_bar: tqdm | None, response: requests.Response, already: int) -> None:
    if progress_bar is None:
        return
    length = response.headers.get("Content-Length", "")
    progress_bar.reset(total=already + int(length) if length.isdigit() else None)
    progress_bar.update(already)
