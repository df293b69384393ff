"""Request rates (API_THROTTLE_*): each client's budget is one small record in the shared store (the database by
default, Redis with REDIS_URL), spent atomically, so concurrent requests from many server processes are counted
exactly and the cost of counting does not grow with the rate."""

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from captioning import request_rates

STORES = [
    "database",
    pytest.param(
        "redis", marks=pytest.mark.skipif(not os.environ.get("REDIS_TEST_URL"), reason="REDIS_TEST_URL is not set")
    ),
]


@pytest.fixture
def store(request, settings, db):
    if request.param == "redis":
        import redis

        settings.REDIS_URL = os.environ["REDIS_TEST_URL"]
        redis.Redis.from_url(settings.REDIS_URL).flushdb()
    else:
        settings.REDIS_URL = ""
    return request.param


@pytest.mark.parametrize("store", STORES, indirect=True)
def test_a_budget_admits_its_limit_at_once_then_one_request_per_interval(store):
    """3 a minute: three at once, then one each 20 seconds, and a refusal says how long to wait."""
    spend = request_rates.spend
    assert [spend("test:client", limit=3, period=60, now=1000.0) for _ in range(3)] == [None, None, None]
    assert spend("test:client", limit=3, period=60, now=1000.0) == pytest.approx(20.0)
    assert spend("test:client", limit=3, period=60, now=1015.0) == pytest.approx(5.0)
    assert spend("test:client", limit=3, period=60, now=1020.0) is None
    assert spend("test:client", limit=3, period=60, now=1020.0) == pytest.approx(20.0)
    # Another client has its own budget; a client quiet for a period has its whole budget again.
    assert spend("test:other", limit=3, period=60, now=1020.0) is None
    assert [spend("test:client", limit=3, period=60, now=1100.0) for _ in range(3)] == [None, None, None]


@pytest.mark.slow
@pytest.mark.parametrize("cache", ["database", "redis"])
def test_concurrent_requests_on_two_processes_are_counted_exactly(people, start_web_server, cache):
    """40 requests at once, 8 at a time, spread over two gunicorn processes, against a limit of 20: exactly 20
    answered. A read-then-write count lets requests that read the same count through together."""
    if cache == "redis" and not os.environ.get("REDIS_TEST_URL"):
        pytest.skip("REDIS_TEST_URL is not set")
    shared = {"REDIS_URL": os.environ["REDIS_TEST_URL"]} if cache == "redis" else {}
    if shared:
        import redis

        redis.Redis.from_url(shared["REDIS_URL"]).flushdb()
    server = start_web_server(workers=2, API_THROTTLE_ANONYMOUS="20/hour", **shared)

    def status(_number: int) -> int:
        return requests.get(f"{server.base_url}/api/galleries/", timeout=60).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(status, range(40)))
    assert (statuses.count(200), statuses.count(429)) == (20, 20)


def test_spending_is_prepared_once_per_postgresql_connection(settings, db):
    from django.db import connection

    if connection.vendor != "postgresql" or connection.settings_dict["OPTIONS"].get("prepare_threshold") is None:
        pytest.skip("PostgreSQL with POSTGRES_PREPARED_STATEMENTS prepares statements")
    settings.REDIS_URL = ""

    def upserts_prepared() -> int:
        request_rates.spend("test:prepared", limit=1000, period=60)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%ON CONFLICT%"])
            return cursor.fetchone()[0]

    assert upserts_prepared() == upserts_prepared() == 1
