"""Snapshots of what the definitions declare: asset specs, checks, jobs, schedules and sensors.

As dagster-open-platform's test_defs.py: a change to any of them shows up as a reviewed snapshot diff
(`.venv/bin/pytest crypto_assets_tests/test_defs.py --snapshot-update` rewrites the snapshot). Plus the policies
every asset must carry, whichever module declares it.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from crypto_assets.definitions import defs
from crypto_assets.defs.common import FRESHNESS, OWNERS, WAREHOUSE_POOL


@pytest.fixture(scope="module")
def graph():
    return defs.resolve_asset_graph()


def _spec(graph, key: dg.AssetKey) -> dict[str, Any]:
    node = graph.get(key)
    schema = node.metadata.get("dagster/column_schema")
    partitions = node.partitions_def
    return {
        "group": node.group_name,
        "kinds": sorted(node.kinds),
        "owners": list(node.owners),
        "deps": sorted(dep.to_user_string() for dep in node.parent_keys),
        "partitions": type(partitions).__name__ if partitions else None,
        "backfill_policy": str(node.backfill_policy) if node.backfill_policy else None,
        "freshness": type(node.freshness_policy).__name__ if node.freshness_policy else None,
        "columns": [column.name for column in schema.columns] if schema else None,
        "metadata": sorted(node.metadata),
        "checks": sorted(check.name for check in graph.asset_check_keys if check.asset_key == key),
    }


def test_asset_specs(graph, snapshot) -> None:
    assert {key.to_user_string(): _spec(graph, key) for key in sorted(graph.get_all_asset_keys())} == snapshot


def test_jobs_schedules_and_sensors(snapshot) -> None:
    jobs = {
        job.name: sorted(
            key.to_user_string() for key in defs.resolve_job_def(job.name).asset_layer.executable_asset_keys
        )
        for job in defs.jobs
    }
    schedules = {
        s.name: {
            "cron": s.cron_schedule,
            "timezone": s.execution_timezone,
            "job": s.job_name,
            "status": str(s.default_status),
        }
        for s in defs.schedules
    }
    sensors = {s.name: str(s.default_status) for s in defs.sensors}
    assert {"jobs": jobs, "schedules": schedules, "sensors": sensors} == snapshot


def test_policies_are_applied_to_every_asset(graph) -> None:
    """Owners and freshness come from definitions.py; every partitioned asset is backfilled in one run; every
    warehouse step (assets and checks) is in the one-writer pool."""
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert list(node.owners) == OWNERS, key
        assert node.freshness_policy == FRESHNESS, key
        if node.partitions_def is not None:
            assert node.backfill_policy == dg.BackfillPolicy.single_run(), key
    for assets_def in defs.assets:
        assert assets_def.op.pool == WAREHOUSE_POOL, assets_def.key
    for checks_def in defs.asset_checks:
        assert checks_def.node_def.pool == WAREHOUSE_POOL, checks_def
