"""End to end in a real browser: the Dagster UI over the demo bootstrap's instance, driven by Playwright + Chromium.

Nothing is mocked. A real ``dagster-webserver`` and ``dagster-daemon`` (the daemon dequeues runs launched from the
UI: dagster.yaml uses the queued run coordinator) serve a byte copy of the session's demo instance and warehouse,
so the run this test launches never changes what other tests see. The code location gets the demo environment,
so its resources point at the copied warehouse and the session replay server (the network is closed: a run that
reached a public provider would fail). The two schedules are stopped in the copy first: an hourly tick during the
test would start a refresh run competing for the warehouse pool.

Screenshots (and the webserver/daemon logs) are written to ``artifacts/ui/``. Set
``CRYPTO_ASSETS_UPDATE_DOCS_IMAGES=1`` to also refresh ``docs/images/asset_graph.png`` (the README's picture).
Needs Debian's Chromium (``apt-get install -y chromium``); never ``playwright install``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from crypto_assets.config import REPO_ROOT
from crypto_assets_tests.conftest import DEMO_END, DEMO_START, PipelineEnv

ARTIFACTS = REPO_ROOT / "artifacts" / "ui"
DOCS_IMAGE = REPO_ROOT / "docs" / "images" / "asset_graph.png"
VENV_BIN = Path(sys.executable).parent
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = "apt-get update && apt-get install -y chromium"

# What the brief of the UI promises at least; the full expectation comes from the definitions themselves.
MINIMUM_ASSET_GROUPS = {
    "raw/prices": "ingestion",
    "raw/news": "ingestion",
    "features/article_sentiment": "sentiment",
    "features/sentiment_hourly": "sentiment",
    "features/technical_indicators": "features",
    "features/feature_vectors": "features",
    "ml/training_set": "ml",
}
PRICES = "raw/prices"
LAUNCH_PARTITION = "2022-05-10"
DEMO_DAYS = (date.fromisoformat(DEMO_END) - date.fromisoformat(DEMO_START)).days + 1
# The graph screenshot: a 1400 x 900 graph pane once the navigation and the asset sidebar are hidden.
GRAPH_VIEWPORT = {"width": 1468, "height": 1004}
PAGE_VIEWPORT = {"width": 1400, "height": 900}
RUN_TIMEOUT_S = 300
UI_TIMEOUT_MS = 30_000


def _find_chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


CHROMIUM = _find_chromium()
if CHROMIUM is None and os.environ.get("CRYPTO_ASSETS_REQUIRE_UI_TEST") == "1":
    raise RuntimeError(f"CRYPTO_ASSETS_REQUIRE_UI_TEST=1 but Chromium is not installed: {INSTALL_HINT}")

sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed (pip install -e .[dev])")
expect = sync_api.expect

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason=(
            "!!! UI TEST SKIPPED: Chromium not found at /usr/bin/chromium or on PATH. "
            f"Install Debian's browser with `{INSTALL_HINT}` (never `playwright install`)."
        ),
    ),
]


# ------------------------------------------------------------------------------------------------ services


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


@contextmanager
def _service(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running process in its own process group, stopped with its children (code servers, run workers)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield proc
        finally:
            for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue


def _wait_for(condition: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


class GraphQL:
    def __init__(self, base: str) -> None:
        self.url = f"{base}/graphql"

    def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        response = requests.post(self.url, json={"query": query, "variables": variables}, timeout=30)
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]


def _wait_until_serving(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """/server_info answers and the code location is LOADED (a load error fails at once, with its message)."""
    gql = GraphQL(base)

    def location_loaded() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"dagster-webserver exited with {proc.returncode}:\n{_tail(log)}")
        try:
            if requests.get(f"{base}/server_info", timeout=5).status_code != 200:
                return False
            data = gql(
                """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
                     locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
            )
        except requests.RequestException:
            return False
        entries = data["workspaceOrError"].get("locationEntries") or []
        for entry in entries:
            loaded = entry["locationOrLoadError"]
            if loaded and loaded["__typename"] == "PythonError":
                raise AssertionError(f"code location {entry['name']} failed to load: {loaded['message']}")
        return any(e["name"] == "crypto_assets" and e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries)

    _wait_for(location_loaded, 120, "dagster-webserver to serve the crypto_assets code location")


