"""A COCO-format fixture (annotations zip + small JPEGs) served by a real HTTP server on 127.0.0.1, so the
real download code runs. Tests choose per URL how many server errors come before the file."""

import io
import json
import socket
import threading
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from mlcore.coco import ANNOTATIONS_ZIP_NAME, coco2017_file_name
from tests.file_server import serve_on_loopback

IMAGE_SIZE = 40
VAL_CAPTIONS: dict[int, list[str]] = {
    101: ["A red square on grey.", "a red block ", "red shape in the middle\n", "a square", "something red"],
    102: ["A green circle.", "a green ball", "green round thing"],
    103: ["A blue stripe.", "blue lines", "a striped picture"],
    104: ["A yellow cross.", "a yellow X", "crossed yellow lines"],
    105: ["Missing on the server.", "a 404"],
    106: ["A corrupt file.", "truncated jpeg"],
}
TRAIN_CAPTIONS: dict[int, list[str]] = {
    201: ["A purple dot.", "purple"],
    202: ["An orange corner.", "orange"],
}
MISSING_ID = 105
CORRUPT_ID = 106
GOOD_VAL_IDS = (101, 102, 103, 104)


def draw_image(seed: int) -> Image.Image:
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256))
    draw = ImageDraw.Draw(image)
    offset = seed % 20
    draw.rectangle((offset, offset, offset + 15, offset + 10), fill=((seed * 7) % 256, 255 - seed % 256, 128))
    return image


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def captions_json(captions: dict[int, list[str]], folder: str) -> dict:
    images = [
        {
            "id": image_id,
            "file_name": coco2017_file_name(image_id),
            "coco_url": f"http://images.cocodataset.org/{folder}/{coco2017_file_name(image_id)}",
            "width": IMAGE_SIZE,
            "height": IMAGE_SIZE,
        }
        for image_id in captions
    ]
    # Annotations interleave images, as in the real files.
    pairs = [
        (image_id, text)
        for index in range(5)
        for image_id, texts in captions.items()
        for text in texts[index : index + 1]
    ]
    annotations = [
        {"id": number, "image_id": image_id, "caption": text} for number, (image_id, text) in enumerate(pairs)
    ]
    return {"info": {}, "licenses": [], "images": images, "annotations": annotations}


def build_coco_site(root: Path) -> Path:
    """Writes the files the server serves: /annotations/annotations_trainval2017.zip and /{split}2017/*.jpg."""
    (root / "annotations").mkdir(parents=True)
    with zipfile.ZipFile(root / "annotations" / ANNOTATIONS_ZIP_NAME, "w") as bundle:
        bundle.writestr("annotations/captions_val2017.json", json.dumps(captions_json(VAL_CAPTIONS, "val2017")))
        bundle.writestr("annotations/captions_train2017.json", json.dumps(captions_json(TRAIN_CAPTIONS, "train2017")))
        bundle.writestr("annotations/instances_val2017.json", "{}")
    for folder, captions in (("val2017", VAL_CAPTIONS), ("train2017", TRAIN_CAPTIONS)):
        (root / folder).mkdir()
        for image_id in captions:
            if image_id == MISSING_ID:
                continue
            data = jpeg_bytes(draw_image(image_id))
            if image_id == CORRUPT_ID:
                data = data[: len(data) // 2]
            (root / folder / coco2017_file_name(image_id)).write_bytes(data)
    return root


@dataclass
class CocoServer:
    root: Path
    base_url: str = ""
    requests: Counter = field(default_factory=Counter)  # path -> GETs received
    planned_errors: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses sent before the file
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def annotations_url(self) -> str:
        return f"{self.base_url}/annotations/{ANNOTATIONS_ZIP_NAME}"

    def image_path(self, image_id: int, folder: str = "val2017") -> str:
        return f"/{folder}/{coco2017_file_name(image_id)}"

    def fail_next(self, path: str, *statuses: int) -> None:
        with self.lock:
            self.planned_errors[path] = list(statuses)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.planned_errors.clear()

    def respond(self, path: str) -> tuple[int, bytes]:
        with self.lock:
            self.requests[path] += 1
            planned = self.planned_errors.get(path)
            if planned:
                return planned.pop(0), b"planned error"
        file = self.root / path.lstrip("/")
        if ".." in path or not file.is_file():
            return 404, b"not found"
        return 200, file.read_bytes()


@contextmanager
def serve_coco(root: Path) -> Iterator[CocoServer]:
    server_state = CocoServer(build_coco_site(root))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = server_state.respond(self.path)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:
            pass

    with serve_on_loopback(Handler) as base_url:
        server_state.base_url = base_url
        yield server_state


@pytest.fixture(scope="session")
def coco_site(tmp_path_factory) -> Iterator[CocoServer]:
    with serve_coco(tmp_path_factory.mktemp("coco-site")) as server:
        yield server


@pytest.fixture
def coco_server(coco_site) -> CocoServer:
    """The session's server with request counts and planned errors cleared for this test."""
    coco_site.reset()
    return coco_site


def closed_port_url() -> str:
    """A loopback port nothing listens on: connections are refused at once, like on a machine offline."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def unreachable_url() -> str:
    return closed_port_url()
