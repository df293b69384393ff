"""Decoding uploads within bounded memory (captioning/images.py): at most UPLOAD_MAX_CONCURRENT_DECODES
decodes at once per process, and only a copy reduced to the display size kept from a large image.
Memory itself is measured by benchmarks/upload_memory.py against a real server."""

import threading

import pytest

from captioning.images import UploadRefused, decode_slot, inspect_upload
from tests.captioning.helpers import encode, jpeg_with_exif, picture


class InspectInThread(threading.Thread):
    """inspect_upload in another thread, keeping its result or its error."""

    def __init__(self, content: bytes) -> None:
        super().__init__(daemon=True)
        self.content, self.result, self.error = content, None, None

    def run(self) -> None:
        try:
            self.result = inspect_upload(self.content)
        except Exception as error:  # handed to the test, which asserts on it
            self.error = error


class SlotHolder(threading.Thread):
    """Holds one decode place (as a decode in progress would) until `release` is set."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.holding, self.release = threading.Event(), threading.Event()

    def run(self) -> None:
        with decode_slot():
            self.holding.set()
            self.release.wait(timeout=60)


@pytest.fixture
def hold_slots():
    """hold_slots(n) takes n decode places; all are given back when the test ends, whatever it asserted."""
    holders: list[SlotHolder] = []

    def hold(count: int) -> list[SlotHolder]:
        for _ in range(count):
            holder = SlotHolder()
            holders.append(holder)
            holder.start()
            assert holder.holding.wait(timeout=10), "a place below the bound was not given"
        return holders[-count:]

    yield hold
    for holder in holders:
        holder.release.set()
    for holder in holders:
        holder.join(timeout=10)


def test_a_decode_waits_while_the_bound_is_reached_and_goes_on_when_a_place_frees(settings, hold_slots):
    settings.UPLOAD_MAX_CONCURRENT_DECODES = 2
    _first, second = hold_slots(2)  # two decodes in progress: the bound is reached
    waiting = InspectInThread(encode(picture(seed=1), "PNG"))
    waiting.start()

    waiting.join(timeout=1.0)
    assert waiting.is_alive(), "a third decode ran while two were in progress"

    second.release.set()  # one of the two finishes
    waiting.join(timeout=30)
    assert not waiting.is_alive()
    assert waiting.error is None
    assert (waiting.result.width, waiting.result.height) == (64, 48)


def test_a_decode_runs_at_once_while_fewer_than_the_bound_are_in_progress(settings, hold_slots):
    settings.UPLOAD_MAX_CONCURRENT_DECODES = 2
    hold_slots(1)
    running = InspectInThread(encode(picture(seed=2), "PNG"))
    running.start()
    running.join(timeout=30)
    assert not running.is_alive(), "a second decode waited although the bound is two"
    assert running.error is None


@pytest.mark.parametrize("image_format", ["JPEG", "PNG"])
def test_a_large_image_keeps_its_full_size_but_only_a_display_sized_copy(settings, image_format):
    settings.DISPLAY_IMAGE_SIZE, settings.THUMBNAIL_SIZE = 200, 50

    inspected = inspect_upload(encode(picture(1600, 1000, seed=3), image_format))

    assert (inspected.width, inspected.height) == (1600, 1000)
    assert inspected.upright.size == (200, 125)


def test_a_large_sideways_jpeg_is_reduced_upright_with_its_full_size_turned(settings):
    settings.DISPLAY_IMAGE_SIZE, settings.THUMBNAIL_SIZE = 200, 50

    inspected = inspect_upload(jpeg_with_exif(1600, 800, orientation=6))

    assert (inspected.width, inspected.height) == (800, 1600)
    assert inspected.upright.size == (100, 200)


def test_a_truncated_large_jpeg_is_refused_although_it_is_decoded_at_a_reduced_scale(settings):
    settings.DISPLAY_IMAGE_SIZE, settings.THUMBNAIL_SIZE = 200, 50
    complete = encode(picture(1600, 1600, seed=4), "JPEG", quality=95)

    with pytest.raises(UploadRefused, match="truncated"):
        inspect_upload(complete[: len(complete) * 2 // 3])
