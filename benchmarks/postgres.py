"""The benchmarks' PostgreSQL database: created on first use, so one command is all a run needs."""

import urllib.parse

import psycopg
from psycopg import sql


def ensure_database(database_url: str) -> None:
    """Create the database `database_url` names if its server does not have it yet."""
    parts = urllib.parse.urlsplit(database_url)
    name = parts.path.lstrip("/")
    server_url = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(server_url, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")
