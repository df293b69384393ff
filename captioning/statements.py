"""Querysets compiled to SQL once per server thread, then run with each request's values.

Building a queryset (its Q trees, subqueries and joins) and compiling it cost the API's photo list more Python time
than reading and presenting its 50 rows. A `Statement` is a queryset built once for a stand-in user, whose id no
user has, and compiled once; each run puts the acting user's id where the stand-in's was, and converts the rows as
the queryset would have (with the ORM's own converters, so a value reads the same on SQLite and PostgreSQL).

The same goes for other ids a statement is built with (`stand_in_ids`), a uuid (`STAND_IN_UUID`) and a text
looked up by (`STAND_IN_TEXT`: a gallery's public id from its address). Only querysets whose SQL is the same for
every user of a kind fit (signed in or anonymous: the callers key them so); any other value that changes from one
request to the next belongs in the key, or in the LIMIT and OFFSET `Statement.rows` adds. `Statement.instances`
gives model instances, for pages whose templates and helpers read them.

On PostgreSQL the values are bound by the server and psycopg prepares each statement on a connection's first run of
it (unless settings.POSTGRES_PREPARED_STATEMENTS is off): PostgreSQL then plans it once per connection, not once per
request. Planning the API's photo page (its caption, model and authors joined) cost PostgreSQL more than running it:
2.3 of 4.1 ms of CPU.
"""

import functools
import json
import threading
import uuid
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models import JSONField, Model, QuerySet
from django.db.models.query import get_related_populators
from django.db.models.sql.compiler import SQLCompiler

# No row has these ids: ids are positive. Within a 32-bit integer, so the ORM compiles them like any id.
STAND_IN_USER_ID = -2_000_000_011
_FIRST_STAND_IN_ID = -1_000_000_000
STAND_IN_UUID = uuid.UUID("5ea1ed00-0000-4000-8000-000000000000")  # a version-4 uuid no row has
# No public id, username or choice's value is this text (no public id has a space).
STAND_IN_TEXT = "stand-in text 4f1b"


@dataclass(frozen=True)
class Statement:
    sql: str
    params: tuple
    compiler: SQLCompiler
    names: tuple[str, ...]  # of each column, as the queryset's values() named them
    converters: dict  # the ORM's, by column (SQLCompiler.get_converters), looked up once

    @classmethod
    def compile(cls, queryset: QuerySet) -> "Statement":
        """`queryset` (of values(), unsliced), built for `stand_in_user()`."""
        if queryset.query.is_sliced:
            raise ValueError("Compile the queryset unsliced; Statement.rows adds LIMIT and OFFSET.")
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        query = queryset.query
        names = (*query.extra_select, *query.values_select, *query.annotation_select)
        converters = compiler.get_converters([column[0] for column in compiler.select[: compiler.col_count]])
        converters = {
            position: ([_faster_converter(converter) for converter in column_converters], expression)
            for position, (column_converters, expression) in converters.items()
        }
        return cls(sql, tuple(params), compiler, names, converters)

    def rows(self, values: Mapping[object, object], *, limit: int | None = None, offset: int = 0) -> list[dict]:
        """The rows with `values` in place of the stand-ins they are keyed by (`stand_in_values`; a string the
        caller chose no row has, for a text column), `limit` of them from `offset`."""
        return [dict(zip(self.names, row, strict=True)) for row in self._converted_rows(values, limit, offset)]

    def instances(self, values: Mapping[object, object]) -> list[Model]:
        """The rows as model instances (with the related ones select_related reads, and any annotations), as the
        queryset (not of values()) would have given them, with `values` in place of the stand-ins."""
        compiler = self.compiler
        select, klass_info, annotation_columns = compiler.select, compiler.klass_info, compiler.annotation_col_map
        model_columns = klass_info["select_fields"]
        start, end = model_columns[0], model_columns[-1] + 1
        attnames = [column[0].target.attname for column in select[start:end]]
        related_populators = get_related_populators(klass_info, select, compiler.using)
        instances = []
        for row in self._converted_rows(values):
            instance = klass_info["model"].from_db(compiler.using, attnames, row[start:end])
            for populator in related_populators:
                populator.populate(row, instance)
            for name, position in annotation_columns.items():
                setattr(instance, name, row[position])
            instances.append(instance)
        return instances

    def params_with(self, values: Mapping[object, object]) -> list:
        """The parameters with `values` in place of the stand-ins they are keyed by (`stand_in_values`), for
        running the SQL, or a statement it is part of, by hand."""
        return [values[value] if _is_stand_in(value) and value in values else value for value in self.params]

    def _converted_rows(self, values: Mapping[object, object], limit: int | None = None, offset: int = 0):
        params = self.params_with(values)
        sql = self.sql if limit is None else f"{self.sql} LIMIT {int(limit)} OFFSET {int(offset)}"
        with prepared_cursor(connections[self.compiler.using]) as cursor:
            cursor.execute(sql, params)
            fetched = cursor.fetchall()
        return self.compiler.apply_converters(fetched, self.converters) if self.converters else fetched


# The standard library's JSON scanner (C), which json.loads runs inside three Python calls of its own.
_scan_json = json.JSONDecoder().scan_once


