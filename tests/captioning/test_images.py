"""Decoding uploads within bounded memory (captioning/images.py): at most UPLOAD_MAX_CONCURRENT_DECODES
decodes at once per process, and only a copy reduced to the display size kept from a large image.
Memory itself is measured by benchmarks/upload_memory.py against a real server."""

import threading
from contextlib import ExitStack

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
        except Exception as error:  # noqa: BLE001 (handed to the test, which asserts on it)
            self.error = error


def test_a_decode_waits_while_the_bound_is_reached_and_goes_on_when_a_place_frees(settings):
    settings.UPLOAD_MAX_CONCURRENT_DECODES = 2
    with ExitStack() as held:
        held.enter_context(decode_slot())
        second = held.enter_context(ExitStack())
        second.enter_context(decode_slot())  # two decodes "running": the bound is reached
        waiting = InspectInThread(encode(picture(seed=1), "PNG"))
        waiting.start()

        waiting.join(timeout=1.0)
        assert waiting.is_alive(), "a third decode ran while two were in progress"

        second.close()  # one of the two finishes
        waiting.join(timeout=30)
        assert not waiting.is_alive()
    assert waiting.error is None
    assert (waiting.result.width, waiting.result.height) == (64, 48)


def test_a_decode_runs_at_once_while_fewer_than_the_bound_are_in_progress(settings):
    settings.UPLOAD_MAX_CONCURRENT_DECODES = 2
    with decode_slot():
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
