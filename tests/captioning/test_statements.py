"""captioning.statements: SQL compiled once per thread, prepared once per PostgreSQL connection."""

import datetime
import zoneinfo

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection

from captioning import selectors
from captioning.models import Caption
from captioning.statements import _faster_converter, _timestamp_loader

psycopg_any = pytest.importorskip("django.db.backends.postgresql.psycopg_any")

# As PostgreSQL writes timestamps (DateStyle ISO): fractions cut short, offsets in hours, minutes or seconds, a
# date BC and infinity, which datetime.fromisoformat refuses.
TIMESTAMPS = [
    b"2026-11-30 08:14:50.123456+00",
    b"2026-11-30 08:14:50.12+00",
    b"2026-11-30 08:14:50+00",
    b"0001-01-01 00:00:00+00",
    b"2026-03-29 02:30:00.5+05:30",
    b"1890-01-01 00:00:00+00:09:21",
    b"0044-03-15 12:00:00+00 BC",
    b"infinity",
]


@pytest.mark.parametrize("zone", [datetime.UTC, zoneinfo.ZoneInfo("Europe/Zurich"), None])
def test_timestamps_read_as_djangos_own_loader_reads_them(zone):
    class DjangoLoader(psycopg_any.BaseTzLoader):
        timezone = zone

    ours, djangos = _timestamp_loader(zone)(1184), DjangoLoader(1184)
    for text in TIMESTAMPS:
        try:
            expected = djangos.load(text)
        except Exception as refusal:  # whatever Django's refuses, ours refuses alike
            with pytest.raises(type(refusal)):
                ours.load(text)
            continue
        read = ours.load(text)
        assert (read, read.tzinfo, read.fold) == (expected, expected.tzinfo, expected.fold), text


@pytest.mark.django_db
def test_the_photo_page_is_prepared_once_per_postgresql_connection():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL prepares statements; SQLite has nothing to prepare")
    if connection.settings_dict["OPTIONS"].get("prepare_threshold") is None:
        pytest.skip("POSTGRES_PREPARED_STATEMENTS is off")

    def photo_pages_prepared() -> int:
        selectors.photo_rows_for_viewer(acting_user=AnonymousUser(), offset=0, limit=50)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%current_caption%"])
            return cursor.fetchone()[0]

    prepared = photo_pages_prepared()
    assert prepared >= 1
    assert photo_pages_prepared() == photo_pages_prepared() == prepared


# As a database may hand a JSON column's text over: what json.loads takes, what it refuses, what it takes only with
# whitespace or a byte order mark around, and what is not text.
JSON_TEXTS = [
    "{}",
    '{"strategy": "beam", "beam_size": 3, "temperature": 0.7, "nested": {"list": [1, 2.5e-07, null, true]}}',
    '"a string"',
    "null",
    "12345678901234567890123",
    '{"zèbre": "東京 \\u2028 \\ud83d\\ude00"}',
    "NaN",
    "[Infinity, -Infinity]",
    ' {"leading": "space"}',
    '{"trailing": "space"} ',
    "\ufeff{}",
    '{"a": 1} extra',
    "{not json",
    "",
    "[" * 5000 + "]" * 5000,
    None,
    3,
    {"already": "decoded"},
]


@pytest.mark.parametrize("text", JSON_TEXTS, ids=repr)
def test_json_columns_read_as_the_fields_own_converter_reads_them(text):
    field = Caption._meta.get_field("decoding")
    (djangos,) = field.get_db_converters(connection)
    ours = _faster_converter(djangos)
    assert ours is not djangos
    expression = Caption.objects.values("decoding").query.get_compiler("default").get_select()[0][0][0]
    try:
        expected = djangos(text, expression, connection)
    except Exception as refusal:  # whatever the field's converter refuses, ours refuses alike
        with pytest.raises(type(refusal)):
            ours(text, expression, connection)
        return
    read = ours(text, expression, connection)
    assert (read, type(read)) == (expected, type(expected))