def _stop_schedules(gql: GraphQL) -> list[str]:
    data = gql(
        """{ schedulesOrError(repositorySelector: {repositoryName: "__repository__",
                                                   repositoryLocationName: "crypto_assets"}) {
             __typename ... on Schedules { results { name scheduleState { id status } } } } }"""
    )
    stopped = []
    for schedule in data["schedulesOrError"]["results"]:
        if schedule["scheduleState"]["status"] == "RUNNING":
            result = gql(
                """mutation($id: String) { stopRunningSchedule(id: $id) { __typename
                     ... on ScheduleStateResult { scheduleState { status } } ... on PythonError { message } } }""",
                id=schedule["scheduleState"]["id"],
            )["stopRunningSchedule"]
            assert result["__typename"] == "ScheduleStateResult", result
            stopped.append(schedule["name"])
    return stopped


def _isolated_copy(demo: PipelineEnv, root: Path) -> dict[str, str]:
    """The demo's instance and warehouse, copied: the UI may launch runs and stop schedules without side effects."""
    home = root / "dagster_home"
    shutil.copytree(demo.dagster_home, home)
    warehouse = root / demo.duckdb_path.name
    for source in demo.duckdb_path.parent.glob(demo.duckdb_path.name + "*"):  # the file and a possible .wal
        shutil.copy2(source, root / source.name)
    return {**demo.env, "DAGSTER_HOME": str(home), "CRYPTO_ASSETS_DUCKDB": str(warehouse)}


# ------------------------------------------------------------------------------------------------ expectations


def _definitions() -> tuple[dict[str, str], list[str], list[str], list[str]]:
    """From the code, not the UI: asset -> group, raw/prices' checks, its blocking checks, its columns."""
    import dagster as dg

    from crypto_assets.definitions import defs
    from crypto_assets.schemas import dagster_table_schema

    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    prices = dg.AssetKey.from_user_string(PRICES)
    checks = sorted(key for key in graph.asset_check_keys if key.asset_key == prices)
    blocking = [key.name for key in checks if graph.get_check_spec(key).blocking]
    columns = [column.name for column in dagster_table_schema("raw.prices").columns]
    return groups, [key.name for key in checks], blocking, columns


def _name_pattern(name: str) -> re.Pattern[str]:
    """An asset's name on a graph node: in full, or middle-truncated ("techni…_indicators") at small zoom."""
    return re.compile(rf"^({re.escape(name)}|{re.escape(name[:4])}\S*…\S*{re.escape(name[-4:])})$")


def _wait_still(locator: Any, timeout_s: float = 10) -> None:
    """Until the element stops moving (the graph animates its zoom-to-fit)."""
    last: list[Any] = [None]

    def still() -> bool:
        box = locator.bounding_box()
        settled = box is not None and box == last[0]
        last[0] = box
        return settled

    _wait_for(still, timeout_s, "the asset graph to settle", interval_s=0.25)


# ------------------------------------------------------------------------------------------------ the test


