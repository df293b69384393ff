"""A real HTTP server on 127.0.0.1 serving files from a folder, for download tests: it honours Range
requests (or, told to, ignores them), can drop a connection halfway once per path, and imitates Google
Drive's confirmation page for large files."""

import html
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

DRIVE_PATH = "/drive/download"  # stands for https://drive.usercontent.google.com/download


@dataclass
class FileServer:
    root: Path
    base_url: str = ""
    honour_range: bool = True
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    drop_after: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before the next drop
    drive_files: dict[str, str] = field(default_factory=dict)  # Google Drive id -> file under root
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    @property
    def drive_url(self) -> str:
        return self.base_url + DRIVE_PATH

    def paths_requested(self) -> list[str]:
        return [path for path, _ in self.requests]

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.drop_after.clear()
            self.drive_files.clear()
            self.honour_range = True


def _drive_confirmation_page(file_id: str, base_url: str) -> bytes:
    """The shape of Drive's 'cannot scan this file for viruses' page: a form whose fields confirm the download."""
    return (
        "<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>"
        f'<form id="download-form" action="{html.escape(base_url + DRIVE_PATH)}" method="get">'
        '<input type="submit" value="Download anyway"/>'
        f'<input type="hidden" name="id" value="{html.escape(file_id)}">'
        '<input type="hidden" name="export" value="download">'
        '<input type="hidden" name="confirm" value="t">'
        '<input type="hidden" name="uuid" value="6a1f-test-uuid"></form></body></html>'
    ).encode()


@contextmanager
def serve_files(root: Path) -> Iterator[FileServer]:
    state = FileServer(root)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            with state.lock:
                state.requests.append((urlsplit(self.path).path, self.headers.get("Range")))
            parts = urlsplit(self.path)
            path = parts.path
            if path == DRIVE_PATH:
                query = parse_qs(parts.query)
                file_id = query.get("id", [""])[0]
                if file_id not in state.drive_files:
                    return self._send(404, b"no such file")
                if "uuid" not in query:
                    return self._send(200, _drive_confirmation_page(file_id, state.base_url), "text/html")
                path = "/" + state.drive_files[file_id]
            file = state.root / path.lstrip("/")
            if ".." in path or not file.is_file():
                return self._send(404, b"not found")
            body = file.read_bytes()
            start = self._range_start(len(body))
            if start is None:
                return self._send(416, b"", extra={"Content-Range": f"bytes */{len(body)}"})
            with state.lock:
                drop = state.drop_after.pop(parts.path, None)
            if start:
                extra = {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}
                return self._send(206, body[start:], extra=extra, drop_after=drop)
            return self._send(200, body, drop_after=drop)

        def _range_start(self, size: int) -> int | None:
            header = self.headers.get("Range")
            if not header or not state.honour_range:
                return 0
            start = int(header.removeprefix("bytes=").split("-")[0])
            return start if start < size else None

        def _send(self, status, body, content_type="application/octet-stream", extra=None, drop_after=None):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if drop_after is not None:
                self.wfile.write(body[:drop_after])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:
            pass

    with serve_on_loopback(Handler) as base_url:
        state.base_url = base_url
        yield state


@contextmanager
def serve_on_loopback(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serves `handler` on a free port of 127.0.0.1 from a background thread; yields the base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
