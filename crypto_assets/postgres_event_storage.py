"""dagster-postgres's event log, with a run's planned events written as one batch and one pooled connection.

When a run is created, Dagster reports one ``ASSET_MATERIALIZATION_PLANNED`` event per asset and
partition (720 for the 90-day bootstrap) and one ``ASSET_CHECK_EVALUATION_PLANNED`` per check, and, with
``DAGSTER_EVENT_BATCH_SIZE`` set, hands them to ``store_event_batch`` together. ``PostgresEventLogStorage``
batches only materializations and observations: every planned event cost it two or three new connections
and as many commits, ~16 ms here, so planning took 7-12 s of a 12-18 s bootstrap (benchmarks/README.md).
This storage inserts the planned events of a batch in one statement, then their tags, each asset's summary
row and the checks' planned executions in one transaction. What is stored is what
``PostgresEventLogStorage`` stores, in the same tables: an instance can switch between the two freely.
Like dagster-postgres's own batch writer it sends no ``NOTIFY`` (its single-event writer still does, for
older clients only: event watching polls).

Its engine keeps one connection open between uses, as dagster-postgres's does in the webserver
(``optimize_for_webserver``) but not elsewhere (a new connection for every event Dagster does not batch:
step starts and ends, logs, check results, ~700 in the bootstrap). Concurrent users beyond it get
connections of their own, closed after use as before; a connection the server dropped is replaced
(pre-ping); a forked child starts without the parent's.

Configured in deploy/postgres/dagster.yaml (``event_log_storage``). A separate module from
``crypto_assets.event_storage`` so that SQLite instances never import dagster-postgres.
"""

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import DagsterEventType
from dagster import _check as check
from dagster._core.events import ASSET_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageTable
from dagster._serdes import ConfigurableClassData
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config

from crypto_assets.event_storage import (
    batch_dagster_events,
    drop_pooled_connections_in_forked_children,
    planned_check_rows,
    store_asset_index,
)

batch_dagster_events()  # every process that loads a PostgreSQL instance configured with this storage

# Stored together: the planned events Dagster reports as one batch when it creates a run.
PLANNED = frozenset({DagsterEventType.ASSET_MATERIALIZATION_PLANNED, DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED})


class BatchingPostgresEventLogStorage(PostgresEventLogStorage):
    """``PostgresEventLogStorage`` storing each batch's planned events with one INSERT and one transaction,
    through an engine that keeps one connection."""

    def __init__(self, postgres_url: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(postgres_url, *args, **kwargs)  # creates the tables if missing
        self._engine.dispose()  # dagster-postgres's engine: it pools nothing, so there is nothing to close
        self._engine = create_pg_engine(
            self.postgres_url,
            self._token_provider,
            isolation_level="AUTOCOMMIT",
            pool_size=1,
            max_overflow=-1,
            pool_pre_ping=True,
        )
        drop_pooled_connections_in_forked_children(self)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> "BatchingPostgresEventLogStorage":
        # The same config as dagster-postgres's storage; its own from_config_value names its class, not cls.
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Consecutive planned events are stored together, the others as dagster-postgres stores them (in order)."""
        for planned, group in itertools.groupby(events, key=lambda event: event.dagster_event_type in PLANNED):
            if planned:
                self._store_planned_events(list(group))
            else:
                super().store_event_batch(list(group))

    def _store_planned_events(self, events: list[EventLogEntry]) -> None:
        """What ``store_event`` stores for each: the event row; for an asset, its tags and summary row; for a
        check, one execution row per planned partition."""
        with self._connect() as conn:  # an autocommit connection: the INSERT is one statement
            inserted = conn.execute(self.prepare_insert_event_batch(events).returning(SqlEventLogStorageTable.c.id))
            event_ids = [int(row[0]) for row in inserted.fetchall()]
        assets = [i for i, event in enumerate(events) if event.dagster_event_type in ASSET_EVENTS]
        checks = [i for i, event in enumerate(events) if event.dagster_event_type not in ASSET_EVENTS]
        if checks:
            check.invariant(self.supports_asset_checks, "asset checks need `dagster instance migrate`")
        with self.index_transaction() as conn:
            if assets:
                store_asset_index(self, conn, [events[i] for i in assets], [event_ids[i] for i in assets])
            rows = [row for i in checks for row in planned_check_rows(self, events[i], event_ids[i])]
            if rows:
                conn.execute(AssetCheckExecutionsTable.insert(), rows)

    def _drop_inherited_connections(self) -> None:
        self._engine.dispose(close=False)  # the parent's pooled connection stays the parent's

    def optimize_for_webserver(self, statement_timeout: int, pool_recycle: int, max_overflow: int) -> None:
        self._engine.dispose()  # replaced by dagster-postgres's webserver engine (a pool of its own)
        super().optimize_for_webserver(statement_timeout, pool_recycle, max_overflow)

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()
