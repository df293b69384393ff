"""Querysets compiled to SQL once per server thread, then run with each request's values.

Building a queryset (its Q trees, subqueries and joins) and compiling it cost the API's photo list more Python time
than reading and presenting its 50 rows. A `Statement` is a queryset built once for a stand-in user, whose id no
user has, and compiled once; each run puts the acting user's id where the stand-in's was, and converts the rows as
the queryset would have (with the ORM's own converters, so a value reads the same on SQLite and PostgreSQL).

The same goes for other ids a statement is built with (`stand_in_ids`) and a uuid (`STAND_IN_UUID`). Only
querysets whose SQL is the same for every user of a kind fit (signed in or anonymous: the callers key them so); any
other value that changes from one request to the next belongs in the key, or in the LIMIT and OFFSET
`Statement.rows` adds. `Statement.instances` gives model instances, for pages whose templates and helpers read
them.
"""

import threading
import uuid
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connections
from django.db.backends.utils import CursorWrapper
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators
from django.db.models.sql.compiler import SQLCompiler

# No row has these ids: ids are positive. Within a 32-bit integer, so the ORM compiles them like any id.
STAND_IN_USER_ID = -2_000_000_011
_FIRST_STAND_IN_ID = -1_000_000_000
STAND_IN_UUID = uuid.UUID("5ea1ed00-0000-4000-8000-000000000000")  # a version-4 uuid no row has


@dataclass(frozen=True)
class Statement:
    sql: str
    params: tuple
    compiler: SQLCompiler
    names: tuple[str, ...]  # of each column, as the queryset's values() named them

    @classmethod
    def compile(cls, queryset: QuerySet) -> "Statement":
        """`queryset` (of values(), unsliced), built for `stand_in_user()`."""
        if queryset.query.is_sliced:
            raise ValueError("Compile the queryset unsliced; Statement.rows adds LIMIT and OFFSET.")
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        query = queryset.query
        return cls(sql, tuple(params), compiler, (*query.extra_select, *query.values_select, *query.annotation_select))

    def rows(self, values: Mapping[object, object], *, limit: int | None = None, offset: int = 0) -> list[dict]:
        """The rows with `values` in place of the stand-ins they are keyed by (`stand_in_values`), `limit` of them
        from `offset`."""
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

    def _converted_rows(self, values: Mapping[object, object], limit: int | None = None, offset: int = 0):
        params = [
            values[value] if type(value) in _STAND_IN_TYPES and value in values else value for value in self.params
        ]
        sql = self.sql if limit is None else f"{self.sql} LIMIT {int(limit)} OFFSET {int(offset)}"
        with _cursor(self.compiler.using) as cursor:
            cursor.execute(sql, params)
            fetched = cursor.fetchall()
        return self.compiler.results_iter(results=[fetched])


def _cursor(using: str) -> CursorWrapper:
    """A cursor of the `using` database; on PostgreSQL one that binds the parameters on the server, which psycopg
    prepares once it has run a statement `prepare_threshold` times (5) on a connection: PostgreSQL then plans it
    once, where planning took most of each statement's time (the photo page's five: 0.8 of 1.1 ms, EXPLAIN
    ANALYZE). Django's own cursors bind on the client, and so never prepare."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return connection.cursor()
    from django.db.backends.postgresql.base import TIMESTAMPTZ_OID, ServerBindingCursor
    from django.db.backends.postgresql.psycopg_any import register_tzloader
    from psycopg.pq import Format

    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        cursor = ServerBindingCursor(connection.connection)
    # As Django's cursors do (DatabaseWrapper.create_cursor): the time zone of the connection's datetimes.
    if connection.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT).timezone != connection.timezone:
        register_tzloader(connection.timezone, cursor)
    return connection.make_debug_cursor(cursor) if connection.queries_logged else connection.make_cursor(cursor)


# What a stand-in compiles to: an id, or a uuid (a uuid on PostgreSQL, its hex digits on SQLite).
_STAND_IN_TYPES = (int, uuid.UUID, str)


def stand_in_user() -> AbstractBaseUser:
    """A signed-in user no one is, for building a statement's queryset."""
    return get_user_model()(pk=STAND_IN_USER_ID)


def stand_in_ids(count: int) -> list[int]:
    """`count` ids no row has, for building a statement that reads rows by id."""
    return [_FIRST_STAND_IN_ID - number for number in range(count)]


def stand_in_values(
    *, user: AbstractBaseUser | None = None, ids: Sequence[int] = (), uuid_value: uuid.UUID | None = None
) -> dict[object, object]:
    """What `Statement.rows` puts in place of `stand_in_user()`'s id, of `stand_in_ids(len(ids))` and of
    `STAND_IN_UUID`."""
    values: dict[object, object] = dict(zip(stand_in_ids(len(ids)), ids, strict=True))
    if user is not None and user.is_authenticated:
        values[STAND_IN_USER_ID] = user.pk
    if uuid_value is not None:
        values[STAND_IN_UUID] = uuid_value
        values[STAND_IN_UUID.hex] = uuid_value.hex
    return values


# Per thread: a compiler holds its thread's database connection (its converters read the connection's settings).
_compiled = threading.local()


def statement(key: Hashable, build: Callable[[], QuerySet], *, using: str = "default") -> Statement:
    """The statement `build()` compiles to, compiled on this thread's first call with `key` (per database)."""
    compiled = _compiled.__dict__.setdefault("statements", {})
    if (using, key) not in compiled:
        compiled[using, key] = Statement.compile(build().using(using))
    return compiled[using, key]