def test_ui_shows_demo_assets_and_launches_one_partition(demo_pipeline: PipelineEnv, tmp_path: Path) -> None:
    groups, prices_checks, blocking_checks, prices_columns = _definitions()
    assert MINIMUM_ASSET_GROUPS.items() <= groups.items(), groups
    found = re.search(r"^run ([0-9a-f-]{36}): SUCCESS$", demo_pipeline.output, re.MULTILINE)  # type: ignore[attr-defined]
    assert found, "the demo bootstrap did not print its run id"
    bootstrap_run = found.group(1)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = _isolated_copy(demo_pipeline, tmp_path)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    web_log, daemon_log = tmp_path / "webserver.log", tmp_path / "daemon.log"
    webserver = [str(VENV_BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    daemon = [str(VENV_BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"]
    gql = GraphQL(base)
    try:
        with _service(webserver, env, web_log) as web_proc:
            _wait_until_serving(base, web_proc, web_log)
            stopped = _stop_schedules(gql)
            assert {"hourly_refresh", "daily_finalize"} <= set(stopped), stopped
            with _service(daemon, env, daemon_log), sync_api.sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    _drive_ui(browser, base, gql, groups, prices_checks, blocking_checks, prices_columns, bootstrap_run)
                finally:
                    browser.close()
    finally:
        for log in (web_log, daemon_log):
            if log.exists():
                shutil.copy(log, ARTIFACTS / log.name)


def _drive_ui(
    browser: Any,
    base: str,
    gql: GraphQL,
    groups: dict[str, str],
    prices_checks: list[str],
    blocking_checks: list[str],
    prices_columns: list[str],
    bootstrap_run: str,
) -> None:
    context = browser.new_context(viewport=GRAPH_VIEWPORT)
    context.set_default_timeout(UI_TIMEOUT_MS)
    expect.set_options(timeout=UI_TIMEOUT_MS)
    page = context.new_page()
    # A fresh instance greets its first visitor with a newsletter modal; dismiss it whenever it shows up.
    page.add_locator_handler(
        page.get_by_text("Join the Dagster community"), lambda: page.get_by_role("button", name="Skip").click()
    )
    try:
        _check_asset_graph(page, base, groups)
        page.set_viewport_size(PAGE_VIEWPORT)
        _check_catalog(page, base, groups)
        _check_prices_partitions(page, base, bootstrap_run)
        _check_prices_checks(page, base, prices_checks, blocking_checks)
        _check_prices_columns(page, base, prices_columns)
        _check_runs(page, base, bootstrap_run)
        _launch_one_partition(page, base, gql)
    except Exception:
        page.screenshot(path=ARTIFACTS / "failure.png")
        raise
    finally:
        context.close()


def _check_asset_graph(page: Any, base: str, groups: dict[str, str]) -> None:
    page.goto(f"{base}/asset-groups")
    viewport = page.locator("[data-svg-viewport]")
    for group in sorted(set(groups.values())):  # collapsed group boxes
        expect(viewport.get_by_text(group, exact=True).first).to_be_visible()
    hide_navigation = page.get_by_role("button", name="Hide navigation")
    if hide_navigation.is_visible():
        hide_navigation.click()
    viewport.get_by_role("button", name="settings").click()
    expand = page.get_by_role("menuitem", name="Expand all groups")
    if expand.is_visible():
        expand.click()
    page.keyboard.press("Escape")
    page.get_by_role("button", name="panel_show_right").click()  # hide the "Jump to…" asset sidebar
    box = viewport.bounding_box()
    assert box is not None
    page.mouse.dblclick(box["x"] + 15, box["y"] + box["height"] - 15)  # on the background: zoom to fit
    for key in groups:
        expect(viewport.get_by_text(_name_pattern(key.split("/")[-1])).first).to_be_visible()
    for group in set(groups.values()):
        expect(viewport.get_by_text(group, exact=True).first).to_be_visible()
    _wait_still(viewport.get_by_text(_name_pattern("training_set")).first)
    top = 104  # below the graph's search bar
    shot = {"x": box["x"], "y": top, "width": box["width"], "height": box["y"] + box["height"] - top}
    page.screenshot(path=ARTIFACTS / "asset_graph.png", clip=shot)
    if os.environ.get("CRYPTO_ASSETS_UPDATE_DOCS_IMAGES") == "1":
        DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ARTIFACTS / "asset_graph.png", DOCS_IMAGE)


def _check_catalog(page: Any, base: str, groups: dict[str, str]) -> None:
    page.goto(f"{base}/assets")
    for key, group in groups.items():
        expect(page.locator(f'a[href="/assets/{key}"]')).to_be_visible()
        # Each row links its group as /asset-groups~group:"<group>"/<url-encoded key>.
        group_link = page.locator(f'a[href$="/{quote(key, safe="")}"]').filter(has_text=re.compile(rf"^{group}$"))
        expect(group_link).to_be_visible()
    page.screenshot(path=ARTIFACTS / "asset_catalog.png")


def _check_prices_partitions(page: Any, base: str, bootstrap_run: str) -> None:
    page.goto(f"{base}/assets/{PRICES}?view=partitions")
    expect(page.get_by_text(f"Materialized ({DEMO_DAYS})", exact=True)).to_be_visible()
    expect(page.get_by_text("Failed (0)", exact=True)).to_be_visible()
    page.get_by_placeholder("Filter by name…").fill(LAUNCH_PARTITION)
    page.get_by_text(LAUNCH_PARTITION, exact=True).first.click()
    expect(page).to_have_url(re.compile(rf"[?&]partition={LAUNCH_PARTITION}"))
    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
    expect(page.get_by_role("link", name=bootstrap_run[:8])).to_be_visible()  # materialized by the bootstrap run
    page.screenshot(path=ARTIFACTS / "prices_partitions.png")


def _check_prices_checks(page: Any, base: str, checks: list[str], blocking: list[str]) -> None:
    page.goto(f"{base}/assets/{PRICES}?view=checks")
    expect(page.get_by_text(f"Checks ({len(checks)})", exact=True)).to_be_visible()
    for name in checks:
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    for name in blocking:  # a failed blocking check would have failed the bootstrap run
        expect(page.locator("span", has_text=name).filter(has_text="Succeeded").first).to_be_visible()
    page.get_by_text("ohlc_consistency", exact=True).first.click()
    expect(page.get_by_text("blocking", exact=True).first).to_be_visible()  # "This is a blocking asset check."
    expect(page.get_by_text("Passed", exact=True).first).to_be_visible()
    page.screenshot(path=ARTIFACTS / "prices_checks.png")


def _check_prices_columns(page: Any, base: str, columns: list[str]) -> None:
    page.goto(f"{base}/assets/{PRICES}?view=overview")
    table = page.locator("table").filter(has_text="Column name")
    expect(table.locator("tr td:first-child")).to_have_text(["Column name", *columns])  # header row first
    provider = table.locator("tr").filter(has=page.get_by_text("provider", exact=True))
    expect(provider).to_contain_text("VARCHAR")
    expect(provider).to_contain_text("price provider that served the bar")
    table.scroll_into_view_if_needed()
    page.screenshot(path=ARTIFACTS / "prices_columns.png")


def _check_runs(page: Any, base: str, bootstrap_run: str) -> None:
    page.goto(f"{base}/runs")
    expect(page.get_by_role("link", name=bootstrap_run[:8])).to_be_visible()
    expect(page.get_by_text("bootstrap", exact=True).first).to_be_visible()
    expect(page.get_by_text("Success", exact=True)).to_have_count(1)  # the copied instance holds that one run
    page.screenshot(path=ARTIFACTS / "runs.png")


def _run_status(gql: GraphQL, run_id: str) -> dict[str, Any]:
    return gql(
        """query($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status
             tags { key value } assetMaterializations { assetKey { path } partition } } } }""",
        runId=run_id,
    )["runOrError"]


def _launch_one_partition(page: Any, base: str, gql: GraphQL) -> None:
    page.goto(f"{base}/assets/{PRICES}")
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog")
    # The dialog opens on the last 90 days (all missing here); the demo days are years older.
    dialog.get_by_text("Show all partitions").click()
    expect(dialog.get_by_role("button", name=re.compile("^All time"))).to_be_visible()
    selection = dialog.locator("input[type=text]").first
    selection.fill(LAUNCH_PARTITION)
    selection.press("Enter")
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    launch = dialog.get_by_role("button", name="Launch 1 run")
    expect(launch).to_be_enabled()
    page.screenshot(path=ARTIFACTS / "launch_dialog.png")
    launch.click()
    toast = page.get_by_text(re.compile(r"^Launched run [0-9a-f]{8}$"))
    expect(toast).to_be_visible()
    short_id = toast.inner_text().split()[-1]

    runs = gql(
        """query($tag: String!) { runsOrError(filter: {tags: [{key: "dagster/partition", value: $tag}]}) {
             ... on Runs { results { runId } } } }""",
        tag=LAUNCH_PARTITION,
    )["runsOrError"]["results"]
    run_id = next(run["runId"] for run in runs if run["runId"].startswith(short_id))

    def finished() -> dict[str, Any] | None:
        status = _run_status(gql, run_id)
        return status if status["status"] in {"SUCCESS", "FAILURE", "CANCELED"} else None

    run = _wait_for(
        finished,
        RUN_TIMEOUT_S,
        f"run {short_id} (queued -> daemon -> multiprocess executor) to finish",
        interval_s=1.0,
    )
    assert run["status"] == "SUCCESS", f"run {run_id} ended {run['status']}; see {ARTIFACTS}/daemon.log"
    assert {"key": "dagster/partition", "value": LAUNCH_PARTITION} in run["tags"]
    materialized = {(tuple(m["assetKey"]["path"]), m["partition"]) for m in run["assetMaterializations"]}
    assert materialized == {(tuple(PRICES.split("/")), LAUNCH_PARTITION)}, materialized

    page.goto(f"{base}/runs/{run_id}")
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    expect(page.get_by_text(f"partition: {LAUNCH_PARTITION}")).to_be_visible()
    expect(page.get_by_text("RUN_SUCCESS", exact=True).first).to_be_visible()
    page.screenshot(path=ARTIFACTS / "launched_run.png")

    page.goto(f"{base}/runs")
    expect(page.get_by_role("link", name=short_id)).to_be_visible()
    expect(page.get_by_text("Success", exact=True)).to_have_count(2)
    page.screenshot(path=ARTIFACTS / "runs_after_launch.png")
