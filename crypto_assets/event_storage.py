"""Dagster's SQLite event log, writing each event batch in one transaction per database.

A 90-day bootstrap plans and materializes every asset once per daily partition: ~1,500 events. Dagster's
``SqliteEventLogStorage`` opens a new SQLAlchemy engine (and so an empty compiled-statement cache) and
commits once for every event, which made this bookkeeping the largest cost of the bootstrap
(benchmarks/README.md). Dagster already hands the storage those events as batches when
``DAGSTER_EVENT_BATCH_SIZE`` is set (the planned events of a run, the per-partition materializations of
an output); this storage writes each batch in one transaction per database and keeps one engine per
database file. What is stored is exactly what ``SqliteEventLogStorage`` stores, in the same files: an
instance can switch between the two freely.

Configured in dagster.yaml (``event_log_storage``); ``base_dir`` defaults to Dagster's own location,
``<instance folder>/history/runs``, known once the instance registers the storage.
"""

import os
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from dagster._config import Field, StringSource
from dagster._config.config_schema import UserConfigSchema
from dagster._core.events import ASSET_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.instance import DagsterInstance
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log import SqlEventLogStorage, SqliteEventLogStorage
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageTable
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData, serialize_value
from sqlalchemy.engine import Connection, Engine


def batch_dagster_events() -> None:
    """Have Dagster hand event batches to its storage (``DAGSTER_EVENT_BATCH_SIZE``, unless already set).

    Dagster reads the variable in the process that writes the events. Both storages gain: this one writes
    every batch in one transaction; dagster-postgres writes materialization batches in one INSERT (failure
    events are never batched, so failed partitions stay marked failed on either). Called on importing this
    module (every process of a SQLite instance) and by ``crypto_assets.definitions`` (every run worker).
    No batch exceeds one run's planned events or one output's partitions.
    """
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "10000")


batch_dagster_events()


class PoolingStorage(Protocol):
    def _drop_inherited_connections(self) -> None: ...


_pooling_storages: "weakref.WeakSet[PoolingStorage]" = weakref.WeakSet()


def drop_pooled_connections_in_forked_children(storage: PoolingStorage) -> None:
    """Have a forked child call ``storage._drop_inherited_connections()`` before anything else runs in it.

    A pooled connection belongs to the process that opened it: a child using it would share the parent's
    socket or SQLite handle. Both event log storages here pool (this one and ``postgres_event_storage``).
    """
    _pooling_storages.add(storage)


def _after_fork_in_child() -> None:
    for storage in list(_pooling_storages):
        storage._drop_inherited_connections()


os.register_at_fork(after_in_child=_after_fork_in_child)

# The index shard plus the run shards recently written or read. Dagster keeps these databases in WAL mode:
# an open connection keeps its -wal file (up to the run's writes) until the engine is evicted or disposed,
# so the cache stays small.
CACHED_ENGINES = 4
POOL_OVERFLOW = 4  # connections beyond the one kept per database (every use holds the storage's lock anyway)


class BatchingSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` with one cached engine per database and one transaction per event batch."""

    def __init__(self, base_dir: str | None = None, inst_data: ConfigurableClassData | None = None):
        # Pooled connections hold no SQLite lock between transactions (SQLite locks per transaction), and
        # reusing them saves opening a database file per event. A forked child must not share them: it
        # forgets the parent's pools (SQLAlchemy's documented ``dispose(close=False)``).
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        drop_pooled_connections_in_forked_children(self)
        self._inst_data = inst_data
        if base_dir is not None:
            super().__init__(base_dir, inst_data)

    def register_instance(self, instance: DagsterInstance) -> None:
        if not hasattr(self, "_base_dir"):  # no base_dir configured: the instance's folder, as Dagster's default
            super().__init__(os.path.join(instance.root_directory, "history", "runs", ""), self._inst_data)
        super().register_instance(instance)

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> "BatchingSqliteEventLogStorage":
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = create_engine(
            self.conn_string_for_shard(shard),
            pool_size=1,
            max_overflow=POOL_OVERFLOW,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        )
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        self._engines[shard] = engine
        while len(self._engines) > CACHED_ENGINES:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    def _drop_inherited_connections(self) -> None:
        self._forget_engines(close=False)  # SQLAlchemy's documented way: the parent's connections stay open

    def _forget_engines(self, *, close: bool) -> None:
        while self._engines:
            self._engines.popitem()[1].dispose(close=close)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock, self._engine(shard).connect() as conn, conn.begin():
            yield conn

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Store ``events`` as ``store_event`` would, one transaction for the run shard and one for the index.

        Dagster only batches asset events (planned, materialized, observed, failed) and check planning;
        anything else in a batch is stored one by one.
        """
        asset_events = [event for event in events if event.dagster_event_type in ASSET_EVENTS]
        others = [event for event in events if event.dagster_event_type not in ASSET_EVENTS]
        for run_id in dict.fromkeys(event.run_id for event in asset_events):
            run_events = [event for event in asset_events if event.run_id == run_id]
            rows = [self._event_to_row(event) for event in run_events]
            with self.run_connection(run_id) as conn:
                conn.execute(SqlEventLogStorageTable.insert(), rows)
            with self.index_transaction() as conn:
                inserted = conn.execute(
                    SqlEventLogStorageTable.insert().returning(
                        SqlEventLogStorageTable.c.id, sort_by_parameter_order=True
                    ),
                    rows,
                )
                store_asset_index(self, conn, run_events, [row[0] for row in inserted])
        for event in others:
            self.store_event(event)

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        with self.index_connection() as conn:
            conn.execute(AssetCheckExecutionsTable.insert(), planned_check_rows(self, event, event_id))

    def wipe(self) -> None:
        self._forget_engines(close=True)  # before Dagster deletes the database files they have open
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        self._forget_engines(close=True)


def planned_check_rows(storage: SqlEventLogStorage, event: EventLogEntry, event_id: int | None) -> list[dict]:
    """The check-execution rows Dagster stores for a planned check: one per planned partition.

    The same rows as ``SqlEventLogStorage._store_asset_check_evaluation_planned``, with the event serialized
    once, for one executemany (Dagster compiles a VALUES statement with a bind per cell: 90 partitions of a
    check are 720 binds).
    """
    planned = event.get_dagster_event().event_specific_data
    partition_keys = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
    common = {
        "asset_key": planned.asset_key.to_string(),
        "check_name": planned.check_name,
        "run_id": event.run_id,
        "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
        "evaluation_event": serialize_value(event),
        "evaluation_event_timestamp": storage._event_insert_timestamp(event),
        "evaluation_event_storage_id": event_id,
    }
    return [{**common, "partition": key} for key in partition_keys]


def store_asset_index(
    storage: SqlEventLogStorage, conn: Connection, events: Sequence[EventLogEntry], event_ids: Sequence[int]
) -> None:
    """The index rows ``store_event`` writes for stored asset events: their tags, and each asset's summary row
    once per (asset, event type), from the last such event (``_last_of_each_kind``)."""
    storage._store_asset_event_tags(conn, events, event_ids)
    for position in _last_of_each_kind(events):
        storage._store_asset_event(conn, events[position], event_ids[position])


def _last_of_each_kind(events: Sequence[EventLogEntry]) -> list[int]:
    """Positions of the last event of each (asset, event type), in batch order.

    ``_store_asset_event`` overwrites the asset's summary row (latest materialization, run, timestamp)
    with columns that depend only on the event type, so applying just these events leaves the row as
    applying every event in order would, without serializing a record per partition.
    """
    last: dict[tuple[str, str], int] = {}
    for position, event in enumerate(events):
        dagster_event = event.dagster_event
        if dagster_event is not None and dagster_event.asset_key is not None:
            last[(dagster_event.asset_key.to_string(), dagster_event.event_type_value)] = position
    return sorted(last.values())
