"""Django's database sessions (settings.SESSION_ENGINE), each request's read done by one SQL statement.

Every signed-in request reads its session. Django's backend builds, compiles and runs a queryset for it and makes a
Session instance of the row: 0.36 ms of Python, where the statement alone costs 0.1 (prepared on PostgreSQL:
captioning.statements). The read is the same one (the row of this key, unless expired); writes, expiry, key
changes and logout are Django's own.
"""

import functools

from django.contrib.sessions.backends import db
from django.db import connections, router
from django.utils import timezone

from captioning.statements import prepared_cursor


class SessionStore(db.SessionStore):
    def load(self) -> dict:
        using = router.db_for_read(self.model)
        connection = connections[using]
        with prepared_cursor(connection) as cursor:
            cursor.execute(
                _session_data_sql(self.model, using),
                [self.session_key, connection.ops.adapt_datetimefield_value(timezone.now())],
            )
            row = cursor.fetchone()
        if row is None:
            self._session_key = None  # as Django's: a key that matches no live session is never saved under
            return {}
        return self.decode(row[0])


@functools.cache
def _session_data_sql(model: type, using: str) -> str:
    quote = connections[using].ops.quote_name
    fields = {field.name: quote(field.column) for field in model._meta.concrete_fields}
    return (
        f"SELECT {fields['session_data']} FROM {quote(model._meta.db_table)} "
        f"WHERE {fields['session_key']} = %s AND {fields['expire_date']} > %s"
    )
