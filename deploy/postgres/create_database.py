"""Create the instance's PostgreSQL database (DAGSTER_PG_DB) if it does not exist yet, then its tables.

    DAGSTER_HOME=deploy/postgres DAGSTER_PG_HOST=... python deploy/postgres/create_database.py

Dagster creates its tables on first use but never the database itself. Connects with the DAGSTER_PG_*
variables to the server's `postgres` maintenance database (the user needs CREATEDB, or the database must
exist already), then loads the instance once so every table exists before several processes start
(two processes creating them at the same moment race; dagster-postgres retries, this avoids it).
Prints no password. Exit codes: 0 done, 1 server unreachable or refused, 2 a variable is missing.
"""

from __future__ import annotations

import os
import sys

VARIABLES = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")


def _scrub(message: str, secret: str) -> str:
    return message.replace(secret, "***") if secret else message


def main() -> int:
    missing = [name for name in VARIABLES if name not in os.environ]
    if missing:
        hint = "DAGSTER_PG_PASSWORD may be empty: export DAGSTER_PG_PASSWORD="
        print(f"create_database: set {', '.join(missing)} ({hint})", file=sys.stderr)
        return 2
    import psycopg2
    from psycopg2 import sql

    host, port, user = os.environ["DAGSTER_PG_HOST"], os.environ["DAGSTER_PG_PORT"], os.environ["DAGSTER_PG_USER"]
    password, db = os.environ["DAGSTER_PG_PASSWORD"], os.environ["DAGSTER_PG_DB"]
    where = f"{user}@{host}:{port}"
    try:
        conn = psycopg2.connect(
            host=host, port=port, user=user, password=password, dbname="postgres", connect_timeout=10
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db])
            if cur.fetchone():
                print(f"database {db} on {where}: exists")
            else:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
                print(f"database {db} on {where}: created")
        conn.close()
    except psycopg2.Error as exc:
        first_line = _scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, password)
        print(f"create_database: {where}/{db}: {first_line}", file=sys.stderr)
        return 1
    if os.environ.get("DAGSTER_HOME"):
        import dagster as dg

        dg.DagsterInstance.get().dispose()  # creates (or checks) the run, event-log and schedule tables
        print(f"instance tables ready (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
