"""Querysets compiled to SQL once per server thread, then run with each request's values.

Building a queryset (its Q trees, subqueries and joins) and compiling it cost the API's photo list more Python time
than reading and presenting its 50 rows. A `Statement` is a queryset built once for a stand-in user, whose id no
user has, and compiled once; each run puts the acting user's id where the stand-in's was, and converts the rows as
the queryset would have (with the ORM's own converters, so a value reads the same on SQLite and PostgreSQL).

The same goes for other ids a statement is built with (`stand_in_ids`). Only querysets whose SQL is the same for
every user of a kind fit (signed in or anonymous: the callers key them so); any other value that changes from one
request to the next belongs in the key, or in the LIMIT and OFFSET `Statement.rows` adds.
"""

import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connections
from django.db.models import QuerySet
from django.db.models.sql.compiler import SQLCompiler

# No row has these ids: ids are positive. Within a 32-bit integer, so the ORM compiles them like any id.
STAND_IN_USER_ID = -2_000_000_011
_FIRST_STAND_IN_ID = -1_000_000_000


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

    def rows(self, values: Mapping[int, object], *, limit: int | None = None, offset: int = 0) -> list[dict]:
        """The rows with `values` in place of the stand-ins they are keyed by (`stand_in_values`), `limit` of them
        from `offset`."""
        params = self.params_with(values)
        sql = self.sql if limit is None else f"{self.sql} LIMIT {int(limit)} OFFSET {int(offset)}"
        with connections[self.compiler.using].cursor() as cursor:
            cursor.execute(sql, params)
            fetched = cursor.fetchall()
        return [dict(zip(self.names, row, strict=True)) for row in self.compiler.results_iter(results=[fetched])]

    def params_with(self, values: Mapping[int, object]) -> list:
        """The parameters with `values` in place of the stand-ins they are keyed by (`stand_in_values`), for
        running the SQL, or a statement it is part of, by hand."""
        return [values[value] if type(value) is int and value in values else value for value in self.params]


def stand_in_user() -> AbstractBaseUser:
    """A signed-in user no one is, for building a statement's queryset."""
    return get_user_model()(pk=STAND_IN_USER_ID)


def stand_in_ids(count: int) -> list[int]:
    """`count` ids no row has, for building a statement that reads rows by id."""
    return [_FIRST_STAND_IN_ID - number for number in range(count)]


def stand_in_values(*, user: AbstractBaseUser | None = None, ids: Sequence[int] = ()) -> dict[int, object]:
    """What `Statement.rows` puts in place of `stand_in_user()`'s id and of `stand_in_ids(len(ids))`."""
    values: dict[int, object] = dict(zip(stand_in_ids(len(ids)), ids, strict=True))
    if user is not None and user.is_authenticated:
        values[STAND_IN_USER_ID] = user.pk
    return values


# Per thread: a compiler holds its thread's database connection (its converters read the connection's settings).
_compiled = threading.local()


def statement(key: Hashable, build: Callable[[], QuerySet], *, using: str = "default") -> Statement:
    """The statement `build()` compiles to, compiled on this thread's first call with `key` (per database)."""
    compiled = _compiled.__dict__.setdefault("statements", {})
    if (using, key) not in compiled:
        compiled[using, key] = Statement.compile(build().using(using))
    return compiled[using, key]
