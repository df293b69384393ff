"""Helpers for the web platform's tests: image files made on the spot, waiting on another process, and a
fake translation web service (the real ones are outside this machine)."""

import io
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from PIL import Image, ImageDraw

ORIENTATION = 0x0112
GPS_IFD = 0x8825
EXIF_IFD = 0x8769


def picture(width: int = 64, height: int = 48, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """A small picture that differs by seed (so its bytes, and sha256, differ too)."""
    image = Image.new("RGB", (width, height), ((seed * 67) % 256, (seed * 131) % 256, 90))
    draw = ImageDraw.Draw(image)
    draw.rectangle((width // 4, height // 4, width // 2, height // 2), fill=(255, (seed * 29) % 256, 0))
    return image.convert(mode) if mode != "RGB" else image


def encode(image: Image.Image, image_format: str = "JPEG", **save_options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **save_options)
    return buffer.getvalue()


def jpeg_with_exif(
    width: int = 60,
    height: int = 30,
    *,
    orientation: int | None = None,
    gps: bool = False,
    taken: str | None = None,
    seed: int = 0,
) -> bytes:
    exif = Image.Exif()
    if orientation:
        exif[ORIENTATION] = orientation
    if gps:
        exif.get_ifd(GPS_IFD).update({1: "N", 2: (52.0, 22.0, 10.5), 3: "E", 4: (4.0, 53.0, 2.0)})
    if taken:
        exif.get_ifd(EXIF_IFD)[0x9003] = taken
    return encode(picture(width, height, seed), "JPEG", exif=exif.tobytes(), quality=90)


def wait_for(condition: Callable[[], bool], timeout: float, what: str, worker=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if worker is not None and worker.process.poll() is not None:
            pytest.fail(
                f"the worker exited ({worker.process.returncode}) while waiting for {what}:\n{worker.log()[-4000:]}"
            )
        time.sleep(0.25)
    log = worker.log()[-4000:] if worker else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{log}")


@dataclass
class FakeTranslationService:
    """Answers like translate.google.com/m (HTML with a div.t0, GET) and DeepL's /v2/translate (JSON, POST)."""

    base_url: str = ""
    requests: list[dict] = field(default_factory=list)
    status: int = 200
    hold: threading.Event | None = None  # when given, each request waits for it (at most 30 s) before answering
    answered: int = 0  # requests answered (or whose answer found the client gone)

    def translated(self, text: str, target: str) -> str:
        return f"[{target}] {text}"


def serve_fake_translations() -> tuple[FakeTranslationService, ThreadingHTTPServer]:
    service = FakeTranslationService()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            params = {"text": body.get("text", [""])[0], "target_lang": body.get("target_lang", "")}
            self.answer(urlparse(self.path), {**params, "authorization": self.headers.get("Authorization", "")})

        def do_GET(self) -> None:
            url = urlparse(self.path)
            self.answer(url, {key: values[0] for key, values in parse_qs(url.query).items()})

        def answer(self, url, params: dict) -> None:
            service.requests.append({"path": url.path, **params})
            if service.hold is not None:
                service.hold.wait(timeout=30)
            if service.status != 200:
                body, content_type = b"unavailable", "text/plain"
            elif url.path.endswith("/translate"):  # DeepL
                text = service.translated(params["text"], params["target_lang"].lower())
                body, content_type = json.dumps({"translations": [{"text": text}]}).encode(), "application/json"
            else:  # Google's mobile page
                text = service.translated(params["q"], params["tl"])
                body = f'<html><body><div class="t0">{text}</div></body></html>'.encode()
                content_type = "text/html; charset=utf-8"
            try:
                self.send_response(service.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the timeout test)
            service.answered += 1

        def log_message(self, format: str, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    service.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return service, server
