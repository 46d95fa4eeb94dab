"""Schedules request the right partitions; a failing blocking check stops downstream assets and alerts.

Real Dagster runs (``dg.materialize`` on a temporary instance), a real DuckDB file, the replay server
serving the bundled real data with one corrupted bar, and a real local HTTP server as the webhook.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg
import pytest
from pytest_httpserver import HTTPServer

from crypto_assets import warehouse as wh
from crypto_assets.defs.alerting import alert_for, alert_on_failed_checks, alert_on_run_failure
from crypto_assets.defs.automation import daily_finalize, hourly_refresh
from crypto_assets.defs.features import technical_indicators
from crypto_assets.defs.prices import raw_prices
from crypto_assets.defs.quality import raw_prices_checks
from crypto_assets.defs.resources import build_resources
from crypto_assets.providers import registry
from crypto_assets.replay.faults import FaultConfig


@pytest.mark.parametrize(
    ("tick", "expected"),
    [
        (datetime(2026, 11, 22, 14, 5, tzinfo=UTC), "2026-11-22"),
        (datetime(2026, 11, 22, 1, 5, tzinfo=UTC), "2026-11-22"),
        (datetime(2026, 11, 22, 0, 5, tzinfo=UTC), "2026-11-21"),  # the bar that just closed is yesterday's 23:00
    ],
)
def test_hourly_refresh_requests_the_day_of_the_bar_that_just_closed(tick, expected):
    request = hourly_refresh(dg.build_schedule_context(scheduled_execution_time=tick))
    assert request.partition_key == expected


def test_daily_finalize_requests_yesterday():
    tick = datetime(2026, 11, 22, 0, 20, tzinfo=UTC)
    request = daily_finalize(dg.build_schedule_context(scheduled_execution_time=tick))
    assert request.partition_key == "2026-11-21"


def test_schedules_and_sensors_start_running():
    from crypto_assets.definitions import defs

    assert {s.name: s.default_status for s in defs.schedules} == {
        "hourly_refresh": dg.DefaultScheduleStatus.RUNNING,
        "daily_finalize": dg.DefaultScheduleStatus.RUNNING,
        "prune_old_runs_daily": dg.DefaultScheduleStatus.RUNNING,
    }
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in defs.sensors)


def test_every_asset_has_a_freshness_policy_group_owner_and_schema():
    from crypto_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.freshness_policy is not None, key
        assert node.group_name in {"ingestion", "sentiment", "features", "ml", "quality"}, key
        assert node.owners, key
        assert node.metadata.get("dagster/column_schema") is not None, key


def test_definitions_hold_every_module_of_defs_and_everything_they_define():
    """definitions.py lists the modules of defs/: a module (or an asset, check, job, schedule or sensor in
    one) that is not listed would silently be missing from the UI and the runs."""
    import importlib
    import pkgutil

    import crypto_assets.defs
    from crypto_assets import definitions
    from crypto_assets.defs.automation import bootstrap_job

    asset_job = type(bootstrap_job)  # what dg.define_asset_job returns
    modules = {info.name for info in pkgutil.iter_modules(crypto_assets.defs.__path__)}
    listed = {module.__name__.rsplit(".", 1)[1] for module in definitions.DEFINITION_MODULES}
    assert modules - listed == {"common", "resources", "runtime"}  # helpers, and the two merged by name

    defined: dict[str, set] = {"assets": set(), "checks": set(), "jobs": set(), "schedules": set(), "sensors": set()}
    for name in modules:
        for value in vars(importlib.import_module(f"crypto_assets.defs.{name}")).values():
            if isinstance(value, dg.AssetChecksDefinition):
                defined["checks"].add(value)
            elif isinstance(value, dg.AssetsDefinition):
                defined["assets"].add(value)
            elif isinstance(value, asset_job | dg.JobDefinition):
                defined["jobs"].add(value.name)
            elif isinstance(value, dg.ScheduleDefinition):
                defined["schedules"].add(value.name)
            elif isinstance(value, dg.SensorDefinition):
                defined["sensors"].add(value.name)
    defs = definitions.defs
    # definitions.py maps every asset spec (owners, freshness): the assets are compared by key, not identity
    keys = {key for assets_def in defined["assets"] for key in assets_def.keys}
    assert keys == {key for assets_def in defs.assets for key in assets_def.keys} and len(keys) == 8
    assert defined["checks"] <= set(defs.asset_checks) and len(defined["checks"]) == 4
    jobs = {"bootstrap", "refresh_day", "recompute_lookback", "prune_old_runs"}
    assert defined["jobs"] == {job.name for job in defs.jobs} == jobs
    assert defined["schedules"] == {s.name for s in defs.schedules}
    assert defined["sensors"] == {s.name for s in defs.sensors}
    assert set(defs.resources) == {"warehouse", "universe", "price_sources", "news_sources"}
    assert set(defs.loggers) == {"console"} and defs.executor is not None


def test_only_a_freshness_state_turning_fail_alerts():
    """Freshness state changes as the freshness daemon reports them, stored in and read back from an instance."""
    # Dagster's own event payload: 1.13 exports no public constructor for it (the project code never builds one).
    from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

    key = dg.AssetKey(["raw", "prices"])
    with dg.instance_for_test() as instance:
        for previous, new in (("PASS", "WARN"), ("WARN", "FAIL"), ("FAIL", "PASS"), ("UNKNOWN", "FAIL")):
            instance.report_runless_asset_event(
                FreshnessStateChange(
                    key=key,
                    previous_state=FreshnessState(previous),
                    new_state=FreshnessState(new),
                    state_change_timestamp=datetime.now(UTC).timestamp(),
                )
            )
        records = instance.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.FRESHNESS_STATE_CHANGE), ascending=True
        )
    assert [alert_for(record.event_log_entry) for record in records] == [
        None,
        ("freshness failed", "raw/prices", {"previous_state": "WARN", "new_state": "FAIL"}),
        None,
        ("freshness failed", "raw/prices", {"previous_state": "UNKNOWN", "new_state": "FAIL"}),
    ]


@pytest.fixture
def corrupt_env(pipeline_env, monkeypatch):
    """A warehouse holding one stored bar with high < low, and every price provider down.

    Providers' contradictory answers are rejected before anything is stored (test_price_providers), so the
    blocking checks guard what is already in the warehouse: a bar stored earlier and edited since. The re-fetch
    fails (every provider down), so the stored bars are kept, and the checks read the bad one.
    """
    for key, value in pipeline_env.env.items():
        if key.startswith(("CRYPTO_ASSETS_", "DAGSTER_HOME")):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("CRYPTO_ASSETS_SYMBOLS", "BTC,ETH")
    with dg.instance_for_test() as instance:
        stored = dg.materialize(
            [raw_prices], instance=instance, resources=build_resources(), partition_key="2022-05-10"
        )
        assert stored.success
    with wh.connect(pipeline_env.duckdb_path) as conn:
        conn.execute(
            "UPDATE raw.prices SET high = low - 1 WHERE symbol = 'BTC' AND ts = TIMESTAMPTZ '2022-05-10 12:00:00+00'"
        )
    prices = [spec.name for spec in registry.providers_of("prices")]
    pipeline_env.server.set_faults(FaultConfig(down=prices))
    return pipeline_env


def test_failing_blocking_check_stops_downstream_and_alerts(corrupt_env, httpserver: HTTPServer, monkeypatch):
    monkeypatch.setenv("CRYPTO_ASSETS_ALERT_WEBHOOK", httpserver.url_for("/hook"))
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    with dg.instance_for_test() as instance:
        sensor_context = dg.build_sensor_context(instance=instance)
        alert_on_failed_checks(sensor_context)  # first tick only starts watching
        result = dg.materialize(
            [raw_prices, raw_prices_checks, technical_indicators],
            instance=instance,
            resources=build_resources(),
            partition_key="2022-05-10",
            raise_on_error=False,
        )
        evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert not evaluations["ohlc_consistency"].passed
        assert evaluations["ohlc_consistency"].severity == dg.AssetCheckSeverity.ERROR
        assert not result.success
        materialized = {e.asset_key for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"}
        assert materialized == {dg.AssetKey(["raw", "prices"])}
        with wh.connect(corrupt_env.duckdb_path, read_only=True) as conn:
            tables = conn.execute("SELECT table_schema || '.' || table_name FROM information_schema.tables")
            written = {row[0] for row in tables.fetchall()}
        assert "raw.prices" in written
        assert "features.technical_indicators" not in written

        alert_on_failed_checks(dg.build_sensor_context(instance=instance, cursor=sensor_context.cursor))
        run_failure = dg.build_run_status_sensor_context(
            sensor_name="alert_on_run_failure",
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=result.get_run_failure_event(),
        ).for_run_failure()
        alert_on_run_failure(run_failure)
    posts = [json.loads(request.data) for request, _ in httpserver.log]
    # The raw/prices checks run as one step: the 2022 bars also fail prices_data_freshness, which alerts too.
    checks = [post["text"] for post in posts[:-1]]
    assert len(checks) == 2 and all("check failed" in text for text in checks), checks
    assert "ohlc_consistency" in checks[0] and "prices_data_freshness" in checks[1] and posts[0]["blocks"]
    assert "run failed" in posts[-1]["text"] and result.dagster_run.run_id in json.dumps(posts[-1])


def test_a_schema_failure_fails_the_asset_and_writes_nothing(pipeline_env, monkeypatch):
    """A real run whose indicator function is replaced (the one mock here: real indicators never break the
    schema, so a broken one is injected) to return an RSI of 150: the asset fails with pandera's failure
    cases and features.technical_indicators keeps its previous rows."""
    for key, value in pipeline_env.env.items():
        if key.startswith(("CRYPTO_ASSETS_", "DAGSTER_HOME")):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("CRYPTO_ASSETS_SYMBOLS", "BTC,ETH")
    from crypto_assets.defs import features

    with dg.instance_for_test() as instance:
        good = dg.materialize(
            [raw_prices, technical_indicators],
            instance=instance,
            resources=build_resources(),
            partition_key="2022-05-10",
        )
        assert good.success
        with wh.connect(pipeline_env.duckdb_path, read_only=True) as conn:
            before = conn.execute("SELECT * FROM features.technical_indicators ORDER BY ALL").fetchall()
        assert len(before) == 48

        real = features.compute_indicators
        monkeypatch.setattr(features, "compute_indicators", lambda prices: real(prices).assign(rsi_14=150.0))
        bad = dg.materialize(
            [raw_prices, technical_indicators],
            selection=[technical_indicators.key],
            instance=instance,
            resources=build_resources(),
            partition_key="2022-05-10",
            raise_on_error=False,
        )
    assert not bad.success
    failure = next(e for e in bad.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error.cause.message)
    assert "features.technical_indicators" in message and "rsi_14" in message and "150" in message
    with wh.connect(pipeline_env.duckdb_path, read_only=True) as conn:
        assert conn.execute("SELECT * FROM features.technical_indicators ORDER BY ALL").fetchall() == before
