"""Downloading one file over HTTP: retried with backoff, written through a `.part` file so that a file that
exists is always complete. COCO's annotations and images come through here."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from tqdm import tqdm

from mlcore.errors import DataError

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


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

    @property
    def attempts(self) -> int:
        return self.retries + 1


def download_file(
    session: requests.Session,
    url: str,
    destination: Path,
    policy: DownloadPolicy,
    validate: Callable[[Path], str | None] | None = None,
    progress_bar: tqdm | None = None,
) -> None:
    """Downloads into `destination` (via a `.part` file, so a present file is always complete).

    Server errors, timeouts and dropped connections are retried with exponential backoff; other HTTP
    errors and content that `validate` rejects fail at once.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    problem = ""
    for attempt in range(policy.attempts):
        if attempt:
            time.sleep(policy.backoff_seconds * 2 ** (attempt - 1))
        try:
            with session.get(url, stream=True, timeout=policy.timeout_seconds) as response:
                if response.status_code in RETRYABLE_STATUS:
                    problem = f"HTTP {response.status_code}"
                    continue
                if response.status_code >= 400:
                    raise DownloadError(url, f"HTTP {response.status_code}")
                if progress_bar is not None and response.headers.get("Content-Length", "").isdigit():
                    progress_bar.reset(total=int(response.headers["Content-Length"]))
                with partial.open("wb") as handle:
                    for chunk in response.iter_content(chunk_size=1 << 16):
                        handle.write(chunk)
                        if progress_bar is not None:
                            progress_bar.update(len(chunk))
        except requests.Timeout:
            problem = "timed out"
            continue
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
            problem = "connection failed"
            continue
        rejected = validate(partial) if validate else None
        if rejected:
            partial.unlink(missing_ok=True)
            raise DownloadError(url, rejected)
        partial.replace(destination)
        return
    partial.unlink(missing_ok=True)
    raise DownloadError(url, f"{problem} after {policy.attempts} attempts")
