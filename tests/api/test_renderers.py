"""The API writes JSON with orjson (captioning/api/renderers.py) for speed: its answers must be DRF's JSONRenderer's
very bytes, or DRF's very error, for every value."""

import collections
import dataclasses
import datetime
import decimal
import enum
import math
import uuid

import pytest
from django.utils.functional import lazy
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework import renderers as drf_renderers
from rest_framework.utils.serializer_helpers import ReturnDict, ReturnList

from captioning.api import renderers
from captioning.api.renderers import JSONRenderer
from captioning.models import Caption
from tests.api.conftest import caption, upload


class _Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class _Point:
    x: int


class _ItemsBackwards(dict):
    def items(self):
        return reversed(list(super().items()))


def _reordered() -> collections.OrderedDict:
    ordered = collections.OrderedDict(first=1, second=2, third=3)
    ordered.move_to_end("first")
    return ordered


VALUES = [
    {"text": "plain", "none": None, "yes": True, "no": False, "number": 42, "negative": -7, "list": [1, [2, []], {}]},
    "non-ASCII: zèbre, 東京, emoji 😀, combining é",
    "".join(chr(code) for code in range(0x80)),  # every control character, quote and backslash
    "separators \u2028 and \u2029 in text",
    "text that looks like a float: 0.00005 5e-6 1e-7]",
    [0.0, -0.0, 1.0, 0.1, 1 / 3, -2.791744580451541, 1e15, 1e16, 1.5e16, 1e20, 1.7976931348623157e308, 2.5e-310],
    [1e-4, 9.99e-5, 5e-5, 1.5212603486793025e-05, 1e-6, 5e-6, 1e-7, 9.999e-9, 1e-9, 9e-10, 1e-10],
    [2**63 - 1, -(2**63), 2**64 - 1, 2**64, -(2**63) - 1, 2**200],
    [math.nan],
    {"score": math.inf},
    [-math.inf],
    {"surrogate": "\ud800"},
    {1: "an int key"},
    {None: "a None key", True: "a bool key"},
    (1, 2),
    {"tuple": ("a", "b")},
    {"uuid": uuid.UUID("5ea1ed00-0000-4000-8000-000000000000")},
    {"at": datetime.datetime(2026, 11, 30, 8, 8, 5, 784478, tzinfo=datetime.UTC), "on": datetime.date(2026, 1, 2)},
    {"time": datetime.time(1, 2, 3, 4000), "took": datetime.timedelta(seconds=1.5)},
    {"decimal": decimal.Decimal("1.50")},
    {"lazy": lazy(lambda: "translated", str)()},
    {"colour": _Colour.RED},
    {"choice": Caption.Source.MODEL},
    {"point": _Point(1)},
    {"set": {3}},
    {"bytes": b"raw"},
    _reordered(),
    _ItemsBackwards(a=1, b=2),
    ReturnDict(
        {"id": 1, "nested": ReturnList([ReturnDict({"b": 2, "a": 1}, serializer=None)], serializer=None)},
        serializer=None,
    ),
]


def _written(renderer, data, media_type: str | None = "application/json", context: dict | None = None):
    """The bytes `renderer` writes, or the type of error it raises."""
    try:
        return renderer.render(data, media_type, context)
    except Exception as error:  # the very error is what must match
        return type(error)


def _deep(levels: int) -> list:
    value: list = []
    for _level in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize("data", [*VALUES, _deep(300), None], ids=repr)
def test_the_api_writes_what_drfs_json_renderer_writes(data):
    assert _written(JSONRenderer(), data) == _written(drf_renderers.JSONRenderer(), data)


@pytest.mark.parametrize(
    ("media_type", "context"),
    [
        ("application/json; indent=4", {}),
        ("application/json; indent=0", {}),
        ("application/json", {"indent": 2}),
        (None, None),
    ],
)
def test_indented_and_unindented_answers_are_drfs(media_type, context):
    data = {"title": "zèbre", "score": 0.5, "list": [1, None]}
    expected = _written(drf_renderers.JSONRenderer(), data, media_type, context)
    assert _written(JSONRenderer(), data, media_type, context) == expected


@pytest.mark.parametrize(
    "drf_settings",
    [{"ensure_ascii": True}, {"compact": False}, {"strict": False}],
    ids=["UNICODE_JSON off", "COMPACT_JSON off", "STRICT_JSON off"],
)
def test_drfs_json_settings_are_honoured(drf_settings):
    # DRF reads UNICODE_JSON, COMPACT_JSON and STRICT_JSON into these attributes when it is imported.
    ours = type("Ours", (JSONRenderer,), drf_settings)()
    theirs = type("Theirs", (drf_renderers.JSONRenderer,), drf_settings)()
    for data in VALUES:
        assert _written(ours, data) == _written(theirs, data)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.floats(min_value=-1e-3, max_value=1e-3)
    | st.text(st.characters(codec="utf-8")),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_any_json_value_is_written_as_drf_writes_it(data):
    assert _written(JSONRenderer(), data) == _written(drf_renderers.JSONRenderer(), data)


def test_plain_answers_are_written_by_orjson(monkeypatch):
    """The fast path is the one taken for what the API's lists answer, DRF's serializer data included."""

    def refuse(*args, **kwargs):
        raise AssertionError("DRF's renderer was asked")

    monkeypatch.setattr(drf_renderers.JSONRenderer, "render", refuse)
    page = {"count": 2, "next": None, "results": [{"score": -2.79, "text": "zèbre \u2028"}, {"score": 1e-10}]}
    assert JSONRenderer().render(page, "application/json", {}).startswith(b'{"count":2,')
    JSONRenderer().render(ReturnDict({"a": ReturnList([1], serializer=None)}, serializer=None), "application/json")


def test_small_float_notations_are_recognised():
    for value in (5e-5, 1.5212603486793025e-05, 5e-6, 1e-7, -9.999e-9):
        written = renderers.orjson.dumps([value])
        assert renderers._SMALL_FLOAT_DECIMALS in written or renderers._ONE_DIGIT_NEGATIVE_EXPONENT.search(written)
    uuid_text = renderers.orjson.dumps(["36993e7c-30ab-4bfe-9a92-421200160c8c", 1e-4, 1e-10])
    assert renderers._SMALL_FLOAT_DECIMALS not in uuid_text
    assert not renderers._ONE_DIGIT_NEGATIVE_EXPONENT.search(uuid_text)


def test_the_photo_list_answers_drfs_bytes(people, private_gallery, api_client_for):
    photo = upload(people["owner"], private_gallery, seed=1, name="zèbre.jpg")
    caption(photo, "un zèbre \u2028 «sur» la plage", score=-1.25, clip_score=5e-5, familiarity=1e-7)
    photo = upload(people["owner"], private_gallery, seed=2, name="b.jpg")
    caption(photo, "a dog", score=-0.5, clip_score=0.25, decoding={"strategy": "beam", "temperature": 0.7})
    for user in (people["owner"], people["viewer"], None):
        answer = api_client_for(user).get("/api/photos/")
        assert answer.status_code == 200
        assert answer.content == drf_renderers.JSONRenderer().render(answer.data)
        assert answer["Content-Type"] == "application/json"
