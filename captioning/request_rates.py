"""How many requests a client may send: a budget of `limit` requests per `period`, spent one request at a time
and refilled continuously (the generic cell rate algorithm). A client's whole state is one number, the time at
which it will have spent its budget, updated in one atomic statement: concurrent requests on any number of
server processes are counted exactly, and counting costs the same at 10 requests a minute as at 10,000.

The numbers live in the database (RequestBudget: one upsert per request) or, with REDIS_URL, in Redis (one
script call)."""

import time
from functools import cache

from django.conf import settings
from django.db import connection

from captioning.models import RequestBudget
from captioning.statements import prepared_cursor

_TABLE = RequestBudget._meta.db_table
# Spend one interval if that leaves the budget's end at most a period ahead; answer the new end, or nothing.
_SPEND_SQL = f"""
    INSERT INTO {_TABLE} (key, spent_until) VALUES (%s, %s)
    ON CONFLICT (key) DO UPDATE SET spent_until = {{greatest}}({_TABLE}.spent_until, %s) + %s
    WHERE {{greatest}}({_TABLE}.spent_until, %s) + %s <= %s
    RETURNING spent_until
"""
_REDIS_SPEND = """
local now, interval, period = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local spent_until = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now) + interval
if spent_until - now > period then
    return tostring(spent_until - now - period)
end
redis.call('SET', KEYS[1], tostring(spent_until), 'PX', math.ceil((spent_until - now) * 1000))
return false
"""


def spend(key: str, *, limit: int, period: float, now: float | None = None) -> float | None:
    """Spends one request of `key`'s budget (`limit` requests per `period` seconds, all of them at once if it
    was idle that long): None if it had one, else the seconds until it will have one again."""
    if limit < 1 or period <= 0:
        raise ValueError(f"A budget needs a limit of at least 1 and a positive period, not {limit}/{period}.")
    now = time.time() if now is None else now
    interval = period / limit
    if settings.REDIS_URL:
        wait = _redis_script(settings.REDIS_URL)(keys=[f"clippro:request-budget:{key}"], args=[now, interval, period])
        return None if wait is None else float(wait)
    greatest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    # Prepared on PostgreSQL (once per connection): planning was a quarter of the upsert's PostgreSQL CPU.
    with prepared_cursor(connection) as cursor:
        cursor.execute(
            _SPEND_SQL.format(greatest=greatest),
            [key, now + interval, now, interval, now, interval, now + period],
        )
        if cursor.fetchone() is not None:
            return None
    spent_until = RequestBudget.objects.filter(key=key).values_list("spent_until", flat=True).first()
    return 0.0 if spent_until is None else max(0.0, max(spent_until, now) + interval - now - period)


@cache
def _redis_script(url: str):
    import redis

    return redis.Redis.from_url(url).register_script(_REDIS_SPEND)
