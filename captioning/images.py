"""Checking an uploaded file by decoding it, and making the derivatives other people see.

An upload is accepted only when Pillow decodes it completely as one of the accepted formats; its name and
declared content type are never trusted. Derivatives (display copy, thumbnail) have the EXIF orientation
applied and carry no metadata, so GPS coordinates in an original never reach anyone but its owner.

Memory: a 49 MP upload decodes to about 200 MB in Pillow. A process decodes at most
UPLOAD_MAX_CONCURRENT_DECODES images at once (others wait their turn), a JPEG is decoded straight at a
reduced scale (libjpeg still reads every byte of it, so damage is still found), and the full-size pixels are
dropped as soon as they are reduced to the display size: only that reduced copy is kept for the derivatives.
"""

import ctypes
import ctypes.util
import hashlib
import io
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from PIL import Image, ImageOps

ACCEPTED_FORMATS = ["JPEG", "PNG", "WEBP", "GIF"]
FORMAT_NAMES = "JPEG, PNG, WebP or GIF"

try:  # HEIC/HEIF (phones) only where the optional pillow-heif package is installed.
    from pillow_heif import register_heif_opener

    register_heif_opener()
    ACCEPTED_FORMATS.append("HEIF")
    FORMAT_NAMES = "JPEG, PNG, WebP, GIF or HEIC"
except ImportError:
    pass