def _faster_converter(converter: Callable) -> Callable:
    """`converter`, or for a JSONField without a decoder of its own (its from_db_value: json.loads per row, a
    twelfth of the API photo list's Python calls), one giving the same values through json.loads's scanner."""
    if getattr(converter, "__func__", None) is not JSONField.from_db_value or converter.__self__.decoder is not None:
        return converter

    def json_from_db(value, expression, connection):
        if value is None:
            return None
        if type(value) is str:
            try:
                decoded, end = _scan_json(value, 0)
            except (StopIteration, ValueError):
                pass  # not JSON from its first character: the field's own code answers
            else:
                if end == len(value):  # else whitespace or more after the value: the field's own code answers
                    return decoded
        return converter(value, expression, connection)

    return json_from_db


def _is_stand_in(value: object) -> bool:
    """Whether a statement's parameter may be a stand-in: an id (Django types some, as psycopg's Int4), a text or a
    uuid (a uuid on PostgreSQL, its hex digits on SQLite)."""
    return isinstance(value, int | str | uuid.UUID) and not isinstance(value, bool)


def prepared_cursor(connection: BaseDatabaseWrapper) -> CursorWrapper:
    """`connection.cursor()`, but one that prepares what it runs where the connection may (PostgreSQL with a
    prepare_threshold: clippro_site.settings sets one unless POSTGRES_PREPARED_STATEMENTS is off). Django's own
    cursors bind values on the client, which never prepares; this one is wrapped as Django wraps its own, so the
    query is logged and counted like any other."""
    if connection.vendor != "postgresql" or connection.settings_dict["OPTIONS"].get("prepare_threshold") is None:
        return connection.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.close_if_health_check_failed()  # as Django's cursor() does, before its first query of a request
    connection.ensure_connection()
    connection.validate_thread_sharing()
    cursor = ServerBindingCursor(connection.connection)
    _use_connection_time_zone(connection, cursor)
    return _LoggedPreparingCursor(cursor, connection) if connection.queries_logged else connection.make_cursor(cursor)


def _use_connection_time_zone(connection: BaseDatabaseWrapper, cursor) -> None:
    """Timestamps read as Django's cursors read them, in `connection.timezone`, by `_timestamp_loader`."""
    cursor.adapters.register_loader("timestamptz", _timestamp_loader(connection.timezone))


@functools.cache
def _timestamp_loader(zone: tzinfo | None) -> type:
    """Django's loader of timestamps in `zone`, parsing them with datetime.fromisoformat (C): psycopg's parser
    (Python) was a tenth of the API photo list's Python time, 150 timestamps a page. What fromisoformat refuses
    (a date BC, infinity) is psycopg's to read, or to refuse, as before."""
    from django.db.backends.postgresql.psycopg_any import BaseTzLoader

    class IsoTimestampLoader(BaseTzLoader):
        timezone = zone

        def load(self, data) -> datetime:
            try:
                read = datetime.fromisoformat(bytes(data).decode())
                if read.tzinfo is zone is UTC:
                    # Django reads in UTC, its sessions' zone then too, and this was written at offset 0: what
                    # the conversion below gives, without its two calls per timestamp.
                    return read
                # As psycopg's: in the session's time zone (`_timezone`), then Django's `zone` put in its place.
                read = read.astimezone(self._timezone)
            except (ValueError, OverflowError):
                return super().load(data)
            return read.replace(tzinfo=zone)

    return IsoTimestampLoader


class _LoggedPreparingCursor(CursorDebugWrapper):
    """Django's debug cursor (tests, DEBUG), logging the statement with its values: a prepared run leaves psycopg
    no query text for Django to log."""

    def execute(self, sql, params=None):
        with self.debug_sql(self.db.ops.compose_sql(sql, params)):
            return CursorWrapper.execute(self, sql, params)


def stand_in_user() -> AbstractBaseUser:
    """A signed-in user no one is, for building a statement's queryset."""
    return get_user_model()(pk=STAND_IN_USER_ID)


def stand_in_ids(count: int) -> list[int]:
    """`count` ids no row has, for building a statement that reads rows by id."""
    return [_FIRST_STAND_IN_ID - number for number in range(count)]


def stand_in_values(
    *,
    user: AbstractBaseUser | None = None,
    ids: Sequence[int] = (),
    uuid_value: uuid.UUID | None = None,
    text: str | None = None,
) -> dict[object, object]:
    """What `Statement.rows` puts in place of `stand_in_user()`'s id, of `stand_in_ids(len(ids))`, of
    `STAND_IN_UUID` and of `STAND_IN_TEXT`."""
    values: dict[object, object] = dict(zip(stand_in_ids(len(ids)), ids, strict=True))
    if user is not None and user.is_authenticated:
        values[STAND_IN_USER_ID] = user.pk
    if uuid_value is not None:
        values[STAND_IN_UUID] = uuid_value
        values[STAND_IN_UUID.hex] = uuid_value.hex
    if text is not None:
        values[STAND_IN_TEXT] = text
    return values


# Per thread: a compiler holds its thread's database connection (its converters read the connection's settings).
_compiled = threading.local()


def statement(key: Hashable, build: Callable[[], QuerySet], *, using: str = "default") -> Statement:
    """The statement `build()` compiles to, compiled on this thread's first call with `key` (per database)."""
    compiled = _compiled.__dict__.setdefault("statements", {})
    if (using, key) not in compiled:
        compiled[using, key] = Statement.compile(build().using(using))
    return compiled[using, key]
