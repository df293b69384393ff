"""What one request of each page and API list costs, measured in one process against the load benchmark's data.

wrk's requests per second move with everything else the machine runs; what a request costs the server does not.
For each endpoint of benchmarks/load.py this sends --requests requests through Django's test client, with the
production settings load.py's gunicorn runs, and prints:
- CPU ms per request of this process (the Python side: what caps a sync gunicorn worker);
- CPU ms per request of its PostgreSQL server process (read from /proc: PostgreSQL on this machine), which shares
  the cores with the web workers;
- wall ms per request (CPU plus waiting for PostgreSQL);
- SQL queries per request and Python function calls per request (cProfile; both exact on any machine);
- with --profile N, the N functions with the most time of their own, per endpoint;
- with --sql, the SQL of each endpoint's first request and the time of each statement.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/clippro_load python benchmarks/request_cost.py --reuse-data
    DATABASE_URL=... python benchmarks/request_cost.py --reuse-data --only photo api-photos --profile 25
"""

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.load import endpoints, open_data  # noqa: E402  (the same data and endpoints)


def measure(client, paths: list[str], headers: dict[str, str], requests: int) -> tuple[float, float, float]:
    """(CPU ms, PostgreSQL's CPU ms, wall ms) per request over `requests` requests, after one of each path to warm
    caches up."""
    for path in paths:
        answer = client.get(path, **headers)
        if answer.status_code != 200:
            raise SystemExit(f"{path} answered {answer.status_code}")
    database_cpu, cpu, wall = database_cpu_seconds(), time.process_time(), time.perf_counter()
    for number in range(requests):
        client.get(paths[number % len(paths)], **headers)
    return (
        (time.process_time() - cpu) * 1000 / requests,
        (database_cpu_seconds() - database_cpu) * 1000 / requests,
        (time.perf_counter() - wall) * 1000 / requests,
    )


def database_cpu_seconds() -> float:
    """User + system CPU seconds of the PostgreSQL process serving this connection (NaN where /proc cannot show
    it: a server on another machine)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def captured_queries(client, path: str, headers: dict[str, str]) -> list[dict]:
    """The SQL one request sends, each with its time in seconds (Django's `sql` and `time`)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        client.get(path, **headers)
    return list(queries.captured_queries)


def profile(client, paths: list[str], headers: dict[str, str], requests: int) -> pstats.Stats:
    profiler = cProfile.Profile()
    profiler.enable()
    for number in range(requests):
        client.get(paths[number % len(paths)], **headers)
    profiler.disable()
    return pstats.Stats(profiler, stream=io.StringIO())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=100, help="requests per endpoint")
    parser.add_argument("--only", nargs="+", help="endpoints to measure (load.py's names)")
    parser.add_argument("--reuse-data", action="store_true", help="keep the photos an earlier run filled in")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print each endpoint's top N functions")
    parser.add_argument(
        "--sort", choices=("tottime", "cumulative"), default="tottime", help="order of --profile's functions"
    )
    parser.add_argument("--sql", action="store_true", help="print the SQL of each endpoint's first request")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="clippro-cost-") as work:
        _database_url, data = open_data(Path(work), args.photos, args.reuse_data)
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.test import Client
        from rest_framework.authtoken.models import Token

        call_command("collectstatic", interactive=False, verbosity=0)
        user = get_user_model().objects.get(username=data["username"])
        token, _created = Token.objects.get_or_create(user=user)
        anonymous, signed_in = Client(HTTP_HOST="localhost"), Client(HTTP_HOST="localhost")
        signed_in.force_login(user)
        auth = {"none": {}, "session": {}, "token": {"HTTP_AUTHORIZATION": f"Token {token.key}"}}

        print(
            "| endpoint | CPU ms/request | PostgreSQL CPU ms/request | wall ms/request | SQL queries | Python calls/request |"
        )
        print("| --- | --- | --- | --- | --- | --- |")
        reports = []
        for endpoint in endpoints(data):
            if endpoint.key == "static" or (args.only and endpoint.key not in args.only):
                continue
            client = signed_in if endpoint.auth == "session" else anonymous
            headers = auth[endpoint.auth]
            cpu_ms, database_ms, wall_ms = measure(client, endpoint.paths, headers, args.requests)
            queries = captured_queries(client, endpoint.paths[0], headers)
            stats = profile(client, endpoint.paths, headers, max(10, args.requests // 5))
            calls = stats.total_calls / max(10, args.requests // 5)
            print(
                f"| {endpoint.label} | {cpu_ms:.1f} | {database_ms:.1f} | {wall_ms:.1f} | {len(queries)} | {calls:,.0f} |",
                flush=True,
            )
            report = ""
            if args.sql:
                report += "".join(f"\n{float(query['time']) * 1000:.1f} ms  {query['sql']}\n" for query in queries)
            if args.profile:
                stats.sort_stats(args.sort).print_stats(args.profile)
                report += stats.stream.getvalue()
            if report:
                reports.append((endpoint.label, report))
        for label, report in reports:
            print(f"\n## {label}\n{report}")


if __name__ == "__main__":
    main()