# Markup or code anywhere in the file: an image that is also a web page or a script (a polyglot) is refused
# even when it decodes, because a browser that sniffs it may run it. Real photos do not contain these.
MARKUP_PATTERN = re.compile(
    rb"<(?:script|html|svg|body|iframe|object|embed|meta)[\s/>]|<!doctype\s+html|<\?php|javascript:",
    re.IGNORECASE,
)
TEXT_SNIFFS = [
    (re.compile(rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<svg", re.IGNORECASE | re.DOTALL), "SVG"),
    (re.compile(rb"^\s*<(?:!doctype\s+html|html|head|body|script)", re.IGNORECASE), "HTML"),
    (re.compile(rb"^\s*<\?xml", re.IGNORECASE), "XML"),
    (re.compile(rb"^#!"), "a script"),
    (re.compile(rb"^%PDF-"), "PDF"),
    (re.compile(rb"^PK\x03\x04"), "a ZIP archive"),
]
EXIF_IFD = 0x8769
GPS_IFD = 0x8825
DATETIME_ORIGINAL = 0x9003
DATETIME = 0x0132
FIRST_PHOTOGRAPH = datetime(1826, 1, 1, tzinfo=UTC)  # Niépce
ORIENTATION = 0x0112
SIDEWAYS_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that turn the picture a quarter
# From this size on (16 MB decoded) freed memory is handed back to the system after a decode; below, what glibc
# keeps for reuse is small and trimming would cost more than it returns.
LARGE_DECODE_PIXELS = 4_000_000


class UploadRefused(Exception):
    """An upload that is not accepted; the message is shown to the person who sent it."""


@dataclass(frozen=True)
class InspectedImage:
    """An accepted upload: what Photo stores about it (the full size), and the decoded picture, upright and
    reduced to at most DISPLAY_IMAGE_SIZE, the largest derivative made from it."""

    content: bytes
    sha256: str
    format: str
    width: int
    height: int
    taken_at: datetime | None
    has_location: bool
    upright: Image.Image

    @property
    def extension(self) -> str:
        return {"JPEG": "jpg", "HEIF": "heic"}.get(self.format, self.format.lower())


def inspect_upload(content: bytes) -> InspectedImage:
    """Decodes `content` fully or raises UploadRefused saying why, in words the uploader understands."""
    if not content:
        raise UploadRefused("The file is empty (0 bytes).")
    if len(content) > settings.UPLOAD_MAX_BYTES:
        raise UploadRefused(
            f"The file is {_megabytes(len(content))}; the limit is {_megabytes(settings.UPLOAD_MAX_BYTES)}."
        )
    _refuse_text_documents(content)
    image = _open(content)
    width, height = image.size
    try:
        if width * height > settings.UPLOAD_MAX_PIXELS:
            raise UploadRefused(
                f"The image is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels); "
                f"the limit is {settings.UPLOAD_MAX_PIXELS / 1e6:.0f} megapixels."
            )
        longest_side = max(settings.DISPLAY_IMAGE_SIZE, settings.THUMBNAIL_SIZE)
        with decode_slot():
            # A JPEG decodes at the smallest of 1/1, 1/2, 1/4, 1/8 scale still at least `longest_side`; for the
            # other formats draft() does nothing.
            image.draft(None, (longest_side, longest_side))
            _decode(image)
            exif = image.getexif()  # after the decode: a PNG's eXIf chunk may follow its pixels
            image.thumbnail((longest_side, longest_side), Image.Resampling.LANCZOS)  # frees the full size
            upright = ImageOps.exif_transpose(image)
    finally:
        image.close()
        if width * height >= LARGE_DECODE_PIXELS:  # also after a refused decode, which freed as much
            _return_freed_memory()
    if exif.get(ORIENTATION) in SIDEWAYS_ORIENTATIONS:
        width, height = height, width
    return InspectedImage(
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
        format=image.format,
        width=width,
        height=height,
        taken_at=_taken_at(exif),
        has_location=_has_location(exif),
        upright=upright,
    )


_decode_slots: dict[int, threading.BoundedSemaphore] = {}
_decode_slots_lock = threading.Lock()


@contextmanager
def decode_slot() -> Iterator[None]:
    """Waits until fewer than UPLOAD_MAX_CONCURRENT_DECODES images are being decoded in this process, and
    holds one of those places until the block ends. Waiting, not refusing: an upload is only slower."""
    limit = settings.UPLOAD_MAX_CONCURRENT_DECODES
    with _decode_slots_lock:
        slots = _decode_slots.setdefault(limit, threading.BoundedSemaphore(limit))
    with slots:
        yield


def _return_freed_memory() -> None:
    """Hands memory freed after a large decode back to the system. glibc keeps freed blocks of this size in
    its heaps (one per thread) for reuse, so without this a web process stays hundreds of MB larger after a
    few big uploads; malloc_trim releases them (measured in benchmarks/upload_memory.py)."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None on other C libraries (musl, macOS), where there is nothing to do."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_malloc_trim = _find_malloc_trim()


def _refuse_text_documents(content: bytes) -> None:
    head = content[:4096].lstrip(b"\xef\xbb\xbf")
    for pattern, kind in TEXT_SNIFFS:
        if pattern.match(head):
            raise UploadRefused(f"The file is {kind}, not a photo; upload {FORMAT_NAMES}.")
    if MARKUP_PATTERN.search(content):
        raise UploadRefused(
            "The file contains web page or script code beside the picture data and was refused; "
            "save the photo again from an image editor and upload that copy."
        )


def _open(content: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Our own pixel limit applies below; Pillow's warning would only duplicate it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(content), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as error:
        raise UploadRefused(f"The image has too many pixels to be decoded safely ({error}).") from None
    except (OSError, ValueError, SyntaxError):
        raise UploadRefused(f"The file is not a {FORMAT_NAMES} image (or it is damaged).") from None


def _decode(image: Image.Image) -> None:
    if getattr(image, "is_animated", False):
        image.seek(0)  # the first frame of an animation is the photo
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
    except Image.DecompressionBombError as error:
        raise UploadRefused(f"The image has too many pixels to be decoded safely ({error}).") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        detail = "it is truncated" if "truncated" in str(error).lower() else "it is damaged"
        raise UploadRefused(f"The {image.format} file cannot be decoded: {detail}. Upload the complete file.") from None


def _taken_at(exif: Image.Exif) -> datetime | None:
    raw = exif.get_ifd(EXIF_IFD).get(DATETIME_ORIGINAL) or exif.get(DATETIME)
    if not isinstance(raw, str):
        return None
    try:
        # EXIF times carry no zone; they are stored as read, in UTC, which keeps the wall-clock value.
        taken = datetime.strptime(raw.strip("\x00 "), "%Y:%m:%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    # A camera with a dead clock (or a hostile file) says 1700 or 2999: no date, rather than one that pins the
    # photo to an end of every timeline. A day of slack for the camera's unknown time zone.
    if not FIRST_PHOTOGRAPH <= taken <= datetime.now(UTC) + timedelta(days=1):
        return None
    return taken


def _has_location(exif: Image.Exif) -> bool:
    return bool(exif.get_ifd(GPS_IFD)) or GPS_IFD in exif


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def render_derivative(upright: Image.Image, longest_side: int, quality: int) -> bytes:
    """A WebP copy no larger than `longest_side`, with no metadata at all (so no GPS, no camera serial)."""
    copy = upright.copy()
    copy.thumbnail((longest_side, longest_side), Image.Resampling.LANCZOS)
    if copy.mode not in ("RGB", "RGBA"):
        copy = copy.convert("RGBA" if "A" in copy.getbands() or "transparency" in copy.info else "RGB")
    buffer = io.BytesIO()
    copy.save(buffer, format="WEBP", quality=quality, method=4)
    return buffer.getvalue()
