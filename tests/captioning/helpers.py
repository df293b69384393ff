"""Helpers for the web platform's tests: image files made on the spot, and waiting on another process."""

import io
import time
from collections.abc import Callable

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
